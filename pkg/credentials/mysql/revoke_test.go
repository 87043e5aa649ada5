package mysql

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/internal/mysqlserver"
	"github.com/rotary-secrets/rotary/internal/mysqlserver/mysqltest"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
)

// revokeEnv starts a local Secrets Manager whose handler runs cred, creates
// the secret newSecret returns and gives its ARN.
func revokeEnv(t *testing.T, cred rotation.Credential, newSecret func(t *testing.T, sm *secretsmanager.Client) string) (*rotationtest.Env, string) {
	t.Helper()
	e := rotationtest.NewEnv(t, rotationtest.Subject{Credential: cred, NewSecret: newSecret})
	arn, _ := e.NewSecret(t)
	return e, arn
}

// valueOf returns the value under label.
func valueOf(t *testing.T, e *rotationtest.Env, arn, label string) string {
	t.Helper()
	_, v, ok := e.Value(t, arn, label)
	if !ok {
		t.Fatalf("the secret has no %s value", label)
	}
	return v
}

// revokeStep runs the operator's revokeSecret step with the AWSCURRENT
// token, as `rotary revoke` does after its rotation.
func revokeStep(t *testing.T, e *rotationtest.Env, arn string) error {
	t.Helper()
	id, _, ok := e.Value(t, arn, rotation.LabelCurrent)
	if !ok {
		t.Fatal("the secret has no AWSCURRENT value")
	}
	return e.Revoke(arn, id)
}

func mustRotateEnv(t *testing.T, e *rotationtest.Env, arn string) {
	t.Helper()
	if _, err := e.Rotate(t, arn); err != nil {
		t.Fatalf("rotation: %v", err)
	}
}

// putLabeled stores value in secret id under labels (AWSCURRENT when none).
func putLabeled(t *testing.T, e *rotationtest.Env, id, value string, labels ...string) {
	t.Helper()
	in := &secretsmanager.PutSecretValueInput{SecretId: aws.String(id), SecretString: aws.String(value)}
	if len(labels) > 0 {
		in.VersionStages = labels
	}
	if _, err := e.Client.PutSecretValue(context.Background(), in); err != nil {
		t.Fatalf("put a value in %s: %v", id, err)
	}
}

// loginValue fails the test unless value logs in (as its own account) and runs a query.
func (ts *testServer) loginValue(t *testing.T, what, value string) {
	t.Helper()
	user, pw := creds(t, value)
	if err := ts.login(context.Background(), Config{}, user, pw); err != nil {
		t.Fatalf("%s (%q, password %s) does not log in: %v", what, user, fingerprint(pw), err)
	}
}

// refusedValue fails the test unless the server refuses value's password.
func (ts *testServer) refusedValue(t *testing.T, what, value string) {
	t.Helper()
	user, pw := creds(t, value)
	err := ts.login(context.Background(), Config{}, user, pw)
	if err == nil {
		t.Fatalf("%s (%q, password %s) still logs in", what, user, fingerprint(pw))
	}
	if !errors.Is(err, ErrLogin) {
		t.Fatalf("%s (%q, password %s): %v; want the server to refuse the password", what, user, fingerprint(pw), err)
	}
}

// noPasswordIn fails the test if err's text holds one of the values' passwords.
func noPasswordIn(t *testing.T, err error, values ...string) {
	t.Helper()
	for _, v := range values {
		if _, pw := creds(t, v); pw != "" && strings.Contains(err.Error(), pw) {
			t.Fatalf("the error quotes the password %s", fingerprint(pw))
		}
	}
}

// openConn opens a connection with a secret value, closed in t.Cleanup.
func (ts *testServer) openConn(t *testing.T, value string) *session {
	t.Helper()
	sec, err := parseMySQL(version("v", value))
	if err != nil {
		t.Fatal(err)
	}
	s, err := open(context.Background(), Config{}.DB, target{secret: sec, username: sec.Username, password: sec.Password})
	if err != nil {
		t.Fatalf("open a connection as %q: %v", sec.Username, err)
	}
	t.Cleanup(s.Close)
	return s
}

func alive(s *session) bool {
	var one int
	return s.queryRow(context.Background(), "SELECT 1").Scan(&one) == nil
}

// revokeMaster creates an admin user with what alternating-users rotation
// and revoke of a user holding SELECT on db need (docs/mysql.md, "Database privileges"), plus,
// when kill is set, PROCESS and CONNECTION ADMIN to kill connections; it
// stores it in Secrets Manager and returns the secret's ARN and the user.
func revokeMaster(t *testing.T, ts *testServer, sm *secretsmanager.Client, db string, kill bool) (string, string) {
	t.Helper()
	user, pw := uniqueName("rt_rmaster_"), randomPassword(t)
	grants := []string{"GRANT CREATE USER ON *.*", "GRANT SELECT ON mysql.*"}
	if kill {
		grants = append(grants, "GRANT PROCESS, CONNECTION ADMIN ON *.*")
	}
	ts.createUser(t, user, "%", pw, grants...)
	ts.exec(t, "GRANT SELECT ON "+quoteIdent(db)+".* TO "+ts.quote(user)+"@'%' WITH GRANT OPTION")
	out, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String("master/" + user), SecretString: aws.String(ts.secret(user, pw, map[string]any{"engine": "mysql"})),
	})
	if err != nil {
		t.Fatalf("create the master secret: %v", err)
	}
	return aws.ToString(out.ARN), user
}

// TestRevokeSingleUserRefuses: an AWSPREVIOUS that single-user revoke cannot
// handle is refused clearly and changes nothing: the user's working password
// and a bystander's stay (an AWSCURRENT that does not log in is the
// conformance suite's Revoke/RefusedWhenCurrentIsRefused).
func TestRevokeSingleUserRefuses(t *testing.T) {
	ts := sharedServer(t)
	su := NewSingleUser(Config{})
	victim, victimPW := uniqueName("rt_victim_"), randomPassword(t)
	ts.createUser(t, victim, "%", victimPW)
	tests := []struct {
		name    string
		mutate  func(t *testing.T, e *rotationtest.Env, arn string) (working string)
		wantErr string
	}{
		{"AWSPREVIOUS for another user", func(t *testing.T, e *rotationtest.Env, arn string) string {
			putLabeled(t, e, arn, ts.secret(victim, victimPW, nil), rotation.LabelPrevious)
			return valueOf(t, e, arn, rotation.LabelCurrent)
		}, "not the secret's user"},
		{"AWSPREVIOUS on another host", func(t *testing.T, e *rotationtest.Env, arn string) string {
			putLabeled(t, e, arn, withField(t, valueOf(t, e, arn, rotation.LabelPrevious), "host", "localhost"), rotation.LabelPrevious)
			return valueOf(t, e, arn, rotation.LabelCurrent)
		}, "only on AWSCURRENT's server"},
		{"AWSPREVIOUS not a database secret", func(t *testing.T, e *rotationtest.Env, arn string) string {
			putLabeled(t, e, arn, `{"password":"x"}`, rotation.LabelPrevious)
			return valueOf(t, e, arn, rotation.LabelCurrent)
		}, "remove its AWSPREVIOUS label"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, arn := revokeEnv(t, su, func(t *testing.T, _ *secretsmanager.Client) string {
				user, pw := uniqueName("rt_rvk_sur_"), randomPassword(t)
				ts.createUser(t, user, "%", pw)
				return ts.secret(user, pw, nil)
			})
			mustRotateEnv(t, e, arn)
			working := tc.mutate(t, e, arn)
			err := revokeStep(t, e, arn)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
			t.Logf("refused: %v", err)
			noPasswordIn(t, err, working, valueOf(t, e, arn, rotation.LabelCurrent), ts.secret(victim, victimPW, nil))
			ts.loginValue(t, "the user's working password", working)
			ts.mustLogin(t, Config{}, victim, victimPW)
		})
	}
}

// TestRevokeSingleUserSecondAuthMethod: a MariaDB account that also accepts
// AWSPREVIOUS's password through a second authentication method (IDENTIFIED
// VIA ... OR ...) cannot be fixed by the user itself; revoke says so with
// ErrStillValid rather than claiming success, and AWSCURRENT still logs in.
func TestRevokeSingleUserSecondAuthMethod(t *testing.T) {
	ts := sharedServer(t)
	su := NewSingleUser(Config{})
	var user string
	e, arn := revokeEnv(t, su, func(t *testing.T, _ *secretsmanager.Client) string {
		pw := randomPassword(t)
		user = uniqueName("rt_rvk_or_")
		ts.createUser(t, user, "%", pw)
		return ts.secret(user, pw, nil)
	})
	mustRotateEnv(t, e, arn)
	cur, prev := valueOf(t, e, arn, rotation.LabelCurrent), valueOf(t, e, arn, rotation.LabelPrevious)
	_, curPW := creds(t, cur)
	_, prevPW := creds(t, prev)
	ts.exec(t, "ALTER USER "+ts.quote(user)+"@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD("+ts.quote(curPW)+") OR mysql_native_password USING PASSWORD("+ts.quote(prevPW)+")")
	ts.loginValue(t, "AWSPREVIOUS through the second method", prev)
	err := revokeStep(t, e, arn)
	if !errors.Is(err, ErrStillValid) || !strings.Contains(err.Error(), "second authentication method") {
		t.Fatalf("err = %v, want ErrStillValid naming the second authentication method", err)
	}
	t.Logf("refused: %v", err)
	noPasswordIn(t, err, cur, prev)
	ts.loginValue(t, "AWSCURRENT", cur)
}

// multiRevokeSecret returns a NewSecret for alternating users whose master
// may kill connections when kill is set; *master receives the master's ARN.
func multiRevokeSecret(ts *testServer, kill bool, master, masterUser *string) func(t *testing.T, sm *secretsmanager.Client) string {
	return func(t *testing.T, sm *secretsmanager.Client) string {
		user, pw, db := uniqueName("rt_rvk_mu_"), randomPassword(t), uniqueName("rt_db_")
		ts.createDatabase(t, db)
		ts.createUser(t, user, "%", pw, "GRANT SELECT ON "+quoteIdent(db)+".*")
		ts.dropLater(t, user+dbsecret.CloneSuffix, "%")
		arn, mUser := revokeMaster(t, ts, sm, db, kill)
		if master != nil {
			*master = arn
		}
		if masterUser != nil {
			*masterUser = mUser
		}
		return ts.secret(user, pw, map[string]any{"masterarn": arn, "dbname": db})
	}
}

// TestRevokeMultiUser: what rotationtest does not see (it revokes with
// KeepSessionsOnRevoke): by default revoke kills the other user's
// connections, with the master's PROCESS and CONNECTION ADMIN, and leaves
// AWSCURRENT's user's; with KeepSessionsOnRevoke they stay. Revoke never
// creates the clone, and changes a password the other user accepts a
// second way too.
func TestRevokeMultiUser(t *testing.T) {
	ts := sharedServer(t)
	mu := NewMultiUser(Config{})
	for _, rotations := range []int{1, 2} {
		t.Run(strings.Repeat("rotate,", rotations)+"revoke twice kills the other user's connections", func(t *testing.T) {
			e, arn := revokeEnv(t, mu, multiRevokeSecret(ts, true, nil, nil))
			for i := 0; i < rotations; i++ {
				mustRotateEnv(t, e, arn)
			}
			cur, prev := valueOf(t, e, arn, rotation.LabelCurrent), valueOf(t, e, arn, rotation.LabelPrevious)
			otherConn, currentConn := ts.openConn(t, prev), ts.openConn(t, cur)
			for i := 1; i <= 2; i++ {
				if err := revokeStep(t, e, arn); err != nil {
					t.Fatalf("revoke %d: %v", i, err)
				}
				ts.loginValue(t, "AWSCURRENT", cur)
				ts.refusedValue(t, "AWSPREVIOUS", prev)
			}
			if alive(otherConn) {
				t.Fatal("a connection of the other user opened before the revoke still runs queries")
			}
			if !alive(currentConn) {
				t.Fatal("revoke killed a connection of AWSCURRENT's user")
			}
			mustRotateEnv(t, e, arn)
			ts.loginValue(t, "AWSCURRENT after a rotation following the revoke", valueOf(t, e, arn, rotation.LabelCurrent))
		})
	}

	t.Run("keep sessions: no kill privileges needed, open connections stay", func(t *testing.T) {
		keep := NewMultiUser(Config{KeepSessionsOnRevoke: true})
		e, arn := revokeEnv(t, keep, multiRevokeSecret(ts, false, nil, nil))
		mustRotateEnv(t, e, arn)
		prev := valueOf(t, e, arn, rotation.LabelPrevious)
		otherConn := ts.openConn(t, prev)
		if err := revokeStep(t, e, arn); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		ts.loginValue(t, "AWSCURRENT", valueOf(t, e, arn, rotation.LabelCurrent))
		ts.refusedValue(t, "AWSPREVIOUS", prev)
		if !alive(otherConn) {
			t.Fatal("with KeepSessionsOnRevoke the other user's open connection was killed")
		}
	})

	t.Run("the other user was never created", func(t *testing.T) {
		e, arn := revokeEnv(t, mu, multiRevokeSecret(ts, false, nil, nil))
		if err := revokeStep(t, e, arn); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		cur := valueOf(t, e, arn, rotation.LabelCurrent)
		ts.loginValue(t, "AWSCURRENT", cur)
		user, _ := creds(t, cur)
		if ts.count(t, "SELECT COUNT(*) FROM mysql.user WHERE User = ?", user+dbsecret.CloneSuffix) != 0 {
			t.Fatal("revoke created the clone")
		}
	})

	t.Run("the other user also accepts its old password another way", func(t *testing.T) {
		e, arn := revokeEnv(t, mu, multiRevokeSecret(ts, true, nil, nil))
		mustRotateEnv(t, e, arn)
		prev := valueOf(t, e, arn, rotation.LabelPrevious)
		user, pw := creds(t, prev)
		ts.exec(t, "ALTER USER "+ts.quote(user)+"@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD("+ts.quote(pw)+") OR mysql_native_password USING PASSWORD("+ts.quote(pw+"-2")+")")
		second := withField(t, prev, "password", pw+"-2")
		ts.loginValue(t, "the second password", second)
		if err := revokeStep(t, e, arn); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		ts.refusedValue(t, "AWSPREVIOUS", prev)
		ts.refusedValue(t, "the other user's second password", second)
		ts.loginValue(t, "AWSCURRENT", valueOf(t, e, arn, rotation.LabelCurrent))
	})
}

// TestRevokeMultiUserOtherHosts: the pair lives at 127.0.0.1 and the base
// user also has an account at '%'. Revoke changes only the pair's accounts;
// when the '%' account takes AWSPREVIOUS's password (clients elsewhere could
// still use it) revoke refuses before any change, and when it has another
// password revoke goes ahead and leaves it alone.
func TestRevokeMultiUserOtherHosts(t *testing.T) {
	ts := sharedServer(t)
	mu := NewMultiUser(Config{})
	for _, tc := range []struct {
		name         string
		samePassword bool
	}{{"same password at another host", true}, {"another password at another host", false}} {
		t.Run(tc.name, func(t *testing.T) {
			e, arn := revokeEnv(t, mu, func(t *testing.T, sm *secretsmanager.Client) string {
				user, pw, db := uniqueName("rt_rvk_hosts_"), randomPassword(t), uniqueName("rt_db_")
				ts.createDatabase(t, db)
				ts.createUser(t, user, "127.0.0.1", pw, "GRANT SELECT ON "+quoteIdent(db)+".*")
				ts.dropLater(t, user+dbsecret.CloneSuffix, "127.0.0.1")
				masterARN, _ := revokeMaster(t, ts, sm, db, true)
				return ts.secret(user, pw, map[string]any{"masterarn": masterARN, "dbname": db})
			})
			mustRotateEnv(t, e, arn)
			prev := valueOf(t, e, arn, rotation.LabelPrevious)
			base, prevPW := creds(t, prev)
			anyPW := randomPassword(t)
			if tc.samePassword {
				anyPW = prevPW
			}
			ts.createUser(t, base, "%", anyPW)
			pairHash, anyHash := ts.authString(t, base, "127.0.0.1"), ts.authString(t, base, "%")
			err := revokeStep(t, e, arn)
			if tc.samePassword {
				if !errors.Is(err, ErrStillValid) || !strings.Contains(err.Error(), `at host(s) "%"`) {
					t.Fatalf("err = %v, want ErrStillValid naming host '%%'", err)
				}
				t.Logf("refused: %v", err)
				noPasswordIn(t, err, prev, valueOf(t, e, arn, rotation.LabelCurrent))
				if ts.authString(t, base, "127.0.0.1") != pairHash {
					t.Fatal("a refused revoke changed the other user's password")
				}
				ts.loginValue(t, "AWSPREVIOUS after the refused revoke", prev)
			} else {
				if err != nil {
					t.Fatalf("revoke: %v", err)
				}
				ts.refusedValue(t, "AWSPREVIOUS", prev)
			}
			if ts.authString(t, base, "%") != anyHash {
				t.Fatalf("revoke changed the password of %s@%%, outside the pair", base)
			}
			ts.loginValue(t, "AWSCURRENT", valueOf(t, e, arn, rotation.LabelCurrent))
		})
	}
}

// TestRevokeMultiUserRefuses: with a master secret that is missing, on
// another host, one of the pair or without the right to kill connections,
// or an AWSPREVIOUS outside the pair or on another server, or an AWSCURRENT
// that does not log in, revoke is refused clearly and changes nothing: the
// other user's password and open connection stay.
func TestRevokeMultiUserRefuses(t *testing.T) {
	ts := sharedServer(t)
	mu := NewMultiUser(Config{})
	victim, victimPW := uniqueName("rt_victim_"), randomPassword(t)
	ts.createUser(t, victim, "%", victimPW)
	type state struct {
		e                 *rotationtest.Env
		arn, masterARN    string
		previous, current string
	}
	tests := []struct {
		name        string
		kill        bool   // the master may kill connections
		masterGrant string // granted to the master first, if set
		mutate      func(t *testing.T, s state)
		wantErr     string
	}{
		{"master secret missing", true, "", func(t *testing.T, s state) {
			if _, err := s.e.Client.DeleteSecret(context.Background(), &secretsmanager.DeleteSecretInput{
				SecretId: aws.String(s.masterARN), ForceDeleteWithoutRecovery: aws.Bool(true),
			}); err != nil {
				t.Fatal(err)
			}
		}, "read the secret named by masterarn"},
		{"master secret on another host", true, "", func(t *testing.T, s state) {
			putLabeled(t, s.e, s.masterARN, withField(t, valueOf(t, s.e, s.masterARN, rotation.LabelCurrent), "host", "db.elsewhere.test"))
		}, "point masterarn at the admin secret of the same database server"},
		{"master secret on another port", true, "", func(t *testing.T, s state) {
			putLabeled(t, s.e, s.masterARN, withField(t, valueOf(t, s.e, s.masterARN, rotation.LabelCurrent), "port", 3307))
		}, "point masterarn at the admin secret of the same database server"},
		{"master user is one of the pair", true, "", func(t *testing.T, s state) {
			putLabeled(t, s.e, s.masterARN, s.current)
		}, "one of the users this secret rotates"},
		{"master may not see connections", false, "", func(t *testing.T, s state) {}, "lacks PROCESS"},
		{"master sees connections but may not kill them", false, "GRANT PROCESS ON *.*", func(t *testing.T, s state) {}, "lacks CONNECTION ADMIN and SUPER"},
		{"AWSPREVIOUS outside the pair", true, "", func(t *testing.T, s state) {
			putLabeled(t, s.e, s.arn, withField(t, ts.secret(victim, victimPW, nil), "masterarn", s.masterARN), rotation.LabelPrevious)
		}, "outside the pair"},
		{"AWSPREVIOUS on another server", true, "", func(t *testing.T, s state) {
			putLabeled(t, s.e, s.arn, withField(t, s.previous, "port", 3307), rotation.LabelPrevious)
		}, "only on AWSCURRENT's server"},
		{"AWSCURRENT does not log in", true, "", func(t *testing.T, s state) {
			putLabeled(t, s.e, s.arn, withField(t, s.current, "password", randomPassword(t)))
		}, "log in with the current value (AWSCURRENT)"},
		{"AWSCURRENT names a user with a quote", true, "", func(t *testing.T, s state) {
			user, _ := creds(t, s.current)
			putLabeled(t, s.e, s.arn, withField(t, s.current, "username", user+"'--"))
		}, `contains '\''`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var masterARN, masterUser string
			e, arn := revokeEnv(t, mu, multiRevokeSecret(ts, tc.kill, &masterARN, &masterUser))
			if tc.masterGrant != "" {
				ts.exec(t, tc.masterGrant+" TO "+ts.quote(masterUser)+"@'%'")
			}
			mustRotateEnv(t, e, arn)
			s := state{e: e, arn: arn, masterARN: masterARN, previous: valueOf(t, e, arn, rotation.LabelPrevious), current: valueOf(t, e, arn, rotation.LabelCurrent)}
			otherUser, _ := creds(t, s.previous)
			hash := ts.authString(t, otherUser, "%")
			otherConn := ts.openConn(t, s.previous)
			tc.mutate(t, s)
			err := revokeStep(t, e, arn)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
			t.Logf("refused: %v", err)
			noPasswordIn(t, err, s.previous, s.current, ts.secret(victim, victimPW, nil))
			ts.loginValue(t, "the other user's password (AWSPREVIOUS)", s.previous)
			ts.loginValue(t, "the credential current before the refused revoke", s.current)
			ts.mustLogin(t, Config{}, victim, victimPW)
			if ts.authString(t, otherUser, "%") != hash {
				t.Fatal("a refused revoke changed the other user's password")
			}
			if !alive(otherConn) {
				t.Fatal("a refused revoke killed the other user's connection")
			}
		})
	}
}

// TestRevokeMultiUserWithRDSKill: a master like RDS's, which has PROCESS
// but neither CONNECTION ADMIN nor SUPER, kills connections through the
// procedure mysql.rds_kill (created here on a throwaway server the way RDS
// provides it: SQL SECURITY DEFINER, EXECUTE granted to the master).
func TestRevokeMultiUserWithRDSKill(t *testing.T) {
	ts := throwawayServer(t)
	ts.exec(t, "CREATE PROCEDURE mysql.rds_kill(IN thread BIGINT) SQL SECURITY DEFINER KILL CONNECTION thread")
	mu := NewMultiUser(Config{})
	var masterUser string
	e, arn := revokeEnv(t, mu, multiRevokeSecret(ts, false, nil, &masterUser))
	ts.exec(t, "GRANT PROCESS ON *.* TO "+ts.quote(masterUser)+"@'%'")
	ts.exec(t, "GRANT EXECUTE ON PROCEDURE mysql.rds_kill TO "+ts.quote(masterUser)+"@'%'")
	mustRotateEnv(t, e, arn)
	prev := valueOf(t, e, arn, rotation.LabelPrevious)
	otherConn := ts.openConn(t, prev)
	if err := revokeStep(t, e, arn); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	ts.refusedValue(t, "AWSPREVIOUS", prev)
	ts.loginValue(t, "AWSCURRENT", valueOf(t, e, arn, rotation.LabelCurrent))
	if alive(otherConn) {
		t.Fatal("the other user's connection survived the revoke")
	}
}

// throwawayServer starts a MariaDB server of its own, for tests that change
// what the shared server must keep (procedures in the mysql schema).
func throwawayServer(t *testing.T) *testServer {
	t.Helper()
	s := mysqltest.Start(t, mysqlserver.Options{})
	return &testServer{host: s.Host, port: s.Port, root: s.Root, extra: map[string]any{"ssl": false},
		adminUser: s.AdminUser, adminPassword: s.AdminPassword}
}
