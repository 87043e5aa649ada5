package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5"

	"github.com/rotary-secrets/rotary/pkg/credentials/postgres"
	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/pgcluster"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// TestFunctionEndToEnd builds this function, runs it under the Lambda
// Runtime Interface Emulator behind the local Secrets Manager, rotates a
// user of a throwaway TLS cluster twice and proves each result by logging in;
// then a failing rotation leaves the old credential working.
func TestFunctionEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := startCluster(ctx, t)
	stack, err := localstack.Start(ctx, localstack.Config{
		Functions:   []string{"postgres-single-user"},
		BinDir:      t.TempDir(),
		Retry:       smlocal.RetryPolicy{Attempts: 2},
		FunctionEnv: map[string][]string{"postgres-single-user": {"ROTARY_CA_BUNDLE=" + c.CAFile}},
	})
	if err != nil {
		failOrSkip(t, "start the local stack: %v", err)
	}
	t.Cleanup(func() { stack.Close() })

	user, pw := "rotary_e2e_single", "initial-Passw0rd!'\"\\"
	createRole(ctx, t, c, user, pw)
	old := secretValue(t, c, user, pw)
	arn := createSecret(ctx, t, stack, "e2e/single", old)
	for i := 1; i <= 2; i++ {
		r := rotate(ctx, t, stack, arn)
		if r.State != smlocal.RotationSucceeded {
			t.Fatalf("rotation %d: %s: %s", i, r.State, r.Err)
		}
		cur := currentValue(ctx, t, stack, arn)
		if err := login(ctx, c, cur); err != nil {
			t.Fatalf("AWSCURRENT after rotation %d does not log in: %v", i, err)
		}
	}
	if err := login(ctx, c, old); err == nil {
		t.Fatal("the initial password still logs in after two rotations")
	}

	// A secret whose password the server does not know: the rotation fails
	// and the user's real password still works.
	user2, pw2 := "rotary_e2e_single_fail", "real-Passw0rd"
	createRole(ctx, t, c, user2, pw2)
	arn2 := createSecret(ctx, t, stack, "e2e/single-fail", secretValue(t, c, user2, "not-the-password"))
	if r := rotate(ctx, t, stack, arn2); r.State == smlocal.RotationSucceeded || !strings.Contains(r.Err, "cannot log in") {
		t.Fatalf("rotation with an unknown password: %s %q, want a failure that says it cannot log in", r.State, r.Err)
	}
	if err := login(ctx, c, secretValue(t, c, user2, pw2)); err != nil {
		t.Fatalf("the credential current before the failed rotation no longer logs in: %v", err)
	}
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

func createRole(ctx context.Context, t *testing.T, c *pgcluster.Cluster, user, pw string) {
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
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", postgres.QuoteIdentifier(user), v)); err != nil {
		t.Fatal(err)
	}
}

func secretValue(t *testing.T, c *pgcluster.Cluster, user, pw string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"engine": "postgres", "host": c.Host, "port": c.Port, "username": user, "password": pw, "dbname": "postgres", "team": "kept"})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func createSecret(ctx context.Context, t *testing.T, s *localstack.Stack, name, value string) string {
	t.Helper()
	out, err := s.Client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.ARN)
}

func rotate(ctx context.Context, t *testing.T, s *localstack.Stack, arn string) smlocal.Rotation {
	t.Helper()
	if _, err := s.Client.RotateSecret(ctx, &secretsmanager.RotateSecretInput{
		SecretId: aws.String(arn), RotationLambdaARN: aws.String(localstack.FunctionARN("postgres-single-user")),
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
