package postgres

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/credentials/postgres/scram"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
)

// masterRole creates a login role with attrs (such as CREATEROLE) and
// masterGrants on each of adminOn, and a master secret for it; it returns
// the role's name and password and the secret's ARN.
func (f *fixture) masterRole(t *testing.T, sm *secretsmanager.Client, attrs string, adminOn ...string) (user, pw, arn string) {
	t.Helper()
	user, pw = uniqueName("rotary_master"), newPassword(t)
	f.createRole(t, user, pw, attrs)
	for _, role := range adminOn {
		for _, sql := range masterGrants(f.c.Major, QuoteIdentifier(user), QuoteIdentifier(role)) {
			f.exec(t, sql)
		}
	}
	out, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String("master/" + user), SecretString: aws.String(f.secret(t, user, pw, nil)),
	})
	if err != nil {
		t.Fatalf("create master secret: %v", err)
	}
	return user, pw, aws.ToString(out.ARN)
}

// roleExists reports whether the cluster has a role named name.
func (f *fixture) roleExists(t *testing.T, name string) bool {
	t.Helper()
	var exists bool
	if err := f.adminConn(t).QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	return exists
}

// mustNotQuote fails if err quotes any of the passwords.
func mustNotQuote(t *testing.T, err error, passwords ...string) {
	t.Helper()
	for _, p := range passwords {
		if p != "" && strings.Contains(err.Error(), p) {
			t.Fatalf("the error quotes a password (%s)", rotationtest.Fingerprint(p))
		}
	}
}

// TestMultiUserMasterPrivileges: a master user that lacks one privilege
// docs/postgres.md's "Database privileges" lists for the server's version is
// refused before anything changes, with an error that names the privilege
// and the SQL that grants it; before PostgreSQL 16 CREATEROLE alone
// rotates and revokes; a master that created the base user itself needs
// no grant on it.
func TestMultiUserMasterPrivileges(t *testing.T) { eachVersion(t, testMultiUserMasterPrivileges) }

func testMultiUserMasterPrivileges(t *testing.T, f *fixture) {
	needsAdmin := f.c.Major >= 16

	// refused checks that a rotation failed for want of a privilege, naming
	// every string of want, and that nothing changed.
	refused := func(t *testing.T, e *rotationtest.Env, arn, old string, err error, want ...string) {
		t.Helper()
		if err == nil {
			t.Fatal("the rotation succeeded; want it refused for a missing privilege")
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("err = %v\nwant one containing %q", err, w)
			}
		}
		t.Logf("refused: %v", err)
		mustNotQuote(t, err, field(t, old, "password"))
		if current(t, e, arn) != old {
			t.Fatal("AWSCURRENT changed")
		}
		f.mustLogin(t, "the old credential", old)
	}
	rotatesTwice := func(t *testing.T, e *rotationtest.Env, arn, base string) {
		t.Helper()
		for i, want := range []string{dbsecret.CloneName(base), base} {
			if _, err := e.Rotate(t, arn); err != nil {
				t.Fatalf("rotation %d: %v", i+1, err)
			}
			cur := current(t, e, arn)
			if got := field(t, cur, "username"); got != want {
				t.Fatalf("after rotation %d the user is %q, want %q", i+1, got, want)
			}
			f.mustLogin(t, "AWSCURRENT", cur)
		}
	}

	t.Run("without CREATEROLE", func(t *testing.T) {
		e := newEnv(t, f, NewMultiUser(f.cfg))
		base, pw := uniqueName("rotary_priv_cr"), newPassword(t)
		f.createRole(t, base, pw, "")
		admin, _, masterARN := f.masterRole(t, e.Client, "", base)
		old := f.secret(t, base, pw, map[string]any{"masterarn": masterARN})
		arn := createSecret(t, e, old)
		_, err := e.Rotate(t, arn)
		refused(t, e, arn, old, err, "CREATEROLE", "ALTER ROLE "+QuoteIdentifier(admin)+" CREATEROLE")
		if f.roleExists(t, dbsecret.CloneName(base)) {
			t.Fatal("the clone was created although the rotation was refused")
		}
	})

	t.Run("without ADMIN OPTION on the base user", func(t *testing.T) {
		e := newEnv(t, f, NewMultiUser(f.cfg))
		base, pw := uniqueName("rotary_priv_adm"), newPassword(t)
		f.createRole(t, base, pw, "")
		admin, _, masterARN := f.masterRole(t, e.Client, "CREATEROLE")
		old := f.secret(t, base, pw, map[string]any{"masterarn": masterARN})
		arn := createSecret(t, e, old)
		if !needsAdmin {
			rotatesTwice(t, e, arn, base)
			return
		}
		_, err := e.Rotate(t, arn)
		refused(t, e, arn, old, err, "ADMIN OPTION on role "+`"`+base+`"`, grantAdminSQL(base, admin))
		if f.roleExists(t, dbsecret.CloneName(base)) {
			t.Fatal("the clone was created although the rotation was refused")
		}
	})

	t.Run("clone made by another user, without ADMIN OPTION on it", func(t *testing.T) {
		e := newEnv(t, f, NewMultiUser(f.cfg))
		base, pw := uniqueName("rotary_priv_cl"), newPassword(t)
		f.createRole(t, base, pw, "")
		f.exec(t, "CREATE ROLE "+QuoteIdentifier(dbsecret.CloneName(base))+" WITH LOGIN") // dropped by createRole's cleanup
		admin, _, masterARN := f.masterRole(t, e.Client, "CREATEROLE", base)
		old := f.secret(t, base, pw, map[string]any{"masterarn": masterARN})
		arn := createSecret(t, e, old)
		if !needsAdmin {
			rotatesTwice(t, e, arn, base)
			return
		}
		_, err := e.Rotate(t, arn)
		refused(t, e, arn, old, err, "ADMIN OPTION on role "+`"`+dbsecret.CloneName(base)+`"`, grantAdminSQL(dbsecret.CloneName(base), admin))
		var member bool
		if err := f.adminConn(t).QueryRow(t.Context(), "SELECT pg_has_role($1, $2, 'MEMBER')", dbsecret.CloneName(base), base).Scan(&member); err != nil {
			t.Fatal(err)
		}
		if member {
			t.Fatal("the clone became a member of the base user although the rotation was refused")
		}
	})

	t.Run("revoke without ADMIN OPTION on the base user", func(t *testing.T) {
		e := newEnv(t, f, NewMultiUser(f.cfg))
		base, pw := uniqueName("rotary_priv_rvk"), newPassword(t)
		f.createRole(t, base, pw, "")
		arn := createSecret(t, e, f.secret(t, base, pw, map[string]any{"masterarn": f.revokingMaster(t, e, true, base)}))
		mustRotate(t, e, arn) // to the clone, made by the first master
		// A second master (say, after the DBA replaced the first) with
		// ADMIN OPTION on the clone but not on the base user.
		admin, adminPW, _ := f.masterRole(t, e.Client, "CREATEROLE", dbsecret.CloneName(base))
		f.exec(t, "GRANT pg_signal_backend TO "+QuoteIdentifier(admin))
		masterARN := field(t, current(t, e, arn), "masterarn")
		putValue(t, e, masterARN, f.secret(t, admin, adminPW, nil))
		prev := previous(t, e, arn)
		session := f.session(t, prev)
		err := revoke(t, e, arn)
		if !needsAdmin {
			if err != nil {
				t.Fatalf("revoke with CREATEROLE and pg_signal_backend: %v", err)
			}
			f.mustNotLogin(t, "AWSPREVIOUS after the revoke", prev)
			f.mustLogin(t, "AWSCURRENT", current(t, e, arn))
			return
		}
		if err == nil || !strings.Contains(err.Error(), grantAdminSQL(base, admin)) || !strings.Contains(err.Error(), "nothing was changed") {
			t.Fatalf("err = %v\nwant one saying nothing was changed and containing %q", err, grantAdminSQL(base, admin))
		}
		t.Logf("refused: %v", err)
		mustNotQuote(t, err, pw, adminPW, field(t, prev, "password"), field(t, current(t, e, arn), "password"))
		f.mustLogin(t, "AWSPREVIOUS, which the refused revoke left as it was", prev)
		f.mustLogin(t, "AWSCURRENT", current(t, e, arn))
		if !alive(session) {
			t.Fatal("a refused revoke ended the other user's session")
		}
	})

	t.Run("the master created the base user", func(t *testing.T) {
		e := newEnv(t, f, NewMultiUser(f.cfg))
		admin, adminPW, masterARN := f.masterRole(t, e.Client, "CREATEROLE")
		f.exec(t, "GRANT pg_signal_backend TO "+QuoteIdentifier(admin))
		base, pw := uniqueName("rotary_priv_own"), newPassword(t)
		v, err := scram.Verifier(pw)
		if err != nil {
			t.Fatal(err)
		}
		f.as(t, f.secret(t, admin, adminPW, nil), "CREATE ROLE "+QuoteIdentifier(base)+" WITH LOGIN PASSWORD "+quoteLiteral(v))
		t.Cleanup(func() { f.dropRoles(t, dbsecret.CloneName(base), base) })
		arn := createSecret(t, e, f.secret(t, base, pw, map[string]any{"masterarn": masterARN}))
		rotatesTwice(t, e, arn, base)
		prev := previous(t, e, arn)
		mustRevoke(t, e, arn)
		f.mustNotLogin(t, "AWSPREVIOUS after the revoke", prev)
		f.mustLogin(t, "AWSCURRENT", current(t, e, arn))
	})
}

// TestDocMasterPrivileges: docs/postgres.md gives a DBA the SQL the tests grant
// the master user (masterGrants), and the error messages' grantAdminSQL
// is that SQL too.
func TestDocMasterPrivileges(t *testing.T) {
	b, err := os.ReadFile("../../../docs/postgres.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, major := range []int{15, 16} {
		for _, sql := range masterGrants(major, "admin", "app") {
			if !strings.Contains(readme, sql) {
				t.Errorf("docs/postgres.md (Database privileges) does not give the SQL the tests run for PostgreSQL %d: %s; update the page", major, sql)
			}
		}
	}
	if got, want := grantAdminSQL("app", "admin"), strings.Join(masterGrants(16, `"admin"`, `"app"`), ""); got != want {
		t.Errorf("grantAdminSQL = %s, want the tests' %s", got, want)
	}
	for _, sql := range []string{"CREATE ROLE admin WITH LOGIN CREATEROLE", "GRANT pg_signal_backend TO admin", "GRANT app_clone TO admin WITH ADMIN OPTION, INHERIT FALSE, SET FALSE"} {
		if !strings.Contains(readme, sql) {
			t.Errorf("docs/postgres.md (Database privileges) does not give the SQL %s; update the page", sql)
		}
	}
}
