package mysql

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

// ExpiringUsers gives every rotation a new account (see the primitives in
// expiring.go): <base>_<yyMMddHHmmss>_<random> at the base user's host,
// with exactly the base user's grants, and an expiresAt of now + TTL in
// the secret. MySQL and MariaDB cannot expire an account by themselves, so
// the reaper enforces the expiry: after every rotation, and whenever the
// watch invokes reapSecret, it drops the base's accounts whose expiresAt
// has passed. Until the reaper runs, an expired credential still logs in.
// Revoke drops every account this secret's rotations made but
// AWSCURRENT's.
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

func (x *ExpiringUsers) parse(ctx context.Context, label string, v rotation.Version) (*expiringVersion, error) {
	s, err := validate(ctx, v)
	if err != nil {
		return nil, err
	}
	var e *expiringVersion
	fields, err := v.Fields()
	if err == nil {
		e, err = dbsecret.NewExpiringVersion(s, fields, dbsecret.ErrInvalidSecret)
	}
	if err == nil {
		_, err = ExpiringUserName(e.Base, x.cfg.EngineNameLimit(s.Engine), time.Now())
		if errors.Is(err, dbsecret.ErrNameTooLong) {
			err = fmt.Errorf("%w; for engine %q the limit is %d characters (%s lowers it)", err, s.Engine, x.cfg.EngineNameLimit(s.Engine), EnvUsernameLimit)
		}
	}
	if err != nil {
		if label != "" {
			err = fmt.Errorf("%s version %s: %w", label, v.ID, err)
		}
		return nil, err
	}
	return e, nil
}

// Validate checks that v is a MySQL-family database secret with a
// masterarn, a base user short enough for its expiring users' names under
// the engine's strictest limit (32 characters for mysql and aurora-mysql,
// 80 for mariadb, or USERNAME_CHARACTER_LIMIT), and an expiresAt (if any)
// in RFC 3339.
func (x *ExpiringUsers) Validate(ctx context.Context, v rotation.Version) error {
	_, err := x.parse(ctx, "", v)
	return err
}

// Generate names a new user of the base with a new password and expiresAt
// now + TTL. The name is decided here, so that every retry of the rotation
// creates the same account.
func (x *ExpiringUsers) Generate(ctx context.Context, req rotation.GenerateRequest) (rotation.GenerateResponse, error) {
	cur, err := x.parse(ctx, "AWSCURRENT", req.Current)
	if err != nil {
		return rotation.GenerateResponse{}, err
	}
	now := x.now()
	name, err := ExpiringUserName(cur.Base, x.cfg.EngineNameLimit(cur.Engine), now)
	if err != nil {
		return rotation.GenerateResponse{}, err
	}
	pw, err := req.Passwords.Generate()
	if err != nil {
		return rotation.GenerateResponse{}, err
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
		return nil, fmt.Errorf("%w: the master secret %s logs in as %q, the base user or one of its expiring users; use a separate admin user as the master", dbsecret.ErrInvalidSecret, cur.MasterARN, master.Username)
	}
	return master, nil
}

// owned proves that the secret owns cur's user before the master acts for
// its base, and returns the account's host: AWSCURRENT logs in, and names
// the base user or one of its marked expiring users.
func (x *ExpiringUsers) owned(ctx context.Context, a *Admin, cur *expiringVersion, what string) (string, error) {
	host, err := x.cfg.currentHost(ctx, cur.Secret)
	if err != nil {
		return "", fmt.Errorf("%s changes nothing: %w (if AWSCURRENT's user expired and was reaped, store the base user's credentials as AWSCURRENT)", what, err)
	}
	if cur.Username == cur.Base {
		return host, nil
	}
	m, err := a.marker(ctx, cur.Username, host)
	if err != nil {
		return "", err
	}
	if m == nil || m.Base != cur.Base {
		return "", fmt.Errorf("%w: AWSCURRENT's account %q@%q is named like an expiring user of %q but has no Rotary marker, so the master secret will not act for it and %s changes nothing; store the base user's credentials as AWSCURRENT", ErrNotExpiringUser, cur.Username, host, cur.Base, what)
	}
	return host, nil
}

// Set creates the pending account (see Admin.CreateExpiringUser) at the
// host of AWSCURRENT's account, after proving that AWSCURRENT logs in and
// belongs to the base's family, and refusing a pending version for another
// base or one whose expiresAt is too close (half the TTL must be left). It
// is safe to repeat: the account is created once, its password set only if
// it does not already log in, and the grant copy is a sync.
func (x *ExpiringUsers) Set(ctx context.Context, req rotation.SetRequest) error {
	cur, err := x.parse(ctx, "AWSCURRENT", req.Current)
	if err != nil {
		return err
	}
	pend, err := x.parse(ctx, "AWSPENDING", req.Pending)
	if err != nil {
		return err
	}
	if err := dbsecret.CheckPending(cur.Secret, pend.Secret); err != nil {
		return err
	}
	if !dbsecret.IsExpiringUserOf(cur.Base, pend.Username) || pend.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: the pending version's user %q is not a new expiring user of %q with an expiresAt; remove the pending version (AWSPENDING) and rotate again", dbsecret.ErrInvalidSecret, pend.Username, cur.Base)
	}
	if left := time.Until(pend.ExpiresAt); left < x.exp.TTL/2 {
		return fmt.Errorf("%w: the pending version expires at %s, only %s from now (less than half of %s=%s): remove the pending version (AWSPENDING) and rotate again", dbsecret.ErrInvalidSecret, pend.ExpiresAt.Format(time.RFC3339), left.Round(time.Second), dbsecret.EnvCredentialTTL, x.exp.TTL)
	}
	master, err := x.master(ctx, req.Secrets, cur)
	if err != nil {
		return err
	}
	a, err := x.cfg.OpenAdmin(ctx, master)
	if err != nil {
		return err
	}
	defer a.Close()
	host, err := x.owned(ctx, a, cur, "the rotation")
	if err != nil {
		return err
	}
	_, err = a.CreateExpiringUser(ctx, ExpiringUserSpec{
		Name: pend.Username, Base: cur.Base, BaseHost: host, Origin: dbsecret.OriginRotation(req.SecretARN),
		Password: pend.Password, ExpiresAt: pend.ExpiresAt,
	})
	return err
}

// Test logs in as the pending user and runs a query.
func (x *ExpiringUsers) Test(ctx context.Context, req rotation.TestRequest) error {
	pend, err := x.parse(ctx, "AWSPENDING", req.Pending)
	if err != nil {
		return err
	}
	if _, err := testLoginHost(ctx, x.cfg, pend.Secret); err != nil {
		return fmt.Errorf("test the pending value: %w", err)
	}
	return nil
}

// Probe logs in as the version's user over AWSCURRENT's connection
// settings (see rotation.Prober). A version for a user outside the base's
// family is not tried.
func (x *ExpiringUsers) Probe(ctx context.Context, req rotation.ProbeRequest) error {
	return x.cfg.probe(ctx, req, func(cur, v *dbsecret.Secret) error {
		base := dbsecret.ExpiringBase(cur.Username)
		if v.Username != base && !dbsecret.IsExpiringUserOf(base, v.Username) {
			return fmt.Errorf("field \"username\" is %q, not %q or one of its expiring users", v.Username, base)
		}
		return nil
	})
}

// Reap drops the base's expiring accounts made by this secret's rotations
// and by the issuer (never another secret's: see Admin.Reap) whose
// expiresAt has passed by the server's clock,
// keeping AWSCURRENT's and AWSPENDING's users, killing their connections
// unless ROTARY_REAP_KEEP_SESSIONS is set. It needs no login as the
// application: it drops only expired accounts with Rotary's marker.
func (x *ExpiringUsers) Reap(ctx context.Context, req rotation.ReapRequest) (rotation.ReapResponse, error) {
	cur, err := x.parse(ctx, "AWSCURRENT", req.Current)
	if err != nil {
		return rotation.ReapResponse{}, err
	}
	keep := []string{cur.Username}
	if req.Pending != nil {
		pend, err := validate(ctx, *req.Pending)
		if err != nil {
			return rotation.ReapResponse{}, fmt.Errorf("%w; reap changes nothing while it cannot tell AWSPENDING's user", err)
		}
		keep = append(keep, pend.Username)
	}
	master, err := x.master(ctx, req.Secrets, cur)
	if err != nil {
		return rotation.ReapResponse{}, err
	}
	a, err := x.cfg.OpenAdmin(ctx, master)
	if err != nil {
		return rotation.ReapResponse{}, err
	}
	defer a.Close()
	res, err := a.Reap(ctx, cur.Base, dbsecret.OriginRotation(req.SecretARN), keep, x.exp.KeepSessionsOnReap)
	return rotation.ReapResponse{Dropped: res.Dropped, Kept: res.Kept}, err
}

// Revoke drops every account this secret's rotations created (origin
// rotation:<secret ARN>) but AWSCURRENT's, killing their connections unless
// ROTARY_REVOKE_KEEP_SESSIONS is set, and, when dbsecret.RetireBase allows
// (AWSCURRENT is this secret's user, and no other secret's accounts of the
// base exist: another secret may still hold the base's password), gives the
// base user a fresh random password that nobody stores (killing its
// connections too): the base's password the secret began with is retired.
// The step's log note says which. Accounts of other origins (the issuer's,
// another secret's) are left alone. Before any change it proves that
// AWSCURRENT logs in and is the base or one of its marked users, that the
// master may kill connections, and that the server checks the base user's
// password (else ErrStillValid). It is safe to call twice.
func (x *ExpiringUsers) Revoke(ctx context.Context, req rotation.RevokeRequest) error {
	cur, err := x.parse(ctx, "AWSCURRENT", req.Current)
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
	defer a.Close()
	host, err := x.owned(ctx, a, cur, "revoke")
	if err != nil {
		return err
	}
	users, err := a.ListExpiringUsers(ctx, cur.Base)
	if err != nil {
		return err
	}
	origin := dbsecret.OriginRotation(req.SecretARN)
	var drop []dbsecret.ExpiringUser
	for _, u := range users {
		if u.Origin == origin && u.Name != cur.Username {
			drop = append(drop, u)
		}
	}
	// Only when no other secret's users show another holder of the base's
	// password (RetireBase).
	retireBase, note := dbsecret.RetireBase(cur.Base, cur.Username, origin, users)
	keep := x.cfg.KeepSessionsOnRevoke
	var plugin string
	if retireBase {
		if plugin, err = a.s.plugin(ctx, cur.Base, host); err != nil {
			return err
		}
		if _, err := a.s.identifiedBy(plugin, rand.Text()); err != nil {
			return fmt.Errorf("%q@%q: %w; revoke changes nothing", cur.Base, host, err)
		}
		anyPassword := *cur.Secret
		anyPassword.Username, anyPassword.Password = cur.Base, rand.Text()
		if err := x.cfg.refused(ctx, "a random password", &anyPassword); err != nil {
			if errors.Is(err, ErrStillValid) {
				return fmt.Errorf("%w: the server does not check passwords for the base user %q, so a new password would not retire its old one and revoke changes nothing; fix the account, then revoke again", err, cur.Base)
			}
			return err
		}
	}
	var kill func(context.Context, int64) error
	if !keep && (retireBase || len(drop) > 0) {
		if kill, err = a.s.killer(ctx, master.Username); err != nil {
			return err
		}
	}
	if retireBase {
		clause, err := a.s.identifiedBy(plugin, rand.Text())
		if err != nil {
			return err
		}
		acct := a.s.account(cur.Base, host)
		if err := a.s.execSecret(ctx, fmt.Sprintf("give the base user %q@%q a new random password", cur.Base, host), "ALTER USER "+acct+" "+clause); err != nil {
			return fmt.Errorf("revoke changed nothing: %w", err)
		}
		if !a.s.mariadb {
			if _, err := a.s.exec(ctx, "ALTER USER "+acct+" DISCARD OLD PASSWORD"); err != nil {
				return fmt.Errorf("discard the secondary password of %q@%q (its password is already changed; revoke again to retry): %w", cur.Base, host, err)
			}
		}
		if kill != nil {
			if err := a.s.endSessions(ctx, cur.Base, kill); err != nil {
				return err
			}
		}
	}
	for _, u := range drop {
		if err := a.DropExpiringUser(ctx, cur.Base, u.Name, u.Host, keep); err != nil {
			return fmt.Errorf("%w (revoke again to retry)", err)
		}
	}
	if err := testLogin(ctx, x.cfg, cur.Secret); err != nil {
		return fmt.Errorf("AWSCURRENT no longer logs in after revoke: %w", err)
	}
	if req.Note != nil {
		req.Note(note)
	}
	return nil
}
