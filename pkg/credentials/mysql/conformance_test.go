package mysql

import (
	"time"

	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/dbsecret/rdsendpoint"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
)

// check logs in with a secret value and runs a query.
func check(cfg Config) func(context.Context, string) error {
	return func(ctx context.Context, value string) error {
		sec, err := parseMySQL(version("checked", value))
		if err != nil {
			return err
		}
		return testLogin(ctx, cfg, sec)
	}
}

// refused tells whether an error of check is the server refusing the login.
func refused(err error) bool { return errors.Is(err, ErrLogin) }

func corrupt(t *testing.T) func(string) string {
	return func(v string) string {
		_, pw := creds(t, v)
		return withField(t, v, "password", pw+"x")
	}
}

// leastPrivilegeMaster creates an admin user with only what alternating-users
// rotation of a user holding SELECT on db needs (the privileges docs/mysql.md's
// "Database privileges" lists) and returns its name and password.
func leastPrivilegeMaster(t *testing.T, ts *testServer, db string) (user, pw string) {
	t.Helper()
	user, pw = uniqueName("rt_master_"), randomPassword(t)
	ts.createUser(t, user, "%", pw, "GRANT CREATE USER ON *.*", "GRANT SELECT ON mysql.*")
	ts.exec(t, "GRANT SELECT ON "+quoteIdent(db)+".* TO "+ts.quote(user)+"@'%' WITH GRANT OPTION")
	return user, pw
}

func TestConformanceSingleUser(t *testing.T) {
	ts := sharedServer(t)
	su := NewSingleUser(Config{})
	rotationtest.Run(t, rotationtest.Subject{
		Credential: su,
		NewSecret: func(t *testing.T, _ *secretsmanager.Client) string {
			user, pw := uniqueName("rt_conf_"), randomPassword(t)
			ts.createUser(t, user, "%", pw)
			return ts.secret(user, pw, map[string]any{"unknownField": map[string]any{"kept": true}, "port": strconv.Itoa(ts.port)}) // port as a numeric string
		},
		Check:   check(Config{}),
		Corrupt: corrupt(t),
		Refused: refused,
	})
}

// TestConformanceMultiUser: the master has only what rotation needs
// (leastPrivilegeMaster), and revoke leaves open connections running, which
// then needs nothing more; revoke's killing of connections, which needs
// PROCESS and CONNECTION ADMIN, is in revoke_test.go.
func TestConformanceMultiUser(t *testing.T) {
	ts := sharedServer(t)
	cfg := Config{KeepSessionsOnRevoke: true}
	newSecret := func(t *testing.T, store func(user, pw string) string) string {
		user, pw, db := uniqueName("rt_confm_"), randomPassword(t), uniqueName("rt_db_")
		ts.createDatabase(t, db)
		ts.createUser(t, user, "%", pw, "GRANT SELECT ON "+quoteIdent(db)+".*")
		ts.dropLater(t, user+dbsecret.CloneSuffix, "%")
		arn := store(leastPrivilegeMaster(t, ts, db))
		return ts.secret(user, pw, map[string]any{"masterarn": arn, "dbname": db, "unknownField": "kept"})
	}
	rotationtest.Run(t, rotationtest.Subject{
		Credential: NewMultiUser(cfg),
		NewSecret: func(t *testing.T, sm *secretsmanager.Client) string {
			return newSecret(t, func(user, pw string) string {
				out, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
					Name: aws.String("master/" + user), SecretString: aws.String(ts.secret(user, pw, map[string]any{"engine": "mysql"})),
				})
				if err != nil {
					t.Fatalf("create the master secret: %v", err)
				}
				return aws.ToString(out.ARN)
			})
		},
		Check:   check(Config{}),
		Corrupt: corrupt(t),
		Refused: refused,
		Master: &rotationtest.Master{
			NewSecret: newSecret,
			Engine:    "mariadb", ClusterEngine: "aurora-mysql",
			Host: ts.host, Port: ts.port,
			WithRDS: func(client *rds.Client) rotation.Credential {
				c := cfg
				c.NewRDS = func(context.Context) (dbsecret.RDSAPI, error) { return rdsendpoint.Of(client), nil }
				return NewMultiUser(c)
			},
		},
	})
}

// TestConformanceExpiringUsers: the master has what docs/expiring-users.md
// lists (expiringMaster), and revoke leaves open connections running, as
// for alternating users; killing them is in expiringusers_test.go.
func TestConformanceExpiringUsers(t *testing.T) {
	ts := sharedServer(t)
	markerDB := uniqueName("rt_marks_")
	t.Cleanup(func() { _, _ = ts.root.Exec("DROP DATABASE IF EXISTS " + quoteIdent(markerDB)) })
	cfg := Config{KeepSessionsOnRevoke: true, MarkerDatabase: markerDB}
	exp := dbsecret.ExpiringConfig{TTL: time.Hour, MinTTL: time.Second}
	newCred := func(cfg Config) rotation.Credential {
		c, err := NewExpiringUsers(cfg, exp)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	newSecret := func(t *testing.T, store func(user, pw string) string) string {
		user, pw, db := uniqueName("rt_ce"), randomPassword(t), uniqueName("rt_db_")
		ts.createDatabase(t, db)
		ts.createUser(t, user, "%", pw, "GRANT SELECT ON "+quoteIdent(db)+".*")
		f := &expiringFixture{ts: ts, base: user}
		t.Cleanup(func() { f.dropFamily(t) })
		arn := store(expiringMaster(t, ts, db, markerDB))
		return ts.secret(user, pw, map[string]any{"masterarn": arn, "dbname": db, "unknownField": "kept"})
	}
	rotationtest.Run(t, rotationtest.Subject{
		Credential: newCred(cfg),
		NewSecret: func(t *testing.T, sm *secretsmanager.Client) string {
			return newSecret(t, func(user, pw string) string {
				out, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
					Name: aws.String("master/" + user), SecretString: aws.String(ts.secret(user, pw, map[string]any{"engine": "mysql"})),
				})
				if err != nil {
					t.Fatalf("create the master secret: %v", err)
				}
				return aws.ToString(out.ARN)
			})
		},
		Check:   check(Config{}),
		Corrupt: corrupt(t),
		Refused: refused,
		Master: &rotationtest.Master{
			NewSecret: newSecret,
			Engine:    "mariadb", ClusterEngine: "aurora-mysql",
			Host: ts.host, Port: ts.port,
			WithRDS: func(client *rds.Client) rotation.Credential {
				c := cfg
				c.NewRDS = func(context.Context) (dbsecret.RDSAPI, error) { return rdsendpoint.Of(client), nil }
				return newCred(c)
			},
		},
	})
}
