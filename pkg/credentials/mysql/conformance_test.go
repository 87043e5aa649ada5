package mysql

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/rotary-secrets/rotary/internal/rdslocal"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
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

func corrupt(t *testing.T) func(string) string {
	return func(v string) string {
		_, pw := creds(t, v)
		return withField(t, v, "password", pw+"x")
	}
}

// leastPrivilegeMaster creates an admin user with only what alternating-users
// rotation of a user holding SELECT on db needs (the privileges docs/mysql.md's "Database privileges"
// lists), stores it in Secrets Manager as value(user, password) with tags,
// and returns the secret's ARN.
func leastPrivilegeMaster(t *testing.T, ts *testServer, sm *secretsmanager.Client, db string, value func(user, pw string) string, tags map[string]string) string {
	t.Helper()
	user, pw := uniqueName("rt_master_"), randomPassword(t)
	ts.createUser(t, user, "%", pw, "GRANT CREATE USER ON *.*", "GRANT SELECT ON mysql.*")
	ts.exec(t, "GRANT SELECT ON "+quoteIdent(db)+".* TO "+ts.quote(user)+"@'%' WITH GRANT OPTION")
	in := &secretsmanager.CreateSecretInput{Name: aws.String("master/" + user), SecretString: aws.String(value(user, pw))}
	for k, v := range tags {
		in.Tags = append(in.Tags, smtypes.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	out, err := sm.CreateSecret(context.Background(), in)
	if err != nil {
		t.Fatalf("create the master secret: %v", err)
	}
	return aws.ToString(out.ARN)
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
	})
}

func TestConformanceMultiUser(t *testing.T) {
	ts := sharedServer(t)
	mu := NewMultiUser(Config{})
	rotationtest.Run(t, rotationtest.Subject{
		Credential: mu,
		NewSecret: func(t *testing.T, sm *secretsmanager.Client) string {
			user, pw, db := uniqueName("rt_confm_"), randomPassword(t), uniqueName("rt_db_")
			ts.createDatabase(t, db)
			ts.createUser(t, user, "%", pw, "GRANT SELECT ON "+quoteIdent(db)+".*")
			ts.dropLater(t, user+dbsecret.CloneSuffix, "%")
			arn := leastPrivilegeMaster(t, ts, sm, db, func(u, p string) string {
				return ts.secret(u, p, map[string]any{"engine": "mysql"})
			}, nil)
			return ts.secret(user, pw, map[string]any{"masterarn": arn, "dbname": db, "unknownField": "kept"})
		},
		Check:   check(Config{}),
		Corrupt: corrupt(t),
	})
}

// TestMultiUserRDSManagedMaster rotates with a master secret that RDS
// manages (only username and password), finding the host through the RDS
// API: the real SDK client against internal/rdslocal.
func TestMultiUserRDSManagedMaster(t *testing.T) {
	ts := sharedServer(t)
	srv := rdslocal.New()
	srv.AddInstance(rdslocal.Instance{Identifier: "orders", Engine: "mariadb", Address: ts.host, Port: ts.port})
	srv.AddCluster(rdslocal.Cluster{Identifier: "aurora", Engine: "aurora-mysql", Endpoint: ts.host, Port: ts.port})
	srv.AddInstance(rdslocal.Instance{Identifier: "elsewhere", Engine: "mariadb", Address: "db.elsewhere.test", Port: ts.port})
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	cfg := Config{NewRDS: func(context.Context) (dbsecret.RDSAPI, error) {
		return rds.New(rds.Options{Region: "us-east-1", BaseEndpoint: aws.String(hs.URL),
			Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "local", "")}), nil
	}}
	managed := func(u, p string) string {
		b, _ := json.Marshal(map[string]string{"username": u, "password": p})
		return string(b)
	}
	tests := []struct {
		name, tag, arn string
		wantErr        string
	}{
		{"instance tag", dbsecret.TagPrimaryDBInstanceARN, rdslocal.InstanceARN("orders"), ""},
		{"cluster tag", dbsecret.TagPrimaryDBClusterARN, rdslocal.ClusterARN("aurora"), ""},
		{"instance on another host", dbsecret.TagPrimaryDBInstanceARN, rdslocal.InstanceARN("elsewhere"), "same database server"},
		{"unknown instance", dbsecret.TagPrimaryDBInstanceARN, rdslocal.InstanceARN("gone"), "DBInstanceNotFound"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mu := NewMultiUser(cfg)
			var user, pw string
			e := rotationtest.NewEnv(t, rotationtest.Subject{
				Credential: mu,
				NewSecret: func(t *testing.T, sm *secretsmanager.Client) string {
					user, pw = uniqueName("rt_rdsm_"), randomPassword(t)
					db := uniqueName("rt_db_")
					ts.createDatabase(t, db)
					ts.createUser(t, user, "%", pw, "GRANT SELECT ON "+quoteIdent(db)+".*")
					ts.dropLater(t, user+dbsecret.CloneSuffix, "%")
					arn := leastPrivilegeMaster(t, ts, sm, db, managed, map[string]string{tc.tag: tc.arn})
					return ts.secret(user, pw, map[string]any{"masterarn": arn, "dbname": db})
				},
			})
			arn, old := e.NewSecret(t)
			_, err := e.Rotate(t, arn)
			_, cur, _ := e.Value(t, arn, "AWSCURRENT")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("rotation: %v; want an error containing %q", err, tc.wantErr)
				}
				if cur != old {
					t.Fatal("AWSCURRENT changed")
				}
				ts.mustLogin(t, Config{}, user, pw)
				return
			}
			if err != nil {
				t.Fatalf("rotation: %v", err)
			}
			if err := check(Config{})(context.Background(), cur); err != nil {
				t.Fatalf("log in with AWSCURRENT: %v", err)
			}
		})
	}
	calls := srv.Calls()
	if !slices.Contains(calls, "DescribeDBInstances") || !slices.Contains(calls, "DescribeDBClusters") {
		t.Fatalf("RDS API calls = %v, want both DescribeDBInstances and DescribeDBClusters", calls)
	}
}
