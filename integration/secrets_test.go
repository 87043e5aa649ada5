package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// newSecret creates a secret named after the test, with tags, and returns
// its ARN.
func newSecret(t *testing.T, value string, tags map[string]string) string {
	t.Helper()
	in := &secretsmanager.CreateSecretInput{
		Name:         aws.String(fmt.Sprintf("integration/%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())),
		SecretString: aws.String(value),
	}
	for k, v := range tags {
		in.Tags = append(in.Tags, smtypes.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	out, err := stack.Client.CreateSecret(context.Background(), in)
	if err != nil {
		t.Fatalf("create secret: %v", err)
	}
	return aws.ToString(out.ARN)
}

// rotateWith calls RotateSecret with the stack's function and waits for the
// rotation to end, successfully or not. It returns the rotation's token.
func rotateWith(t *testing.T, function, arn string) (string, smlocal.Rotation) {
	t.Helper()
	out, err := stack.Client.RotateSecret(context.Background(), &secretsmanager.RotateSecretInput{
		SecretId: aws.String(arn), RotationLambdaARN: aws.String(localstack.FunctionARN(function)),
	})
	if err != nil {
		t.Fatalf("RotateSecret: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := stack.SM.WaitRotation(ctx, arn)
	if err != nil {
		t.Fatalf("wait for the rotation: %v", err)
	}
	return aws.ToString(out.VersionId), r
}

// mustRotate rotates arn with function, fails the test unless the rotation
// succeeded, and returns the new AWSCURRENT value.
func mustRotate(t *testing.T, function, arn, what string) string {
	t.Helper()
	if _, r := rotateWith(t, function, arn); r.State != smlocal.RotationSucceeded {
		t.Fatalf("%s: %s: %s", what, r.State, r.Err)
	}
	_, cur := label(t, arn, rotation.LabelCurrent)
	return cur
}

// label reads the version that carries a staging label: its ID and value.
func label(t *testing.T, arn, stage string) (string, string) {
	t.Helper()
	out, err := stack.Client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionStage: aws.String(stage)})
	if err != nil {
		t.Fatalf("read %s: %v", stage, err)
	}
	return aws.ToString(out.VersionId), aws.ToString(out.SecretString)
}

// value reads the version that carries a staging label as a JSON object.
func value(t *testing.T, arn, stage string) (string, map[string]any) {
	t.Helper()
	id, s := label(t, arn, stage)
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("%s is not JSON", stage)
	}
	return id, m
}

// invokeRevoke does what `rotary revoke` does: it invokes the function
// directly with Step revokeSecret and token, and returns its error (a
// *lambdaemu.FunctionError when the function refused).
func invokeRevoke(t *testing.T, function, arn, token string) error {
	t.Helper()
	fn, ok := stack.Function(function)
	if !ok {
		t.Fatalf("the stack does not run %s", function)
	}
	payload, err := json.Marshal(rotation.Event{Step: rotation.StepRevoke, SecretID: arn, ClientRequestToken: token})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err = fn.Invoke(ctx, payload)
	return err
}

// within returns a context that ends after d or with the test, so that no
// call to a server that stopped answering hangs the suite.
func within(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// uniqueName returns prefix with a suffix no other call in this test binary
// gets, for users on the shared database servers.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s_%d", prefix, names.Add(1))
}

var names atomic.Int64
