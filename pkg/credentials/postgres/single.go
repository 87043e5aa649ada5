package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// SingleUser rotates the password of the secret's own user, logging in as
// that user: no admin secret is needed.
type SingleUser struct {
	cfg    Config
	proofs *dbsecret.Proofs // what this instance's logins proved (see dbsecret.Proofs)
}

var (
	_ rotation.Credential    = (*SingleUser)(nil)
	_ rotation.Restorer      = (*SingleUser)(nil)
	_ rotation.Prober        = (*SingleUser)(nil)
	_ rotation.PublicFielder = (*SingleUser)(nil)
)

// NewSingleUser returns the single-user credential type.
func NewSingleUser(cfg Config) *SingleUser {
	return &SingleUser{cfg: cfg, proofs: dbsecret.NewProofs()}
}

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
		return s.cfg.checkPasswordsEnforced(ctx, pend, s.proofs)
	}
	if !isAuthFailure(err) {
		return fmt.Errorf("check whether the pending password already works: %w", err)
	}
	// Refused as a wrong password: the server checks this user's password,
	// which testSecret then need not prove with a login of its own.
	notePasswordRefused(err, pend, s.proofs)
	conn, _, err := s.loginOld(ctx, cur, []dbsecret.Try{dbsecret.Known(rotation.LabelCurrent, cur), s.previous(req.Previous, cur)})
	if err != nil {
		if !isAuthFailure(err) {
			return err
		}
		return fmt.Errorf("%w (the pending password is refused too): %w; set one of these passwords on the server by hand, or put the password the server has into the secret", ErrLogin, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return setPassword(ctx, conn, pend.Username, pend.Password)
}

// loginOld logs in as the secret's user with the first of tries the server
// accepts, connecting the way cur says.
func (s *SingleUser) loginOld(ctx context.Context, cur *dbsecret.Secret, tries []dbsecret.Try) (*pgx.Conn, *dbsecret.Secret, error) {
	return dbsecret.Login(ctx, cur, tries, s.cfg.connect, isAuthFailure)
}

// previous is the ladder's AWSPREVIOUS for the user of cur.
func (s *SingleUser) previous(read func(context.Context) (rotation.Version, bool, error), cur *dbsecret.Secret) dbsecret.Try {
	return dbsecret.Previous(read, func(v rotation.Version) (*dbsecret.Secret, error) { return parse(rotation.LabelPrevious, v) },
		func(old *dbsecret.Secret) error { return sameUser(cur, old) })
}

// Restore makes AWSCURRENT's password the user's password again (see
// rotation.Restorer). It does nothing when AWSCURRENT already logs in;
// otherwise it logs in with the pending password (the one setSecret set),
// then the previous one, always over AWSCURRENT's TLS setting, sets
// AWSCURRENT's password as a SCRAM verifier and proves that it logs in.
func (s *SingleUser) Restore(ctx context.Context, req rotation.RestoreRequest) (bool, error) {
	cur, err := parse(rotation.LabelCurrent, req.Current)
	if err != nil {
		return false, err
	}
	pend, err := parse(rotation.LabelPending, req.Pending)
	if err != nil {
		return false, err
	}
	if err := sameUser(cur, pend); err != nil {
		return false, err
	}
	err = s.cfg.check(ctx, cur)
	if err == nil {
		return false, nil
	}
	if !isAuthFailure(err) {
		return false, fmt.Errorf("log in with AWSCURRENT to see whether it needs restoring: %w", err)
	}
	conn, _, err := s.loginOld(ctx, cur, []dbsecret.Try{dbsecret.Known(rotation.LabelPending, pend), s.previous(req.Previous, cur)})
	if err != nil {
		if !isAuthFailure(err) {
			return false, err
		}
		return false, fmt.Errorf("%w (AWSCURRENT's password is refused too): %w", ErrLogin, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := setPassword(ctx, conn, cur.Username, cur.Password); err != nil {
		return false, err
	}
	return true, s.cfg.check(ctx, cur)
}

// Probe logs in as the secret's user with the version's password over
// AWSCURRENT's connection settings (see rotation.Prober).
func (s *SingleUser) Probe(ctx context.Context, req rotation.ProbeRequest) error {
	return s.cfg.probe(ctx, req, func(cur, v *dbsecret.Secret) error { return sameUser(cur, v) })
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
	if s.proofs.PasswordsChecked(pend) {
		return nil // setSecret's refused login with this password proved it
	}
	return s.cfg.checkPasswordsEnforced(ctx, pend, s.proofs)
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
