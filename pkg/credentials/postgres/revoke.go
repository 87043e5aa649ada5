package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// ErrStillValid is wrapped when an old credential of the secret still logs
// in and Revoke cannot make the server refuse it.
var ErrStillValid = errors.New("an old PostgreSQL credential still logs in")

var (
	_ rotation.Revoker = (*SingleUser)(nil)
	_ rotation.Revoker = (*MultiUser)(nil)
)

// sessionsGone bounds how long Revoke waits for the sessions it ended to
// leave pg_stat_activity.
const sessionsGone = 10 * time.Second

// Revoke makes sure that AWSCURRENT logs in and that AWSPREVIOUS's password
// no longer does for the secret's user. A PostgreSQL role has one password,
// so after a rotation the previous one is normally refused already; if the
// server still accepts it, Revoke sets the user's password to AWSCURRENT's
// again (a fresh SCRAM verifier), logged in as the user, and proves it once
// more, failing with ErrStillValid when that does not help (the server does
// not check passwords for the user). It does not end open sessions: they
// belong to the same role as the sessions opened with AWSCURRENT and cannot
// be told apart. An AWSPREVIOUS for another user or server is refused
// before anything is changed. It is safe to call twice.
func (s *SingleUser) Revoke(ctx context.Context, req rotation.RevokeRequest) error {
	cur, err := parse("AWSCURRENT", req.Current)
	if err != nil {
		return err
	}
	probe, err := dbsecret.PreviousCredential(ctx, req.Previous, cur, func(user string) error {
		if user != cur.Username {
			return fmt.Errorf("%w: field \"username\" of AWSPREVIOUS is %q, not the secret's user %q; single-user revoke changes only %q's password: change %q's password by hand, then remove the AWSPREVIOUS label and revoke again",
				ErrInvalid, user, cur.Username, cur.Username, user)
		}
		return nil
	})
	if err != nil {
		return err
	}
	conn, err := s.cfg.connect(ctx, cur)
	if err != nil {
		if isAuthFailure(err) {
			return fmt.Errorf("%w: AWSCURRENT does not log in, so revoke changes nothing; rotate the secret (or restore AWSCURRENT) first: %w", ErrLogin, err)
		}
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if probe == nil {
		return nil // no other password was ever stored for the user
	}
	err = s.cfg.refused(ctx, "AWSPREVIOUS's password", probe)
	if !errors.Is(err, ErrStillValid) {
		return err
	}
	if err := setPassword(ctx, conn, cur.Username, cur.Password); err != nil {
		return fmt.Errorf("AWSPREVIOUS's password still logs in; set the password of %q to AWSCURRENT's again: %w", cur.Username, err)
	}
	if err := s.cfg.refused(ctx, "AWSPREVIOUS's password", probe); err != nil {
		if errors.Is(err, ErrStillValid) {
			return fmt.Errorf("%w even after the password of %q was set to AWSCURRENT's again: the server does not check this password for the user (a pg_hba.conf rule with trust, ldap, pam or radius, or a connection pooler with its own password list); fix that, then revoke again", err, cur.Username)
		}
		return err
	}
	return s.cfg.check(ctx, cur)
}

// Revoke makes the other user of the pair (the one AWSCURRENT does not
// name) unusable: the master gives it a fresh random password that nobody
// stores and, unless Config.KeepSessionsOnRevoke is set, ends its open
// sessions, since PostgreSQL checks a password only when a session starts.
// Then it proves that AWSPREVIOUS's password is refused and that AWSCURRENT
// still logs in. AWSCURRENT's user is logged in as, never changed.
//
// Before any change it makes the checks Set makes (the master secret is for
// the same server and is not one of the pair; AWSCURRENT logs in), refuses
// an AWSPREVIOUS outside the pair or for another server, checks that the
// server refuses a wrong password for the other user (else a new password
// would revoke nothing: ErrStillValid) and, when it will end sessions, that
// the master may (pg_signal_backend). A pair whose other user was never
// created has nothing to change. It is safe to call twice.
func (m *MultiUser) Revoke(ctx context.Context, req rotation.RevokeRequest) error {
	cur, err := parseMulti("AWSCURRENT", req.Current)
	if err != nil {
		return err
	}
	base, clone := dbsecret.Pair(cur.Username)
	other := dbsecret.Other(cur.Username)
	probe, err := dbsecret.PreviousCredential(ctx, req.Previous, cur, func(user string) error {
		if !dbsecret.InPair(cur.Username, user) {
			return fmt.Errorf("%w: field \"username\" of AWSPREVIOUS is %q, outside the pair %q/%q; revoke changes only the pair's passwords: change %q's password by hand, then remove the AWSPREVIOUS label and revoke again",
				ErrInvalid, user, base, clone, user)
		}
		return nil
	})
	if err != nil {
		return err
	}
	master, err := m.master(ctx, req.Secrets, cur)
	if err != nil {
		return err
	}
	if err := m.cfg.check(ctx, cur); err != nil {
		return fmt.Errorf("%w: AWSCURRENT does not log in, so the master secret will not act for user %q and revoke changes nothing; rotate the secret (or restore AWSCURRENT) first: %w", ErrLogin, cur.Username, err)
	}
	if probe != nil && probe.Username == cur.Username {
		// An older password of the current user: it cannot log in unless
		// the server ignores passwords for the user, and revoke never
		// changes the current user, so this is proven before any change.
		if err := m.cfg.refused(ctx, "AWSPREVIOUS's password", probe); err != nil {
			if errors.Is(err, ErrStillValid) {
				return fmt.Errorf("%w, although it differs from AWSCURRENT's for the same user: the server does not check this password for the user (a pg_hba.conf rule with trust, ldap, pam or radius, or a connection pooler with its own password list); revoke changes nothing: fix that, then revoke again", err)
			}
			return err
		}
		probe = nil
	}
	admin := *master
	admin.DBName = cur.Database()
	conn, err := m.cfg.connect(ctx, &admin)
	if err != nil {
		return fmt.Errorf("log in with the master secret: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", other).Scan(&exists); err != nil {
		return fmt.Errorf("look up role %q: %w", other, err)
	}
	endSessions := exists && !m.cfg.KeepSessionsOnRevoke
	if endSessions {
		var may bool
		if err := conn.QueryRow(ctx, "SELECT pg_has_role(current_user, 'pg_signal_backend', 'USAGE') OR pg_has_role(current_user, $1::name, 'USAGE')", other).Scan(&may); err != nil {
			return fmt.Errorf("check whether the master user %q may end the sessions of %q: %w", master.Username, other, err)
		}
		if !may {
			return fmt.Errorf("%w: the master user %q may not end the sessions of %q, so revoke changes nothing; grant it pg_signal_backend (GRANT pg_signal_backend TO %s), or set %s=true to leave open sessions running",
				rotation.ErrRevokeRefused, master.Username, other, QuoteIdentifier(master.Username), EnvRevokeKeepSessions)
		}
	}
	if exists {
		// A server that does not check passwords for the other user (trust,
		// say) would defeat the new password: refuse before changing it.
		anyPassword := *cur
		anyPassword.Username, anyPassword.Password = other, rand.Text()
		if err := m.cfg.refused(ctx, "a random password", &anyPassword); err != nil {
			if errors.Is(err, ErrStillValid) {
				return fmt.Errorf("%w: the server does not check passwords for %q (a pg_hba.conf rule with trust, ldap, pam or radius, or a connection pooler with its own password list), so a new password would not revoke anything and revoke changes nothing; fix that, then revoke again", err, other)
			}
			return err
		}
		if err := setPassword(ctx, conn, other, rand.Text()); err != nil {
			return fmt.Errorf("give the other user of the pair a new password (nothing was changed): %w", explainRefusal(ctx, conn, err, master.Username, other))
		}
	}
	if endSessions {
		if err := terminate(ctx, conn, other); err != nil {
			return err
		}
	}
	if probe != nil {
		if err := m.cfg.refused(ctx, "AWSPREVIOUS's password", probe); err != nil {
			if errors.Is(err, ErrStillValid) {
				return fmt.Errorf("%w even after the master gave %q a new random password: the server does not check this password for the user (a pg_hba.conf rule with trust, ldap, pam or radius, or a connection pooler with its own password list); fix that, then revoke again", err, other)
			}
			return err
		}
	}
	if err := m.cfg.check(ctx, cur); err != nil {
		return fmt.Errorf("AWSCURRENT no longer logs in after revoke: %w", err)
	}
	return nil
}

// refused proves that s no longer logs in: nil when the server refuses the
// password or the role, ErrStillValid when it logs in, another error when
// the server cannot be asked (network, TLS). what names the credential.
func (c Config) refused(ctx context.Context, what string, s *dbsecret.Secret) error {
	err := c.check(ctx, s)
	switch {
	case err == nil:
		return fmt.Errorf("%w: %s still logs in as %q on %s:%d", ErrStillValid, what, s.Username, s.Host, s.Port)
	case isAuthFailure(err):
		return nil
	default:
		return fmt.Errorf("prove that %s is refused: %w", what, err)
	}
}

// terminate ends every session of role (but the caller's own) and waits
// until they are gone, ending again any that got in meanwhile (a login
// already past the password check when the password changed).
func terminate(ctx context.Context, conn *pgx.Conn, role string) error {
	deadline := time.Now().Add(sessionsGone)
	for {
		if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()", role); err != nil {
			return fmt.Errorf("end the open sessions of %q (its password is already changed; revoke again to retry): %w", role, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the sessions of %q to end: %w", role, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		var left int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()", role).Scan(&left); err != nil {
			return fmt.Errorf("count the open sessions of %q: %w", role, err)
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d sessions of %q did not end within %s of pg_terminate_backend (its password is already changed); revoke again to retry", left, role, sessionsGone)
		}
	}
}
