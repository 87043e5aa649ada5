package mysql

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
)

// TestHostileInput: every bad value is refused with an error naming the
// problem, before any change: afterwards the base user still logs in with
// its old password, the clone does not exist and no error holds a password.
func TestHostileInput(t *testing.T) {
	ts := sharedServer(t)
	longName := strings.Repeat("a", 129)
	tests := []struct {
		name string
		// edit returns the (current, pending) values from the fixture's current
		// value and a well-formed pending one.
		edit    func(t *testing.T, f *multiFixture, cur, pend string) (string, string)
		wantErr string
		multi   bool // only for alternating users
	}{
		{name: "username with a quote", wantErr: `contains '\''`, edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			return withField(t, cur, "username", f.user+"'--"), withField(t, pend, "username", f.user+"'--_clone")
		}},
		{name: "username with a backslash", wantErr: `contains '\\'`, edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			return withField(t, cur, "username", f.user+`\`), withField(t, pend, "username", f.user+`\_clone`)
		}},
		{name: "username with a space", wantErr: `contains ' '`, edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			return withField(t, cur, "username", f.user+" x"), withField(t, pend, "username", f.user+" x_clone")
		}},
		{name: "username with unicode", wantErr: `contains 'é'`, edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			return withField(t, cur, "username", f.user+"é"), withField(t, pend, "username", f.user+"é_clone")
		}},
		{name: "username with a backquote", wantErr: "contains '`'", edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			return withField(t, cur, "username", f.user+"`"), withField(t, pend, "username", f.user+"`_clone")
		}},
		{name: "over-long username", wantErr: "over the limit", edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			return withField(t, cur, "username", longName), withField(t, pend, "username", longName+"_clone")
		}},
		{name: "host differs between versions", wantErr: `field "host" differs`, edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			return cur, withField(t, pend, "host", "db.example.com")
		}},
		{name: "port differs between versions", wantErr: `field "port" differs`, edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			return cur, withField(t, pend, "port", 3307)
		}},
		{name: "username differs between versions", wantErr: `field "username"`, edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			return cur, withField(t, pend, "username", "root")
		}},
		{name: "ssl differs between versions", wantErr: `field "ssl" differs`, edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			return withField(t, cur, "ssl", nil), pend
		}},
		{name: "wrong engine", wantErr: `field "engine" is "postgres"`, edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			return withField(t, cur, "engine", "postgres"), withField(t, pend, "engine", "postgres")
		}},
		{name: "unknown engine", wantErr: `field "engine"`, edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			return withField(t, cur, "engine", "oracle"), withField(t, pend, "engine", "oracle")
		}},
		{name: "missing masterarn", multi: true, wantErr: `field "masterarn" is missing`, edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			return withField(t, cur, "masterarn", nil), withField(t, pend, "masterarn", nil)
		}},
		{name: "master secret not found", multi: true, wantErr: "read the secret named by masterarn", edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			arn := masterARN + "-gone"
			return withField(t, cur, "masterarn", arn), withField(t, pend, "masterarn", arn)
		}},
		{name: "masterarn differs between versions", multi: true, wantErr: `field "masterarn" differs`, edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			return cur, withField(t, pend, "masterarn", masterARN+"-other")
		}},
		{name: "master secret on another host", multi: true, wantErr: "point masterarn at the admin secret of the same database server", edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			f.st.values[masterARN] = withField(t, f.st.values[masterARN], "host", "127.0.0.2")
			return cur, pend
		}},
		{name: "master secret on another port", multi: true, wantErr: "point masterarn at the admin secret of the same database server", edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			f.st.values[masterARN] = withField(t, f.st.values[masterARN], "port", 3307)
			return cur, pend
		}},
		{name: "master secret of another engine", multi: true, wantErr: `master secret`, edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			f.st.values[masterARN] = withField(t, f.st.values[masterARN], "engine", "postgres")
			return cur, pend
		}},
		{name: "master secret without host or RDS tags", multi: true, wantErr: "has no host field and neither tag aws:rds:primarydbinstancearn", edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			f.st.values[masterARN] = withField(t, f.st.values[masterARN], "host", nil)
			return cur, pend
		}},
		{name: "current password does not log in", multi: true, wantErr: "to prove the secret owns user", edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			_, pw := creds(t, cur)
			return withField(t, cur, "password", "x"+pw), pend
		}},
		{name: "someone else's user with the current value's password", multi: true, wantErr: "to prove the secret owns user", edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			// Someone who can write the secret but not the master points it
			// at a privileged user to get a clone of its grants.
			victim := uniqueName("rt_victim_")
			f.ts.createUser(t, victim, "%", randomPassword(t), "GRANT ALL PRIVILEGES ON *.*")
			f.ts.dropLater(t, victim+dbsecret.CloneSuffix, "%")
			return withField(t, cur, "username", victim), withField(t, pend, "username", victim+"_clone")
		}},
		{name: "master is the rotated user", multi: true, wantErr: "one of the users this secret rotates", edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			user, pw := creds(t, cur)
			f.st.values[masterARN] = withField(t, withField(t, f.st.values[masterARN], "username", user), "password", pw)
			return cur, pend
		}},
		{name: "master secret with a wrong password", multi: true, wantErr: "log in with the master secret", edit: func(t *testing.T, f *multiFixture, cur, pend string) (string, string) {
			f.st.values[masterARN] = withField(t, f.st.values[masterARN], "password", "wrong-"+randomPassword(t))
			return cur, pend
		}},
	}
	for _, kind := range []string{"single", "multi"} {
		t.Run(kind, func(t *testing.T) {
			for _, tc := range tests {
				if tc.multi && kind == "single" {
					continue
				}
				t.Run(tc.name, func(t *testing.T) {
					f := newMultiFixture(t, ts, Config{}, "%", "GRANT SELECT ON DB.*")
					user, oldPW := creds(t, f.value)
					newPW := randomPassword(t)
					pendUser := user
					if kind == "multi" {
						pendUser = dbsecret.Other(user)
					}
					pend := withField(t, withField(t, f.value, "username", pendUser), "password", newPW)
					cur, pend := tc.edit(t, f, f.value, pend)
					req := setRequest(cur, pend, "", f.st)
					var err error
					if kind == "multi" {
						err = f.mu.Set(context.Background(), req)
					} else {
						su := NewSingleUser(Config{})
						err = su.Set(context.Background(), req)
					}
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("Set: %v; want an error containing %q", err, tc.wantErr)
					}
					if strings.Contains(err.Error(), oldPW) || strings.Contains(err.Error(), newPW) {
						t.Fatal("the error text holds a password")
					}
					ts.mustLogin(t, Config{}, user, oldPW)
					ts.mustNotLogin(t, Config{}, user, newPW)
					if ts.count(t, "SELECT COUNT(*) FROM mysql.user WHERE User = ?", user+dbsecret.CloneSuffix) != 0 {
						t.Fatalf("the clone %s_clone was created", user)
					}
				})
			}
		})
	}
}

// TestMultiUserUsernameLimit: USERNAME_CHARACTER_LIMIT, and by default the
// server's own limit, refuse a clone name that would not fit before any change.
func TestMultiUserUsernameLimit(t *testing.T) {
	ts := sharedServer(t)
	var serverLimit int
	if err := ts.root.QueryRow("SELECT CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'mysql' AND TABLE_NAME = 'user' AND COLUMN_NAME = 'User'").Scan(&serverLimit); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		limit   int // USERNAME_CHARACTER_LIMIT; 0 = the server's
		baseLen int
		wantErr string
	}{
		{name: "env limit fits exactly", limit: 26, baseLen: 20},
		{name: "env limit one short", limit: 25, baseLen: 20, wantErr: "over USERNAME_CHARACTER_LIMIT of 25"},
		{name: "server limit fits exactly", baseLen: serverLimit - len(dbsecret.CloneSuffix)},
		{name: "server limit one short", baseLen: serverLimit - len(dbsecret.CloneSuffix) + 1, wantErr: fmt.Sprintf("characters long, over %s", map[bool]string{true: "the longest user name", false: "the server's limit"}[serverLimit == maxUsernameLen])},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newMultiFixture(t, ts, Config{UsernameLimit: tc.limit}, "%", "GRANT SELECT ON DB.*")
			// Rename the base user to the length under test.
			name := f.user + strings.Repeat("x", tc.baseLen-len(f.user))
			ts.exec(t, "RENAME USER "+ts.quote(f.user)+"@'%' TO "+ts.quote(name)+"@'%'")
			ts.dropLater(t, name, "%")
			ts.dropLater(t, name+dbsecret.CloneSuffix, "%")
			_, pw := creds(t, f.value)
			f.value = withField(t, f.value, "username", name)
			f.user = name
			err := f.rotate(t)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("rotate: %v", err)
				}
				f.canSelect(t, f.value)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("rotate: %v; want an error containing %q", err, tc.wantErr)
			}
			ts.mustLogin(t, Config{}, name, pw)
		})
	}
}

// TestMultiUserAmbiguousHost: the base user exists at two hosts; the clone
// goes to the host of the account the current value logs in to, and the
// other account is left alone.
func TestMultiUserAmbiguousHost(t *testing.T) {
	ts := sharedServer(t)
	f := newMultiFixture(t, ts, Config{}, "127.0.0.1", "GRANT SELECT ON DB.*")
	ts.createUser(t, f.user, "%", randomPassword(t))
	anyHash := ts.authString(t, f.user, "%")
	for i := 1; i <= 2; i++ {
		if err := f.rotate(t); err != nil {
			t.Fatalf("rotation %d: %v", i, err)
		}
		f.canSelect(t, f.value)
	}
	f.sameGrants(t) // compares the accounts at 127.0.0.1
	if ts.count(t, "SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = '%'", f.user+dbsecret.CloneSuffix) != 0 {
		t.Fatal("a clone was created at '%'; want it only at 127.0.0.1")
	}
	if ts.authString(t, f.user, "%") != anyHash {
		t.Fatalf("the password of %s@%% changed", f.user)
	}

	// When the current value does not log in, Set refuses: the master never
	// acts for a user the secret has not proved it owns.
	f2 := newMultiFixture(t, ts, Config{}, "127.0.0.1", "GRANT SELECT ON DB.*")
	ts.createUser(t, f2.user, "%", randomPassword(t))
	_, oldPW := creds(t, f2.value)
	f2.value = withField(t, f2.value, "password", "not-"+oldPW)
	if err := f2.rotate(t); err == nil || !strings.Contains(err.Error(), "log in with the current value (AWSCURRENT)") {
		t.Fatalf("rotate: %v; want an error about the current value", err)
	}
	ts.mustLogin(t, Config{}, f2.user, oldPW)
}
