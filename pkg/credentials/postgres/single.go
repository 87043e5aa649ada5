package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// SingleUser rotates the password of the secret's own user, logging in as
// that user: no admin secret is needed.
type SingleUser struct {
	cfg Config
}

var _ rotation.Credential = (*SingleUser)(nil)

// NewSingleUser returns the single-user credential type.
func NewSingleUser(cfg Config) *SingleUser { return &SingleUser{cfg: cfg} }

// Validate checks that v is a PostgreSQL database secret.
func (s *SingleUser) Validate(_ context.Context, v rotation.Version) error {
	_, err := parse("", v)
	return err
}

// Generate returns a new password.
func (s *SingleUser) Generate(_ context.Context, req rotation.GenerateRequest) (rotation.GenerateResponse, error) {
	pw, err := req.Passwords.Generate()
	if err != nil {
		return rotation.GenerateResponse{}, fmt.Errorf("generate password: %w", err)
	}
	return rotation.GenerateResponse{Changes: map[string]any{"password": pw}}, nil
}

// Set makes the pending password the user's password. It is safe to repeat:
// if the pending password already logs in, it does nothing. Otherwise it
// logs in with the current password, then the previous one, and changes the
// password of the secret's own user on the secret's own server. A pending
// value for another user, host, port, engine or database is refused first.
func (s *SingleUser) Set(ctx context.Context, req rotation.SetRequest) error {
	cur, err := parse("AWSCURRENT", req.Current)
	if err != nil {
		return err
	}
	pend, err := parse("AWSPENDING", req.Pending)
	if err != nil {
		return err
	}
	if err := dbsecret.CheckPending(cur, pend); err != nil {
		return err
	}
	if err := sameUser(cur, pend); err != nil {
		return err
	}
	err = s.cfg.check(ctx, pend)
	if err == nil {
		// A retry: the password is already set, if the server checks it.
		return s.cfg.checkPasswordsEnforced(ctx, pend)
	}
	if !isAuthFailure(err) {
		return fmt.Errorf("check whether the pending password already works: %w", err)
	}
	attempts := []error{fmt.Errorf("pending: %w", err)}
	conn, err := s.cfg.connect(ctx, cur)
	if err != nil {
		if !isAuthFailure(err) {
			return err
		}
		attempts = append(attempts, fmt.Errorf("current: %w", err))
		prev, ok, perr := req.Previous(ctx)
		if perr != nil {
			return fmt.Errorf("read AWSPREVIOUS: %w", perr)
		}
		if !ok {
			return fmt.Errorf("%w as %q on %s:%d with the pending or current password, and the secret has no previous version: %w", ErrLogin, cur.Username, cur.Host, cur.Port, errors.Join(attempts...))
		}
		old, perr := parse("AWSPREVIOUS", prev)
		if perr != nil {
			return perr
		}
		if perr := sameUser(cur, old); perr != nil {
			return fmt.Errorf("%w as %q on %s:%d with the pending or current password, and the previous version is for another target: %w", ErrLogin, cur.Username, cur.Host, cur.Port, perr)
		}
		conn, err = s.cfg.connect(ctx, old)
		if err != nil {
			attempts = append(attempts, fmt.Errorf("previous: %w", err))
			return fmt.Errorf("%w as %q on %s:%d with the pending, current or previous password; set one of them on the server by hand: %w", ErrLogin, cur.Username, cur.Host, cur.Port, errors.Join(attempts...))
		}
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return setPassword(ctx, conn, pend.Username, pend.Password)
}

// Test logs in with the pending password and runs a query.
func (s *SingleUser) Test(ctx context.Context, req rotation.TestRequest) error {
	pend, err := parse("AWSPENDING", req.Pending)
	if err != nil {
		return err
	}
	if err := s.cfg.check(ctx, pend); err != nil {
		return err
	}
	return s.cfg.checkPasswordsEnforced(ctx, pend)
}

// sameUser refuses a version that names another user or server than cur.
func sameUser(cur, other *dbsecret.Secret) error {
	if err := dbsecret.CheckSameTarget(cur, other); err != nil {
		return err
	}
	if cur.Username != other.Username {
		return fmt.Errorf("%w: field \"username\" differs between versions (%q, %q); single-user rotation changes only the password: remove the pending version (AWSPENDING) and rotate again", ErrInvalid, cur.Username, other.Username)
	}
	return nil
}
