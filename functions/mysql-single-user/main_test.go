package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/mysqlserver"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

const function = "mysql-single-user"

// TestFunctionEndToEnd builds this function, runs it under the Lambda
// Runtime Interface Emulator behind the local Secrets Manager, rotates a
// user of a throwaway MariaDB with TLS twice and proves each result by
// logging in with AWSCURRENT; then a failing rotation leaves the old
// credential working.
func TestFunctionEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	db, caFile := mysqlserver.StartTLS(t, mysqlserver.Options{})
	stack, err := localstack.Start(ctx, localstack.Config{
		Functions:   []string{function},
		BinDir:      t.TempDir(),
		Retry:       smlocal.RetryPolicy{Attempts: 2},
		FunctionEnv: map[string][]string{function: {"ROTARY_CA_BUNDLE=" + caFile}},
	})
	if err != nil {
		failOrSkip(t, "start the local stack: %v", err)
	}
	t.Cleanup(func() { stack.Close() })

	user, pw := "rotary_e2e_single", `initial-Passw0rd!'"\`
	db.CreateUser(t, user, "%", pw)
	old := secretValue(t, db, user, pw)
	arn := createSecret(ctx, t, stack, "e2e/mysql-single", old)
	for i := 1; i <= 2; i++ {
		if r := rotate(ctx, t, stack, arn); r.State != smlocal.RotationSucceeded {
			t.Fatalf("rotation %d: %s: %s", i, r.State, r.Err)
		}
		if err := mysqlserver.Login(ctx, currentValue(ctx, t, stack, arn), caFile); err != nil {
			t.Fatalf("AWSCURRENT after rotation %d does not log in: %v", i, err)
		}
	}
	if err := mysqlserver.Login(ctx, old, caFile); err == nil {
		t.Fatal("the initial password still logs in after two rotations")
	}

	// A secret whose password the server does not know: the rotation fails
	// and the user's real password still works.
	user2, pw2 := "rotary_e2e_single_fail", "real-Passw0rd"
	db.CreateUser(t, user2, "%", pw2)
	arn2 := createSecret(ctx, t, stack, "e2e/mysql-single-fail", secretValue(t, db, user2, "not-the-password"))
	if r := rotate(ctx, t, stack, arn2); r.State == smlocal.RotationSucceeded || !strings.Contains(r.Err, "refused the password") {
		t.Fatalf("rotation with an unknown password: %s %q, want a failure saying the server refused the password", r.State, r.Err)
	}
	if err := mysqlserver.Login(ctx, secretValue(t, db, user2, pw2), caFile); err != nil {
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

func secretValue(t *testing.T, db *mysqlserver.Server, user, pw string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"engine": "mariadb", "host": "localhost", "port": db.Port, "username": user, "password": pw, "team": "kept"})
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
		SecretId: aws.String(arn), RotationLambdaARN: aws.String(localstack.FunctionARN(function)),
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
