package main

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/go-sql-driver/mysql"

	"github.com/rotary-secrets/rotary/pkg/lambdaemu"
	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/mysqlserver"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// TestFunctionRevoke runs what `rotary revoke` does against the built
// function under the Lambda Runtime Interface Emulator: two rotations
// through the local Secrets Manager, then the function invoked directly
// with Step revokeSecret and the new AWSCURRENT token. Afterwards every
// password the user had before is refused and AWSCURRENT logs in. Revoking
// twice is fine; a token that is not AWSCURRENT is refused.
func TestFunctionRevoke(t *testing.T) {
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
	fn, ok := stack.Function(function)
	if !ok {
		t.Fatalf("the stack does not run %s", function)
	}

	user, pw := "rotary_e2e_single_revoke", `initial-Passw0rd!'"\`
	db.CreateUser(t, user, "%", pw)
	before := []string{secretValue(t, db, user, pw)}
	arn := createSecret(ctx, t, stack, "e2e/mysql-single-revoke", before[0])
	for i := 1; i <= 2; i++ {
		if r := rotate(ctx, t, stack, arn); r.State != smlocal.RotationSucceeded {
			t.Fatalf("rotation %d: %s: %s", i, r.State, r.Err)
		}
		before = append(before, currentValue(ctx, t, stack, arn))
	}
	cur := before[2]
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
		if got := currentValue(ctx, t, stack, arn); got != cur {
			t.Fatalf("revoke %d changed AWSCURRENT", i)
		}
		if err := mysqlserver.Login(ctx, cur, caFile); err != nil {
			t.Fatalf("AWSCURRENT does not log in after revoke %d: %v", i, err)
		}
		for j, old := range before[:2] {
			mustBeRefused(ctx, t, old, caFile, "the password before rotation "+strconv.Itoa(j+1))
		}
	}

	err = invokeRevoke(versionID(ctx, t, stack, arn, rotation.LabelPrevious))
	var fe *lambdaemu.FunctionError
	if !errors.As(err, &fe) || !strings.Contains(fe.Message, "revoke refused") {
		t.Fatalf("revoke with the AWSPREVIOUS token: err = %v, want the function to refuse", err)
	}
	if err := mysqlserver.Login(ctx, cur, caFile); err != nil {
		t.Fatalf("AWSCURRENT does not log in after the refused revoke: %v", err)
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

// mustBeRefused fails unless the server refuses the value's password
// (error 1045), rather than, say, being unreachable.
func mustBeRefused(ctx context.Context, t *testing.T, value, caFile, what string) {
	t.Helper()
	err := mysqlserver.Login(ctx, value, caFile)
	var me *mysql.MySQLError
	if err == nil {
		t.Fatalf("%s still logs in", what)
	}
	if !errors.As(err, &me) || me.Number != 1045 {
		t.Fatalf("%s: %v; want the server to refuse the password", what, err)
	}
}
