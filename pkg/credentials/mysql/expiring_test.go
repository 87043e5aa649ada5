package mysql

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
)

// expiringFixture is a base user that may read one table of its database,
// a least-privilege master for expiring users and a marker database of the
// test's own.
type expiringFixture struct {
	ts       *testServer
	cfg      Config
	base, db string
	basePW   string
	master   *dbsecret.Secret
	masterPW string
}

// expiringMaster creates an admin user with what expiring users of a base
// holding SELECT on db need (docs/expiring-users.md): CREATE USER, SELECT
// on mysql.*, the base's privileges WITH GRANT OPTION, everything on the
// marker database, and PROCESS and CONNECTION ADMIN to end sessions.
func expiringMaster(t *testing.T, ts *testServer, db, markerDB string) (user, pw string) {
	t.Helper()
	user, pw = uniqueName("rt_emaster_"), randomPassword(t)
	ts.createUser(t, user, "%", pw, "GRANT CREATE USER ON *.*", "GRANT SELECT ON mysql.*", "GRANT PROCESS, CONNECTION ADMIN ON *.*",
		"GRANT ALL PRIVILEGES ON "+quoteIdent(markerDB)+".*")
	ts.exec(t, "GRANT SELECT ON "+quoteIdent(db)+".* TO "+ts.quote(user)+"@'%' WITH GRANT OPTION")
	return user, pw
}

func newExpiringFixture(t *testing.T) *expiringFixture {
	t.Helper()
	ts := sharedServer(t)
	f := &expiringFixture{ts: ts, base: uniqueName("rx"), db: uniqueName("rt_db_")}
	markerDB := uniqueName("rt_marks_")
	f.cfg = Config{MarkerDatabase: markerDB}
	ts.createDatabase(t, f.db)
	t.Cleanup(func() { _, _ = ts.root.Exec("DROP DATABASE IF EXISTS " + quoteIdent(markerDB)) })
	ts.exec(t, "CREATE TABLE "+quoteIdent(f.db)+".t (id INT PRIMARY KEY)")
	f.basePW = randomPassword(t)
	ts.createUser(t, f.base, "%", f.basePW, "GRANT SELECT ON "+quoteIdent(f.db)+".*")
	t.Cleanup(func() { f.dropFamily(t) })
	user, pw := expiringMaster(t, ts, f.db, markerDB)
	f.masterPW = pw
	f.master = &dbsecret.Secret{Engine: "mariadb", Host: ts.host, Port: ts.port, Username: user, Password: pw, SSL: ptr(false)}
	return f
}

func ptr[T any](v T) *T { return &v }

// dropFamily drops every account named base_..., as root.
func (f *expiringFixture) dropFamily(t *testing.T) {
	t.Helper()
	rows, err := f.ts.root.Query("SELECT User, Host FROM mysql.user WHERE User LIKE ?", strings.ReplaceAll(f.base, "_", `\_`)+`\_%`)
	if err != nil {
		t.Error(err)
		return
	}
	var accts []string
	for rows.Next() {
		var u, h string
		_ = rows.Scan(&u, &h)
		accts = append(accts, f.ts.quote(u)+"@"+f.ts.quote(h))
	}
	rows.Close()
	for _, a := range accts {
		if _, err := f.ts.root.Exec("DROP USER IF EXISTS " + a); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
}

func (f *expiringFixture) admin(t *testing.T) *Admin {
	t.Helper()
	a, err := f.cfg.OpenAdmin(context.Background(), f.master)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

func (f *expiringFixture) canSelect(t *testing.T, user, pw string, want bool) {
	t.Helper()
	ctx := context.Background()
	s, err := open(ctx, f.cfg.DB, target{secret: f.master, username: user, password: pw})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.exec(ctx, "SELECT * FROM "+quoteIdent(f.db)+".t")
	if (err == nil) != want {
		t.Fatalf("SELECT as %s: err %v, want allowed=%v", user, err, want)
	}
	_, err = s.exec(ctx, "INSERT INTO "+quoteIdent(f.db)+".t VALUES (7)")
	if err == nil {
		t.Fatalf("INSERT as %s succeeded; the base user may not insert", user)
	}
}

func listNames(users []dbsecret.ExpiringUser) string {
	var out []string
	for _, u := range users {
		out = append(out, u.Name)
	}
	return strings.Join(out, ",")
}

func sortedNames(users []dbsecret.ExpiringUser) string {
	return strings.Join(slices.Sorted(slices.Values(strings.Split(listNames(users), ","))), ",")
}

func TestExpiringUserPrimitives(t *testing.T) {
	f := newExpiringFixture(t)
	ctx := context.Background()
	a := f.admin(t)
	now, err := a.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(now); d > time.Minute || d < -time.Minute {
		t.Fatalf("the server's clock reads %s, %s from this machine's", now, d)
	}
	if _, err := a.ListExpiringUsers(ctx, f.base); err != nil {
		t.Fatalf("list before the marker table exists: %v", err)
	}

	live, err := ExpiringUserName(f.base, MySQLNameLimit, now)
	if err != nil {
		t.Fatal(err)
	}
	livePW := randomPassword(t)
	spec := ExpiringUserSpec{Name: live, Base: f.base, Origin: dbsecret.OriginIssued("reader"), Password: livePW, ExpiresAt: now.Add(time.Hour)}
	host, err := a.CreateExpiringUser(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if host != "%" {
		t.Fatalf("created at host %q, want the base user's %%", host)
	}
	if _, err := a.CreateExpiringUser(ctx, spec); err != nil {
		t.Fatalf("a repeated create (a retry) fails: %v", err)
	}
	// The same name for another origin is a collision, not a retry: it
	// is refused and the account keeps its password and its origin.
	taker := spec
	taker.Origin, taker.Password = dbsecret.OriginIssued("other"), randomPassword(t)
	if _, err := a.CreateExpiringUser(ctx, taker); !errors.Is(err, ErrNotExpiringUser) {
		t.Fatalf("a create of the same name for another origin: want ErrNotExpiringUser, got %v", err)
	}
	taker.Origin, taker.CreateOnly = spec.Origin, true
	if _, err := a.CreateExpiringUser(ctx, taker); !errors.Is(err, ErrUserExists) {
		t.Fatalf("a create-only of an existing name: want ErrUserExists, got %v", err)
	}
	f.ts.mustNotLogin(t, f.cfg, live, taker.Password)
	if m, err := a.marker(ctx, live, host); err != nil || m == nil || m.Origin != spec.Origin {
		t.Fatalf("after a colliding create the marker is %+v (err %v), want origin %s", m, err, spec.Origin)
	}
	f.ts.mustLogin(t, f.cfg, live, livePW)
	f.ts.mustNotLogin(t, f.cfg, live, randomPassword(t))
	f.canSelect(t, live, livePW, true)

	expired, err := ExpiringUserName(f.base, MySQLNameLimit, now)
	if err != nil {
		t.Fatal(err)
	}
	expiredPW := randomPassword(t)
	if _, err := a.CreateExpiringUser(ctx, ExpiringUserSpec{Name: expired, Base: f.base, Origin: dbsecret.OriginRotation("arn:test"), Password: expiredPW, ExpiresAt: now.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	f.ts.mustLogin(t, f.cfg, expired, expiredPW)
	conn := f.ts.openConn(t, f.ts.secret(expired, expiredPW, nil))
	// Another secret's user of the same base, expired as well (its
	// rotations failing past its TTL: it may be that secret's AWSCURRENT,
	// and on MariaDB it still logs in): this secret's reaper leaves it.
	other, err := ExpiringUserName(f.base, MySQLNameLimit, now)
	if err != nil {
		t.Fatal(err)
	}
	otherPW := randomPassword(t)
	if _, err := a.CreateExpiringUser(ctx, ExpiringUserSpec{Name: other, Base: f.base, Origin: dbsecret.OriginRotation("arn:other"), Password: otherPW, ExpiresAt: now.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}

	// A foreign account with a name of the family and no marker.
	foreign := f.base + "_250101120000_abcd"
	foreignPW := randomPassword(t)
	f.ts.createUser(t, foreign, "%", foreignPW)
	if _, err := a.CreateExpiringUser(ctx, ExpiringUserSpec{Name: foreign, Base: f.base, Password: randomPassword(t), ExpiresAt: now.Add(time.Hour)}); !errors.Is(err, ErrNotExpiringUser) {
		t.Fatalf("create over a foreign account: want ErrNotExpiringUser, got %v", err)
	}
	if err := a.DropExpiringUser(ctx, f.base, foreign, "%", false); !errors.Is(err, ErrNotExpiringUser) {
		t.Fatalf("drop of a foreign account: want ErrNotExpiringUser, got %v", err)
	}

	users, err := a.ListExpiringUsers(ctx, f.base)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sortedNames(users), strings.Join(slices.Sorted(slices.Values([]string{live, expired, other})), ","); got != want {
		t.Fatalf("listed %s, want %s", got, want)
	}

	time.Sleep(1100 * time.Millisecond)
	res, err := a.Reap(ctx, f.base, dbsecret.OriginRotation("arn:test"), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Dropped, ",") != expired || res.Kept != 1 {
		t.Fatalf("reap: %+v, want %s dropped and one kept", res, expired)
	}
	f.ts.mustNotLogin(t, f.cfg, expired, expiredPW)
	if alive(conn) {
		t.Fatal("a connection of the reaped user is still open")
	}
	f.ts.mustLogin(t, f.cfg, live, livePW)
	f.ts.mustLogin(t, f.cfg, other, otherPW) // another secret's: left to its own reaper
	f.ts.mustLogin(t, f.cfg, foreign, foreignPW)
	if n := f.ts.count(t, "SELECT COUNT(*) FROM "+quoteIdent(f.cfg.MarkerDatabase)+"."+MarkerTable+" WHERE user = ?", expired); n != 0 {
		t.Fatalf("the reaped user's marker is still there")
	}
	if _, err := ExpiringUserName(strings.Repeat("a", MySQLNameLimit-dbsecret.ExpiringSuffixLen+1), MySQLNameLimit, now); !errors.Is(err, dbsecret.ErrNameTooLong) {
		t.Fatalf("a base one character too long: want ErrNameTooLong, got %v", err)
	}
	if _, err := ExpiringUserName(strings.Repeat("a", MySQLNameLimit-dbsecret.ExpiringSuffixLen), MySQLNameLimit, now); err != nil {
		t.Fatalf("a base at the limit: %v", err)
	}
}

// A base whose grants let it write the marker table would give its
// expiring users the power to delete their own markers and never be
// reaped: it is refused before any change, naming the base and the grant.
func TestExpiringUserRefusesMarkerWriter(t *testing.T) {
	f := newExpiringFixture(t)
	ctx := context.Background()
	a := f.admin(t)
	now, err := a.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	create := func() (string, error) {
		name, err := ExpiringUserName(f.base, MySQLNameLimit, now)
		if err != nil {
			t.Fatal(err)
		}
		_, err = a.CreateExpiringUser(ctx, ExpiringUserSpec{Name: name, Base: f.base, Origin: dbsecret.OriginIssued("r"), Password: randomPassword(t), ExpiresAt: now.Add(time.Hour)})
		return name, err
	}
	// Allowed: the base that may only read its database (the marker
	// table exists after this).
	if _, err := create(); err != nil {
		t.Fatalf("a base that may only read: %v", err)
	}
	markerDB := quoteIdent(f.cfg.MarkerDatabase)
	role := uniqueName("rt_mrole_")
	f.ts.exec(t, "CREATE ROLE "+quoteIdent(role))
	t.Cleanup(func() { _, _ = f.ts.root.Exec("DROP ROLE IF EXISTS " + quoteIdent(role)) })
	f.ts.exec(t, "GRANT DELETE ON "+markerDB+".* TO "+quoteIdent(role))
	acct := f.ts.quote(f.base) + "@'%'"
	for _, c := range []struct{ what, grant, revoke, priv string }{
		{"global INSERT", "GRANT INSERT ON *.* TO " + acct, "REVOKE INSERT ON *.* FROM " + acct, "INSERT"},
		{"DELETE on the marker database", "GRANT DELETE ON " + markerDB + ".* TO " + acct, "REVOKE DELETE ON " + markerDB + ".* FROM " + acct, "DELETE"},
		{"UPDATE of a column of the marker table", "GRANT UPDATE (marker) ON " + markerDB + "." + MarkerTable + " TO " + acct, "REVOKE UPDATE (marker) ON " + markerDB + "." + MarkerTable + " FROM " + acct, "UPDATE"},
		{"ALL on a pattern covering the marker database", "GRANT ALL ON `" + strings.ReplaceAll(f.cfg.MarkerDatabase[:len(f.cfg.MarkerDatabase)-2], "_", `\_`) + "%`.* TO " + acct, "REVOKE ALL ON `" + strings.ReplaceAll(f.cfg.MarkerDatabase[:len(f.cfg.MarkerDatabase)-2], "_", `\_`) + "%`.* FROM " + acct, "ALL"},
		{"DELETE through a role", "GRANT " + quoteIdent(role) + " TO " + acct, "REVOKE " + quoteIdent(role) + " FROM " + acct, "DELETE"},
	} {
		f.ts.exec(t, c.grant)
		name, err := create()
		f.ts.exec(t, c.revoke)
		if !errors.Is(err, dbsecret.ErrInvalidSecret) || !strings.Contains(err.Error(), f.base) || !strings.Contains(err.Error(), c.priv) || !strings.Contains(err.Error(), "REVOKE") {
			t.Fatalf("%s: err = %v, want ErrInvalidSecret naming %q, %s and the REVOKE", c.what, err, f.base, c.priv)
		}
		if n := f.ts.count(t, "SELECT COUNT(*) FROM mysql.user WHERE User = ?", name); n != 0 {
			t.Fatalf("%s: the refused create made the account %q", c.what, name)
		}
		if n := f.ts.count(t, "SELECT COUNT(*) FROM "+markerDB+"."+MarkerTable+" WHERE user = ?", name); n != 0 {
			t.Fatalf("%s: the refused create wrote a marker for %q", c.what, name)
		}
	}
}

func TestObjectCoversTable(t *testing.T) {
	for _, c := range []struct {
		object string
		want   bool
	}{
		{"*.*", true}, {"`rotary`.*", true}, {"`rotary`.`expiring_users`", true}, {"`rotary`.`other`", false},
		{"`app`.*", false}, {"`rot%`.*", true}, {"`r_tary`.*", true}, {"`r\\_tary`.*", false}, {"`rotaryx`.*", false},
		{"`rot``ary`.*", false},
	} {
		if got := objectCoversTable(c.object, "rotary", "expiring_users"); got != c.want {
			t.Errorf("objectCoversTable(%s) = %v, want %v", c.object, got, c.want)
		}
	}
}
