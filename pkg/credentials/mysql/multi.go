package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// MultiUser rotates between two users, <user> and <user>_clone, so that the
// credential applications hold keeps working while the other one changes.
// It logs in with the admin secret named by the secret's masterarn. The
// clone is created on the first rotation at the base user's host; on every
// rotation it gets exactly the base user's grants, roles, REQUIRE options and
// resource limits, including revocations since the last rotation. The base
// user is the source of truth: grant to <user>, never to <user>_clone.
type MultiUser struct {
	cfg Config
}

var (
	_ rotation.Credential    = (*MultiUser)(nil)
	_ rotation.Prober        = (*MultiUser)(nil)
	_ rotation.SetReader     = (*MultiUser)(nil)
	_ rotation.PublicFielder = (*MultiUser)(nil)
)

// NewMultiUser returns the alternating-users credential type.
func NewMultiUser(cfg Config) *MultiUser { return &MultiUser{cfg: cfg} }

// Validate checks that v is a MySQL-family database secret with masterarn,
// whose user names (<user> and <user>_clone) Rotary accepts.
func (mu *MultiUser) Validate(ctx context.Context, v rotation.Version) error {
	s, err := validate(ctx, v)
	if err != nil {
		return err
	}
	return mu.checkNames(v.ID, s, maxUsernameLen, "the longest user name MySQL and MariaDB accept,")
}

// checkNames checks the secret's masterarn and both user names against the
// server's limit (described by source) and USERNAME_CHARACTER_LIMIT.
// openAdmin logs in with the master secret and checks the pair's names
// against the server's real user name limit (or USERNAME_CHARACTER_LIMIT),
// before the master changes anything. The caller must Close the session.
func (mu *MultiUser) openAdmin(ctx context.Context, master, cur *dbsecret.Secret, versionID string) (*session, error) {
	admin, err := open(ctx, mu.cfg.DB, target{secret: master, username: master.Username, password: master.Password})
	if err != nil {
		return nil, fmt.Errorf("log in with the master secret %s: %w", cur.MasterARN, err)
	}
	limit, err := admin.usernameLimit(ctx)
	if err == nil {
		err = mu.checkNames(versionID, cur, limit, "the server's limit")
	}
	if err != nil {
		admin.Close()
		return nil, err
	}
	return admin, nil
}

func (mu *MultiUser) checkNames(id string, s *dbsecret.Secret, serverLimit int, source string) error {
	if s.MasterARN == "" {
		return fmt.Errorf("%w: version %s: field \"masterarn\" is missing; alternating-users rotation needs the ARN of the admin secret that creates and alters the users", dbsecret.ErrInvalidSecret, id)
	}
	limit := serverLimit
	if mu.cfg.UsernameLimit > 0 && mu.cfg.UsernameLimit < limit {
		limit, source = mu.cfg.UsernameLimit, EnvUsernameLimit
	}
	base, _ := dbsecret.Pair(s.Username)
	if err := checkUsername("username", base, limit); err != nil {
		return fmt.Errorf("version %s: %w", id, err)
	}
	if clone, n, maxBase, ok := dbsecret.CloneTooLong(s.Username, limit, utf8.RuneCountInString); !ok {
		return fmt.Errorf("%w: version %s: field \"username\": the alternating user %q would be %d characters long, over %s of %d; use a base user name of at most %d characters", dbsecret.ErrInvalidSecret, id, clone, n, source, limit, maxBase)
	}
	return nil
}

// SetReads names the master secret (the pending version's masterarn), so
// that setSecret reads it with AWSCURRENT in one call (rotation.SetReader).
func (mu *MultiUser) SetReads(pending rotation.Version) []string {
	if p, err := parseMySQL(pending); err == nil && p.MasterARN != "" {
		return []string{p.MasterARN}
	}
	return nil
}

// Generate switches to the other user with a new password.
func (mu *MultiUser) Generate(_ context.Context, req rotation.GenerateRequest) (rotation.GenerateResponse, error) {
	cur, err := parseMySQL(req.Current)
	if err != nil {
		return rotation.GenerateResponse{}, err
	}
	pw, err := req.Passwords.Generate()
	if err != nil {
		return rotation.GenerateResponse{}, err
	}
	return rotation.GenerateResponse{Changes: map[string]any{"username": dbsecret.Other(cur.Username), "password": pw}}, nil
}

// Set gives the pending user the pending password (creating <user>_clone
// at the base user's host on the first rotation) and copies the base user's
// grants and attributes to the clone. Every check runs before the first change.
// It is safe to repeat: a password that already works is not set again and
// the grant copy is a sync.
func (mu *MultiUser) Set(ctx context.Context, req rotation.SetRequest) error {
	if err := mu.Validate(ctx, req.Current); err != nil {
		return err
	}
	cur, pend, err := checkPair(ctx, req.Current, req.Pending)
	if err != nil {
		return err
	}
	if pend.Username != dbsecret.Other(cur.Username) {
		return fmt.Errorf("%w: field \"username\" of the pending version is %q, but after %q comes %q; remove the pending version (AWSPENDING) and rotate again", dbsecret.ErrInvalidSecret, pend.Username, cur.Username, dbsecret.Other(cur.Username))
	}
	master, err := mu.master(ctx, req.Secrets, cur)
	if err != nil {
		return err
	}
	base, clone := dbsecret.Pair(cur.Username)
	// The current value must log in: the master never acts for a user that
	// the secret has not proved it owns (someone able to write this secret
	// but not the master must not get a clone of another user's grants).
	host, err := mu.currentHost(ctx, cur)
	if err != nil {
		return err
	}
	admin, err := mu.openAdmin(ctx, master, cur, req.Current.ID)
	if err != nil {
		return err
	}
	defer admin.Close()
	baseExists, err := admin.accountExists(ctx, base, host)
	if err != nil {
		return err
	}
	if !baseExists {
		return fmt.Errorf("the current value logs in as %q@%q but the base user %q has no account at host %q; create it there (the clone takes the base user's host and grants) or fix the secret's username", cur.Username, host, base, host)
	}
	cloneExists, err := admin.accountExists(ctx, clone, host)
	if err != nil {
		return err
	}

	// Without dbname: a clone that has no grants yet must still count as
	// working on a retry, so its password is not set twice (MySQL's
	// password history would refuse that).
	pendingWorks := false
	if s, err := open(ctx, mu.cfg.DB, target{secret: pend, username: pend.Username, password: pend.Password}); err == nil {
		pendingWorks = s.user == pend.Username && s.host == host
		s.Close()
	}
	pendAcct := admin.account(pend.Username, host)
	switch {
	case pend.Username == clone && !cloneExists:
		// The clone gets the base user's authentication plugin.
		plugin, err := admin.plugin(ctx, base, host)
		if err != nil {
			return err
		}
		clause, err := admin.identifiedBy(plugin, pend.Password)
		if err != nil {
			return err
		}
		if err := admin.execSecret(ctx, fmt.Sprintf("create the alternating user %q@%q", clone, host), "CREATE USER "+pendAcct+" "+clause); err != nil {
			return err
		}
	case !pendingWorks:
		plugin, err := admin.plugin(ctx, pend.Username, host)
		if err != nil {
			return err
		}
		clause, err := admin.identifiedBy(plugin, pend.Password)
		if err != nil {
			return err
		}
		if err := admin.execSecret(ctx, fmt.Sprintf("set the pending password of %q@%q", pend.Username, host), "ALTER USER "+pendAcct+" "+clause); err != nil {
			return err
		}
	}
	return admin.syncClone(ctx, base, clone, host)
}

// master reads the admin secret named by cur's masterarn (see
// dbsecret.Master) and refuses one that logs in as either user of the pair.
func (mu *MultiUser) master(ctx context.Context, secrets rotation.SecretStore, cur *dbsecret.Secret) (*dbsecret.Secret, error) {
	if secrets == nil {
		return nil, fmt.Errorf("read the master secret %s: no secret store was given", cur.MasterARN)
	}
	master, err := dbsecret.Master(ctx, secrets, cur, mu.cfg.NewRDS)
	if err != nil {
		return nil, err
	}
	if dbsecret.InPair(cur.Username, master.Username) {
		return nil, fmt.Errorf("%w: the master secret %s logs in as %q, one of the users this secret rotates; use a separate admin user as the master", dbsecret.ErrInvalidSecret, cur.MasterARN, master.Username)
	}
	return master, nil
}

// currentHost logs in with the current value and returns the host of the
// account the server matched: the account this secret owns.
func (mu *MultiUser) currentHost(ctx context.Context, cur *dbsecret.Secret) (string, error) {
	return mu.cfg.currentHost(ctx, cur)
}

// currentHost is MultiUser.currentHost, shared with ExpiringUsers.
func (c Config) currentHost(ctx context.Context, cur *dbsecret.Secret) (string, error) {
	s, err := open(ctx, c.DB, target{secret: cur, username: cur.Username, password: cur.Password, dbname: cur.DBName})
	if err != nil {
		return "", fmt.Errorf("log in with the current value (AWSCURRENT) to prove the secret owns user %q before the master changes anything: %w", cur.Username, err)
	}
	defer s.Close()
	if s.user != cur.Username {
		return "", fmt.Errorf("logging in as %q matched the account %q@%q (an anonymous or proxy account); drop the anonymous account", cur.Username, s.user, s.host)
	}
	return s.host, nil
}

// usernameLimit returns the longest user name the server accepts: the
// length of mysql.user's User column (128 on MariaDB 10.6 and later, 80
// before; 32 on MySQL 5.7 and 8). When the column cannot be read it falls
// back to the smaller value of the server's family.
func (s *session) usernameLimit(ctx context.Context) (int, error) {
	var n sql.NullInt64
	err := s.queryRow(ctx, "SELECT CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'mysql' AND TABLE_NAME = 'user' AND COLUMN_NAME = 'User'").Scan(&n)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("read the server's user name length limit: %w", err)
	}
	if !n.Valid || n.Int64 <= 0 {
		if s.mariadb {
			return 80, nil
		}
		return 32, nil
	}
	return int(n.Int64), nil
}

func (s *session) accountExists(ctx context.Context, user, host string) (bool, error) {
	var n int
	if err := s.queryRow(ctx, "SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = ?", user, host).Scan(&n); err != nil {
		return false, fmt.Errorf("look up %q@%q in mysql.user: %w", user, host, err)
	}
	return n > 0, nil
}

// accountAttrs are the REQUIRE options and resource limits of an account.
type accountAttrs struct {
	sslType, cipher, issuer, subject        string
	queries, updates, connections, userConn int64
	statementTime                           string // MariaDB only
}

func (s *session) attrs(ctx context.Context, user, host string) (accountAttrs, error) {
	var a accountAttrs
	var cipher, issuer, subject []byte
	cols := "ssl_type, ssl_cipher, x509_issuer, x509_subject, max_questions, max_updates, max_connections, max_user_connections"
	dst := []any{&a.sslType, &cipher, &issuer, &subject, &a.queries, &a.updates, &a.connections, &a.userConn}
	if s.mariadb {
		cols += ", max_statement_time"
		dst = append(dst, &a.statementTime)
	}
	if err := s.queryRow(ctx, "SELECT "+cols+" FROM mysql.user WHERE User = ? AND Host = ?", user, host).Scan(dst...); err != nil {
		return a, fmt.Errorf("read the REQUIRE options and resource limits of %q@%q from mysql.user: %w", user, host, err)
	}
	a.cipher, a.issuer, a.subject = string(cipher), string(issuer), string(subject)
	return a, nil
}

// alterClause returns the REQUIRE and WITH clauses of ALTER USER that give
// an account these attributes.
func (s *session) alterClause(a accountAttrs) string {
	var b strings.Builder
	b.WriteString(" REQUIRE ")
	switch strings.ToUpper(a.sslType) {
	case "ANY":
		b.WriteString("SSL")
	case "X509":
		b.WriteString("X509")
	case "SPECIFIED":
		var parts []string
		for _, p := range []struct{ kw, v string }{{"ISSUER", a.issuer}, {"SUBJECT", a.subject}, {"CIPHER", a.cipher}} {
			if p.v != "" {
				parts = append(parts, p.kw+" "+s.str(p.v))
			}
		}
		if len(parts) == 0 {
			b.WriteString("X509")
		} else {
			b.WriteString(strings.Join(parts, " AND "))
		}
	default:
		b.WriteString("NONE")
	}
	fmt.Fprintf(&b, " WITH MAX_QUERIES_PER_HOUR %d MAX_UPDATES_PER_HOUR %d MAX_CONNECTIONS_PER_HOUR %d MAX_USER_CONNECTIONS %d",
		a.queries, a.updates, a.connections, a.userConn)
	if s.mariadb && a.statementTime != "" {
		if f, err := strconv.ParseFloat(a.statementTime, 64); err == nil {
			fmt.Fprintf(&b, " MAX_STATEMENT_TIME %s", strconv.FormatFloat(f, 'f', -1, 64))
		}
	}
	return b.String()
}

// syncClone makes clone@host's REQUIRE options, resource limits, grants and
// roles equal base@host's.
func (s *session) syncClone(ctx context.Context, base, clone, host string) error {
	baseAcct, cloneAcct := s.account(base, host), s.account(clone, host)
	want, err := s.attrs(ctx, base, host)
	if err != nil {
		return err
	}
	have, err := s.attrs(ctx, clone, host)
	if err != nil {
		return err
	}
	if want != have {
		if _, err := s.exec(ctx, "ALTER USER "+cloneAcct+s.alterClause(want)); err != nil {
			return fmt.Errorf("copy the REQUIRE options and resource limits of %q@%q to %q: %w", base, host, clone, err)
		}
	}
	baseGrants, err := s.grants(ctx, baseAcct)
	if err != nil {
		return err
	}
	cloneGrants, err := s.grants(ctx, cloneAcct)
	if err != nil {
		return err
	}
	for _, stmt := range planGrantSync(baseGrants, cloneGrants, cloneAcct).statements() {
		if _, err := s.exec(ctx, stmt); err != nil {
			return fmt.Errorf("copy the grants of %q@%q to %q: %s: %w (the master user needs every privilege it copies, WITH GRANT OPTION)", base, host, clone, stmt, err)
		}
	}
	if !s.mariadb {
		return s.syncDefaultRoles(ctx, base, clone, host)
	}
	return nil // MariaDB's SHOW GRANTS carries SET DEFAULT ROLE, copied above
}

// syncDefaultRoles copies MySQL 8's default roles (mysql.default_roles,
// which SHOW GRANTS does not print) from base@host to clone@host.
func (s *session) syncDefaultRoles(ctx context.Context, base, clone, host string) error {
	read := func(user string) ([]string, error) {
		ctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		rows, err := s.conn.QueryContext(ctx, "SELECT DEFAULT_ROLE_USER, DEFAULT_ROLE_HOST FROM mysql.default_roles WHERE USER = ? AND HOST = ? ORDER BY 1, 2", user, host)
		if err != nil {
			return nil, fmt.Errorf("read the default roles of %q@%q: %w", user, host, err)
		}
		defer rows.Close()
		var roles []string
		for rows.Next() {
			var u, h string
			if err := rows.Scan(&u, &h); err != nil {
				return nil, err
			}
			roles = append(roles, s.account(u, h))
		}
		return roles, rows.Err()
	}
	want, err := read(base)
	if err != nil {
		return err
	}
	have, err := read(clone)
	if err != nil {
		return err
	}
	if strings.Join(want, ",") == strings.Join(have, ",") {
		return nil
	}
	list := "NONE"
	if len(want) > 0 {
		list = strings.Join(want, ", ")
	}
	if _, err := s.exec(ctx, "ALTER USER "+s.account(clone, host)+" DEFAULT ROLE "+list); err != nil {
		return fmt.Errorf("copy the default roles of %q@%q to %q: %w", base, host, clone, err)
	}
	return nil
}

func (s *session) grants(ctx context.Context, acct string) ([]grantLine, error) {
	lines, err := s.queryStrings(ctx, "SHOW GRANTS FOR "+acct)
	if err != nil {
		return nil, fmt.Errorf("SHOW GRANTS FOR %s: %w", acct, err)
	}
	out := make([]grantLine, 0, len(lines))
	for _, l := range lines {
		g, err := parseGrantLine(l)
		if err != nil {
			return nil, fmt.Errorf("SHOW GRANTS FOR %s: %w", acct, err)
		}
		out = append(out, g)
	}
	return out, nil
}

// Test logs in as the pending user and runs a query.
func (mu *MultiUser) Test(ctx context.Context, req rotation.TestRequest) error {
	pend, err := validate(ctx, req.Pending)
	if err != nil {
		return err
	}
	if _, err := testLoginHost(ctx, mu.cfg, pend); err != nil {
		return fmt.Errorf("test the pending value: %w", err)
	}
	return nil
}

// Probe logs in as the version's user of the pair with its password over
// AWSCURRENT's connection settings (see rotation.Prober). A version for a
// user outside the pair is not tried.
func (mu *MultiUser) Probe(ctx context.Context, req rotation.ProbeRequest) error {
	return mu.cfg.probe(ctx, req, func(cur, v *dbsecret.Secret) error {
		if !dbsecret.InPair(cur.Username, v.Username) {
			base, clone := dbsecret.Pair(cur.Username)
			return fmt.Errorf("field \"username\" is %q, outside the pair %q/%q", v.Username, base, clone)
		}
		return nil
	})
}
