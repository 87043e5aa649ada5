package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// FieldExpiresAt is the field of an expiring user's secret that holds its
// expiry, RFC 3339 in UTC.
const FieldExpiresAt = dbsecret.FieldExpiresAt

// ExpiringUsers gives every rotation a new login user (see the primitives
// in expiring.go): <base>_<yyMMddHHmmss>_<random>, acting as the base role,
// with VALID UNTIL now + TTL, so that PostgreSQL itself refuses the
// credential once it has expired even if Rotary never runs again. The
// admin secret named by masterarn creates the users. After every rotation
// (and when the watch invokes reapSecret) the reaper drops the secret's
// base's users of its own and the issuer's whose expiry has passed;
// revoke drops every user this secret's rotations made but AWSCURRENT's.
//
// The secret's initial AWSCURRENT names the base user itself, with its
// password; from the first rotation on, AWSCURRENT names an expiring user.
type ExpiringUsers struct {
	cfg Config
	exp dbsecret.ExpiringConfig
	now func() time.Time
}

var (
	_ rotation.Credential    = (*ExpiringUsers)(nil)
	_ rotation.Prober        = (*ExpiringUsers)(nil)
	_ rotation.PublicFielder = (*ExpiringUsers)(nil)
	_ rotation.Revoker       = (*ExpiringUsers)(nil)
	_ rotation.Reaper        = (*ExpiringUsers)(nil)
)

// NewExpiringUsers returns the expiring-users credential type; exp's TTL
// must pass exp.Check.
func NewExpiringUsers(cfg Config, exp dbsecret.ExpiringConfig) (*ExpiringUsers, error) {
	if err := exp.Check(); err != nil {
		return nil, err
	}
	return &ExpiringUsers{cfg: cfg, exp: exp, now: time.Now}, nil
}

// PublicFields names the database secret's fields that are not secret,
// and expiresAt (see rotation.PublicFielder).
func (*ExpiringUsers) PublicFields() []string {
	return append(dbsecret.PublicFields(), FieldExpiresAt)
}

// expiringVersion is a parsed version of an expiring user's secret.
type expiringVersion = dbsecret.ExpiringVersion

func parseExpiring(label string, v rotation.Version) (*expiringVersion, error) {
	s, err := parse(label, v)
	if err != nil {
		return nil, err
	}
	var e *expiringVersion
	fields, err := v.Fields()
	if err == nil {
		e, err = dbsecret.NewExpiringVersion(s, fields, ErrInvalid)
	}
	if err == nil {
		_, err = ExpiringUserName(e.Base, time.Now())
	}
	if err != nil {
		if label != "" {
			err = fmt.Errorf("%s version %s: %w", label, v.ID, err)
		}
		return nil, err
	}
	return e, nil
}

// Validate checks that v is a PostgreSQL database secret with a masterarn,
// a base user short enough for its expiring users' names, and an expiresAt
// (if any) in RFC 3339.
func (x *ExpiringUsers) Validate(_ context.Context, v rotation.Version) error {
	_, err := parseExpiring("", v)
	return err
}

// Generate names a new user of the base with a new password and expiresAt
// now + TTL. The name is decided here, so that every retry of the rotation
// creates the same user.
func (x *ExpiringUsers) Generate(_ context.Context, req rotation.GenerateRequest) (rotation.GenerateResponse, error) {
	cur, err := parseExpiring("AWSCURRENT", req.Current)
	if err != nil {
		return rotation.GenerateResponse{}, err
	}
	now := x.now()
	name, err := ExpiringUserName(cur.Base, now)
	if err != nil {
		return rotation.GenerateResponse{}, err
	}
	pw, err := req.Passwords.Generate()
	if err != nil {
		return rotation.GenerateResponse{}, fmt.Errorf("generate password: %w", err)
	}
	expires := now.Add(x.exp.TTL).UTC().Truncate(time.Second)
	return rotation.GenerateResponse{Changes: map[string]any{"username": name, "password": pw, FieldExpiresAt: expires.Format(time.RFC3339)}}, nil
}

// master reads the admin secret named by cur's masterarn and refuses one
// that logs in as the base user or one of its expiring users.
func (x *ExpiringUsers) master(ctx context.Context, secrets rotation.SecretStore, cur *expiringVersion) (*dbsecret.Secret, error) {
	if secrets == nil {
		return nil, fmt.Errorf("read the master secret %s: no secret store was given", cur.MasterARN)
	}
	master, err := dbsecret.Master(ctx, secrets, cur.Secret, x.cfg.NewRDS)
	if err != nil {
		return nil, err
	}
	if master.Username == cur.Base || dbsecret.IsExpiringUserOf(cur.Base, master.Username) {
		return nil, fmt.Errorf("%w: the master secret's user %q is the base user or one of its expiring users; use a separate admin user in the master secret", ErrInvalid, master.Username)
	}
	master.DBName = cur.Database()
	return master, nil
}

// owned proves that the secret owns cur's user before the master acts for
// its base: AWSCURRENT logs in, and names the base user or one of the
// base's marked expiring users (a role merely named like one is not).
func (x *ExpiringUsers) owned(ctx context.Context, a *Admin, cur *expiringVersion, what string) error {
	if err := x.cfg.check(ctx, cur.Secret); err != nil {
		return fmt.Errorf("%w: AWSCURRENT does not log in, so the master secret will not act for user %q and %s changes nothing; fix the current password (or restore AWSCURRENT; if it expired, store the base user's credentials as AWSCURRENT) and try again: %w", ErrLogin, cur.Username, what, err)
	}
	if cur.Username == cur.Base {
		return nil
	}
	users, err := a.ListExpiringUsers(ctx, cur.Base)
	if err != nil {
		return err
	}
	for _, u := range users {
		if u.Name == cur.Username {
			return nil
		}
	}
	return fmt.Errorf("%w: AWSCURRENT's user %q is named like an expiring user of %q but has no Rotary marker, so the master secret will not act for it and %s changes nothing; store the base user's credentials as AWSCURRENT", ErrNotExpiringUser, cur.Username, cur.Base, what)
}

// Set creates the pending user (see Admin.CreateExpiringUser), after
// proving that AWSCURRENT logs in and belongs to the base's family, and
// refusing a pending version for another base or one whose expiresAt is
// too close (a rotation retried long after it began: half the TTL must be
// left). It is safe to repeat: creating the same user again changes
// nothing but its password, set to the same value.
func (x *ExpiringUsers) Set(ctx context.Context, req rotation.SetRequest) error {
	cur, err := parseExpiring("AWSCURRENT", req.Current)
	if err != nil {
		return err
	}
	pend, err := parseExpiring("AWSPENDING", req.Pending)
	if err != nil {
		return err
	}
	if err := dbsecret.CheckPending(cur.Secret, pend.Secret); err != nil {
		return err
	}
	if !dbsecret.IsExpiringUserOf(cur.Base, pend.Username) || pend.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: the pending version's user %q is not a new expiring user of %q with an expiresAt; remove the pending version (AWSPENDING) and rotate again", ErrInvalid, pend.Username, cur.Base)
	}
	if left := time.Until(pend.ExpiresAt); left < x.exp.TTL/2 {
		return fmt.Errorf("%w: the pending version expires at %s, only %s from now (less than half of %s=%s): remove the pending version (AWSPENDING) and rotate again", ErrInvalid, pend.ExpiresAt.Format(time.RFC3339), left.Round(time.Second), dbsecret.EnvCredentialTTL, x.exp.TTL)
	}
	master, err := x.master(ctx, req.Secrets, cur)
	if err != nil {
		return err
	}
	a, err := x.cfg.OpenAdmin(ctx, master)
	if err != nil {
		return err
	}
	defer a.Close(ctx)
	if err := x.owned(ctx, a, cur, "the rotation"); err != nil {
		return err
	}
	return a.CreateExpiringUser(ctx, ExpiringUserSpec{
		Name: pend.Username, Base: cur.Base, Origin: dbsecret.OriginRotation(req.SecretARN),
		Password: pend.Password, ExpiresAt: pend.ExpiresAt,
	})
}

// Test logs in as the pending user and proves that the server refuses a
// wrong password for it.
func (x *ExpiringUsers) Test(ctx context.Context, req rotation.TestRequest) error {
	pend, err := parseExpiring("AWSPENDING", req.Pending)
	if err != nil {
		return err
	}
	if err := x.cfg.check(ctx, pend.Secret); err != nil {
		return err
	}
	return x.cfg.checkPasswordsEnforced(ctx, pend.Secret, nil)
}

// Probe logs in as the version's user over AWSCURRENT's connection
// settings (see rotation.Prober). A version for a user outside the base's
// family is not tried.
func (x *ExpiringUsers) Probe(ctx context.Context, req rotation.ProbeRequest) error {
	return x.cfg.probe(ctx, req, func(cur, v *dbsecret.Secret) error {
		base := dbsecret.ExpiringBase(cur.Username)
		if v.Username != base && !dbsecret.IsExpiringUserOf(base, v.Username) {
			return fmt.Errorf("%w: field \"username\" is %q, not %q or one of its expiring users", ErrInvalid, v.Username, base)
		}
		return nil
	})
}

// Reap drops the base's expiring users made by this secret's rotations and
// by the issuer (never another secret's: see Admin.Reap) whose expiry has
// passed by the server's clock, keeping
// AWSCURRENT's and AWSPENDING's users, ending their sessions unless
// ROTARY_REAP_KEEP_SESSIONS is set. It needs no login as the application:
// it drops only expired users with Rotary's marker.
func (x *ExpiringUsers) Reap(ctx context.Context, req rotation.ReapRequest) (rotation.ReapResponse, error) {
	cur, err := parseExpiring("AWSCURRENT", req.Current)
	if err != nil {
		return rotation.ReapResponse{}, err
	}
	keep := []string{cur.Username}
	if req.Pending != nil {
		if pend, err := parse("AWSPENDING", *req.Pending); err == nil {
			keep = append(keep, pend.Username)
		} else {
			return rotation.ReapResponse{}, fmt.Errorf("%w; reap changes nothing while it cannot tell AWSPENDING's user", err)
		}
	}
	master, err := x.master(ctx, req.Secrets, cur)
	if err != nil {
		return rotation.ReapResponse{}, err
	}
	a, err := x.cfg.OpenAdmin(ctx, master)
	if err != nil {
		return rotation.ReapResponse{}, err
	}
	defer a.Close(ctx)
	res, err := a.Reap(ctx, cur.Base, dbsecret.OriginRotation(req.SecretARN), keep, x.exp.KeepSessionsOnReap)
	return rotation.ReapResponse{Dropped: res.Dropped, Kept: res.Kept}, err
}

// Revoke drops every user this secret's rotations created (origin
// rotation:<secret ARN>) but AWSCURRENT's, ending their sessions unless
// ROTARY_REVOKE_KEEP_SESSIONS is set, and, when dbsecret.RetireBase allows
// (AWSCURRENT is this secret's user, and no other secret's users of the
// base exist: another secret may still hold the base's password), gives the
// base user a fresh random password that nobody stores and ends its
// sessions: the base's password the secret began with is retired too. The
// step's log note says which. Users of other origins (the issuer's, another
// secret's) are left alone. Before any change it proves that AWSCURRENT
// logs in and is the base or one of its marked users, that the master may
// end sessions, and that the server checks the base user's password (else
// ErrStillValid). It is safe to call twice.
func (x *ExpiringUsers) Revoke(ctx context.Context, req rotation.RevokeRequest) error {
	cur, err := parseExpiring("AWSCURRENT", req.Current)
	if err != nil {
		return err
	}
	master, err := x.master(ctx, req.Secrets, cur)
	if err != nil {
		return err
	}
	a, err := x.cfg.OpenAdmin(ctx, master)
	if err != nil {
		return err
	}
	defer a.Close(ctx)
	if err := x.owned(ctx, a, cur, "revoke"); err != nil {
		return err
	}
	users, err := a.ListExpiringUsers(ctx, cur.Base)
	if err != nil {
		return err
	}
	origin := dbsecret.OriginRotation(req.SecretARN)
	var drop []string
	for _, u := range users {
		if u.Origin == origin && u.Name != cur.Username {
			drop = append(drop, u.Name)
		}
	}
	// Only when no other secret's users show another holder of the base's
	// password (RetireBase).
	retireBase, note := dbsecret.RetireBase(cur.Base, cur.Username, origin, users)
	keep := x.cfg.KeepSessionsOnRevoke
	if retireBase {
		anyPassword := *cur.Secret
		anyPassword.Username, anyPassword.Password = cur.Base, rand.Text()
		if err := x.cfg.refused(ctx, "a random password", &anyPassword); err != nil {
			if errors.Is(err, ErrStillValid) {
				return fmt.Errorf("%w: the server does not check passwords for the base user %q (a pg_hba.conf rule with trust, ldap, pam or radius, or a pooler with its own password list), so a new password would not retire its old one and revoke changes nothing; fix that, then revoke again", err, cur.Base)
			}
			return err
		}
	}
	if !keep && (retireBase || len(drop) > 0) {
		var may bool
		if err := a.conn.QueryRow(ctx, "SELECT pg_has_role(current_user, 'pg_signal_backend', 'USAGE')").Scan(&may); err != nil {
			return fmt.Errorf("check whether the master user %q may end sessions: %w", master.Username, err)
		}
		if !may {
			return fmt.Errorf("%w: the master user %q may not end other users' sessions, so revoke changes nothing; grant it pg_signal_backend (GRANT pg_signal_backend TO %s), or set %s=true to leave open sessions running",
				rotation.ErrRevokeRefused, master.Username, QuoteIdentifier(master.Username), EnvRevokeKeepSessions)
		}
	}
	if retireBase {
		if err := setPassword(ctx, a.conn, cur.Base, rand.Text()); err != nil {
			return fmt.Errorf("give the base user a new random password (nothing was changed): %w", explainRefusal(ctx, a.conn, err, master.Username, cur.Base))
		}
		if !keep {
			if err := terminate(ctx, a.conn, cur.Base); err != nil {
				return err
			}
		}
	}
	for _, name := range drop {
		if err := a.DropExpiringUser(ctx, cur.Base, name, keep); err != nil {
			return fmt.Errorf("%w (revoke again to retry)", err)
		}
	}
	if err := x.cfg.check(ctx, cur.Secret); err != nil {
		return fmt.Errorf("AWSCURRENT no longer logs in after revoke: %w", err)
	}
	if req.Note != nil {
		req.Note(note)
	}
	return nil
}
