package mysql

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rotary-secrets/rotary/internal/mysqlserver"
	"github.com/rotary-secrets/rotary/internal/mysqlserver/mysqltest"
)

// TestPasswordNotInServerLog: MariaDB writes statements to its general and
// slow query logs as sent. After rotations of both types on a server logging
// every statement, neither log holds a password Rotary set.
func TestPasswordNotInServerLog(t *testing.T) {
	s := mysqltest.Start(t, mysqlserver.Options{Args: []string{
		"--general-log", "--general-log-file=general.log",
		"--slow-query-log", "--long-query-time=0", "--slow-query-log-file=slow.log",
	}})
	ts := &testServer{host: s.Host, port: s.Port, root: s.Root, extra: map[string]any{"ssl": false},
		adminUser: s.AdminUser, adminPassword: s.AdminPassword}
	var set []string // every password Rotary set

	user, oldPW := uniqueName("rt_log_"), randomPassword(t)
	ts.createUser(t, user, "%", oldPW)
	su := NewSingleUser(Config{})
	cur := ts.secret(user, oldPW, nil)
	for i := 0; i < 2; i++ {
		pw := randomPassword(t)
		pend, err := rotateSingle(t, su, cur, "", pw)
		if err != nil {
			t.Fatalf("single-user rotation %d: %v", i+1, err)
		}
		ts.mustLogin(t, Config{}, user, pw)
		set, cur = append(set, pw), pend
	}

	f := newMultiFixture(t, ts, Config{}, "%", "GRANT SELECT ON DB.*")
	for i := 0; i < 3; i++ { // creates the clone, then alters both users
		if err := f.rotate(t); err != nil {
			t.Fatalf("alternating-users rotation %d: %v", i+1, err)
		}
		f.canSelect(t, f.value)
		_, pw := creds(t, f.value)
		set = append(set, pw)
	}

	for _, name := range []string{"general.log", "slow.log"} {
		b, err := os.ReadFile(filepath.Join(s.Dir, "data", name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "SET PASSWORD FOR") && name == "general.log" {
			t.Fatalf("%s does not show the password changes; is the log on?", name)
		}
		for i, pw := range set {
			// The log shows statements as sent: look for the password as
			// written in a string literal too.
			quoted := quoteString(pw, false)
			if strings.Contains(string(b), pw) || strings.Contains(string(b), quoted[1:len(quoted)-1]) {
				t.Errorf("%s holds password %d (%s)", name, i+1, fingerprint(pw))
			}
		}
	}
}
