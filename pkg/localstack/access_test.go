package localstack

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

const cannotInvoke = "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy grants access to the principal secretsmanager.amazonaws.com."

// wantAccessDenied checks that err is AWS's AccessDeniedException for a
// function Secrets Manager cannot invoke, with HTTP status 400.
func wantAccessDenied(t *testing.T, err error) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDeniedException" || ae.ErrorMessage() != cannotInvoke {
		t.Fatalf("RotateSecret error = %v, want AccessDeniedException %q", err, cannotInvoke)
	}
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusBadRequest {
		t.Fatalf("HTTP status of %v, want 400", err)
	}
}

// wantNothingStored checks that a refused RotateSecret left no rotation
// configuration and no new version on a secret created with one version.
func wantNothingStored(t *testing.T, stack *Stack, id string) {
	t.Helper()
	ctx := context.Background()
	d, err := stack.Client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	if d.RotationLambdaARN != nil || aws.ToBool(d.RotationEnabled) || d.RotationRules != nil || len(d.VersionIdsToStages) != 1 {
		t.Fatalf("after a refused RotateSecret: function %v, enabled %v, rules %v, labels %v; want none of them set, one version",
			aws.ToString(d.RotationLambdaARN), aws.ToBool(d.RotationEnabled), d.RotationRules, d.VersionIdsToStages)
	}
	l, err := stack.Client.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(id), IncludeDeprecated: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Versions) != 1 {
		t.Fatalf("%d versions after a refused RotateSecret, want the one it was created with", len(l.Versions))
	}
	if r := stack.SM.Rotations(id); len(r) != 0 {
		t.Fatalf("a refused RotateSecret recorded rotations: %+v", r)
	}
}

// TestRotateSecretWithAFunctionTheStackDoesNotRun: the stack's Secrets
// Manager can invoke only the functions the stack runs, also when a test
// wraps the invoker: any other ARN is refused at once with AWS's
// AccessDeniedException and the secret is left as it was. (A stack running
// no function needs no build, so this test is quick.)
func TestRotateSecretWithAFunctionTheStackDoesNotRun(t *testing.T) {
	var invoked atomic.Int32
	stack, err := Start(context.Background(), Config{WrapInvoker: func(next smlocal.Invoker) smlocal.Invoker {
		return smlocal.InvokerFunc(func(ctx context.Context, arn string, ev smlocal.Event) error {
			invoked.Add(1)
			return nil // a wrapper that would accept anything
		})
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stack.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := stack.Client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("access/none"), SecretString: aws.String(`{"apiKey":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	_, err = stack.Client.RotateSecret(ctx, &secretsmanager.RotateSecretInput{
		SecretId: aws.String("access/none"), RotationLambdaARN: aws.String(FunctionARN("random-secret")),
		RotationRules: &types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(30)},
	})
	wantAccessDenied(t, err)
	wantNothingStored(t, stack, "access/none")
	if n := invoked.Load(); n != 0 {
		t.Fatalf("the wrapped invoker ran %d times for a refused rotation", n)
	}
}
