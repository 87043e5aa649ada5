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

var (
	_ rotation.Credential    = (*SingleUser)(nil)
	_ rotation.Restorer      = (*SingleUser)(nil)
	_ rotation.Prober        = (*SingleUser)(nil)
	_ rotation.PublicFielder = (*SingleUser)(nil)
)

// NewSingleUser returns the single-user credential type.
func NewSingleUser(cfg Config) *SingleUser { return &SingleUser{cfg: cfg} }

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
	if s, err := open(ctx, su.cfg.DB, ownAccount(pend)); err == nil {
		matched := s.user == pend.Username
		s.Close()
		if matched {
			return nil // already set by an earlier attempt
		}
	}
	s, used, err := su.loginOld(ctx, cur, []dbsecret.Try{dbsecret.Known(rotation.LabelCurrent, cur), previous(req.Previous, cur)}, ownAccount)
	if err != nil {
		return fmt.Errorf("the pending password is refused too: %w", err)
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

// loginOld logs in as the secret's user with the first of tries the
// server accepts, connecting the way cur says; it returns the session and
// the password that worked.
func (su *SingleUser) loginOld(ctx context.Context, cur *dbsecret.Secret, tries []dbsecret.Try, user func(*dbsecret.Secret) target) (*session, string, error) {
	s, used, err := dbsecret.Login(ctx, cur, tries, func(ctx context.Context, sec *dbsecret.Secret) (*session, error) {
		return open(ctx, su.cfg.DB, user(sec))
	}, func(err error) bool { return errors.Is(err, ErrLogin) })
	if err != nil {
		return nil, "", err
	}
	return s, used.Password, nil
}

// previous is the ladder's AWSPREVIOUS for the user of cur.
func previous(read func(context.Context) (rotation.Version, bool, error), cur *dbsecret.Secret) dbsecret.Try {
	return dbsecret.Previous(read, parseMySQL, func(prev *dbsecret.Secret) error {
		if prev.Username != cur.Username {
			return fmt.Errorf("%w: field \"username\" is %q, not %q", dbsecret.ErrInvalidSecret, prev.Username, cur.Username)
		}
		return dbsecret.CheckSameTarget(cur, prev)
	})
}

// ownAccount is the target of a secret's own user.
func ownAccount(s *dbsecret.Secret) target {
	return target{secret: s, username: s.Username, password: s.Password, dbname: s.DBName}
}

// Restore makes AWSCURRENT's password the account's password again (see
// rotation.Restorer). It does nothing when AWSCURRENT already logs in;
// otherwise it logs in with the pending password (the one setSecret set),
// then the previous one, over AWSCURRENT's TLS setting, changes the password
// of the account it logged in as back to AWSCURRENT's, and proves that
// AWSCURRENT logs in. A server that keeps a password history
// (password_history, PASSWORD REUSE INTERVAL) refuses to take the old
// password back (error 3638); then the restore fails and says so.
func (su *SingleUser) Restore(ctx context.Context, req rotation.RestoreRequest) (bool, error) {
	cur, err := validate(ctx, req.Current)
	if err != nil {
		return false, err
	}
	pend, err := validate(ctx, req.Pending)
	if err != nil {
		return false, err
	}
	if pend.Username != cur.Username {
		return false, fmt.Errorf("%w: field \"username\" differs between AWSCURRENT (%q) and the version to restore from (%q)", dbsecret.ErrInvalidSecret, cur.Username, pend.Username)
	}
	if err := dbsecret.CheckSameTarget(cur, pend); err != nil {
		return false, err
	}
	s, err := open(ctx, su.cfg.DB, ownAccount(cur))
	if err == nil {
		matched := s.user == cur.Username
		s.Close()
		if matched {
			return false, nil
		}
	} else if !errors.Is(err, ErrLogin) {
		return false, fmt.Errorf("log in with AWSCURRENT to see whether it needs restoring: %w", err)
	}
	s, used, err := su.loginOld(ctx, cur, []dbsecret.Try{dbsecret.Known(rotation.LabelPending, pend), previous(req.Previous, cur)}, ownAccount)
	if err != nil {
		return false, fmt.Errorf("AWSCURRENT's password is refused too: %w", err)
	}
	defer s.Close()
	if s.user != cur.Username {
		return false, fmt.Errorf("logged in as %q but the server matched the account %q@%q (an anonymous or proxy account); Rotary changes only the secret's own account", cur.Username, s.user, s.host)
	}
	if err := s.setOwnPassword(ctx, cur.Password, used); err != nil {
		return false, err
	}
	return true, testLogin(ctx, su.cfg, cur)
}

// Probe logs in as the secret's user with the version's password over
// AWSCURRENT's connection settings (see rotation.Prober).
func (su *SingleUser) Probe(ctx context.Context, req rotation.ProbeRequest) error {
	return su.cfg.probe(ctx, req, func(cur, v *dbsecret.Secret) error {
		if v.Username != cur.Username {
			return fmt.Errorf("field \"username\" is %q, not the secret's user %q", v.Username, cur.Username)
		}
		return nil
	})
}

// Test logs in with the pending value and runs a query.
func (su *SingleUser) Test(ctx context.Context, req rotation.TestRequest) error {
	pend, err := validate(ctx, req.Pending)
	if err != nil {
		return err
	}
	if err := testLogin(ctx, su.cfg, pend); err != nil {
		return fmt.Errorf("test the pending value: %w", err)
	}
	return nil
}

// testLogin logs in as the secret's user, checks the server matched that
// user's own account and runs a query.
func testLogin(ctx context.Context, cfg Config, sec *dbsecret.Secret) error {
	_, err := testLoginHost(ctx, cfg, sec)
	return err
}

// testLoginHost is testLogin, returning the host of the account the server
// matched.
func testLoginHost(ctx context.Context, cfg Config, sec *dbsecret.Secret) (string, error) {
	s, err := open(ctx, cfg.DB, ownAccount(sec))
	if err != nil {
		return "", err
	}
	defer s.Close()
	if s.user != sec.Username {
		return "", fmt.Errorf("logging in as %q matched the account %q@%q instead of the user's own; drop the anonymous account", sec.Username, s.user, s.host)
	}
	var one int
	if err := s.queryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return "", fmt.Errorf("run a query as %q: %w", sec.Username, err)
	}
	return s.host, nil
}
