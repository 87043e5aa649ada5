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
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotary-secrets/rotary/pkg/lambdaemu"
	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// TestFunctionRevoke runs what `rotary revoke` does against the built
// function under the Lambda Runtime Interface Emulator: a rotation, then
// the function invoked directly with Step revokeSecret and the AWSCURRENT
// token. Afterwards the passwords from before are refused and AWSCURRENT
// logs in; revoking twice is fine; the AWSPREVIOUS token is refused.
func TestFunctionRevoke(t *testing.T) {
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
	fn, ok := stack.Function("postgres-single-user")
	if !ok {
		t.Fatal("the stack does not run postgres-single-user")
	}

	user, pw := "rotary_e2e_revoke", "initial-Passw0rd"
	createRole(ctx, t, c, user, pw)
	arn := createSecret(ctx, t, stack, "e2e/revoke", secretValue(t, c, user, pw))
	before := []string{currentValue(ctx, t, stack, arn)}
	for i := 1; i <= 2; i++ {
		if r := rotate(ctx, t, stack, arn); r.State != smlocal.RotationSucceeded {
			t.Fatalf("rotation %d: %s: %s", i, r.State, r.Err)
		}
		before = append(before, currentValue(ctx, t, stack, arn))
	}
	cur := before[2]

	invokeRevoke := func(label string) error {
		out, err := stack.Client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionStage: aws.String(label)})
		if err != nil {
			t.Fatalf("read %s: %v", label, err)
		}
		payload, err := json.Marshal(rotation.Event{Step: rotation.StepRevoke, SecretID: arn, ClientRequestToken: aws.ToString(out.VersionId)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = fn.Invoke(ctx, payload)
		return err
	}
	for i := 1; i <= 2; i++ {
		if err := invokeRevoke(rotation.LabelCurrent); err != nil {
			t.Fatalf("revoke %d: %v", i, err)
		}
		if err := login(ctx, c, cur); err != nil {
			t.Fatalf("AWSCURRENT does not log in after revoke %d: %v", i, err)
		}
		for j, old := range before[:2] {
			err := login(ctx, c, old)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
				t.Fatalf("the password current before rotation %d: login error %v, want the server to refuse the password", j+1, err)
			}
		}
	}
	err = invokeRevoke(rotation.LabelPrevious)
	var fe *lambdaemu.FunctionError
	if !errors.As(err, &fe) || !strings.Contains(fe.Message, "revoke refused") {
		t.Fatalf("revoke with the AWSPREVIOUS token: err = %v, want the function to refuse", err)
	}
	if current := currentValue(ctx, t, stack, arn); current != cur {
		t.Fatal("revoke changed AWSCURRENT")
	}
}
