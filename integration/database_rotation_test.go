package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/rotary-secrets/rotary/internal/rdslocal"
	"github.com/rotary-secrets/rotary/pkg/credentials/postgres"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/lambdaemu"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// dbFunction is a database rotation function and the server whose users it
// rotates. Alternating-users (multi) functions switch the secret between
// <user> and <user>_clone with the master secret named by masterarn.
// Expiring-user functions move the secret to a new user
// <user>_<time>_<random> at every rotation.
type dbFunction struct {
	function string
	server   func(*testing.T) database
	multi    bool
	expiring bool
}

var (
	postgresSingle   = dbFunction{fnPostgresSingle, postgresServer, false, false}
	postgresMulti    = dbFunction{fnPostgresMulti, postgresServer, true, false}
	mysqlSingle      = dbFunction{fnMySQLSingle, mariaDBServer, false, false}
	mysqlMulti       = dbFunction{fnMySQLMulti, mariaDBServer, true, false}
	postgresExpiring = dbFunction{fnPGExpiring, postgresServer, false, true}
	mysqlExpiring    = dbFunction{fnMySQLExpiring, mariaDBServer, false, true}
)

// TestDatabaseRotationIsProvenByLogin rotates a user three times through
// RotateSecret and each function, and proves every result by logging in
// with AWSCURRENT over verified TLS. A single user's initial password is
// refused at the end; alternating users go <user>_clone, <user>,
// <user>_clone, and the credential each rotation replaced still logs in.
// postgres-multi-user's master secret is managed by RDS: the function finds
// the master's host through the RDS API (internal/rdslocal). Expiring users
// get a new user each time, and the one each rotation replaced (not yet
// expired) and the base user's password still log in (revoke retires them).
func TestDatabaseRotationIsProvenByLogin(t *testing.T) {
	cases := []struct {
		fn dbFunction
		// master creates the alternating users' master secret and
		// returns its ARN, and a check to run after the rotations.
		master func(t *testing.T, db database) (string, func(t *testing.T))
	}{
		{fn: postgresSingle},
		{fn: postgresMulti, master: rdsManagedPostgresMaster},
		{fn: mysqlSingle},
		{fn: mysqlMulti, master: mariaDBAdminMaster},
		{fn: postgresExpiring, master: func(t *testing.T, db database) (string, func(*testing.T)) {
			return postgresMasterThatEndsSessions(t, db), func(*testing.T) {}
		}},
		{fn: mysqlExpiring, master: mariaDBAdminMaster},
	}
	for _, tc := range cases {
		t.Run(tc.fn.function, func(t *testing.T) {
			t.Parallel()
			db := tc.fn.server(t)
			masterARN, check := "", func(*testing.T) {}
			if tc.master != nil {
				masterARN, check = tc.master(t, db)
			}
			user, initial, arn := newUserSecret(t, db, "e2e_rotate", masterARN)
			values, prev := []string{initial}, initial
			for i := 1; i <= 3; i++ {
				cur := mustRotate(t, tc.fn.function, arn, fmt.Sprintf("rotation %d", i))
				values = append(values, cur)
				mustLogIn(t, db, cur, fmt.Sprintf("AWSCURRENT after rotation %d", i))
				var v struct{ Username, Team string }
				if err := json.Unmarshal([]byte(cur), &v); err != nil || v.Team != "kept" {
					t.Fatalf("after rotation %d AWSCURRENT lost the field team (or is not JSON)", i)
				}
				if tc.fn.multi {
					want := map[bool]string{true: user + "_clone", false: user}[i%2 == 1]
					if v.Username != want {
						t.Fatalf("after rotation %d the user is %q, want %q", i, v.Username, want)
					}
					mustLogIn(t, db, prev, fmt.Sprintf("after rotation %d, the credential it replaced", i))
				}
				if tc.fn.expiring {
					var p struct{ Username string }
					_ = json.Unmarshal([]byte(prev), &p)
					if !dbsecret.IsExpiringUserOf(user, v.Username) || v.Username == p.Username {
						t.Fatalf("after rotation %d the user is %q, want a new expiring user of %q", i, v.Username, user)
					}
					mustLogIn(t, db, prev, fmt.Sprintf("after rotation %d, the credential it replaced (not expired)", i))
				}
				prev = cur
			}
			if !tc.fn.multi && !tc.fn.expiring {
				mustBeRefused(t, db, initial, "the initial password after three rotations")
			}
			check(t)
			mustNotBeLogged(t, values...)
		})
	}
}

// TestFailedDatabaseRotationLeavesTheOldCredentialWorking gives each
// function a secret it cannot rotate: the rotation fails with an error that
// says why, AWSCURRENT is unchanged, the user's working credential still
// logs in and no alternate user was created.
func TestFailedDatabaseRotationLeavesTheOldCredentialWorking(t *testing.T) {
	cases := []struct {
		name string
		fn   dbFunction
		// secret creates user with password and returns a secret value for
		// it that the function cannot rotate.
		secret  func(t *testing.T, db database, user, password string) string
		wantErr string
	}{
		{"password the server does not know", postgresSingle, wrongPassword, "cannot log in"},
		{"password the server does not know", mysqlSingle, wrongPassword, "refused the password"},
		{"RDS master secret of another server", postgresMulti, postgresMasterOfAnotherServer, "same database server"},
		{"master secret that does not exist", mysqlMulti, missingMaster, "masterarn"},
	}
	for _, tc := range cases {
		t.Run(tc.fn.function+"/"+tc.name, func(t *testing.T) {
			t.Parallel()
			db := tc.fn.server(t)
			user, password := uniqueName("e2e_fail"), "real-Passw0rd"
			bad := tc.secret(t, db, user, password)
			arn := newSecret(t, bad, nil)
			if _, r := rotateWith(t, tc.fn.function, arn); r.State == smlocal.RotationSucceeded || !strings.Contains(r.Err, tc.wantErr) {
				t.Fatalf("rotation: %s %q, want a failure that says %q", r.State, r.Err, tc.wantErr)
			}
			if _, cur := label(t, arn, rotation.LabelCurrent); cur != bad {
				t.Fatal("the failed rotation changed AWSCURRENT")
			}
			mustLogIn(t, db, db.secretValue(t, user, password, nil), "the credential current before the failed rotation")
			if db.userExists(t, user+"_clone") {
				t.Fatal("the failed rotation created a clone")
			}
		})
	}
}

// TestRevokeThroughTheFunction does what `rotary revoke` does against each
// built function: two rotations, then the function invoked directly with
// Step revokeSecret and the AWSCURRENT token, twice. Afterwards every
// password from before the rotations is refused, AWSCURRENT is unchanged
// and logs in, and for alternating users a session the other user opened
// before is ended (PostgreSQL's master holds pg_signal_backend; MariaDB's is
// shaped like RDS's: PROCESS without CONNECTION ADMIN or SUPER, killing
// through mysql.rds_kill). The AWSPREVIOUS token is refused and changes
// nothing.
func TestRevokeThroughTheFunction(t *testing.T) {
	cases := []struct {
		fn dbFunction
		// master creates the alternating users' master secret and
		// returns its ARN.
		master func(t *testing.T, db database) string
	}{
		{fn: postgresSingle},
		{fn: postgresMulti, master: postgresMasterThatEndsSessions},
		{fn: mysqlSingle},
		{fn: mysqlMulti, master: rdsShapedMariaDBMaster},
		{fn: postgresExpiring, master: postgresMasterThatEndsSessions},
		{fn: mysqlExpiring, master: func(t *testing.T, db database) string { arn, _ := mariaDBAdminMaster(t, db); return arn }},
	}
	for _, tc := range cases {
		t.Run(tc.fn.function, func(t *testing.T) {
			t.Parallel()
			db := tc.fn.server(t)
			masterARN := ""
			if tc.master != nil {
				masterARN = tc.master(t, db)
			}
			_, initial, arn := newUserSecret(t, db, "e2e_revoke", masterARN)
			before := []string{initial}
			for i := 1; i <= 2; i++ {
				before = append(before, mustRotate(t, tc.fn.function, arn, fmt.Sprintf("rotation %d", i)))
			}
			cur, prev := before[2], before[1]
			var session func(context.Context) error
			if tc.fn.multi || tc.fn.expiring {
				if err := db.login(within(t, loginTimeout), prev); err != nil {
					t.Fatalf("AWSPREVIOUS (the other user) does not log in before the revoke, so the test would prove nothing: %v", err)
				}
				session = db.openSession(t, prev)
			}
			curToken, _ := label(t, arn, rotation.LabelCurrent)
			for i := 1; i <= 2; i++ {
				if err := invokeRevoke(t, tc.fn.function, arn, curToken); err != nil {
					t.Fatalf("revoke %d: %v", i, err)
				}
				if _, got := label(t, arn, rotation.LabelCurrent); got != cur {
					t.Fatalf("revoke %d changed AWSCURRENT", i)
				}
				mustLogIn(t, db, cur, fmt.Sprintf("AWSCURRENT after revoke %d", i))
				for j, old := range before[:2] {
					mustBeRefused(t, db, old, fmt.Sprintf("after revoke %d, the credential current before rotation %d", i, j+1))
				}
			}
			if session != nil && session(within(t, loginTimeout)) == nil {
				t.Fatal("a session the other user opened before the revoke still runs queries")
			}

			prevToken, _ := label(t, arn, rotation.LabelPrevious)
			err := invokeRevoke(t, tc.fn.function, arn, prevToken)
			var fe *lambdaemu.FunctionError
			if !errors.As(err, &fe) || !strings.Contains(fe.Message, "revoke refused") {
				t.Fatalf("revoke with the AWSPREVIOUS token: err = %v, want the function to refuse", err)
			}
			if _, got := label(t, arn, rotation.LabelCurrent); got != cur {
				t.Fatal("the refused revoke changed AWSCURRENT")
			}
			mustLogIn(t, db, cur, "AWSCURRENT after the refused revoke")
		})
	}
}

// newUserSecret creates a user named after prefix with passwordWithQuotes
// and a secret for it that names masterARN, if any. It returns the user, the
// secret's initial value and its ARN.
func newUserSecret(t *testing.T, db database, prefix, masterARN string) (string, string, string) {
	t.Helper()
	user := uniqueName(prefix)
	db.createUser(t, user, passwordWithQuotes)
	extra := map[string]any{}
	if masterARN != "" {
		extra["masterarn"] = masterARN
	}
	initial := db.secretValue(t, user, passwordWithQuotes, extra)
	return user, initial, newSecret(t, initial, nil)
}

// wrongPassword creates the user and returns a secret with a password the
// server does not know.
func wrongPassword(t *testing.T, db database, user, password string) string {
	t.Helper()
	db.createUser(t, user, password)
	return db.secretValue(t, user, "not-the-password", nil)
}

// rdsManagedPostgresMaster creates a master with CREATEROLE only, whose
// secret is RDS's: a username and password, tagged with the DB instance
// that the local RDS API places on the shared cluster. The check proves the
// function asked the RDS API.
func rdsManagedPostgresMaster(t *testing.T, db database) (string, func(*testing.T)) {
	t.Helper()
	p := db.(postgresDB)
	master, password := uniqueName("e2e_rds_master"), "master-Passw0rd"
	p.createRole(t, master, password, "CREATEROLE")
	id := fmt.Sprintf("orders-%d", names.Add(1))
	rdsAPI.AddInstance(rdslocal.Instance{Identifier: id, Engine: "postgres", Address: p.c.Host, Port: p.c.Port})
	arn := newSecret(t, jsonValue(t, map[string]any{"username": master, "password": password}, nil),
		map[string]string{dbsecret.TagPrimaryDBInstanceARN: rdslocal.InstanceARN(id)})
	return arn, func(t *testing.T) {
		t.Helper()
		if !slices.Contains(rdsAPI.Calls(), "DescribeDBInstances") {
			t.Fatalf("the function did not ask the RDS API for the master's host (calls %v)", rdsAPI.Calls())
		}
	}
}

// postgresMasterOfAnotherServer creates the user and returns a secret whose
// RDS-managed master belongs to another DB instance: the function must
// refuse it before any change.
func postgresMasterOfAnotherServer(t *testing.T, db database, user, password string) string {
	t.Helper()
	p := db.(postgresDB)
	master, masterPassword := uniqueName("e2e_rds_master"), "master-Passw0rd"
	p.createRole(t, master, masterPassword, "CREATEROLE")
	id := fmt.Sprintf("elsewhere-%d", names.Add(1))
	rdsAPI.AddInstance(rdslocal.Instance{Identifier: id, Engine: "postgres", Address: "db.elsewhere.test", Port: p.c.Port})
	masterARN := newSecret(t, jsonValue(t, map[string]any{"username": master, "password": masterPassword}, nil),
		map[string]string{dbsecret.TagPrimaryDBInstanceARN: rdslocal.InstanceARN(id)})
	db.createUser(t, user, password)
	return db.secretValue(t, user, password, map[string]any{"masterarn": masterARN})
}

// postgresMasterThatEndsSessions is a full master secret for a role with
// CREATEROLE and pg_signal_backend.
func postgresMasterThatEndsSessions(t *testing.T, db database) string {
	t.Helper()
	p := db.(postgresDB)
	master, password := uniqueName("e2e_master"), "master-Passw0rd"
	p.createRole(t, master, password, "CREATEROLE")
	p.exec(t, "GRANT pg_signal_backend TO "+postgres.QuoteIdentifier(master))
	return newSecret(t, db.secretValue(t, master, password, nil), nil)
}

// mariaDBAdminMaster is a full master secret for the server's admin user.
func mariaDBAdminMaster(t *testing.T, db database) (string, func(*testing.T)) {
	t.Helper()
	m := db.(mariaDB)
	return newSecret(t, db.secretValue(t, m.s.AdminUser, m.s.AdminPassword, nil), nil), func(*testing.T) {}
}

// missingMaster creates the user and returns a secret whose masterarn names
// no secret.
func missingMaster(t *testing.T, db database, user, password string) string {
	t.Helper()
	masterARN, _ := mariaDBAdminMaster(t, db)
	db.createUser(t, user, password)
	return db.secretValue(t, user, password, map[string]any{"masterarn": masterARN + "-missing"})
}

// rdsShapedMariaDBMaster is a master shaped like RDS's: it may create users,
// see every connection (PROCESS) and grant what it has, but holds neither
// CONNECTION ADMIN nor SUPER, so it kills connections through RDS's
// procedure mysql.rds_kill.
func rdsShapedMariaDBMaster(t *testing.T, db database) string {
	t.Helper()
	m := db.(mariaDB)
	if _, err := m.s.Root.Exec("CREATE OR REPLACE PROCEDURE mysql.rds_kill(IN thread BIGINT) SQL SECURITY DEFINER KILL CONNECTION thread"); err != nil {
		t.Fatal(err)
	}
	master, password := uniqueName("e2e_rds_master"), "master-Passw0rd"
	m.createUserWith(t, master, password, "GRANT CREATE USER, PROCESS ON *.*", "GRANT SELECT ON mysql.*", "GRANT EXECUTE ON PROCEDURE mysql.rds_kill")
	if _, err := m.s.Root.Exec("GRANT SELECT ON orders.* TO '" + master + "'@'%' WITH GRANT OPTION"); err != nil {
		t.Fatal(err)
	}
	return newSecret(t, db.secretValue(t, master, password, nil), nil)
}

// mustNotBeLogged fails if the password of any value appears in the
// functions' log.
func mustNotBeLogged(t *testing.T, values ...string) {
	t.Helper()
	logs := fnLogs.String()
	for i, v := range values {
		var s struct{ Password string }
		if err := json.Unmarshal([]byte(v), &s); err != nil || s.Password == "" {
			t.Fatalf("value %d has no password", i)
		}
		if strings.Contains(logs, s.Password) {
			t.Fatalf("the password of value %d appears in the functions' log", i)
		}
	}
}
