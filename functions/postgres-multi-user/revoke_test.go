package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotary-secrets/rotary/pkg/credentials/postgres"
	"github.com/rotary-secrets/rotary/pkg/lambdaemu"
	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/pgcluster"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// TestFunctionRevoke runs what `rotary revoke` does against the built
// function under the Lambda Runtime Interface Emulator: a rotation through
// the local Secrets Manager, then the function invoked directly with Step
// revokeSecret and the new AWSCURRENT token. Afterwards both users'
// passwords from before are refused, the other user's open session is
// ended, and AWSCURRENT logs in. Revoking twice is fine; a token that is not
// AWSCURRENT is refused.
func TestFunctionRevoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := startCluster(ctx, t)
	stack, err := localstack.Start(ctx, localstack.Config{
		Functions:   []string{"postgres-multi-user"},
		BinDir:      t.TempDir(),
		Retry:       smlocal.RetryPolicy{Attempts: 2},
		FunctionEnv: map[string][]string{"postgres-multi-user": {"ROTARY_CA_BUNDLE=" + c.CAFile}},
	})
	if err != nil {
		failOrSkip(t, "start the local stack: %v", err)
	}
	t.Cleanup(func() { stack.Close() })
	fn, ok := stack.Function("postgres-multi-user")
	if !ok {
		t.Fatal("the stack does not run postgres-multi-user")
	}

	// A full master secret; the master may end other users' sessions.
	master, masterPW := "rotary_e2e_master", "master-Passw0rd"
	createRole(ctx, t, c, master, masterPW, "CREATEROLE")
	adminExec(ctx, t, c, "GRANT pg_signal_backend TO "+postgres.QuoteIdentifier(master))
	masterARN := createSecret(ctx, t, stack, "e2e/master", secretValue(t, c, master, masterPW, ""), nil)

	user, pw := "rotary_e2e_revoke", "initial-Passw0rd"
	createRole(ctx, t, c, user, pw, "")
	initial := secretValue(t, c, user, pw, masterARN)
	arn := createSecret(ctx, t, stack, "e2e/revoke", initial, nil)
	before := []string{initial}
	for i := 1; i <= 2; i++ {
		if r := rotate(ctx, t, stack, arn); r.State != smlocal.RotationSucceeded {
			t.Fatalf("rotation %d: %s: %s", i, r.State, r.Err)
		}
		before = append(before, currentValue(ctx, t, stack, arn))
	}
	cur, prev := before[2], before[1]
	if err := login(ctx, c, prev); err != nil {
		t.Fatalf("AWSPREVIOUS (the clone) does not log in before the revoke, so the test proves nothing: %v", err)
	}
	session := openSession(ctx, t, c, prev)

	invokeRevoke := func(token string) error {
		payload, err := json.Marshal(rotation.Event{Step: rotation.StepRevoke, SecretID: arn, ClientRequestToken: token})
		if err != nil {
			t.Fatal(err)
		}
		_, err = fn.Invoke(ctx, payload)
		return err
	}
	curToken := versionID(ctx, t, stack, arn, rotation.LabelCurrent)
	for i := 1; i <= 2; i++ {
		if err := invokeRevoke(curToken); err != nil {
			t.Fatalf("revoke %d: %v", i, err)
		}
		if err := login(ctx, c, cur); err != nil {
			t.Fatalf("AWSCURRENT does not log in after revoke %d: %v", i, err)
		}
		for j, old := range before[:2] {
			mustBeRefused(ctx, t, c, old, j)
		}
	}
	var one int
	if err := session.QueryRow(ctx, "SELECT 1").Scan(&one); err == nil {
		t.Fatal("a session the clone opened before the revoke still runs queries")
	}

	err = invokeRevoke(versionID(ctx, t, stack, arn, rotation.LabelPrevious))
	var fe *lambdaemu.FunctionError
	if !errors.As(err, &fe) || !strings.Contains(fe.Message, "revoke refused") {
		t.Fatalf("revoke with the AWSPREVIOUS token: err = %v, want the function to refuse", err)
	}
	if err := login(ctx, c, cur); err != nil {
		t.Fatalf("AWSCURRENT does not log in after the refused revoke: %v", err)
	}
}

func adminExec(ctx context.Context, t *testing.T, c *pgcluster.Cluster, sql string) {
	t.Helper()
	conn, err := c.ConnectAdmin(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("superuser SQL failed: %v", err)
	}
}

func versionID(ctx context.Context, t *testing.T, s *localstack.Stack, arn, label string) string {
	t.Helper()
	out, err := s.Client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionStage: aws.String(label)})
	if err != nil {
		t.Fatalf("read %s: %v", label, err)
	}
	return aws.ToString(out.VersionId)
}

// mustBeRefused fails unless the server refuses the credential's password
// (rather than, say, being unreachable).
func mustBeRefused(ctx context.Context, t *testing.T, c *pgcluster.Cluster, value string, n int) {
	t.Helper()
	err := login(ctx, c, value)
	var pgErr *pgconn.PgError
	if err == nil {
		t.Fatalf("the credential current before rotation %d still logs in", n+1)
	}
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Fatalf("the credential current before rotation %d: %v, want the server to refuse the password", n+1, err)
	}
}

// openSession logs in with a secret value over verified TLS; the session
// is closed in t.Cleanup.
func openSession(ctx context.Context, t *testing.T, c *pgcluster.Cluster, value string) *pgx.Conn {
	t.Helper()
	var s struct{ Username, Password string }
	if err := json.Unmarshal([]byte(value), &s); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database = c.Host, uint16(c.Port), s.Username, s.Password, "postgres"
	cfg.TLSConfig, cfg.Fallbacks = c.TLSConfig(c.Host), nil
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("open a session as %q: %v", s.Username, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
