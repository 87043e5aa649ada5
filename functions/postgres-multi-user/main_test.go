package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/jackc/pgx/v5"

	"github.com/rotary-secrets/rotary/pkg/credentials/postgres"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/pgcluster"
	"github.com/rotary-secrets/rotary/pkg/rdslocal"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// TestFunctionEndToEnd builds this function, runs it under the Lambda
// Runtime Interface Emulator behind the local Secrets Manager, with an
// RDS-managed master secret whose host the function finds through the RDS
// API (pkg/rdslocal, reached through AWS_ENDPOINT_URL_RDS). Two rotations
// alternate user -> user_clone -> user, each proven by a login; a master
// secret for another server fails the rotation and the old user still works.
func TestFunctionEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := startCluster(ctx, t)
	rdsSrv := rdslocal.New()
	rdsSrv.AddInstance(rdslocal.Instance{Identifier: "orders", Engine: "postgres", Address: c.Host, Port: c.Port})
	rdsSrv.AddInstance(rdslocal.Instance{Identifier: "elsewhere", Engine: "postgres", Address: "db.elsewhere.test", Port: c.Port})
	hs := httptest.NewServer(rdsSrv)
	t.Cleanup(hs.Close)
	stack, err := localstack.Start(ctx, localstack.Config{
		Functions: []string{"postgres-multi-user"},
		BinDir:    t.TempDir(),
		Retry:     smlocal.RetryPolicy{Attempts: 2},
		FunctionEnv: map[string][]string{"postgres-multi-user": {
			"ROTARY_CA_BUNDLE=" + c.CAFile, "AWS_ENDPOINT_URL_RDS=" + hs.URL,
		}},
	})
	if err != nil {
		failOrSkip(t, "start the local stack: %v", err)
	}
	t.Cleanup(func() { stack.Close() })

	// The master user has CREATEROLE only; RDS manages its secret.
	master, masterPW := "rotary_e2e_master", "master-Passw0rd"
	createRole(ctx, t, c, master, masterPW, "CREATEROLE")
	masterValue, _ := json.Marshal(map[string]string{"username": master, "password": masterPW})
	masterARN := createSecret(ctx, t, stack, "rds!db-orders", string(masterValue),
		map[string]string{dbsecret.TagPrimaryDBInstanceARN: rdslocal.InstanceARN("orders")})

	user, pw := "rotary_e2e_app", "initial-Passw0rd"
	createRole(ctx, t, c, user, pw, "")
	old := secretValue(t, c, user, pw, masterARN)
	arn := createSecret(ctx, t, stack, "e2e/multi", old, nil)
	for i, wantUser := range []string{user + "_clone", user} {
		r := rotate(ctx, t, stack, arn)
		if r.State != smlocal.RotationSucceeded {
			t.Fatalf("rotation %d: %s: %s", i+1, r.State, r.Err)
		}
		cur := currentValue(ctx, t, stack, arn)
		if err := login(ctx, c, cur); err != nil {
			t.Fatalf("AWSCURRENT after rotation %d does not log in: %v", i+1, err)
		}
		var got struct{ Username string }
		_ = json.Unmarshal([]byte(cur), &got)
		if got.Username != wantUser {
			t.Fatalf("rotation %d: user %q, want %q", i+1, got.Username, wantUser)
		}
	}
	if !slices.Contains(rdsSrv.Calls(), "DescribeDBInstances") {
		t.Fatalf("the function did not ask the RDS API for the master's host (calls %v)", rdsSrv.Calls())
	}

	// A master secret of another server: refused before any change.
	otherARN := createSecret(ctx, t, stack, "rds!db-elsewhere", string(masterValue),
		map[string]string{dbsecret.TagPrimaryDBInstanceARN: rdslocal.InstanceARN("elsewhere")})
	user2, pw2 := "rotary_e2e_app2", "app2-Passw0rd"
	createRole(ctx, t, c, user2, pw2, "")
	old2 := secretValue(t, c, user2, pw2, otherARN)
	arn2 := createSecret(ctx, t, stack, "e2e/multi-fail", old2, nil)
	if r := rotate(ctx, t, stack, arn2); r.State == smlocal.RotationSucceeded || !strings.Contains(r.Err, "same database server") {
		t.Fatalf("rotation with a master of another server: %s %q, want a refusal", r.State, r.Err)
	}
	if err := login(ctx, c, old2); err != nil {
		t.Fatalf("the credential current before the failed rotation no longer logs in: %v", err)
	}
}

func createRole(ctx context.Context, t *testing.T, c *pgcluster.Cluster, user, pw, attrs string) {
	t.Helper()
	conn, err := c.ConnectAdmin(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	v, err := postgres.ScramVerifier(pw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN %s PASSWORD '%s'", postgres.QuoteIdentifier(user), attrs, v)); err != nil {
		t.Fatal(err)
	}
}

func secretValue(t *testing.T, c *pgcluster.Cluster, user, pw, masterARN string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"engine": "postgres", "host": c.Host, "port": c.Port, "username": user, "password": pw, "dbname": "postgres", "masterarn": masterARN})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func createSecret(ctx context.Context, t *testing.T, s *localstack.Stack, name, value string, tags map[string]string) string {
	t.Helper()
	in := &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)}
	for k, v := range tags {
		in.Tags = append(in.Tags, smtypes.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	out, err := s.Client.CreateSecret(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.ARN)
}

func failOrSkip(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf("skipping (set CI=true to fail instead): "+format, args...)
}

func startCluster(ctx context.Context, t *testing.T) *pgcluster.Cluster {
	t.Helper()
	c, err := pgcluster.Start(ctx, pgcluster.Options{TLS: true})
	if err != nil {
		failOrSkip(t, "start a throwaway PostgreSQL cluster: %v", err)
	}
	t.Cleanup(func() { c.Stop() })
	return c
}

func rotate(ctx context.Context, t *testing.T, s *localstack.Stack, arn string) smlocal.Rotation {
	t.Helper()
	if _, err := s.Client.RotateSecret(ctx, &secretsmanager.RotateSecretInput{
		SecretId: aws.String(arn), RotationLambdaARN: aws.String(localstack.FunctionARN("postgres-multi-user")),
	}); err != nil {
		t.Fatalf("RotateSecret: %v", err)
	}
	r, err := s.SM.WaitRotation(ctx, arn)
	if err != nil {
		t.Fatalf("wait for the rotation: %v", err)
	}
	return r
}

func currentValue(ctx context.Context, t *testing.T, s *localstack.Stack, arn string) string {
	t.Helper()
	out, err := s.Client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionStage: aws.String(rotation.LabelCurrent)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.SecretString)
}

// login connects with a secret value over verified TLS and runs a query.
func login(ctx context.Context, c *pgcluster.Cluster, value string) error {
	var s struct {
		Username, Password string
	}
	if err := json.Unmarshal([]byte(value), &s); err != nil {
		return err
	}
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database = c.Host, uint16(c.Port), s.Username, s.Password, "postgres"
	cfg.TLSConfig, cfg.Fallbacks = c.TLSConfig(c.Host), nil
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}
