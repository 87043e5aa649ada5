package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
)

// expiringBase creates a base role app that may read one table and a
// master with the documented privileges, and returns the base's name and
// the master's secret (for database postgres).
func (f *fixture) expiringBase(t *testing.T) (base, pw string, master *dbsecret.Secret) {
	t.Helper()
	base, pw = uniqueName("exp"), newPassword(t)
	f.createRole(t, base, pw, "")
	table := QuoteIdentifier("t_" + base)
	f.exec(t, "CREATE TABLE "+table+" (x int); GRANT SELECT ON "+table+" TO "+QuoteIdentifier(base))
	t.Cleanup(func() { f.exec(t, "DROP TABLE IF EXISTS "+table) })
	user, masterPW := f.masterUser(t, base)
	f.exec(t, "GRANT pg_signal_backend TO "+QuoteIdentifier(user))
	t.Cleanup(func() { f.dropExpiring(t, base) })
	return base, pw, &dbsecret.Secret{Engine: "postgres", Host: f.c.Host, Port: f.c.Port, Username: user, Password: masterPW, DBName: "postgres"}
}

// dropExpiring drops every role whose name starts with base_ but base's
// own, as the superuser.
func (f *fixture) dropExpiring(t *testing.T, base string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := f.c.ConnectAdmin(ctx, "")
	if err != nil {
		t.Error(err)
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)", base+"_")
	if err != nil {
		t.Error(err)
		return
	}
	var names []string
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		names = append(names, n)
	}
	rows.Close()
	f.dropRoles(t, names...)
}

func (f *fixture) openAdmin(t *testing.T, master *dbsecret.Secret) *Admin {
	t.Helper()
	a, err := f.cfg.OpenAdmin(context.Background(), master)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	return a
}

func TestExpiringUserPrimitives(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	base, _, master := f.expiringBase(t)
	a := f.openAdmin(t, master)
	now, err := a.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// A live user: logs in, acts as the base role (may read its table,
	// may not create a role), is listed with its marker.
	live, err := ExpiringUserName(base, now)
	if err != nil {
		t.Fatal(err)
	}
	livePW := newPassword(t)
	spec := ExpiringUserSpec{Name: live, Base: base, Origin: dbsecret.OriginIssued("reader"), Password: livePW, ExpiresAt: now.Add(time.Hour)}
	if err := a.CreateExpiringUser(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateExpiringUser(ctx, spec); err != nil {
		t.Fatalf("a repeated create (a retry) fails: %v", err)
	}
	// The same name for another origin is a collision, not a retry: it
	// is refused and the user keeps its password and its origin.
	taker := spec
	taker.Origin, taker.Password = dbsecret.OriginIssued("other"), newPassword(t)
	if err := a.CreateExpiringUser(ctx, taker); !errors.Is(err, ErrNotExpiringUser) {
		t.Fatalf("a create of the same name for another origin: want ErrNotExpiringUser, got %v", err)
	}
	taker.Origin, taker.CreateOnly = spec.Origin, true
	if err := a.CreateExpiringUser(ctx, taker); !errors.Is(err, ErrUserExists) {
		t.Fatalf("a create-only of an existing name: want ErrUserExists, got %v", err)
	}
	f.mustNotLogin(t, "the taker's password on the collided user", f.secret(t, live, taker.Password, nil))
	liveSecret := f.secret(t, live, livePW, nil)
	f.mustLogin(t, "the new expiring user", liveSecret)
	f.mustNotLogin(t, "the new expiring user with a wrong password", f.secret(t, live, newPassword(t), nil))
	f.canSelect(t, liveSecret, "t_"+base, true)

	// A short-lived one: the server itself refuses it after its expiry.
	short, err := ExpiringUserName(base, now)
	if err != nil {
		t.Fatal(err)
	}
	shortPW := newPassword(t)
	expires := now.Add(2 * time.Second)
	if err := a.CreateExpiringUser(ctx, ExpiringUserSpec{Name: short, Base: base, Origin: dbsecret.OriginRotation("arn:test"), Password: shortPW, ExpiresAt: expires}); err != nil {
		t.Fatal(err)
	}
	shortSecret := f.secret(t, short, shortPW, nil)
	f.mustLogin(t, "the short-lived user before its expiry", shortSecret)
	// Another secret's user of the same base, expired as well (its
	// rotations failing past its TTL): this secret's reaper leaves it.
	other, err := ExpiringUserName(base, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.CreateExpiringUser(ctx, ExpiringUserSpec{Name: other, Base: base, Origin: dbsecret.OriginRotation("arn:other"), Password: newPassword(t), ExpiresAt: expires}); err != nil {
		t.Fatal(err)
	}

	// A foreign role with a name of the family, a member of the base, no marker.
	foreign := base + "_250101120000_abcd"
	f.createRole(t, foreign, newPassword(t), "")
	f.exec(t, "GRANT "+QuoteIdentifier(base)+" TO "+QuoteIdentifier(foreign)+"; COMMENT ON ROLE "+QuoteIdentifier(foreign)+" IS 'not rotary'")
	if err := a.CreateExpiringUser(ctx, ExpiringUserSpec{Name: foreign, Base: base, Password: newPassword(t), ExpiresAt: now.Add(time.Hour)}); !errors.Is(err, ErrNotExpiringUser) {
		t.Fatalf("create over a foreign role: want ErrNotExpiringUser, got %v", err)
	}
	if err := a.DropExpiringUser(ctx, base, foreign, false); !errors.Is(err, ErrNotExpiringUser) {
		t.Fatalf("drop of a foreign role: want ErrNotExpiringUser, got %v", err)
	}

	users, err := a.ListExpiringUsers(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(users), sorted(live, short, other); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("listed %v, want %v only", got, want)
	}
	for _, u := range users {
		if u.Name == short && (!u.ExpiresAt.Equal(expires.Truncate(time.Second)) || u.Origin != "rotation:arn:test") {
			t.Fatalf("listed %+v, want expiry %s and origin rotation:arn:test", u, expires)
		}
		if u.Name == live && u.Origin != spec.Origin {
			t.Fatalf("listed %+v, want origin %s (a colliding create must not rewrite it)", u, spec.Origin)
		}
	}

	// Past the expiry by the server's clock: refused by PostgreSQL itself.
	waitServerPast(t, a, expires)
	f.mustNotLogin(t, "the short-lived user after its expiry", shortSecret)
	f.mustLogin(t, "the live user", liveSecret)

	res, err := a.Reap(ctx, base, dbsecret.OriginRotation("arn:test"), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Dropped, ",") != short || res.Kept != 1 {
		t.Fatalf("reap: %+v, want %s dropped and one kept", res, short)
	}
	if users, err := a.ListExpiringUsers(ctx, base); err != nil || strings.Join(names(users), ",") != strings.Join(sorted(live, other), ",") {
		t.Fatalf("after the reap of arn:test, listed %v (err %v), want %s and the other secret's expired %s", names(users), err, live, other)
	}
	f.mustLogin(t, "the live user after the reaper", liveSecret)
	var foreignLeft bool
	if err := f.adminConn(t).QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", foreign).Scan(&foreignLeft); err != nil || !foreignLeft {
		t.Fatalf("the foreign role %q is gone after the reaper (err %v)", foreign, err)
	}
}

func names(users []dbsecret.ExpiringUser) []string {
	var out []string
	for _, u := range users {
		out = append(out, u.Name)
	}
	return out
}

func sorted(names ...string) []string {
	return slices.Sorted(slices.Values(names))
}

// waitServerPast waits until the server's clock is past t.
func waitServerPast(t *testing.T, a *Admin, at time.Time) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		now, err := a.Now(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if now.After(at) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server's clock did not pass %s", at)
		}
		time.Sleep(at.Sub(now) + 50*time.Millisecond)
	}
}

// canSelect checks whether the user of value may read table.
func (f *fixture) canSelect(t *testing.T, value, table string, want bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := dbsecret.Parse(value)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := f.cfg.connect(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "SELECT * FROM "+QuoteIdentifier(table))
	if (err == nil) != want {
		t.Fatalf("SELECT from %s as %s: err %v, want allowed=%v", table, s.Username, err, want)
	}
}
