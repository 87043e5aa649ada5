// Package postgres rotates PostgreSQL passwords: one user (SingleUser) or two
// alternating users managed by an admin secret (MultiUser), sending each new
// password as a SCRAM-SHA-256 verifier computed in the function.
package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotary-secrets/rotary/pkg/credentials/postgres/scram"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// MaxNameBytes is PostgreSQL's limit on a role name (NAMEDATALEN - 1).
// Longer names are silently truncated by the server, so they are refused.
const MaxNameBytes = 63

// CloneSuffix names the alternate user of alternating-users rotation.
const CloneSuffix = "_clone"

// ErrInvalid is wrapped by every error about a secret that this type refuses
// before it touches the database.
var ErrInvalid = errors.New("invalid PostgreSQL secret")

// ErrLogin is wrapped when no known password of the user logs in.
var ErrLogin = errors.New("cannot log in to PostgreSQL")

// ErrPasswordsNotChecked means the server let a user log in with a random
// password, so a successful login proves nothing about a password.
var ErrPasswordsNotChecked = errors.New("PostgreSQL does not check this user's password")

// Config configures both credential types.
type Config struct {
	// DB holds the CA bundle and the timeouts.
	DB dbsecret.Config
	// NewRDS builds the RDS API client that finds the host of an RDS-managed
	// master secret (MultiUser only). Nil refuses such master secrets.
	NewRDS func(ctx context.Context) (dbsecret.RDSAPI, error)
	// KeepSessionsOnRevoke leaves the open sessions of the other user of an
	// alternating pair running when MultiUser revokes; by default they are
	// ended, because a new password does not end a session opened with the
	// old one.
	KeepSessionsOnRevoke bool
}

// EnvRevokeKeepSessions is read by ConfigFromEnv into Config.KeepSessionsOnRevoke.
const EnvRevokeKeepSessions = dbsecret.EnvRevokeKeepSessions

// ConfigFromEnv reads ROTARY_CA_BUNDLE, ROTARY_CONNECT_TIMEOUT and
// ROTARY_STATEMENT_TIMEOUT (see dbsecret.ConfigFromEnv), and
// ROTARY_REVOKE_KEEP_SESSIONS (a boolean, default false). The RDS client comes
// from the default AWS configuration chain, so AWS_ENDPOINT_URL_RDS points it
// at another endpoint.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	db, err := dbsecret.ConfigFromEnv(getenv)
	if err != nil {
		return Config{}, err
	}
	keep, err := dbsecret.RevokeKeepSessionsFromEnv(getenv)
	if err != nil {
		return Config{}, err
	}
	return Config{DB: db, KeepSessionsOnRevoke: keep, NewRDS: dbsecret.NewRDSClient}, nil
}

// QuoteIdentifier quotes a PostgreSQL identifier (a role name): it wraps it
// in double quotes and doubles every double quote inside. It is the only way
// this package puts a name into SQL text. Names with a NUL byte are refused
// by parse before they get here.
func QuoteIdentifier(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// quoteLiteral quotes a standard-conforming string literal. It is used only
// for SCRAM verifiers and role names in ALTER ROLE ... SET role, never for a
// password.
func quoteLiteral(s string) string {
	return `'` + strings.ReplaceAll(s, `'`, `''`) + `'`
}

// parse decodes a version and checks what every PostgreSQL type needs.
// label ("AWSCURRENT", ...) names the version in errors; empty when the
// caller (the engine's Validate) already names it.
func parse(label string, v rotation.Version) (*dbsecret.Secret, error) {
	s, err := dbsecret.Parse(v.Value)
	if err == nil && s.Family() != dbsecret.FamilyPostgres {
		err = fmt.Errorf("%w: field \"engine\" is %q, a MySQL engine; use a MySQL rotation function for it, or set engine to postgres or aurora-postgresql", ErrInvalid, s.Engine)
	}
	if err == nil {
		err = checkName("username", s.Username)
	}
	if err != nil {
		if label != "" {
			err = fmt.Errorf("%s version %s: %w", label, v.ID, err)
		}
		return nil, err
	}
	return s, nil
}

func checkName(field, name string) error {
	if n := len(name); n > MaxNameBytes {
		return fmt.Errorf("%w: field %q is %d bytes, over PostgreSQL's %d-byte limit for role names; use a shorter name", ErrInvalid, field, n, MaxNameBytes)
	}
	return nil
}

// connect logs in with s over TLS as s demands (no fallback to plaintext,
// no other host), with the configured timeouts. The caller must Close the
// connection.
func (c Config) connect(ctx context.Context, s *dbsecret.Secret) (*pgx.Conn, error) {
	tlsConfig, err := c.DB.TLS(s)
	if err != nil {
		return nil, err
	}
	// ParseConfig("") reads the PG* environment variables; every field that
	// matters is overwritten below so that only the secret decides.
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, fmt.Errorf("build PostgreSQL connection settings: %w", err)
	}
	cfg.Host, cfg.Port = s.Host, uint16(s.Port)
	cfg.User, cfg.Password, cfg.Database = s.Username, s.Password, s.Database()
	cfg.TLSConfig, cfg.Fallbacks = tlsConfig, nil
	cfg.ConnectTimeout = c.DB.Connect()
	cfg.ValidateConnect, cfg.AfterConnect = nil, nil
	cfg.RuntimeParams = map[string]string{
		"application_name":  "rotary",
		"statement_timeout": strconv.FormatInt(c.DB.Statement().Milliseconds(), 10),
	}
	ctx, cancel := context.WithTimeout(ctx, c.DB.Connect())
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("log in as %q to %s:%d database %q: %w", s.Username, s.Host, s.Port, s.Database(), err)
	}
	return conn, nil
}

// check logs in with s and runs a query that proves the session works.
func (c Config) check(ctx context.Context, s *dbsecret.Secret) error {
	conn, err := c.connect(ctx, s)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var user string
	if err := conn.QueryRow(ctx, "SELECT session_user").Scan(&user); err != nil {
		return fmt.Errorf("query as %q on %s:%d: %w", s.Username, s.Host, s.Port, err)
	}
	if user != s.Username {
		return fmt.Errorf("logged in as %q on %s:%d, but the session user is %q", s.Username, s.Host, s.Port, user)
	}
	return nil
}

// checkPasswordsEnforced proves the server refuses a wrong password for s's
// user, so that a login with the pending password means something: behind a
// trust (or ldap, pam, radius) rule in pg_hba.conf, or a pooler that does
// not check passwords, any password "works".
func (c Config) checkPasswordsEnforced(ctx context.Context, s *dbsecret.Secret) error {
	wrong := *s
	wrong.Password = rand.Text()
	conn, err := c.connect(ctx, &wrong)
	if err == nil {
		conn.Close(context.WithoutCancel(ctx))
		return fmt.Errorf("%w: %q on %s:%d logs in with a random password (a trust, ldap, pam or radius rule in pg_hba.conf, or a pooler that does not check passwords); make the server demand the password (scram-sha-256) so that rotation can prove it", ErrPasswordsNotChecked, s.Username, s.Host, s.Port)
	}
	if isAuthFailure(err) {
		return nil
	}
	return fmt.Errorf("check that %s:%d refuses a wrong password: %w", s.Host, s.Port, err)
}

// isAuthFailure reports whether err is the server refusing the password or
// the role (as opposed to a network, TLS or server error).
func isAuthFailure(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "28P01" || pgErr.Code == "28000"
	}
	return false
}

// setPassword sends ALTER ROLE name WITH PASSWORD '<SCRAM verifier>': the
// plaintext password never appears in the SQL text.
func setPassword(ctx context.Context, conn *pgx.Conn, name, password string) error {
	verifier, err := scram.Verifier(password)
	if errors.Is(err, scram.ErrPassword) {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "ALTER ROLE "+QuoteIdentifier(name)+" WITH PASSWORD "+quoteLiteral(verifier)); err != nil {
		return fmt.Errorf("set the password of role %q: %w", name, err)
	}
	return nil
}

// probe logs in with req.Version's credential over AWSCURRENT's connection
// settings and proves that the server checks the password; same refuses a
// version for another user before any login (see rotation.Prober).
func (c Config) probe(ctx context.Context, req rotation.ProbeRequest, same func(cur, v *dbsecret.Secret) error) error {
	cur, err := parse(rotation.LabelCurrent, req.Current)
	if err != nil {
		return err
	}
	v, err := parse("", req.Version)
	if err != nil {
		return err
	}
	if err := dbsecret.CheckSameTarget(cur, v); err != nil {
		return fmt.Errorf("%w: %w", rotation.ErrOtherTarget, err)
	}
	if err := same(cur, v); err != nil {
		return fmt.Errorf("%w: %w", rotation.ErrOtherTarget, err)
	}
	try := *v
	try.SSL = cur.SSL
	if err := c.check(ctx, &try); err != nil {
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "28000":
			// Not the password: NOLOGIN, or a pg_hba.conf rule rejecting
			// the user (invalid_authorization_specification).
			return fmt.Errorf("%w: %w: %w", rotation.ErrRefused, rotation.ErrLoginDisabled, err)
		case isAuthFailure(err):
			return fmt.Errorf("%w: %w", rotation.ErrRefused, err)
		}
		return err
	}
	if err := c.checkPasswordsEnforced(ctx, &try); err != nil {
		if errors.Is(err, ErrPasswordsNotChecked) {
			return fmt.Errorf("%w: %w", rotation.ErrUnproven, err)
		}
		return err
	}
	return nil
}

// PublicFields names the database secret's fields that are not secret
// (see rotation.PublicFielder).
func (*SingleUser) PublicFields() []string { return dbsecret.PublicFields() }

// PublicFields names the database secret's fields that are not secret
// (see rotation.PublicFielder).
func (*MultiUser) PublicFields() []string { return dbsecret.PublicFields() }
