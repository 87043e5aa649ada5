package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// as logs in with a secret value and runs statements, failing the test on error.
func (f *fixture) as(t *testing.T, value string, statements ...string) {
	t.Helper()
	if err := f.try(value, statements...); err != nil {
		t.Fatalf("as %q: %v", field(t, value, "username"), err)
	}
}

// try logs in with a secret value and runs statements, returning the first error.
func (f *fixture) try(value string, statements ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := dbsecret.Parse(value)
	if err != nil {
		return err
	}
	conn, err := f.cfg.connect(ctx, s)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, st := range statements {
		if _, err := conn.Exec(ctx, st); err != nil {
			return err
		}
	}
	return nil
}

// TestMultiUserActsAsOneOwner proves what AWS's template gets wrong: the
// clone keeps exactly the base user's privileges, including ones granted (or
// revoked) after the first rotation, and objects created by either user are
// usable and alterable by the other.
func TestMultiUserActsAsOneOwner(t *testing.T) { eachVersion(t, testMultiUserActsAsOneOwner) }

func testMultiUserActsAsOneOwner(t *testing.T, f *fixture) {
	e := newEnv(t, f, NewMultiUser(f.cfg))
	base, pw := uniqueName("rotary_app"), newPassword(t)
	f.createRole(t, base, pw, "")
	schema := QuoteIdentifier(uniqueName("rotary_schema"))
	reader := uniqueName("rotary_reader")
	f.exec(t, "CREATE SCHEMA "+schema+"; GRANT USAGE, CREATE ON SCHEMA "+schema+" TO "+QuoteIdentifier(base))
	t.Cleanup(func() {
		f.exec(t, "DROP SCHEMA IF EXISTS "+schema+" CASCADE; DROP ROLE IF EXISTS "+QuoteIdentifier(reader))
	})
	masterARN := f.master(t, e.Client, func(u, p string) string { return f.secret(t, u, p, nil) }, nil, base)
	baseValue := f.secret(t, base, pw, map[string]any{"masterarn": masterARN})
	arn := createSecret(t, e, baseValue)

	// Before the first rotation the base user creates a table.
	f.as(t, baseValue, "CREATE TABLE "+schema+".made_by_base (id int)")

	if _, err := e.Rotate(t, arn); err != nil {
		t.Fatalf("first rotation: %v", err)
	}
	clone := current(t, e, arn)
	if got := field(t, clone, "username"); got != dbsecret.CloneName(base) {
		t.Fatalf("after the first rotation the user is %q, want %q", got, dbsecret.CloneName(base))
	}

	t.Run("clone has exactly the base role's memberships and attributes", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rows, err := f.adminConn(t).Query(ctx, `SELECT r.rolname FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid
			JOIN pg_roles m ON m.oid = am.member WHERE m.rolname = $1`, dbsecret.CloneName(base))
		if err != nil {
			t.Fatal(err)
		}
		memberOf, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(memberOf, []string{base}) {
			t.Fatalf("clone is a member of %v, want only %q", memberOf, base)
		}
		var super, createRole, createDB, inherit bool
		if err := f.adminConn(t).QueryRow(ctx, "SELECT rolsuper, rolcreaterole, rolcreatedb, rolinherit FROM pg_roles WHERE rolname = $1", dbsecret.CloneName(base)).
			Scan(&super, &createRole, &createDB, &inherit); err != nil {
			t.Fatal(err)
		}
		if super || createRole || createDB || !inherit {
			t.Fatalf("clone attributes super=%v createrole=%v createdb=%v inherit=%v, want none but inherit", super, createRole, createDB, inherit)
		}
	})

	t.Run("objects of either user are usable and alterable by the other", func(t *testing.T) {
		f.as(t, clone,
			"INSERT INTO "+schema+".made_by_base VALUES (1)",
			"ALTER TABLE "+schema+".made_by_base ADD COLUMN by_clone text",
			"CREATE TABLE "+schema+".made_by_clone (id int)")
		f.as(t, baseValue,
			"INSERT INTO "+schema+".made_by_clone VALUES (2)",
			"ALTER TABLE "+schema+".made_by_clone ADD COLUMN by_base text",
			"DROP TABLE "+schema+".made_by_clone")
		var owner string
		f.as(t, clone, "CREATE TABLE "+schema+".owned (id int)")
		if err := f.adminConn(t).QueryRow(t.Context(), "SELECT tableowner FROM pg_tables WHERE tablename = 'owned' AND schemaname = $1", strings.Trim(schema, `"`)).Scan(&owner); err != nil {
			t.Fatal(err)
		}
		if owner != base {
			t.Fatalf("a table created by the clone is owned by %q, want the base role %q", owner, base)
		}
	})

	t.Run("privileges granted to the base user later reach the clone", func(t *testing.T) {
		f.exec(t, "CREATE TABLE "+schema+".granted_later (id int); INSERT INTO "+schema+".granted_later VALUES (1)")
		f.exec(t, "CREATE TABLE "+schema+".via_role (id int)")
		if err := f.try(clone, "SELECT * FROM "+schema+".granted_later"); err == nil {
			t.Fatal("the clone reads a table nobody granted to it: the test proves nothing")
		}
		f.exec(t, "GRANT SELECT ON "+schema+".granted_later TO "+QuoteIdentifier(base))
		f.exec(t, "CREATE ROLE "+QuoteIdentifier(reader)+"; GRANT SELECT ON "+schema+".via_role TO "+QuoteIdentifier(reader)+"; GRANT "+QuoteIdentifier(reader)+" TO "+QuoteIdentifier(base))
		f.as(t, clone, "SELECT * FROM "+schema+".granted_later", "SELECT * FROM "+schema+".via_role")
		f.exec(t, "REVOKE SELECT ON "+schema+".granted_later FROM "+QuoteIdentifier(base))
		if err := f.try(clone, "SELECT * FROM "+schema+".granted_later"); err == nil {
			t.Fatal("the clone still reads a table whose grant was revoked from the base user")
		}
	})

	t.Run("second rotation returns to the base user and the clone keeps working", func(t *testing.T) {
		if _, err := e.Rotate(t, arn); err != nil {
			t.Fatalf("second rotation: %v", err)
		}
		cur := current(t, e, arn)
		if field(t, cur, "username") != base {
			t.Fatalf("after the second rotation the user is %q, want %q", field(t, cur, "username"), base)
		}
		f.as(t, cur, "INSERT INTO "+schema+".made_by_base VALUES (3, 'x')")
		_, prev, _ := e.Value(t, arn, rotation.LabelPrevious)
		f.as(t, prev, "SELECT * FROM "+schema+".made_by_base", "SELECT * FROM "+schema+".via_role")
		f.mustNotLogin(t, "the base user's first password", baseValue)
	})
}

// TestMultiUserRepairsExistingClone: a clone made by hand or by AWS's
// template (no membership in the base role, NOINHERIT, no session role), or
// one that is a member of the base role without inheriting its privileges
// or being allowed to become it (PostgreSQL 16's INHERIT and SET options of
// a membership, which a NOINHERIT member gets by default), is repaired by
// the first rotation to it, so it reads what the base user may and its
// objects belong to the base role.
func TestMultiUserRepairsExistingClone(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		t.Run("no membership", func(t *testing.T) { testMultiUserRepairsExistingClone(t, f, "") })
		grant := "GRANT %s TO %s"
		if f.c.Major >= 16 {
			grant += " WITH INHERIT FALSE, SET FALSE"
		}
		t.Run("membership without inherit or set", func(t *testing.T) { testMultiUserRepairsExistingClone(t, f, grant) })
	})
}

// testMultiUserRepairsExistingClone runs with a clone the superuser made
// NOINHERIT and, if grant is not empty, then granted the base role with
// fmt.Sprintf(grant, base, clone).
func testMultiUserRepairsExistingClone(t *testing.T, f *fixture, grant string) {
	e := newEnv(t, f, NewMultiUser(f.cfg))
	base, pw := uniqueName("rotary_repair"), newPassword(t)
	f.createRole(t, base, pw, "")
	f.exec(t, "CREATE ROLE "+QuoteIdentifier(dbsecret.CloneName(base))+" WITH LOGIN NOINHERIT PASSWORD NULL") // dropped by createRole's cleanup
	if grant != "" {
		f.exec(t, fmt.Sprintf(grant, QuoteIdentifier(base), QuoteIdentifier(dbsecret.CloneName(base))))
	}
	schema := QuoteIdentifier(uniqueName("rotary_repair_schema"))
	f.exec(t, "CREATE SCHEMA "+schema+"; CREATE TABLE "+schema+".t (id int); GRANT USAGE, CREATE ON SCHEMA "+schema+" TO "+QuoteIdentifier(base)+"; GRANT SELECT ON "+schema+".t TO "+QuoteIdentifier(base))
	t.Cleanup(func() { f.exec(t, "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
	// The master did not create this clone: on PostgreSQL 16 and later it
	// needs ADMIN OPTION on it as on the base user (docs/postgres.md).
	masterARN := f.master(t, e.Client, func(u, p string) string { return f.secret(t, u, p, nil) }, nil, base, dbsecret.CloneName(base))
	arn := createSecret(t, e, f.secret(t, base, pw, map[string]any{"masterarn": masterARN}))

	if _, err := e.Rotate(t, arn); err != nil {
		t.Fatalf("rotation to the existing clone: %v", err)
	}
	clone := current(t, e, arn)
	if got := field(t, clone, "username"); got != dbsecret.CloneName(base) {
		t.Fatalf("after the rotation the user is %q, want %q", got, dbsecret.CloneName(base))
	}
	f.as(t, clone, "SELECT * FROM "+schema+".t", "CREATE TABLE "+schema+".by_clone (id int)")
	var owner string
	if err := f.adminConn(t).QueryRow(t.Context(), "SELECT tableowner FROM pg_tables WHERE tablename = 'by_clone' AND schemaname = $1", strings.Trim(schema, `"`)).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if owner != base {
		t.Fatalf("a table the repaired clone created is owned by %q, want the base role %q", owner, base)
	}
}
