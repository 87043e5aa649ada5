package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// TestEndpointServesLambdaInvokeAndFeed starts the stack with the real
// random-secret function (RotateSecret naming another function is refused)
// and drives it through the real SDK Lambda client:
// an operator step succeeds, a failing one comes back as a function error,
// an unknown function as ResourceNotFoundException; the rotations feed
// shows the steps of a rotation.
func TestEndpointServesLambdaInvokeAndFeed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stack, err := Start(ctx, Config{
		Functions:   []string{"random-secret"},
		BinDir:      t.TempDir(),
		FunctionEnv: map[string][]string{"random-secret": {"ROTATE_FIELDS=apiKey:32:alnum"}},
	})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("start the local stack: %v", err)
		}
		t.Skipf("skipping (set CI=true to fail instead): start the local stack: %v", err)
	}
	t.Cleanup(func() { stack.Close() })

	created, err := stack.Client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("endpoint/test"), SecretString: aws.String(`{"apiKey":"x"}`)})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(created.ARN)
	// A function the stack does not run is refused before anything changes;
	// the one it runs is then accepted.
	_, err = stack.Client.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String(arn), RotationLambdaARN: aws.String(FunctionARN("nope"))})
	wantAccessDenied(t, err)
	wantNothingStored(t, stack, arn)
	rot, err := stack.Client.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String(arn), RotationLambdaARN: aws.String(FunctionARN("random-secret"))})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := stack.SM.WaitRotation(ctx, arn); err != nil || r.State != smlocal.RotationSucceeded {
		t.Fatalf("rotation: %v %s %s", err, r.State, r.Err)
	}

	lc := stack.LambdaClient()
	event := func(step, token string) []byte {
		b, _ := json.Marshal(map[string]string{"Step": step, "SecretId": arn, "ClientRequestToken": token})
		return b
	}
	tests := []struct {
		name, function, step string
		wantFunctionError    string // substring of the error payload; "" means success
		wantNotFound         bool
	}{
		{name: "revoke by ARN", function: FunctionARN("random-secret"), step: "revokeSecret"},
		{name: "revoke by name", function: "rotary-random-secret", step: "revokeSecret"},
		{name: "unknown step is a function error", function: FunctionARN("random-secret"), step: "bogusStep", wantFunctionError: "bogusStep"},
		{name: "unknown function", function: FunctionARN("nope"), step: "revokeSecret", wantNotFound: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := lc.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(tc.function), Payload: event(tc.step, aws.ToString(rot.VersionId))})
			if tc.wantNotFound {
				var nf *lambdatypes.ResourceNotFoundException
				if !errors.As(err, &nf) {
					t.Fatalf("err = %v, want ResourceNotFoundException", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			fe := aws.ToString(out.FunctionError)
			switch {
			case tc.wantFunctionError == "" && fe != "":
				t.Fatalf("function error %s: %s", fe, out.Payload)
			case tc.wantFunctionError != "" && (fe != "Unhandled" || !strings.Contains(string(out.Payload), tc.wantFunctionError)):
				t.Fatalf("FunctionError %q payload %s, want Unhandled mentioning %q", fe, out.Payload, tc.wantFunctionError)
			}
		})
	}

	resp, err := http.Get(stack.Endpoint + RotationsPath + "?secretId=" + url.QueryEscape(arn))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var feed RotationsFeed
	if err := json.NewDecoder(resp.Body).Decode(&feed); err != nil {
		t.Fatal(err)
	}
	if len(feed.Rotations) != 1 || feed.Rotations[0].State != "succeeded" || len(feed.Rotations[0].Attempts) != 1 || len(feed.Rotations[0].Attempts[0].Steps) != 4 {
		t.Fatalf("feed = %+v, want one succeeded rotation with four steps", feed)
	}
}

// TestStartRefusesANonLoopbackAddress: nothing on the stack's endpoint
// checks credentials, so it must never listen beyond loopback.
func TestStartRefusesANonLoopbackAddress(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", "example.com:0"} {
		t.Run(addr, func(t *testing.T) {
			stack, err := Start(context.Background(), Config{Addr: addr})
			if err == nil {
				stack.Close()
				t.Fatalf("Start with Addr %s succeeded, want a loopback error", addr)
			}
			if !strings.Contains(err.Error(), "not a loopback address") {
				t.Fatalf("err = %v, want one saying the address is not a loopback address", err)
			}
		})
	}
}
