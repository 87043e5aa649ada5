package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
)

// The primitives of expiring users on PostgreSQL, shared by the
// expiring-user type and the issuer. An expiring user is a role that acts
// as its base role exactly as the clone of alternating users does (see
// actAsBase: member, same settings, sessions start as the base role), with
// LOGIN, a password, VALID UNTIL its expiry (so the server itself refuses
// it afterwards, whether or not Rotary runs again) and a role comment
// holding Rotary's marker (dbsecret.Marker). Only roles with that marker
// and a name of the base user's family are ever listed or dropped.

// ErrNotExpiringUser is wrapped when a role Rotary was asked to change or
// drop is not one of its expiring users (no marker, another base).
var ErrNotExpiringUser = errors.New("not a Rotary expiring user")

// ErrUserExists is wrapped when CreateExpiringUser with CreateOnly finds a
// role of that name already (a name drawn twice): draw another.
var ErrUserExists = errors.New("a user of that name exists")

// Admin is a session of the master user, which creates, lists and drops
// expiring users. Close it.
type Admin struct {
	cfg    Config
	conn   *pgx.Conn
	master string
}

// OpenAdmin logs in with the master secret to master.Database() (pass a
// copy whose DBName is the application's database: roles are
// cluster-wide, but that is the database the function may reach).
func (c Config) OpenAdmin(ctx context.Context, master *dbsecret.Secret) (*Admin, error) {
	conn, err := c.connect(ctx, master)
	if err != nil {
		return nil, fmt.Errorf("log in with the master secret: %w", err)
	}
	return &Admin{cfg: c, conn: conn, master: master.Username}, nil
}

// Close ends the master's session.
func (a *Admin) Close(ctx context.Context) { a.conn.Close(context.WithoutCancel(ctx)) }

// Now returns the server's clock, which decides when a VALID UNTIL passes.
func (a *Admin) Now(ctx context.Context) (time.Time, error) {
	var t time.Time
	if err := a.conn.QueryRow(ctx, "SELECT statement_timestamp()").Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("read the server's clock: %w", err)
	}
	return t.UTC(), nil
}

// ExpiringUserName returns a new name for an expiring user of base (see
// dbsecret.ExpiringName), within PostgreSQL's 63-byte limit; a base too
// long for it is refused with an error wrapping ErrInvalid and
// dbsecret.ErrNameTooLong.
func ExpiringUserName(base string, now time.Time) (string, error) {
	name, err := dbsecret.ExpiringName(base, now, MaxNameBytes, dbsecret.Bytes)
	if err != nil {
		return "", fmt.Errorf("%w: %w (PostgreSQL counts bytes)", ErrInvalid, err)
	}
	return name, nil
}

// ExpiringUserSpec describes an expiring user to create.
type ExpiringUserSpec struct {
	// Name is the new role's name, from ExpiringUserName(Base, ...).
	Name string
	// Base is the existing role whose privileges the user gets.
	Base string
	// Origin says who asked for it (dbsecret.OriginRotation, dbsecret.OriginIssued).
	Origin string
	// Password is the user's password; only its SCRAM verifier is sent.
	Password string
	// ExpiresAt is when the server stops accepting the password (VALID UNTIL).
	ExpiresAt time.Time
	// CreateOnly refuses (ErrUserExists) a role of that name that exists
	// already, whatever its marker: the issuer, which never retries a
	// create, must not take over another request's user.
	CreateOnly bool
}

// CreateExpiringUser creates the expiring user spec describes, in one
// transaction: the role with LOGIN INHERIT VALID UNTIL ExpiresAt, its
// password, membership in the base role with sessions starting as it, the
// base role's settings, and the marker comment. It is safe to repeat with
// the same spec (a retried rotation): a role of that name that already
// has the marker for the same base and origin is brought to the spec
// again. A role of that name without that marker (another origin's user: a
// name collision, never taken over), a base that does not exist, or a name
// not of the base's family is refused (wrapping ErrInvalid or
// ErrNotExpiringUser) before any change. A refusal for want of privileges
// says what the master lacks.
//
// The master needs CREATEROLE and, on PostgreSQL 16 and later, ADMIN
// OPTION on the base role (see docs/expiring-users.md).
func (a *Admin) CreateExpiringUser(ctx context.Context, spec ExpiringUserSpec) error {
	if !dbsecret.IsExpiringUserOf(spec.Base, spec.Name) {
		return fmt.Errorf("%w: %q is not a name of an expiring user of %q", ErrInvalid, spec.Name, spec.Base)
	}
	if err := checkName("username", spec.Name); err != nil {
		return err
	}
	if spec.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: the expiring user %q has no expiry", ErrInvalid, spec.Name)
	}
	tx, err := a.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction as the master user: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // a no-op after Commit
	if err := checkBaseRole(ctx, tx, spec.Base); err != nil {
		return err
	}
	var comment *string
	err = tx.QueryRow(ctx, "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1", spec.Name).Scan(&comment)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return fmt.Errorf("look up role %q: %w", spec.Name, err)
	case spec.CreateOnly:
		return fmt.Errorf("%w: a role named %q already exists; nothing was changed: draw another name", ErrUserExists, spec.Name)
	default:
		m, merr := dbsecret.ParseMarker(deref(comment))
		if merr != nil || m.Base != spec.Base {
			return fmt.Errorf("%w: a role named %q already exists without Rotary's marker for base %q; Rotary changes nothing about it: drop or rename it, then try again", ErrNotExpiringUser, spec.Name, spec.Base)
		}
		if m.Origin != spec.Origin {
			return fmt.Errorf("%w: a role named %q already exists as an expiring user of %q with another origin (%s), so it is not a retry of this one; Rotary changes nothing about it: remove the pending version (AWSPENDING) and rotate again", ErrNotExpiringUser, spec.Name, spec.Base, m.Origin)
		}
	}
	marker := dbsecret.NewMarker(spec.Base, spec.Origin, spec.ExpiresAt)
	options := "LOGIN INHERIT VALID UNTIL " + quoteLiteral(marker.ExpiresAt.Format(time.RFC3339))
	err = actAsBase(ctx, tx, spec.Base, spec.Name, options, "the expiring user")
	if err == nil {
		err = setPassword(ctx, tx.Conn(), spec.Name, spec.Password)
	}
	if err == nil {
		if _, err = tx.Exec(ctx, "COMMENT ON ROLE "+QuoteIdentifier(spec.Name)+" IS "+quoteLiteral(marker.JSON())); err != nil {
			err = fmt.Errorf("mark %q as Rotary's expiring user: %w", spec.Name, err)
		}
	}
	if err != nil {
		if isInsufficientPrivilege(err) && tx.Rollback(ctx) == nil {
			return explainRefusal(ctx, a.conn, err, a.master, spec.Base)
		}
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit the creation of the expiring user %q: %w", spec.Name, err)
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// ListExpiringUsers returns the expiring users of base of every origin:
// the roles whose name is of base's family (dbsecret.IsExpiringUserOf),
// that are members of base and carry Rotary's marker for base, oldest
// first. Others (a role of a similar name without the marker) are never
// listed. ExpiresAt is the earlier of the marker's expiry and VALID UNTIL.
func (a *Admin) ListExpiringUsers(ctx context.Context, base string) ([]dbsecret.ExpiringUser, error) {
	rows, err := a.conn.Query(ctx, `SELECT m.rolname, m.rolvaliduntil, coalesce(shobj_description(m.oid, 'pg_authid'), '')
		FROM pg_roles m JOIN pg_auth_members am ON am.member = m.oid JOIN pg_roles b ON b.oid = am.roleid
		WHERE b.rolname = $1 AND starts_with(m.rolname, $1) ORDER BY m.rolname`, base)
	if err != nil {
		return nil, fmt.Errorf("list the expiring users of %q: %w", base, err)
	}
	type row struct {
		name       string
		validUntil *time.Time
		comment    string
	}
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.name, &x.validUntil, &x.comment)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("list the expiring users of %q: %w", base, err)
	}
	var out []dbsecret.ExpiringUser
	for _, r := range found {
		b, created, ok := dbsecret.ParseExpiringName(r.name)
		if !ok || b != base {
			continue
		}
		m, err := dbsecret.ParseMarker(r.comment)
		if err != nil || m.Base != base {
			continue
		}
		u := dbsecret.ExpiringUser{Name: r.name, Base: base, Origin: m.Origin, CreatedAt: created, ExpiresAt: m.ExpiresAt}
		if r.validUntil != nil && r.validUntil.Before(u.ExpiresAt) {
			u.ExpiresAt = r.validUntil.UTC()
		}
		out = append(out, u)
	}
	return out, nil
}

// DropExpiringUser drops the expiring user name of base. It first checks
// the marker again (ErrNotExpiringUser, nothing changed, when the role is
// not one of base's expiring users), then takes LOGIN away, ends the
// user's sessions unless keepSessions (a session outlives its role's
// password and VALID UNTIL), and drops the role. Objects the user owns
// (made after RESET ROLE; normally its sessions act as the base role, which
// then owns what they create) are reassigned to the base role first. A
// role that is already gone is not an error.
func (a *Admin) DropExpiringUser(ctx context.Context, base, name string, keepSessions bool) error {
	var comment string
	err := a.conn.QueryRow(ctx, `SELECT coalesce(shobj_description(oid, 'pg_authid'), '') FROM pg_roles WHERE rolname = $1`, name).Scan(&comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up role %q: %w", name, err)
	}
	if m, merr := dbsecret.ParseMarker(comment); merr != nil || m.Base != base || !dbsecret.IsExpiringUserOf(base, name) {
		return fmt.Errorf("%w: role %q has no Rotary marker for base %q; Rotary does not drop it", ErrNotExpiringUser, name, base)
	}
	if !keepSessions {
		var may bool
		if err := a.conn.QueryRow(ctx, "SELECT pg_has_role(current_user, 'pg_signal_backend', 'USAGE') OR pg_has_role(current_user, $1::name, 'USAGE')", name).Scan(&may); err != nil {
			return fmt.Errorf("check whether the master user %q may end the sessions of %q: %w", a.master, name, err)
		}
		if !may {
			return fmt.Errorf("the master user %q may not end the sessions of %q, so it is not dropped; grant it pg_signal_backend (GRANT pg_signal_backend TO %s), or set %s=true to drop users and leave their open sessions running",
				a.master, name, QuoteIdentifier(a.master), EnvReapKeepSessions)
		}
	}
	if _, err := a.conn.Exec(ctx, "ALTER ROLE "+QuoteIdentifier(name)+" WITH NOLOGIN"); err != nil {
		return fmt.Errorf("stop logins of the expiring user %q: %w", name, explainRefusal(ctx, a.conn, err, a.master, name))
	}
	if !keepSessions {
		if err := terminate(ctx, a.conn, name); err != nil {
			return err
		}
	}
	if _, err := a.conn.Exec(ctx, "DROP ROLE IF EXISTS "+QuoteIdentifier(name)); err != nil {
		if !isDependentObjects(err) {
			return fmt.Errorf("drop the expiring user %q (it can no longer log in): %w", name, explainRefusal(ctx, a.conn, err, a.master, name))
		}
		// It owns objects or holds privileges of its own in this database.
		stmts := []string{
			"REASSIGN OWNED BY " + QuoteIdentifier(name) + " TO " + QuoteIdentifier(base),
			"DROP OWNED BY " + QuoteIdentifier(name),
			"DROP ROLE IF EXISTS " + QuoteIdentifier(name),
		}
		for _, stmt := range stmts {
			if _, err := a.conn.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("drop the expiring user %q, which owns objects or has privileges of its own (it can no longer log in): %s: %w", name, stmt, err)
			}
		}
	}
	return nil
}

// isDependentObjects reports DROP ROLE refused because objects depend on
// the role (dependent_objects_still_exist).
func isDependentObjects(err error) bool {
	var pgErr interface{ SQLState() string }
	return errors.As(err, &pgErr) && pgErr.SQLState() == "2BP01"
}

// ReapResult is what Reap did.
type ReapResult struct {
	Dropped []string // users dropped
	Kept    int      // expiring users of the base left in place (live, or kept)
}

// Reap drops the expiring users of base of origin (the reaping secret's
// dbsecret.OriginRotation) and the issued ones (see dbsecret.Reapable)
// whose expiry has passed by the server's clock, except those named in
// keep (AWSCURRENT's and AWSPENDING's users, say), ending their sessions
// unless keepSessions. Another secret's users are never dropped, expired
// or not: its AWSCURRENT may be one (its rotations failing past its TTL),
// and only its own reaper knows. Kept counts the users of origin and the
// issued ones left in place.
// The base user itself and roles without the marker are never listed, so
// never dropped. It goes on after a failed drop and returns what it did
// with the first error.
func (a *Admin) Reap(ctx context.Context, base, origin string, keep []string, keepSessions bool) (ReapResult, error) {
	var res ReapResult
	users, err := a.ListExpiringUsers(ctx, base)
	if err != nil {
		return res, err
	}
	now, err := a.Now(ctx)
	if err != nil {
		return res, err
	}
	var first error
	for _, u := range users {
		if !dbsecret.Reapable(u, origin) {
			continue // another secret's: its own reaper decides
		}
		if u.Name == base || contains(keep, u.Name) || !u.Expired(now) {
			res.Kept++
			continue
		}
		if err := a.DropExpiringUser(ctx, base, u.Name, keepSessions); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		res.Dropped = append(res.Dropped, u.Name)
	}
	return res, first
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
