package mysql

import (
	"context"
	"errors"
	"fmt"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// SingleUser rotates the password of the secret's own user: the user logs
// in and changes its own password, so no admin secret is needed. The account
// changed is the one the server matched at login (CURRENT_USER()), at its
// real host, never an assumed '%'.
type SingleUser struct {
	cfg Config
}

var _ rotation.Credential = (*SingleUser)(nil)

// NewSingleUser returns the single-user credential type.
func NewSingleUser(cfg Config) (*SingleUser, error) {
	return &SingleUser{cfg: cfg}, nil
}

// Validate checks that v is a MySQL-family database secret with a user name
// Rotary accepts.
func (su *SingleUser) Validate(ctx context.Context, v rotation.Version) error {
	_, err := validate(ctx, v)
	return err
}

// Generate returns a new password.
func (su *SingleUser) Generate(_ context.Context, req rotation.GenerateRequest) (rotation.GenerateResponse, error) {
	pw, err := req.Passwords.Generate()
	if err != nil {
		return rotation.GenerateResponse{}, err
	}
	return rotation.GenerateResponse{Changes: map[string]any{"password": pw}}, nil
}

// Set changes the user's password to the pending one. It does nothing when
// the pending password already logs in (a retry); otherwise it logs in with
// the current password, then the previous one, and changes the password of
// the account it logged in as.
func (su *SingleUser) Set(ctx context.Context, req rotation.SetRequest) error {
	cur, pend, err := checkPair(ctx, req.Current, req.Pending)
	if err != nil {
		return err
	}
	if pend.Username != cur.Username {
		return fmt.Errorf("%w: field \"username\" differs between the current (%q) and the pending (%q) version; single-user rotation changes only the password: remove the pending version (AWSPENDING) and rotate again", dbsecret.ErrInvalidSecret, cur.Username, pend.Username)
	}
	user := func(s *dbsecret.Secret) target {
		return target{secret: s, username: s.Username, password: s.Password, dbname: s.DBName}
	}
	if s, err := open(ctx, su.cfg.DB, user(pend)); err == nil {
		matched := s.user == pend.Username
		s.Close()
		if matched {
			return nil // already set by an earlier attempt
		}
	}
	s, used, err := su.loginOld(ctx, req, cur, user)
	if err != nil {
		return err
	}
	defer s.Close()
	if s.user != cur.Username {
		return fmt.Errorf("logged in as %q but the server matched the account %q@%q (an anonymous or proxy account); Rotary changes only the secret's own account: drop the anonymous account or fix the secret's username", cur.Username, s.user, s.host)
	}
	return s.setOwnPassword(ctx, pend.Password, used)
}

// setOwnPassword changes the password of the logged-in account (s.user at
// s.host) to pw; used is the password this session logged in with.
func (s *session) setOwnPassword(ctx context.Context, pw, used string) error {
	acct := s.account(s.user, s.host)
	var stmt string
	switch {
	case s.mariadb:
		// MariaDB lets a user change its own password only with SET PASSWORD.
		native, err := s.ownPasswordIsNative(ctx)
		if err != nil {
			return err
		}
		if native {
			// The hash, so the password never reaches MariaDB's query logs.
			stmt = "SET PASSWORD FOR " + acct + " = " + s.str(nativeHash(pw))
		} else {
			stmt = "SET PASSWORD FOR " + acct + " = PASSWORD(" + s.str(pw) + ")"
		}
	default:
		// MySQL 8 (and Aurora MySQL): USER() is the form any account may use
		// for its own password; REPLACE satisfies password_require_current.
		// MySQL rewrites the password out of its logs.
		stmt = "ALTER USER USER() IDENTIFIED BY " + s.str(pw) + " REPLACE " + s.str(used)
	}
	return s.execSecret(ctx, fmt.Sprintf("set the password of %q@%q", s.user, s.host), stmt)
}

// loginOld logs in with the current password, then the previous one; it
// returns the session and the password that worked.
func (su *SingleUser) loginOld(ctx context.Context, req rotation.SetRequest, cur *dbsecret.Secret, user func(*dbsecret.Secret) target) (*session, string, error) {
	s, errCur := open(ctx, su.cfg.DB, user(cur))
	if errCur == nil {
		return s, cur.Password, nil
	}
	if !errors.Is(errCur, ErrLogin) || req.Previous == nil {
		return nil, "", errCur
	}
	prevV, ok, err := req.Previous(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("%w; reading the previous version to try it failed: %w", errCur, err)
	}
	if !ok {
		return nil, "", fmt.Errorf("neither the pending nor the current password logs in and the secret has no previous version: %w", errCur)
	}
	prev, err := parseMySQL(prevV)
	if err != nil {
		return nil, "", fmt.Errorf("%w; the previous version is not usable: %w", errCur, err)
	}
	if prev.Username != cur.Username || dbsecret.CheckSameTarget(cur, prev) != nil {
		return nil, "", fmt.Errorf("neither the pending nor the current password logs in, and the previous version names another user or server, so it is not tried: %w", errCur)
	}
	prev.SSL = cur.SSL
	s, errPrev := open(ctx, su.cfg.DB, user(prev))
	if errPrev != nil {
		return nil, "", fmt.Errorf("none of the pending, current and previous passwords logs in: %w", errPrev)
	}
	return s, prev.Password, nil
}

// Test logs in with the pending value and runs a query.
func (su *SingleUser) Test(ctx context.Context, req rotation.TestRequest) error {
	pend, err := validate(ctx, req.Pending)
	if err != nil {
		return err
	}
	return testLogin(ctx, su.cfg, pend)
}

// testLogin logs in as the secret's user, checks the server matched that
// user's own account and runs a query.
func testLogin(ctx context.Context, cfg Config, sec *dbsecret.Secret) error {
	s, err := open(ctx, cfg.DB, target{secret: sec, username: sec.Username, password: sec.Password, dbname: sec.DBName})
	if err != nil {
		return fmt.Errorf("test the pending value: %w", err)
	}
	defer s.Close()
	if s.user != sec.Username {
		return fmt.Errorf("test the pending value: logging in as %q matched the account %q@%q instead of the user's own; drop the anonymous account", sec.Username, s.user, s.host)
	}
	var one int
	if err := s.queryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("test the pending value: run a query as %q: %w", sec.Username, err)
	}
	return nil
}
