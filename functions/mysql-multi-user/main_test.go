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

const function = "mysql-multi-user"

// TestFunctionEndToEnd builds this function, runs it under the Lambda
// Runtime Interface Emulator behind the local Secrets Manager and rotates a
// user of a throwaway MariaDB with TLS three times (creating <user>_clone,
// then alternating), proving each result by logging in with AWSCURRENT and
// reading a table, and that the credential it replaced still works; then a
// rotation with a missing master secret fails and changes nothing.
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

	for _, q := range []string{"CREATE DATABASE orders", "CREATE TABLE orders.t (id INT)", "INSERT INTO orders.t VALUES (1)"} {
		if _, err := db.Root.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	master := secretValue(t, db, db.AdminUser, db.AdminPassword, nil)
	masterARN := createSecret(ctx, t, stack, "e2e/mysql-master", master)

	user, pw := "rotary_e2e_multi", `initial-Passw0rd!'"\`
	db.CreateUser(t, user, "%", pw, "GRANT SELECT ON orders.*")
	t.Cleanup(func() { db.Root.Exec("DROP USER IF EXISTS 'rotary_e2e_multi_clone'@'%'") })
	prev := secretValue(t, db, user, pw, map[string]any{"masterarn": masterARN})
	arn := createSecret(ctx, t, stack, "e2e/mysql-multi", prev)
	wantUser := []string{user + "_clone", user, user + "_clone"}
	for i := 1; i <= 3; i++ {
		if r := rotate(ctx, t, stack, arn); r.State != smlocal.RotationSucceeded {
			t.Fatalf("rotation %d: %s: %s", i, r.State, r.Err)
		}
		cur := currentValue(ctx, t, stack, arn)
		var v struct{ Username string }
		json.Unmarshal([]byte(cur), &v)
		if v.Username != wantUser[i-1] {
			t.Fatalf("after rotation %d the user is %q, want %q", i, v.Username, wantUser[i-1])
		}
		for what, value := range map[string]string{"AWSCURRENT": cur, "the credential it replaced": prev} {
			if err := mysqlserver.Login(ctx, value, caFile); err != nil {
				t.Fatalf("after rotation %d, %s does not log in: %v", i, what, err)
			}
		}
		prev = cur
	}

	// A secret whose master secret does not exist: the rotation fails, no
	// clone is created and the user's password still works.
	user2, pw2 := "rotary_e2e_multi_fail", "real-Passw0rd"
	db.CreateUser(t, user2, "%", pw2, "GRANT SELECT ON orders.*")
	old2 := secretValue(t, db, user2, pw2, map[string]any{"masterarn": masterARN + "-missing"})
	arn2 := createSecret(ctx, t, stack, "e2e/mysql-multi-fail", old2)
	if r := rotate(ctx, t, stack, arn2); r.State == smlocal.RotationSucceeded || !strings.Contains(r.Err, "masterarn") {
		t.Fatalf("rotation with a missing master secret: %s %q, want a failure naming masterarn", r.State, r.Err)
	}
	if err := mysqlserver.Login(ctx, old2, caFile); err != nil {
		t.Fatalf("the credential current before the failed rotation no longer logs in: %v", err)
	}
	var clones int
	db.Root.QueryRow("SELECT COUNT(*) FROM mysql.user WHERE User = 'rotary_e2e_multi_fail_clone'").Scan(&clones)
	if clones != 0 {
		t.Fatal("the failed rotation created a clone")
	}
}

func failOrSkip(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf("skipping (set CI=true to fail instead): "+format, args...)
}

func secretValue(t *testing.T, db *mysqlserver.Server, user, pw string, extra map[string]any) string {
	t.Helper()
	m := map[string]any{"engine": "mariadb", "host": "localhost", "port": db.Port, "username": user, "password": pw, "dbname": "orders", "team": "kept"}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
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
