package mysql

import (
	"strings"
	"testing"

	"github.com/rotary-secrets/rotary/internal/mysqlserver"
	"github.com/rotary-secrets/rotary/internal/mysqlserver/mysqltest"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
)

// TestEd25519Accounts: accounts using MariaDB's ed25519 plugin keep it
// through rotations of both types (a bare IDENTIFIED BY would switch them to
// mysql_native_password), and the clone gets the base user's plugin.
func TestEd25519Accounts(t *testing.T) {
	s := mysqltest.Start(t, mysqlserver.Options{Args: []string{"--plugin-load-add=auth_ed25519"}})
	ts := &testServer{host: s.Host, port: s.Port, root: s.Root, extra: map[string]any{"ssl": false},
		adminUser: s.AdminUser, adminPassword: s.AdminPassword}
	plugin := func(t *testing.T, user string) string {
		t.Helper()
		var p string
		if err := ts.root.QueryRow("SELECT plugin FROM mysql.user WHERE User = ? AND Host = '%'", user).Scan(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	createEd25519 := func(t *testing.T, user, pw string) {
		t.Helper()
		ts.exec(t, "CREATE USER "+ts.quote(user)+"@'%' IDENTIFIED VIA ed25519 USING PASSWORD("+ts.quote(pw)+")")
		ts.dropLater(t, user, "%")
	}

	t.Run("single user", func(t *testing.T) {
		user, oldPW, newPW := uniqueName("rt_ed_"), randomPassword(t), randomPassword(t)
		createEd25519(t, user, oldPW)
		ts.mustLogin(t, Config{}, user, oldPW)
		su := NewSingleUser(Config{})
		if _, err := rotateSingle(t, su, ts.secret(user, oldPW, nil), "", newPW); err != nil {
			t.Fatalf("rotate: %v", err)
		}
		ts.mustLogin(t, Config{}, user, newPW)
		ts.mustNotLogin(t, Config{}, user, oldPW)
		if p := plugin(t, user); p != "ed25519" {
			t.Fatalf("plugin after rotation = %q, want ed25519", p)
		}
	})
	t.Run("alternating users", func(t *testing.T) {
		f := newMultiFixture(t, ts, Config{}, "%", "GRANT SELECT ON DB.*")
		_, pw := creds(t, f.value)
		ts.exec(t, "ALTER USER "+ts.quote(f.user)+"@'%' IDENTIFIED VIA ed25519 USING PASSWORD("+ts.quote(pw)+")")
		for i := 1; i <= 3; i++ {
			if err := f.rotate(t); err != nil {
				t.Fatalf("rotation %d: %v", i, err)
			}
			f.canSelect(t, f.value)
			f.canSelect(t, f.prev)
			for _, u := range []string{f.user, f.user + dbsecret.CloneSuffix} {
				if p := plugin(t, u); p != "ed25519" {
					t.Fatalf("after rotation %d the plugin of %s is %q, want ed25519", i, u, p)
				}
			}
		}
	})
}

// TestAnonymousAccountRefused: on a server with an anonymous account, a
// secret naming a user that does not exist logs in as the anonymous account
// when its password matches; both types refuse to treat that as the user.
func TestAnonymousAccountRefused(t *testing.T) {
	s := mysqltest.Start(t, mysqlserver.Options{})
	ts := &testServer{host: s.Host, port: s.Port, root: s.Root, extra: map[string]any{"ssl": false},
		adminUser: s.AdminUser, adminPassword: s.AdminPassword}
	anonPW := randomPassword(t)
	ts.exec(t, "CREATE USER ''@'%' IDENTIFIED BY "+ts.quote(anonPW))
	ghost := uniqueName("rt_ghost_")
	value := ts.secret(ghost, anonPW, map[string]any{"masterarn": masterARN})

	if err := ts.login(t.Context(), Config{}, ghost, anonPW); err == nil || !strings.Contains(err.Error(), "instead of the user's own") {
		t.Fatalf("testSecret as a user matched by the anonymous account: %v; want a refusal", err)
	}
	su := NewSingleUser(Config{})
	if _, err := rotateSingle(t, su, value, "", randomPassword(t)); err == nil || !strings.Contains(err.Error(), "anonymous") {
		t.Fatalf("single-user rotation: %v; want a refusal naming the anonymous account", err)
	}
	f := newMultiFixture(t, ts, Config{}, "%")
	f.value = value
	if err := f.rotate(t); err == nil || !strings.Contains(err.Error(), "anonymous") {
		t.Fatalf("alternating-users rotation: %v; want a refusal naming the anonymous account", err)
	}
	if ts.count(t, "SELECT COUNT(*) FROM mysql.user WHERE User LIKE 'rt\\_ghost\\_%'") != 0 {
		t.Fatal("a rotation created an account for the ghost user")
	}
	ts.mustLoginAnonymous(t, anonPW)
}

// mustLoginAnonymous proves the anonymous account's password is unchanged.
func (ts *testServer) mustLoginAnonymous(t *testing.T, pw string) {
	t.Helper()
	err := ts.login(t.Context(), Config{}, uniqueName("rt_any_"), pw)
	if err == nil || !strings.Contains(err.Error(), "instead of the user's own") {
		t.Fatalf("the anonymous account's password no longer logs in: %v", err)
	}
}
