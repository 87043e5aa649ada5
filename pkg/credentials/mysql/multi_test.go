package mysql

import (
	"context"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

const masterARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rotary-master"

// multiFixture is a base user, its database and the master secret.
type multiFixture struct {
	ts    *testServer
	mu    *MultiUser
	st    *store
	user  string
	host  string
	admin string // the master secret's account, quoted
	db    string
	value string // the AWSCURRENT value
	prev  string // the AWSPREVIOUS value
}

// newMultiFixture creates base user@host with password and grants (DB in
// a grant stands for the fixture's database), a
// database with a table, and a master secret for root.
func newMultiFixture(t *testing.T, ts *testServer, cfg Config, host string, grants ...string) *multiFixture {
	t.Helper()
	f := &multiFixture{ts: ts, user: uniqueName("rt_mu_"), host: host, db: uniqueName("rt_db_")}
	f.mu = NewMultiUser(cfg)
	ts.createDatabase(t, f.db)
	ts.exec(t, "CREATE TABLE "+quoteIdent(f.db)+".t (id INT PRIMARY KEY)")
	ts.exec(t, "INSERT INTO "+quoteIdent(f.db)+".t VALUES (1)")
	pw := randomPassword(t)
	for i, g := range grants {
		grants[i] = strings.ReplaceAll(g, "DB", quoteIdent(f.db))
	}
	ts.createUser(t, f.user, host, pw, grants...)
	ts.dropLater(t, f.user+dbsecret.CloneSuffix, host)
	switch {
	case ts.adminUser != "":
		f.st = &store{values: map[string]string{masterARN: ts.secret(ts.adminUser, ts.adminPassword, map[string]any{"engine": "mysql"})}}
		f.admin = ts.quote(ts.adminUser) + "@'%'"
	case os.Getenv("ROTARY_MYSQL_ROOT_PASSWORD") != "":
		f.st = &store{values: map[string]string{masterARN: ts.secret(envOr("ROTARY_MYSQL_ROOT_USER", "root"), os.Getenv("ROTARY_MYSQL_ROOT_PASSWORD"), map[string]any{"engine": "mysql"})}}
		f.admin = "CURRENT_USER"
	default:
		// dbsecret refuses an empty password; the machine's root has none, so
		// the master secret logs in as a dedicated admin user instead.
		admin, adminPW := uniqueName("rt_admin_"), randomPassword(t)
		ts.createUser(t, admin, "%", adminPW)
		ts.exec(t, "GRANT ALL PRIVILEGES ON *.* TO "+ts.quote(admin)+"@'%' WITH GRANT OPTION")
		f.st = &store{values: map[string]string{masterARN: ts.secret(admin, adminPW, map[string]any{"engine": "mysql", "note": "master"})}}
		f.admin = ts.quote(admin) + "@'%'"
	}
	f.value = ts.secret(f.user, pw, map[string]any{"masterarn": masterARN, "dbname": f.db})
	return f
}

// rotate runs Set and Test to the next user with a new password; on success
// the pending value becomes current.
func (f *multiFixture) rotate(t *testing.T) error {
	t.Helper()
	ctx := context.Background()
	cur, err := parseMySQL(version("cur", f.value))
	if err != nil {
		t.Fatal(err)
	}
	pend := withField(t, withField(t, f.value, "username", dbsecret.Other(cur.Username)), "password", randomPassword(t))
	if err := f.mu.Set(ctx, setRequest(f.value, pend, f.prev, f.st)); err != nil {
		return err
	}
	if err := f.mu.Test(ctx, rotation.TestRequest{Pending: version("pend", pend)}); err != nil {
		return err
	}
	f.prev, f.value = f.value, pend
	return nil
}

// creds returns the username and password of a value.
func creds(t *testing.T, value string) (string, string) {
	t.Helper()
	s, err := parseMySQL(version("v", value))
	if err != nil {
		t.Fatal(err)
	}
	return s.Username, s.Password
}

// canSelect logs in with value and reads the fixture's table.
func (f *multiFixture) canSelect(t *testing.T, value string) {
	t.Helper()
	sec, err := parseMySQL(version("v", value))
	if err != nil {
		t.Fatal(err)
	}
	s, err := open(context.Background(), f.mu.cfg.DB, target{secret: sec, username: sec.Username, password: sec.Password, dbname: f.db})
	if err != nil {
		t.Fatalf("log in as %q: %v", sec.Username, err)
	}
	defer s.Close()
	var id int
	if err := s.queryRow(context.Background(), "SELECT id FROM t").Scan(&id); err != nil {
		t.Fatalf("as %q, read %s.t: %v", sec.Username, f.db, err)
	}
}

var identifiedBy = regexp.MustCompile(` IDENTIFIED (BY PASSWORD |VIA \S+ USING |WITH \S+ AS |WITH \S+ |BY )('[^']*')?`)

// normalized returns SHOW GRANTS and SHOW CREATE USER of user@host with the
// account name and password hash taken out, sorted, for comparing base and clone.
func (f *multiFixture) normalized(t *testing.T, user string) []string {
	t.Helper()
	acct := "`" + user + "`@`" + f.host + "`"
	var out []string
	for _, q := range []string{"SHOW GRANTS FOR ", "SHOW CREATE USER "} {
		rows, err := f.ts.root.Query(q + f.ts.quote(user) + "@" + f.ts.quote(f.host))
		if err != nil {
			t.Fatalf("%s%s: %v", q, acct, err)
		}
		for rows.Next() {
			var l string
			if err := rows.Scan(&l); err != nil {
				t.Fatal(err)
			}
			l = strings.ReplaceAll(l, acct, "ACCOUNT")
			l = identifiedBy.ReplaceAllString(l, "")
			out = append(out, l)
		}
		rows.Close()
	}
	slices.Sort(out)
	return out
}

// sameGrants fails unless the clone's grants and attributes equal the base user's.
func (f *multiFixture) sameGrants(t *testing.T) {
	t.Helper()
	base, clone := f.normalized(t, f.user), f.normalized(t, f.user+dbsecret.CloneSuffix)
	if !slices.Equal(base, clone) {
		t.Fatalf("the clone's grants differ from the base user's:\nbase:  %q\nclone: %q", base, clone)
	}
}

func TestMultiUserRotates(t *testing.T) {
	ts := sharedServer(t)
	for _, host := range []string{"%", "127.0.0.1", "127.0.0.%"} {
		t.Run("host "+host, func(t *testing.T) {
			f := newMultiFixture(t, ts, Config{}, host, "GRANT SELECT ON DB.*")
			for i := 1; i <= 3; i++ {
				if err := f.rotate(t); err != nil {
					t.Fatalf("rotation %d: %v", i, err)
				}
				// The new credential works and reads the data; the one it
				// replaced still works too (applications holding it keep going).
				f.canSelect(t, f.value)
				f.canSelect(t, f.prev)
				f.sameGrants(t)
			}
			if u, _ := creds(t, f.value); u != f.user+dbsecret.CloneSuffix {
				t.Fatalf("after 3 rotations the user is %q, want the clone", u)
			}
			// setSecret again on the finished rotation is a no-op that succeeds.
			if err := f.mu.Set(context.Background(), setRequest(f.prev, f.value, "", f.st)); err != nil {
				t.Fatalf("repeat setSecret: %v", err)
			}
			f.canSelect(t, f.value)
		})
	}
}

// sql runs statements as root with DB, ACCT (the base account) and NAME
// (the base user name) and MASTER (the master's account) replaced.
func (f *multiFixture) sql(t *testing.T, stmts ...string) {
	t.Helper()
	r := strings.NewReplacer("DB", quoteIdent(f.db), "ACCT", f.ts.quote(f.user)+"@"+f.ts.quote(f.host), "NAME", f.user, "MASTER", f.admin)
	for _, s := range stmts {
		f.ts.exec(t, r.Replace(s))
	}
}

// syncOnly copies the base user's grants and attributes to the clone the
// way setSecret does, without logging in as either user: for accounts that
// cannot log in over the test connection (REQUIRE SSL on a plaintext server,
// REQUIRE X509 without a client certificate). The clone is created first if
// needed.
func (f *multiFixture) syncOnly(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	cur, err := parseMySQL(version("cur", f.value))
	if err != nil {
		t.Fatal(err)
	}
	master, err := dbsecret.Master(ctx, f.st, cur, nil)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := open(ctx, f.mu.cfg.DB, target{secret: master, username: master.Username, password: master.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	clone := f.user + dbsecret.CloneSuffix
	if exists, err := admin.accountExists(ctx, clone, f.host); err != nil {
		t.Fatal(err)
	} else if !exists {
		f.ts.exec(t, "CREATE USER "+f.ts.quote(clone)+"@"+f.ts.quote(f.host)+" IDENTIFIED BY "+f.ts.quote(randomPassword(t)))
	}
	if err := admin.syncClone(ctx, f.user, clone, f.host); err != nil {
		t.Fatalf("sync the clone: %v", err)
	}
}

// TestMultiUserGrantsReplayed: each case is a failure reported by users of
// AWS's template. The clone must end with exactly the base user's grants
// and attributes, as SHOW GRANTS and SHOW CREATE USER print them.
func TestMultiUserGrantsReplayed(t *testing.T) {
	ts := sharedServer(t)
	tests := []struct {
		name     string
		setup    []string
		canLogin bool // the account can log in over the test connection
	}{
		{name: "with grant option", canLogin: true, setup: []string{"GRANT SELECT, INSERT ON DB.* TO ACCT WITH GRANT OPTION"}},
		{name: "wildcards and escaped underscores in database names", canLogin: true, setup: []string{
			"GRANT SELECT ON `NAME\\_lit\\_db`.* TO ACCT",
			"GRANT SELECT, UPDATE ON `NAME_wild_%`.* TO ACCT",
			"GRANT INSERT ON `NAME\\%pct`.* TO ACCT",
		}},
		{name: "table and column privileges", canLogin: true, setup: []string{
			"GRANT INSERT ON DB.t TO ACCT",
			"GRANT SELECT (id), UPDATE (id) ON DB.t TO ACCT",
		}},
		{name: "routine privileges", canLogin: true, setup: []string{
			"CREATE PROCEDURE DB.p() SELECT 1",
			"GRANT EXECUTE ON PROCEDURE DB.p TO ACCT",
		}},
		{name: "global privileges", canLogin: true, setup: []string{"GRANT PROCESS, RELOAD ON *.* TO ACCT"}},
		{name: "resource limits", canLogin: true, setup: []string{
			"ALTER USER ACCT WITH MAX_QUERIES_PER_HOUR 1000 MAX_UPDATES_PER_HOUR 50 MAX_CONNECTIONS_PER_HOUR 200 MAX_USER_CONNECTIONS 5",
		}},
		{name: "require ssl", setup: []string{"ALTER USER ACCT REQUIRE SSL"}},
		{name: "require x509", setup: []string{"ALTER USER ACCT REQUIRE X509"}},
		{name: "require issuer, subject and cipher", setup: []string{
			`ALTER USER ACCT REQUIRE ISSUER '/C=IE/O=O''Brien "CA" \\ Ltd/CN=Rotary Test CA' AND SUBJECT '/CN=app''s client' AND CIPHER 'ECDHE-RSA-AES256-GCM-SHA384'`,
		}},
		{name: "require ssl and resource limits together", setup: []string{
			"GRANT SELECT ON DB.* TO ACCT WITH GRANT OPTION",
			"ALTER USER ACCT REQUIRE SSL WITH MAX_QUERIES_PER_HOUR 10 MAX_USER_CONNECTIONS 3",
		}},
		{name: "roles and default role", canLogin: true, setup: []string{
			"CREATE ROLE NAME_role",
			"GRANT SELECT ON DB.* TO NAME_role",
			"GRANT NAME_role TO MASTER WITH ADMIN OPTION",
			"GRANT NAME_role TO ACCT",
			"SET DEFAULT ROLE NAME_role FOR ACCT",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newMultiFixture(t, ts, Config{}, "%", "GRANT SELECT ON DB.*")
			t.Cleanup(func() {
				if _, err := ts.root.Exec("DROP ROLE IF EXISTS " + quoteIdent(f.user+"_role")); err != nil {
					t.Logf("cleanup: %v", err)
				}
			})
			f.sql(t, tc.setup...)
			if tc.canLogin {
				if err := f.rotate(t); err != nil {
					t.Fatalf("rotate: %v", err)
				}
				f.sameGrants(t)
				// Again in the other direction: nothing drifts.
				if err := f.rotate(t); err != nil {
					t.Fatalf("rotate back: %v", err)
				}
				f.sameGrants(t)
				return
			}
			f.syncOnly(t)
			f.sameGrants(t)
			f.syncOnly(t)
			f.sameGrants(t)
		})
	}
}

// TestMultiUserGrantChangesFollow: privileges granted to or revoked from the
// base user after the clone exists reach the clone on the next rotation,
// whichever user that rotation switches to.
func TestMultiUserGrantChangesFollow(t *testing.T) {
	ts := sharedServer(t)
	f := newMultiFixture(t, ts, Config{}, "%", "GRANT ALL PRIVILEGES ON DB.*")
	t.Cleanup(func() {
		if _, err := ts.root.Exec("DROP ROLE IF EXISTS " + quoteIdent(f.user+"_role")); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	f.sql(t,
		"CREATE ROLE NAME_role",
		"GRANT NAME_role TO MASTER WITH ADMIN OPTION",
		"GRANT NAME_role TO ACCT",
		"GRANT SELECT, INSERT ON `NAME_other`.* TO ACCT WITH GRANT OPTION",
		"ALTER USER ACCT WITH MAX_QUERIES_PER_HOUR 100",
	)
	if err := f.rotate(t); err != nil { // base -> clone (created)
		t.Fatalf("rotation 1: %v", err)
	}
	f.sameGrants(t)
	f.sql(t,
		"REVOKE ALL PRIVILEGES ON DB.* FROM ACCT",
		"GRANT SELECT ON DB.* TO ACCT",
		"REVOKE INSERT ON `NAME_other`.* FROM ACCT",
		"REVOKE GRANT OPTION ON `NAME_other`.* FROM ACCT",
		"REVOKE NAME_role FROM ACCT",
		"GRANT UPDATE (id) ON DB.t TO ACCT",
		"ALTER USER ACCT WITH MAX_QUERIES_PER_HOUR 0",
	)
	if err := f.rotate(t); err != nil { // clone -> base: the clone is synced too
		t.Fatalf("rotation 2: %v", err)
	}
	f.sameGrants(t)
	f.canSelect(t, f.prev) // the clone kept SELECT through REVOKE ALL on the base user
	f.sql(t, "GRANT DELETE ON DB.* TO ACCT")
	if err := f.rotate(t); err != nil { // base -> clone
		t.Fatalf("rotation 3: %v", err)
	}
	f.sameGrants(t)
}
