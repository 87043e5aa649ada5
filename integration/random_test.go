package integration

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/rotary-secrets/rotary/pkg/lambdaemu"
	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

var randomARN = localstack.FunctionARN(fnRandom)

const initialRandom = `{"apiKey":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","password":"initial-password-0","clientId":"client-123","region":"eu-west-1"}`

// mustBeRotated proves the end state of a successful rotation: AWSCURRENT
// on the rotation's version with new random fields and every other field
// kept, AWSPREVIOUS on the old version, no AWSPENDING.
func mustBeRotated(t *testing.T, arn, token, oldID string, old map[string]any) {
	t.Helper()
	id, cur := value(t, arn, rotation.LabelCurrent)
	if id != token {
		t.Fatalf("AWSCURRENT is on %s, want the rotation's version %s", id, token)
	}
	for _, f := range []string{"apiKey", "password"} {
		if cur[f] == old[f] {
			t.Fatalf("field %s did not change", f)
		}
	}
	if s, _ := cur["apiKey"].(string); len(s) != 40 {
		t.Fatalf("apiKey has %d characters, want 40", len(s))
	}
	for _, f := range []string{"clientId", "region"} {
		if cur[f] != old[f] {
			t.Fatalf("field %s was not kept", f)
		}
	}
	prevID, prev := value(t, arn, rotation.LabelPrevious)
	if prevID != oldID || prev["apiKey"] != old["apiKey"] {
		t.Fatalf("AWSPREVIOUS is on %s, want the old version %s", prevID, oldID)
	}
	d, err := stack.Client.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	for v, labels := range d.VersionIdsToStages {
		if slices.Contains(labels, rotation.LabelPending) {
			t.Fatalf("AWSPENDING is still on %s", v)
		}
	}
	if d.LastRotatedDate == nil {
		t.Fatal("LastRotatedDate was not set")
	}
}

func TestRotateSecretRunsTheRealFunction(t *testing.T) {
	arn := newSecret(t, initialRandom, nil)
	oldID, old := value(t, arn, rotation.LabelCurrent)
	token, r := rotateWith(t, fnRandom, arn)
	if r.State != smlocal.RotationSucceeded {
		t.Fatalf("rotation %s: %s", r.State, r.Err)
	}
	if len(r.Attempts) != 1 || len(r.Attempts[0].Steps) != 4 {
		t.Fatalf("want one attempt of four steps, got %+v", r.Attempts)
	}
	mustBeRotated(t, arn, token, oldID, old)
	// Three more rotations: each starts from the last one's result.
	for i := 0; i < 3; i++ {
		prevID, prev := value(t, arn, rotation.LabelCurrent)
		token, r := rotateWith(t, fnRandom, arn)
		if r.State != smlocal.RotationSucceeded {
			t.Fatalf("rotation %d %s: %s", i+2, r.State, r.Err)
		}
		mustBeRotated(t, arn, token, prevID, prev)
	}
	logs := fnLogs.String()
	if !strings.Contains(logs, `"step":"finishSecret"`) || !strings.Contains(logs, `"_aws"`) {
		t.Fatal("the function logged no finishSecret line with a metric directive")
	}
	_, cur := value(t, arn, rotation.LabelCurrent)
	for _, v := range []any{old["apiKey"], old["password"], cur["apiKey"], cur["password"]} {
		if strings.Contains(logs, v.(string)) {
			t.Fatal("a secret value appears in the function's log")
		}
	}
}

func TestInjectedFailureAtEachStepIsRetriedToAConsistentEnd(t *testing.T) {
	steps := []string{rotation.StepCreate, rotation.StepSet, rotation.StepTest, rotation.StepFinish}
	for _, step := range steps {
		for _, after := range []bool{false, true} {
			name := "before/" + step
			if after {
				name = "after/" + step
			}
			t.Run(name, func(t *testing.T) {
				arn := newSecret(t, initialRandom, nil)
				oldID, old := value(t, arn, rotation.LabelCurrent)
				var once sync.Once
				inject.set(func(ctx context.Context, ev smlocal.Event, run func() error) error {
					fail := false
					if ev.Step == step && ev.SecretId == arn {
						once.Do(func() { fail = true })
					}
					if fail && !after {
						return errors.New("injected: invocation lost before the function ran")
					}
					err := run()
					if fail {
						return errors.New("injected: response lost after the function ran")
					}
					return err
				})
				t.Cleanup(func() { inject.set(nil) })
				token, r := rotateWith(t, fnRandom, arn)
				if r.State != smlocal.RotationSucceeded {
					t.Fatalf("rotation %s: %s", r.State, r.Err)
				}
				if len(r.Attempts) != 2 {
					t.Fatalf("want 2 attempts (one failed, one retried), got %d", len(r.Attempts))
				}
				if r.Attempts[1].Steps[0].Step != rotation.StepCreate {
					t.Fatal("the retry did not start again from createSecret")
				}
				mustBeRotated(t, arn, token, oldID, old)
			})
		}
	}
}

func TestSecondRotateSecretDuringAnUnfinishedOneIsRefused(t *testing.T) {
	arn := newSecret(t, initialRandom, nil)
	oldID, old := value(t, arn, rotation.LabelCurrent)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	inject.set(func(ctx context.Context, ev smlocal.Event, run func() error) error {
		if ev.Step == rotation.StepSet && ev.SecretId == arn {
			entered <- struct{}{}
			<-release
		}
		return run()
	})
	t.Cleanup(func() { inject.set(nil) })
	out, err := stack.Client.RotateSecret(context.Background(), &secretsmanager.RotateSecretInput{SecretId: aws.String(arn), RotationLambdaARN: aws.String(randomARN)})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(time.Minute):
		close(release)
		t.Fatal("the rotation never reached setSecret")
	}
	_, err = stack.Client.RotateSecret(context.Background(), &secretsmanager.RotateSecretInput{SecretId: aws.String(arn)})
	close(release)
	var ire *smtypes.InvalidRequestException
	if !errors.As(err, &ire) || ire.ErrorMessage() != "A previous rotation isn't complete. That rotation will be reattempted." {
		t.Fatalf("second RotateSecret: err = %v, want InvalidRequestException \"A previous rotation isn't complete. That rotation will be reattempted.\"", err)
	}
	r, err := stack.SM.WaitRotation(within(t, 2*time.Minute), arn)
	if err != nil || r.State != smlocal.RotationSucceeded {
		t.Fatalf("the first rotation did not finish: %v %s", err, r.Err)
	}
	mustBeRotated(t, arn, aws.ToString(out.VersionId), oldID, old)
}

func TestFunctionRefusesAWrongTokenWithANamedError(t *testing.T) {
	arn := newSecret(t, initialRandom, nil)
	fn, ok := stack.Function(fnRandom)
	if !ok {
		t.Fatal("random-secret is not running")
	}
	ev, _ := json.Marshal(rotation.Event{Step: rotation.StepSet, SecretID: arn, ClientRequestToken: "11111111-2222-4333-8444-555555555555"})
	_, err := fn.Invoke(within(t, time.Minute), ev)
	var fe *lambdaemu.FunctionError
	if !errors.As(err, &fe) {
		t.Fatalf("invoke with a wrong token: err = %v, want a function error", err)
	}
	if fe.Type != "StepError" || !strings.Contains(fe.Message, arn) || !strings.Contains(fe.Message, "11111111-2222-4333-8444-555555555555") || !strings.Contains(fe.Message, "setSecret") {
		t.Fatalf("error does not name the step, secret and token: %s: %s", fe.Type, fe.Message)
	}
}

func TestConcurrentRotationsOfOneFunctionAllSucceed(t *testing.T) {
	const n = 4
	arns := make([]string, n)
	for i := range arns {
		arns[i] = newSecret(t, initialRandom, nil)
	}
	var wg sync.WaitGroup
	for _, arn := range arns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := stack.Client.RotateSecret(context.Background(), &secretsmanager.RotateSecretInput{SecretId: aws.String(arn), RotationLambdaARN: aws.String(randomARN)})
			if err != nil {
				t.Errorf("RotateSecret: %v", err)
			}
		}()
	}
	wg.Wait()
	for _, arn := range arns {
		r, err := stack.SM.WaitRotation(within(t, 2*time.Minute), arn)
		if err != nil || r.State != smlocal.RotationSucceeded || len(r.Attempts) != 1 {
			t.Fatalf("rotation of %s: %v %s %s after %d attempts", arn, err, r.State, r.Err, len(r.Attempts))
		}
	}
}
