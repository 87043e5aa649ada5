package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// MultiUser alternates the secret between a base user and its clone
// (<user>_clone), so the password the applications hold keeps working until
// the next rotation. The admin secret named by masterarn creates the clone
// and sets the passwords.
//
// The clone is a member of the base role and its sessions start as the base
// role (ALTER ROLE clone SET role = base): it has exactly the base user's
// privileges and memberships, including ones granted to the base user later,
// and objects created by either user are owned by the base role, so both can
// use and alter them.
type MultiUser struct {
	cfg Config
}

var (
	_ rotation.Credential    = (*MultiUser)(nil)
	_ rotation.Prober        = (*MultiUser)(nil)
	_ rotation.SetReader     = (*MultiUser)(nil)
	_ rotation.PublicFielder = (*MultiUser)(nil)
)

// NewMultiUser returns the alternating-users credential type.
func NewMultiUser(cfg Config) *MultiUser { return &MultiUser{cfg: cfg} }

func parseMulti(label string, v rotation.Version) (*dbsecret.Secret, error) {
	s, err := parse(label, v)
	if err != nil {
		return nil, err
	}
	if dbsecret.BaseName(s.Username) == "" {
		err = fmt.Errorf("%w: field \"username\" is just %q; the base user of an alternating pair needs a name", ErrInvalid, dbsecret.CloneSuffix)
	} else if strings.TrimSpace(s.MasterARN) == "" {
		err = fmt.Errorf("%w: field \"masterarn\" is missing; alternating-users rotation needs the ARN of the admin secret in masterarn", ErrInvalid)
	} else if clone, n, maxBase, ok := dbsecret.CloneTooLong(s.Username, MaxNameBytes, dbsecret.Bytes); !ok {
		err = fmt.Errorf("%w: field \"username\": the alternate user %q would be %d bytes, over PostgreSQL's %d-byte limit for role names; use a username of at most %d bytes",
			ErrInvalid, clone, n, MaxNameBytes, maxBase)
	}
	if err != nil {
		if label != "" {
			err = fmt.Errorf("%s version %s: %w", label, v.ID, err)
		}
		return nil, err
	}
	return s, nil
}

// Validate checks that v is a PostgreSQL database secret with a masterarn
// whose user has room for the _clone suffix.
func (m *MultiUser) Validate(_ context.Context, v rotation.Version) error {
	_, err := parseMulti("", v)
	return err
}

// SetReads names the master secret (the pending version's masterarn), so
// that setSecret reads it with AWSCURRENT in one call (rotation.SetReader).
func (m *MultiUser) SetReads(pending rotation.Version) []string {
	if p, err := parseMulti("AWSPENDING", pending); err == nil && p.MasterARN != "" {
		return []string{p.MasterARN}
	}
	return nil
}

// Generate switches to the other user of the pair with a new password.
func (m *MultiUser) Generate(_ context.Context, req rotation.GenerateRequest) (rotation.GenerateResponse, error) {
	cur, err := parseMulti("AWSCURRENT", req.Current)
	if err != nil {
		return rotation.GenerateResponse{}, err
	}
	pw, err := req.Passwords.Generate()
	if err != nil {
		return rotation.GenerateResponse{}, fmt.Errorf("generate password: %w", err)
	}
	return rotation.GenerateResponse{Changes: map[string]any{"username": dbsecret.Other(cur.Username), "password": pw}}, nil
}

// Set makes the pending user valid with the pending password, logging in
// with the master secret once AWSCURRENT has proven that it logs in (even
// when the pending password already works; an instance whose testSecret
// proved that version in the previous rotation does not log in again). It
// creates the clone on the first rotation and makes sure, on every rotation
// to the clone, that it is a member of the base role, has the base role's
// settings and starts its sessions as the base role. It is safe to repeat:
// the password is changed only if the pending password does not already
// log in. Everything the master does happens in one transaction.
func (m *MultiUser) Set(ctx context.Context, req rotation.SetRequest) error {
	cur, err := parseMulti("AWSCURRENT", req.Current)
	if err != nil {
		return err
	}
	pend, err := parseMulti("AWSPENDING", req.Pending)
	if err != nil {
		return err
	}
	if err := dbsecret.CheckPending(cur, pend); err != nil {
		return err
	}
	if next := dbsecret.Other(cur.Username); pend.Username != next {
		return fmt.Errorf("%w: field \"username\" of the pending version is %q, but after %q comes %q; remove the pending version (AWSPENDING) and rotate again",
			ErrInvalid, pend.Username, cur.Username, next)
	}
	master, err := m.master(ctx, req.Secrets, cur)
	if err != nil {
		return err
	}
	// The master connects to the user's database: roles are cluster-wide,
	// but this is the database the function is allowed to reach.
	admin := *master
	admin.DBName = cur.Database()

	// Whoever wrote AWSCURRENT must have known the user's password:
	// otherwise the master would act for a user nobody proved to own (a
	// confused deputy), such as making a role someone else controls a
	// member of a privileged one. This holds on a retry too (the rotation
	// never changes AWSCURRENT's password), and also when the pending
	// password already works: knowing the clone's password proves nothing
	// about the base user.
	if err := m.cfg.check(ctx, cur); err != nil {
		return fmt.Errorf("%w: AWSCURRENT does not log in, so the master secret will not act for user %q; fix the current password (or restore AWSCURRENT) and rotate again: %w", ErrLogin, cur.Username, err)
	}
	pendingWorks := false
	if err := m.cfg.check(ctx, pend); err == nil {
		// A retry, if the server checks the password (else testSecret fails).
		if err := m.cfg.checkPasswordsEnforced(ctx, pend, nil); err != nil {
			return err
		}
		pendingWorks = true
	} else if !isAuthFailure(err) {
		return fmt.Errorf("check whether the pending password already works: %w", err)
	}
	conn, err := m.cfg.connect(ctx, &admin)
	if err != nil {
		return fmt.Errorf("log in with the master secret: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction as the master user: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // a no-op after Commit
	base, clone := dbsecret.Pair(cur.Username)
	err = ensureRoles(ctx, tx, base, pend.Username)
	if err == nil && !pendingWorks {
		err = setPassword(ctx, tx.Conn(), pend.Username, pend.Password)
	}
	if err != nil {
		if isInsufficientPrivilege(err) && tx.Rollback(ctx) == nil {
			// Nothing was changed; say what the master lacks.
			return explainRefusal(ctx, conn, err, master.Username, base, clone)
		}
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit the changes to roles %q and %q: %w", base, dbsecret.CloneName(base), err)
	}
	return nil
}

// master reads the admin secret named by cur's masterarn (see
// dbsecret.Master) and refuses one that logs in as either user of the pair.
func (m *MultiUser) master(ctx context.Context, secrets rotation.SecretStore, cur *dbsecret.Secret) (*dbsecret.Secret, error) {
	if secrets == nil {
		return nil, fmt.Errorf("read the master secret %s: no secret store was given", cur.MasterARN)
	}
	master, err := dbsecret.Master(ctx, secrets, cur, m.cfg.NewRDS)
	if err != nil {
		return nil, err
	}
	if dbsecret.InPair(cur.Username, master.Username) {
		return nil, fmt.Errorf("%w: the master secret's user %q is one of the rotated users; use a separate admin user in the master secret", ErrInvalid, master.Username)
	}
	return master, nil
}

// ensureRoles checks that the base role exists and, when the pending user is
// the clone, makes it act as the base role (see actAsBase).
func ensureRoles(ctx context.Context, tx pgx.Tx, base, pending string) error {
	if err := checkBaseRole(ctx, tx, base); err != nil {
		return err
	}
	if pending == base {
		return nil
	}
	return actAsBase(ctx, tx, base, pending, "LOGIN INHERIT", "the alternate user")
}

// checkBaseRole fails, wrapping ErrInvalid, when the base role does not exist.
func checkBaseRole(ctx context.Context, tx pgx.Tx, base string) error {
	var baseLogin bool
	err := tx.QueryRow(ctx, "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", base).Scan(&baseLogin)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: the base user %q does not exist on the server; create it, or fix field \"username\"", ErrInvalid, base)
	}
	if err != nil {
		return fmt.Errorf("look up role %q: %w", base, err)
	}
	return nil
}

// actAsBase creates user if needed (without a password: the caller sets it
// in the same transaction) or gives it options, and makes it act as the
// base role: a member of it, with the base role's settings, whose sessions
// start as the base role. options are the role options it gets ("LOGIN
// INHERIT", with VALID UNTIL for an expiring user); what names the user in
// errors. From PostgreSQL 16 on, a membership also has INHERIT and SET
// options of its own, which the member's INHERIT attribute only sets by
// default when it is granted: the user must have a membership with both (a
// role made NOINHERIT and then granted the base role has neither).
func actAsBase(ctx context.Context, tx pgx.Tx, base, user, options, what string) error {
	memberOptions, grantOptions := "", ""
	if serverMajor(tx.Conn()) >= 16 {
		memberOptions, grantOptions = " AND am.inherit_option AND am.set_option", " WITH INHERIT TRUE, SET TRUE"
	}
	var exists, member bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1),
		EXISTS (SELECT 1 FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
		        WHERE r.rolname = $2 AND m.rolname = $1`+memberOptions+`)`, user, base).Scan(&exists, &member)
	if err != nil {
		return fmt.Errorf("look up role %q: %w", user, err)
	}
	if !exists {
		if _, err := tx.Exec(ctx, "CREATE ROLE "+QuoteIdentifier(user)+" WITH "+options); err != nil {
			return fmt.Errorf("create %s %q: %w", what, user, err)
		}
	} else if _, err := tx.Exec(ctx, "ALTER ROLE "+QuoteIdentifier(user)+" WITH "+options); err != nil {
		return fmt.Errorf("allow %s %q to log in: %w", what, user, err)
	}
	if !member {
		if _, err := tx.Exec(ctx, "GRANT "+QuoteIdentifier(base)+" TO "+QuoteIdentifier(user)+grantOptions); err != nil {
			return fmt.Errorf("make %q a member of %q: %w", user, base, err)
		}
	}
	return copySettings(ctx, tx, base, user)
}

// Test logs in as the pending user with the pending password and runs a query.
func (m *MultiUser) Test(ctx context.Context, req rotation.TestRequest) error {
	pend, err := parseMulti("AWSPENDING", req.Pending)
	if err != nil {
		return err
	}
	if err := m.cfg.check(ctx, pend); err != nil {
		return err
	}
	// Always prove here that the server refuses a wrong password for the
	// pending user: a refusal setSecret saw came before the master created
	// the clone and granted it the base role, and pg_hba.conf can match on
	// role membership (+group, samerole), so it proves nothing now.
	if err := m.cfg.checkPasswordsEnforced(ctx, pend, nil); err != nil {
		return err
	}
	return nil
}

// Probe logs in as the version's user of the pair with its password over
// AWSCURRENT's connection settings (see rotation.Prober). A version for a
// user outside the pair is not tried.
func (m *MultiUser) Probe(ctx context.Context, req rotation.ProbeRequest) error {
	return m.cfg.probe(ctx, req, func(cur, v *dbsecret.Secret) error {
		if !dbsecret.InPair(cur.Username, v.Username) {
			base, clone := dbsecret.Pair(cur.Username)
			return fmt.Errorf("%w: field \"username\" is %q, outside the pair %q/%q", ErrInvalid, v.Username, base, clone)
		}
		return nil
	})
}
