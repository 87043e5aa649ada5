package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// ACLUser rotates the password of a Redis or Valkey ACL user on a
// self-managed server (redis-acl). setSecret adds the pending password
// and removes every other but AWSCURRENT's, so two passwords are valid
// while the rotation runs and applications are never locked out; nothing
// else about the user changes. It sends only password hashes (ACL SETUSER
// #<sha256>, !<sha256>), never a password, except to log in.
//
// With masterarn, the master (admin) secret's user changes the user;
// without it the user changes its own passwords, which needs the ACL
// permissions docs/redis.md lists.
type ACLUser struct {
	cfg Config
}

var (
	_ rotation.Credential    = (*ACLUser)(nil)
	_ rotation.Prober        = (*ACLUser)(nil)
	_ rotation.Revoker       = (*ACLUser)(nil)
	_ rotation.PublicFielder = (*ACLUser)(nil)
)

// NewACLUser returns the redis-acl credential type.
func NewACLUser(cfg Config) *ACLUser { return &ACLUser{cfg: cfg} }

// PublicFields names the fields whose values say where and who.
func (*ACLUser) PublicFields() []string { return publicFields }

// Validate checks that v is a Redis secret.
func (a *ACLUser) Validate(_ context.Context, v rotation.Version) error {
	_, err := parseVersion(v)
	return err
}

// Generate returns a new password.
func (a *ACLUser) Generate(_ context.Context, req rotation.GenerateRequest) (rotation.GenerateResponse, error) {
	pw, err := req.Passwords.Generate()
	if err != nil {
		return rotation.GenerateResponse{}, err
	}
	return rotation.GenerateResponse{Changes: map[string]any{"password": pw}}, nil
}

func (a *ACLUser) pair(cur, pend rotation.Version) (*Secret, *Secret, error) {
	c, err := parseVersion(cur)
	if err != nil {
		return nil, nil, err
	}
	p, err := parseVersion(pend)
	if err != nil {
		return nil, nil, err
	}
	return c, p, checkPending(c, p)
}

// Set makes the user's passwords exactly AWSCURRENT's and AWSPENDING's:
// it adds the pending one and removes every other (the one AWSPREVIOUS
// held before this rotation among them). AWSCURRENT's is kept, never
// added back: when the server does not have it (drift), Set refuses and
// changes nothing. Run twice, the second call changes nothing.
func (a *ACLUser) Set(ctx context.Context, req rotation.SetRequest) error {
	cur, pend, err := a.pair(req.Current, req.Pending)
	if err != nil {
		return err
	}
	s, err := a.admin(ctx, req.Secrets, cur, func(ctx context.Context) []string {
		pws := []string{cur.Password, pend.Password}
		if prev, ok := previous(ctx, req.Previous, cur); ok {
			pws = append(pws, prev)
		}
		return pws
	})
	if err != nil {
		return err
	}
	defer s.Close()
	u, err := a.user(ctx, s, cur)
	if err != nil {
		return err
	}
	if !u.hasPassword(hashHex(cur.Password)) {
		// Drift: the password in use (set by hand, say) is not AWSCURRENT's.
		// Removing "every other" password would cut off whoever uses it.
		return fmt.Errorf("AWSCURRENT's password is not one of %q's passwords on %s (changed by hand?), and setSecret would remove the one in use; store the server's password as AWSCURRENT, or add AWSCURRENT's to the user, then rotate again; nothing changed", cur.Username, cur.Addr())
	}
	keep := map[string]bool{hashHex(cur.Password): true, hashHex(pend.Password): true}
	var mods []string
	if !u.hasPassword(hashHex(pend.Password)) {
		mods = append(mods, "#"+hashHex(pend.Password))
	}
	for _, h := range u.passwords {
		if !keep[h] {
			mods = append(mods, "!"+h)
		}
	}
	return s.setUser(ctx, cur.Username, mods)
}

// user reads the secret's user through s and refuses one Rotary must not
// rotate.
func (a *ACLUser) user(ctx context.Context, s *session, cur *Secret) (aclUser, error) {
	u, ok, err := s.getUser(ctx, cur.Username)
	if err != nil {
		return u, err
	}
	if !ok {
		return u, fmt.Errorf("%w: field \"username\": the user %q does not exist on %s; create it (ACL SETUSER) or fix the user name", ErrInvalidSecret, cur.Username, cur.Addr())
	}
	if u.has("nopass") {
		return u, fmt.Errorf("the user %q on %s has nopass: it logs in with any password, so rotating one changes nothing; give it a password (ACL SETUSER %s resetpass >...) first", cur.Username, cur.Addr(), cur.Username)
	}
	return u, nil
}

// admin opens the session that changes the user: as the master secret's
// user when the secret names one, otherwise as the user itself with the
// first of passwords the server accepts (read only when needed).
func (a *ACLUser) admin(ctx context.Context, secrets rotation.SecretStore, cur *Secret, passwords func(context.Context) []string) (*session, error) {
	if cur.MasterARN != "" {
		m, err := a.master(ctx, secrets, cur)
		if err != nil {
			return nil, err
		}
		s, err := dial(ctx, a.cfg, cur, m.Username, m.Password)
		if err != nil {
			return nil, fmt.Errorf("log in with the master secret %s: %w", cur.MasterARN, err)
		}
		return s, nil
	}
	var last error
	for _, pw := range passwords(ctx) {
		s, err := dial(ctx, a.cfg, cur, cur.Username, pw)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, ErrLogin) {
			return nil, err
		}
		last = err
	}
	return nil, fmt.Errorf("no password of the secret logs in, so the user cannot change its own: %w", last)
}

// master reads and checks the master secret: username and password, and,
// if it says, the same host and port as the secret.
func (a *ACLUser) master(ctx context.Context, secrets rotation.SecretStore, cur *Secret) (*Secret, error) {
	if secrets == nil {
		return nil, errors.New("no secret store to read the master secret from")
	}
	v, err := secrets.Current(ctx, cur.MasterARN)
	if err != nil {
		return nil, fmt.Errorf("read the master secret %s (field \"masterarn\"): %w", cur.MasterARN, err)
	}
	fields, err := v.Fields()
	if err != nil {
		return nil, fmt.Errorf("the master secret %s: %w", cur.MasterARN, err)
	}
	f := dbsecret.Fields{M: fields, Err: ErrInvalidSecret}
	m := &Secret{}
	if m.Username, err = f.Required("username"); err != nil {
		return nil, fmt.Errorf("the master secret %s: %w", cur.MasterARN, err)
	}
	if m.Password, err = f.Required("password"); err != nil {
		return nil, fmt.Errorf("the master secret %s: %w", cur.MasterARN, err)
	}
	if h, _ := f.Optional("host"); h != "" && !strings.EqualFold(h, cur.Host) {
		return nil, fmt.Errorf("%w: the master secret %s is for host %q, not %q; name a master secret of the same server in \"masterarn\"", ErrInvalidSecret, cur.MasterARN, h, cur.Host)
	}
	if _, ok := fields["port"]; ok {
		if p, err := f.Port(DefaultPort, m.Password); err != nil || p != cur.Port {
			return nil, fmt.Errorf("%w: the master secret %s is not for port %d; name a master secret of the same server in \"masterarn\"", ErrInvalidSecret, cur.MasterARN, cur.Port)
		}
	}
	return m, nil
}

// previous returns AWSPREVIOUS's password when it is for the same user and
// server as cur.
func previous(ctx context.Context, read func(context.Context) (rotation.Version, bool, error), cur *Secret) (string, bool) {
	if read == nil {
		return "", false
	}
	v, ok, err := read(ctx)
	if err != nil || !ok {
		return "", false
	}
	p, err := parseVersion(v)
	if err != nil || checkPending(cur, p) != nil {
		return "", false
	}
	return p.Password, true
}

// Test logs in as the user with the pending password and runs PING.
func (a *ACLUser) Test(ctx context.Context, req rotation.TestRequest) error {
	pend, err := parseVersion(req.Pending)
	if err != nil {
		return err
	}
	return testLogin(ctx, a.cfg, pend)
}

func testLogin(ctx context.Context, cfg Config, sec *Secret) error {
	s, err := dial(ctx, cfg, sec, sec.Username, sec.Password)
	if err != nil {
		return fmt.Errorf("test the pending value: %w", err)
	}
	s.Close()
	return nil
}

// Probe logs in with the version's password as AWSCURRENT's user, the way
// AWSCURRENT connects. A login that works is proven only when a random
// password is refused.
func (a *ACLUser) Probe(ctx context.Context, req rotation.ProbeRequest) error {
	return probe(ctx, a.cfg, req)
}

func probe(ctx context.Context, cfg Config, req rotation.ProbeRequest) error {
	cur, err := parseVersion(req.Current)
	if err != nil {
		return err
	}
	v, err := parseVersion(req.Version)
	if err != nil {
		return err
	}
	if err := checkPending(cur, v); err != nil {
		return fmt.Errorf("%w: %w", rotation.ErrOtherTarget, err)
	}
	s, err := dial(ctx, cfg, cur, cur.Username, v.Password)
	if err != nil {
		return err
	}
	s.Close()
	if s, err := dial(ctx, cfg, cur, cur.Username, probePassword()); err == nil {
		s.Close()
		return fmt.Errorf("%w: the user %q on %s logged in with a random password (nopass)", rotation.ErrUnproven, cur.Username, cur.Addr())
	}
	return nil
}

// Revoke leaves the user only AWSCURRENT's password, after proving it logs in.
func (a *ACLUser) Revoke(ctx context.Context, req rotation.RevokeRequest) error {
	cur, err := parseVersion(req.Current)
	if err != nil {
		return err
	}
	if err := testLogin(ctx, a.cfg, cur); err != nil {
		return fmt.Errorf("AWSCURRENT does not log in, so revoke changes nothing: %w", err)
	}
	s, err := a.admin(ctx, req.Secrets, cur, func(context.Context) []string { return []string{cur.Password} })
	if err != nil {
		return err
	}
	defer s.Close()
	u, err := a.user(ctx, s, cur)
	if err != nil {
		return err
	}
	if !u.hasPassword(hashHex(cur.Password)) {
		return fmt.Errorf("AWSCURRENT's password is not among the passwords of %q on %s, so revoke changes nothing", cur.Username, cur.Addr())
	}
	var mods []string
	for _, h := range u.passwords {
		if h != hashHex(cur.Password) {
			mods = append(mods, "!"+h)
		}
	}
	return s.setUser(ctx, cur.Username, mods)
}
