package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotary-secrets/rotary/pkg/credentials/postgres/scram"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// ErrLogin is wrapped when no known password of the user logs in.
var ErrLogin = errors.New("cannot log in to PostgreSQL")

// ErrPasswordsNotChecked means the server let a user log in with a random
// password, so a successful login proves nothing about a password.
var ErrPasswordsNotChecked = errors.New("PostgreSQL does not check this user's password")

// loginObserver, when set (by benchmarks), is told how long each login took.
var loginObserver func(time.Duration)

// connect logs in with s over TLS as s demands (no fallback to plaintext,
// no other host), with the configured timeouts. The caller must Close the
// connection.
func (c Config) connect(ctx context.Context, s *dbsecret.Secret) (*pgx.Conn, error) {
	if loginObserver != nil {
		defer func(start time.Time) { loginObserver(time.Since(start)) }(time.Now())
	}
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
// A refusal is recorded in proofs (which may be nil).
func (c Config) checkPasswordsEnforced(ctx context.Context, s *dbsecret.Secret, proofs *dbsecret.Proofs) error {
	wrong := *s
	wrong.Password = rand.Text()
	conn, err := c.connect(ctx, &wrong)
	if err == nil {
		conn.Close(context.WithoutCancel(ctx))
		return fmt.Errorf("%w: %q on %s:%d logs in with a random password (a trust, ldap, pam or radius rule in pg_hba.conf, or a pooler that does not check passwords); make the server demand the password (scram-sha-256) so that rotation can prove it", ErrPasswordsNotChecked, s.Username, s.Host, s.Port)
	}
	if isAuthFailure(err) {
		notePasswordRefused(err, s, proofs)
		return nil
	}
	return fmt.Errorf("check that %s:%d refuses a wrong password: %w", s.Host, s.Port, err)
}

// notePasswordRefused records in proofs that the server checks s's user's
// password when err is the server refusing the password as wrong
// (invalid_password, 28P01): not a role that may not log in (28000), which
// a server refuses whatever the password.
func notePasswordRefused(err error, s *dbsecret.Secret, proofs *dbsecret.Proofs) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "28P01" {
		proofs.SetPasswordsChecked(s)
	}
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
	if err := c.checkPasswordsEnforced(ctx, &try, nil); err != nil {
		if errors.Is(err, ErrPasswordsNotChecked) {
			return fmt.Errorf("%w: %w", rotation.ErrUnproven, err)
		}
		return err
	}
	return nil
}
