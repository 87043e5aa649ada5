package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
)

// The primitives of expiring users on MySQL and MariaDB, shared by the
// expiring-user type and the issuer. An expiring user is an account at the
// base user's host with exactly the base user's grants, roles, REQUIRE
// options and resource limits (the replay alternating users use:
// syncClone), and a password.
//
// Neither server has an absolute expiry for an account (PASSWORD EXPIRE
// only sends the user to a sandbox that can still run SET PASSWORD), so
// the expiry is enforced by the reaper dropping the account. Nor can
// MariaDB 10.11 keep a comment or an attribute with an account (CREATE
// USER ... COMMENT/ATTRIBUTE is MySQL 8.0.21 and later only), so the marker
// that proves Rotary created an account is a row of a table of its own,
// MarkerTable, holding the account and its dbsecret.Marker. The row is
// written before the account is created, so no account of Rotary's ever
// exists without its marker; a row whose account is gone is deleted by the
// reaper once it has expired.

// DefaultMarkerDatabase and MarkerTable name the table of markers
// (Config.MarkerDatabase overrides the database): the master creates them
// on first use (it needs CREATE on the database, then SELECT, INSERT and
// DELETE on the table).
const (
	DefaultMarkerDatabase = "rotary"
	MarkerTable           = "expiring_users"
)

// ErrNotExpiringUser is wrapped when an account Rotary was asked to change
// or drop is not one of its expiring users (no marker, another base).
var ErrNotExpiringUser = errors.New("not a Rotary expiring user")

// ErrUserExists is wrapped when CreateExpiringUser with CreateOnly finds an
// account or a marker of that name already (a name drawn twice): draw
// another.
var ErrUserExists = errors.New("a user of that name exists")

// Name limits of the server families in characters, the strictest of each:
// MySQL 5.7 and 8 accept 32, MariaDB 80 (128 from 10.6 on).
const (
	MySQLNameLimit   = 32
	MariaDBNameLimit = 80
)

// EngineNameLimit returns the strictest user name limit of the secret's
// engine (mariadb: MariaDBNameLimit; mysql, aurora-mysql: MySQLNameLimit),
// lowered by Config.UsernameLimit when that is set. It is what a name must
// fit before any server is asked; Admin.NameLimit is the server's own.
func (c Config) EngineNameLimit(engine string) int {
	limit := MySQLNameLimit
	if engine == "mariadb" {
		limit = MariaDBNameLimit
	}
	if c.UsernameLimit > 0 && c.UsernameLimit < limit {
		limit = c.UsernameLimit
	}
	return limit
}

// ExpiringUserName returns a new name for an expiring user of base (see
// dbsecret.ExpiringName) within limit characters (EngineNameLimit or
// Admin.NameLimit); a base that is not a name Rotary accepts, or too long
// for the limit, is refused with an error wrapping
// dbsecret.ErrInvalidSecret (and dbsecret.ErrNameTooLong).
func ExpiringUserName(base string, limit int, now time.Time) (string, error) {
	if err := checkUsername("username", base, maxUsernameLen); err != nil {
		return "", err
	}
	name, err := dbsecret.ExpiringName(base, now, limit, utf8.RuneCountInString)
	if err != nil {
		return "", fmt.Errorf("%w: %w (characters)", dbsecret.ErrInvalidSecret, err)
	}
	return name, nil
}

// Admin is a session of the master user, which creates, lists and drops
// expiring users. Close it.
type Admin struct {
	cfg    Config
	s      *session
	master *dbsecret.Secret
}

// OpenAdmin logs in with the master secret (without a database).
func (c Config) OpenAdmin(ctx context.Context, master *dbsecret.Secret) (*Admin, error) {
	s, err := open(ctx, c.DB, target{secret: master, username: master.Username, password: master.Password})
	if err != nil {
		return nil, fmt.Errorf("log in with the master secret: %w", err)
	}
	return &Admin{cfg: c, s: s, master: master}, nil
}

// Close ends the master's session.
func (a *Admin) Close() { a.s.Close() }

// MariaDB reports whether the server is MariaDB.
func (a *Admin) MariaDB() bool { return a.s.mariadb }

// Now returns the server's clock in UTC, which the reaper goes by.
func (a *Admin) Now(ctx context.Context) (time.Time, error) {
	var t time.Time
	var raw []byte
	if err := a.s.queryRow(ctx, "SELECT DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%dT%H:%i:%s.%fZ')").Scan(&raw); err != nil {
		return t, fmt.Errorf("read the server's clock: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, string(raw))
	if err != nil {
		return t, fmt.Errorf("read the server's clock: %w", err)
	}
	return t, nil
}

// NameLimit returns the longest user name the server accepts, lowered by
// Config.UsernameLimit when that is set.
func (a *Admin) NameLimit(ctx context.Context) (int, error) {
	limit, err := a.s.usernameLimit(ctx)
	if err != nil {
		return 0, err
	}
	if a.cfg.UsernameLimit > 0 && a.cfg.UsernameLimit < limit {
		limit = a.cfg.UsernameLimit
	}
	return limit, nil
}

// BaseHost returns the host of base's account: host itself when it is not
// empty and base has an account there, else base's only account's host.
// A base with no account (or several, when host is empty) is refused,
// wrapping dbsecret.ErrInvalidSecret.
func (a *Admin) BaseHost(ctx context.Context, base, host string) (string, error) {
	hosts, err := a.s.queryStrings(ctx, "SELECT Host FROM mysql.user WHERE User = ? ORDER BY Host", base)
	if err != nil {
		return "", fmt.Errorf("look up the accounts of %q in mysql.user: %w", base, err)
	}
	switch {
	case host != "" && contains(hosts, host):
		return host, nil
	case len(hosts) == 0 || host != "":
		at := ""
		if host != "" {
			at = fmt.Sprintf(" at host %q", host)
		}
		return "", fmt.Errorf("%w: the base user %q has no account%s on the server; create it (the expiring users take its host and grants) or fix field \"username\"", dbsecret.ErrInvalidSecret, base, at)
	case len(hosts) > 1:
		return "", fmt.Errorf("%w: the base user %q has accounts at %d hosts (%v); name the host whose grants the expiring users get", dbsecret.ErrInvalidSecret, base, len(hosts), hosts)
	}
	return hosts[0], nil
}

// ExpiringUserSpec describes an expiring user to create.
type ExpiringUserSpec struct {
	// Name is the new account's user name, from ExpiringUserName(Base, ...).
	Name string
	// Base is the existing user whose grants the user gets.
	Base string
	// BaseHost is the host of the base user's account, which the new
	// account gets too; empty means the base user's only account.
	BaseHost string
	// Origin says who asked for it (dbsecret.OriginRotation, dbsecret.OriginIssued).
	Origin string
	// Password is the user's password (on MariaDB, for a
	// mysql_native_password base, only its hash is sent).
	Password string
	// ExpiresAt is when the reaper may drop the account.
	ExpiresAt time.Time
	// CreateOnly refuses (ErrUserExists) an account or a marker of that
	// name that exists already, whatever its origin: the issuer, which
	// never retries a create, must not take over another request's user.
	CreateOnly bool
}

// CreateExpiringUser writes the marker, creates the account at the base
// user's host with the base user's authentication plugin and the password,
// and gives it the base user's grants, roles, REQUIRE options and resource
// limits. It returns the account's host. It is safe to repeat with the
// same spec (a retried rotation): an account of that name that already has
// the marker for the same base and origin gets the password (only if it
// does not already log in with it) and the base user's grants again. An
// account of that name without that marker (another origin's user: a name
// collision, never taken over), a base user that does not exist or whose
// grants let it write the marker table (see checkMarkerAccess), or a name
// not of the base's family or over the server's limit is refused before
// any change.
//
// The master needs CREATE USER, every privilege of the base user WITH
// GRANT OPTION, and CREATE, SELECT, INSERT and DELETE on the marker table
// (see docs/expiring-users.md).
func (a *Admin) CreateExpiringUser(ctx context.Context, spec ExpiringUserSpec) (string, error) {
	if !dbsecret.IsExpiringUserOf(spec.Base, spec.Name) {
		return "", fmt.Errorf("%w: %q is not a name of an expiring user of %q", dbsecret.ErrInvalidSecret, spec.Name, spec.Base)
	}
	if spec.ExpiresAt.IsZero() {
		return "", fmt.Errorf("%w: the expiring user %q has no expiry", dbsecret.ErrInvalidSecret, spec.Name)
	}
	limit, err := a.NameLimit(ctx)
	if err != nil {
		return "", err
	}
	if err := checkUsername("username", spec.Name, limit); err != nil {
		return "", fmt.Errorf("the expiring user's name is too long for the server: %w; use a base user name of at most %d characters", err, limit-dbsecret.ExpiringSuffixLen)
	}
	host, err := a.BaseHost(ctx, spec.Base, spec.BaseHost)
	if err != nil {
		return "", err
	}
	if err := a.checkMarkerAccess(ctx, spec.Base, host); err != nil {
		return "", err
	}
	exists, err := a.s.accountExists(ctx, spec.Name, host)
	if err != nil {
		return "", err
	}
	marked, err := a.marker(ctx, spec.Name, host)
	if err != nil {
		return "", err
	}
	if spec.CreateOnly && (exists || marked != nil) {
		return "", fmt.Errorf("%w: the account %q@%q (or its marker) already exists; nothing was changed: draw another name", ErrUserExists, spec.Name, host)
	}
	if exists && (marked == nil || marked.Base != spec.Base) {
		return "", fmt.Errorf("%w: the account %q@%q already exists without Rotary's marker for base %q; Rotary changes nothing about it: drop or rename it, then try again", ErrNotExpiringUser, spec.Name, host, spec.Base)
	}
	if marked != nil && (marked.Base != spec.Base || marked.Origin != spec.Origin) {
		return "", fmt.Errorf("%w: the account %q@%q already has Rotary's marker for base %q with another origin (%s), so it is not a retry of this one; Rotary changes nothing about it: remove the pending version (AWSPENDING) and rotate again", ErrNotExpiringUser, spec.Name, host, marked.Base, marked.Origin)
	}
	marker := dbsecret.NewMarker(spec.Base, spec.Origin, spec.ExpiresAt)
	if err := a.writeMarker(ctx, spec.Name, host, marker, spec.CreateOnly); err != nil {
		return "", err
	}
	acct := a.s.account(spec.Name, host)
	if !exists {
		plugin, err := a.s.plugin(ctx, spec.Base, host)
		if err != nil {
			return "", err
		}
		clause, err := a.s.identifiedBy(plugin, spec.Password)
		if err != nil {
			return "", err
		}
		if err := a.s.execSecret(ctx, fmt.Sprintf("create the expiring user %q@%q", spec.Name, host), "CREATE USER "+acct+" "+clause); err != nil {
			return "", err
		}
	} else if s, err := open(ctx, a.cfg.DB, target{secret: a.master, username: spec.Name, password: spec.Password}); err == nil {
		s.Close() // the password is set already (a retry)
	} else {
		plugin, err := a.s.plugin(ctx, spec.Name, host)
		if err != nil {
			return "", err
		}
		clause, err := a.s.identifiedBy(plugin, spec.Password)
		if err != nil {
			return "", err
		}
		if err := a.s.execSecret(ctx, fmt.Sprintf("set the password of the expiring user %q@%q", spec.Name, host), "ALTER USER "+acct+" "+clause); err != nil {
			return "", err
		}
	}
	if err := a.s.syncClone(ctx, spec.Base, spec.Name, host); err != nil {
		return "", err
	}
	return host, nil
}

func (a *Admin) markerDatabase() string {
	if a.cfg.MarkerDatabase != "" {
		return a.cfg.MarkerDatabase
	}
	return DefaultMarkerDatabase
}

func (a *Admin) markerTable() string {
	return quoteIdent(a.markerDatabase()) + "." + quoteIdent(MarkerTable)
}

// isNoMarkerTable reports an error of a query on the marker table before
// anything created it (unknown database or table).
func isNoMarkerTable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1146 || me.Number == 1049)
}

// writeMarker records marker for user@host, creating the table on first
// use. With insertOnly a row already there (a concurrent create of the same
// name) is refused with ErrUserExists rather than overwritten.
func (a *Admin) writeMarker(ctx context.Context, user, host string, m dbsecret.Marker, insertOnly bool) error {
	create := []string{
		"CREATE DATABASE IF NOT EXISTS " + quoteIdent(a.markerDatabase()),
		"CREATE TABLE IF NOT EXISTS " + a.markerTable() + ` (user VARCHAR(128) NOT NULL, host VARCHAR(255) NOT NULL, marker TEXT NOT NULL,
			PRIMARY KEY (user, host)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
	}
	for _, stmt := range create {
		if _, err := a.s.exec(ctx, stmt); err != nil {
			return fmt.Errorf("create the table of Rotary's markers %s (the master user needs CREATE on %s.*; nothing was changed): %w", a.markerTable(), quoteIdent(a.markerDatabase()), err)
		}
	}
	stmt := "INSERT INTO " + a.markerTable() + " (user, host, marker) VALUES (?, ?, ?)"
	if !insertOnly {
		stmt += " ON DUPLICATE KEY UPDATE marker = VALUES(marker)"
	}
	if _, err := a.s.exec(ctx, stmt, user, host, m.JSON()); err != nil {
		var me *mysql.MySQLError
		if insertOnly && errors.As(err, &me) && me.Number == 1062 {
			return fmt.Errorf("%w: the marker of %q@%q was written meanwhile; nothing was changed: draw another name", ErrUserExists, user, host)
		}
		return fmt.Errorf("record the marker of %q@%q in %s (the master user needs SELECT, INSERT and DELETE on it; nothing was changed): %w", user, host, a.markerTable(), err)
	}
	return nil
}

// marker returns the marker of user@host, or nil when it has none.
func (a *Admin) marker(ctx context.Context, user, host string) (*dbsecret.Marker, error) {
	var raw string
	err := a.s.queryRow(ctx, "SELECT marker FROM "+a.markerTable()+" WHERE user = ? AND host = ?", user, host).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) || isNoMarkerTable(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the marker of %q@%q from %s: %w", user, host, a.markerTable(), err)
	}
	m, err := dbsecret.ParseMarker(raw)
	if err != nil {
		return nil, nil
	}
	return &m, nil
}

// markedUser is a row of the marker table and whether its account exists.
type markedUser struct {
	user    dbsecret.ExpiringUser
	account bool
}

func (a *Admin) markedUsers(ctx context.Context, base string) ([]markedUser, error) {
	ctx, cancel := context.WithTimeout(ctx, a.s.timeout)
	defer cancel()
	rows, err := a.s.conn.QueryContext(ctx, "SELECT e.user, e.host, e.marker, EXISTS (SELECT 1 FROM mysql.user u WHERE u.User = e.user AND u.Host = e.host) FROM "+a.markerTable()+" e ORDER BY e.user, e.host")
	if isNoMarkerTable(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list the expiring users of %q from %s: %w", base, a.markerTable(), err)
	}
	defer rows.Close()
	var out []markedUser
	for rows.Next() {
		var name, host, raw string
		var exists bool
		if err := rows.Scan(&name, &host, &raw, &exists); err != nil {
			return nil, fmt.Errorf("list the expiring users of %q from %s: %w", base, a.markerTable(), err)
		}
		b, created, ok := dbsecret.ParseExpiringName(name)
		if !ok || b != base {
			continue
		}
		m, err := dbsecret.ParseMarker(raw)
		if err != nil || m.Base != base {
			continue
		}
		out = append(out, markedUser{user: dbsecret.ExpiringUser{Name: name, Host: host, Base: base, Origin: m.Origin, CreatedAt: created, ExpiresAt: m.ExpiresAt}, account: exists})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list the expiring users of %q from %s: %w", base, a.markerTable(), err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].user.CreatedAt.Before(out[j].user.CreatedAt) })
	return out, nil
}

// ListExpiringUsers returns the expiring users of base of every origin
// whose accounts exist: those with a marker for base and a name of base's
// family, oldest first. Accounts without a marker are never listed.
func (a *Admin) ListExpiringUsers(ctx context.Context, base string) ([]dbsecret.ExpiringUser, error) {
	marked, err := a.markedUsers(ctx, base)
	if err != nil {
		return nil, err
	}
	var out []dbsecret.ExpiringUser
	for _, m := range marked {
		if m.account {
			out = append(out, m.user)
		}
	}
	return out, nil
}

// DropExpiringUser drops the expiring user name@host of base. It first
// checks the marker again (ErrNotExpiringUser, nothing changed, when the
// account is not one of base's expiring users), then locks the account,
// kills its connections unless keepSessions (a connection outlives its
// account), drops it and deletes its marker. Killing needs PROCESS and
// CONNECTION ADMIN (CONNECTION_ADMIN on MySQL 8) or SUPER, or RDS's
// mysql.rds_kill; without them nothing is changed. An account already
// gone only has its marker deleted.
func (a *Admin) DropExpiringUser(ctx context.Context, base, name, host string, keepSessions bool) error {
	m, err := a.marker(ctx, name, host)
	if err != nil {
		return err
	}
	if m == nil || m.Base != base || !dbsecret.IsExpiringUserOf(base, name) {
		return fmt.Errorf("%w: the account %q@%q has no Rotary marker for base %q; Rotary does not drop it", ErrNotExpiringUser, name, host, base)
	}
	exists, err := a.s.accountExists(ctx, name, host)
	if err != nil {
		return err
	}
	acct := a.s.account(name, host)
	if exists {
		var kill func(context.Context, int64) error
		if !keepSessions {
			if kill, err = a.s.killer(ctx, a.master.Username); err != nil {
				return fmt.Errorf("%w (or set %s=true to drop expired users and leave their connections running)", err, dbsecret.EnvReapKeepSessions)
			}
		}
		if _, err := a.s.exec(ctx, "ALTER USER "+acct+" ACCOUNT LOCK"); err != nil {
			return fmt.Errorf("lock the expiring user %q@%q: %w", name, host, err)
		}
		if kill != nil {
			if err := a.s.endSessions(ctx, name, kill); err != nil {
				return err
			}
		}
		if _, err := a.s.exec(ctx, "DROP USER IF EXISTS "+acct); err != nil {
			return fmt.Errorf("drop the expiring user %q@%q (it is locked): %w", name, host, err)
		}
	}
	if _, err := a.s.exec(ctx, "DELETE FROM "+a.markerTable()+" WHERE user = ? AND host = ?", name, host); err != nil {
		return fmt.Errorf("delete the marker of the dropped user %q@%q: %w", name, host, err)
	}
	return nil
}

// ReapResult is what Reap did.
type ReapResult struct {
	Dropped []string // users dropped
	Kept    int      // expiring users of the base left in place (live, or kept)
}

// Reap drops the expiring users of base of origin (the reaping secret's
// dbsecret.OriginRotation) and the issued ones (see dbsecret.Reapable)
// whose expiry has passed by the server's clock, except those named in
// keep (AWSCURRENT's and AWSPENDING's users, say), killing their
// connections unless keepSessions. Another secret's users are never
// dropped, expired or not: on MariaDB an expired account still logs in,
// its AWSCURRENT may be one (its rotations failing past its TTL), and only
// its own reaper knows. Kept counts the users of origin and the issued
// ones left in place. It deletes those origins' expired markers whose
// account is gone. The base user and accounts without the marker are
// never listed, so never dropped.
// It goes on after a failed drop and returns what it did with the first
// error.
func (a *Admin) Reap(ctx context.Context, base, origin string, keep []string, keepSessions bool) (ReapResult, error) {
	var res ReapResult
	marked, err := a.markedUsers(ctx, base)
	if err != nil {
		return res, err
	}
	now, err := a.Now(ctx)
	if err != nil {
		return res, err
	}
	var first error
	for _, m := range marked {
		u := m.user
		if !dbsecret.Reapable(u, origin) {
			continue // another secret's: its own reaper decides
		}
		if u.Name == base || contains(keep, u.Name) || !u.Expired(now) {
			if m.account {
				res.Kept++
			}
			continue
		}
		if err := a.DropExpiringUser(ctx, base, u.Name, u.Host, keepSessions); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		if m.account {
			res.Dropped = append(res.Dropped, u.Name)
		}
	}
	return res, first
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
