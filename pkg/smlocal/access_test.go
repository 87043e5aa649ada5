package smlocal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

const missingFnARN = "arn:aws:lambda:us-east-1:123456789012:function:does-not-exist"

// invocable is an Options.CanInvoke that knows fnARN only, until denyAll.
type invocable struct{ denyAll atomic.Bool }

func (v *invocable) check(arn string) error {
	if arn != fnARN || v.denyAll.Load() {
		return fmt.Errorf("no function %s here", arn)
	}
	return nil
}

// wantAccessDenied checks that err is the exact AccessDeniedException AWS
// answers for a function it cannot invoke, with HTTP status 400.
func wantAccessDenied(t *testing.T, err error) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error = %v, want AccessDeniedException", err)
	}
	if ae.ErrorCode() != "AccessDeniedException" || ae.ErrorMessage() != msgCannotInvoke {
		t.Fatalf("error %s %q, want AccessDeniedException %q", ae.ErrorCode(), ae.ErrorMessage(), msgCannotInvoke)
	}
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusBadRequest {
		t.Fatalf("HTTP status of %v, want 400", err)
	}
}

// secretSnapshot is what a refused RotateSecret must leave unchanged.
type secretSnapshot struct {
	lambdaARN string
	enabled   bool
	rules     bool
	stages    map[string][]string
	versions  []string // every version id, deprecated included, sorted
}

func snapshot(t *testing.T, c *secretsmanager.Client, id string) secretSnapshot {
	t.Helper()
	ctx := context.Background()
	d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if err != nil {
		t.Fatalf("DescribeSecret: %v", err)
	}
	l, err := c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(id), IncludeDeprecated: aws.Bool(true)})
	if err != nil {
		t.Fatalf("ListSecretVersionIds: %v", err)
	}
	s := secretSnapshot{
		lambdaARN: aws.ToString(d.RotationLambdaARN), enabled: aws.ToBool(d.RotationEnabled), rules: d.RotationRules != nil,
		stages: map[string][]string{},
	}
	for id, st := range d.VersionIdsToStages {
		s.stages[id] = slices.Sorted(slices.Values(st))
	}
	for _, v := range l.Versions {
		s.versions = append(s.versions, aws.ToString(v.VersionId))
	}
	slices.Sort(s.versions)
	return s
}

func (s secretSnapshot) String() string {
	return fmt.Sprintf("function %q, enabled %v, rules %v, labels %v, versions %v", s.lambdaARN, s.enabled, s.rules, s.stages, s.versions)
}

func sameSnapshot(a, b secretSnapshot) bool {
	if a.lambdaARN != b.lambdaARN || a.enabled != b.enabled || a.rules != b.rules || !slices.Equal(a.versions, b.versions) || len(a.stages) != len(b.stages) {
		return false
	}
	for id, st := range a.stages {
		if !slices.Equal(st, b.stages[id]) {
			return false
		}
	}
	return true
}

// TestRotateSecretWithUninvocableFunctionIsAccessDenied: a function the
// server cannot invoke is refused at once with AWS's AccessDeniedException,
// whatever else the request asks, and the secret is left exactly as it
// was: no function ARN, no rules, rotation not enabled, no new version.
func TestRotateSecretWithUninvocableFunctionIsAccessDenied(t *testing.T) {
	var invoked atomic.Int32
	var can invocable
	srv, c := newServer(t, Options{CanInvoke: can.check, Invoker: InvokerFunc(func(context.Context, string, Event) error {
		invoked.Add(1)
		return nil
	})})
	createSecret(t, c, "denied", "pw")
	before := snapshot(t, c, "denied")
	if before.lambdaARN != "" || before.enabled || before.rules || len(before.versions) != 1 {
		t.Fatalf("a new secret: %s", before)
	}
	tests := []struct {
		name string
		in   secretsmanager.RotateSecretInput
	}{
		{"function only", secretsmanager.RotateSecretInput{RotationLambdaARN: aws.String(missingFnARN)}},
		{"with rules and a token", secretsmanager.RotateSecretInput{
			RotationLambdaARN: aws.String(missingFnARN), ClientRequestToken: aws.String(token(7)),
			RotationRules: &types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(30)},
		}},
		{"not immediately", secretsmanager.RotateSecretInput{
			RotationLambdaARN: aws.String(missingFnARN), RotateImmediately: aws.Bool(false),
			RotationRules: &types.RotationRulesType{ScheduleExpression: aws.String("rate(4 hours)")},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.SecretId = aws.String("denied")
			_, err := c.RotateSecret(context.Background(), &in)
			wantAccessDenied(t, err)
			if after := snapshot(t, c, "denied"); !sameSnapshot(before, after) {
				t.Fatalf("a refused RotateSecret changed the secret:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	if n := invoked.Load(); n != 0 {
		t.Fatalf("the invoker ran %d times for refused rotations", n)
	}
	if r := srv.Rotations("denied"); len(r) != 0 {
		t.Fatalf("refused rotations were recorded: %+v", r)
	}
	// The refusal is about that function only: an invocable one is accepted.
	rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String("denied"), RotationLambdaARN: aws.String(fnARN)})
	if r := waitRotation(t, srv, "denied"); r.State != RotationSucceeded {
		t.Fatalf("rotation with an invocable function: %s %s", r.State, r.Err)
	}
}

// TestRotateSecretChecksTheStoredFunctionEachTime: AWS checks the function
// on every RotateSecret, also when it comes from the secret's stored
// configuration; a refusal leaves the configuration and versions as they were.
func TestRotateSecretChecksTheStoredFunctionEachTime(t *testing.T) {
	var can invocable
	srv, c, _ := rotationServer(t, Options{CanInvoke: can.check})
	createSecret(t, c, "stored-denied", "pw")
	rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String("stored-denied"), RotationLambdaARN: aws.String(fnARN),
		RotationRules: &types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(7)}})
	if r := waitRotation(t, srv, "stored-denied"); r.State != RotationSucceeded {
		t.Fatalf("first rotation: %s %s", r.State, r.Err)
	}
	before := snapshot(t, c, "stored-denied")
	can.denyAll.Store(true)
	_, err := c.RotateSecret(context.Background(), &secretsmanager.RotateSecretInput{SecretId: aws.String("stored-denied"), ClientRequestToken: aws.String(token(9))})
	wantAccessDenied(t, err)
	after := snapshot(t, c, "stored-denied")
	if !sameSnapshot(before, after) || after.lambdaARN != fnARN || !after.enabled {
		t.Fatalf("a refused RotateSecret changed the secret:\nbefore %s\nafter  %s", before, after)
	}
	if n := len(srv.Rotations("stored-denied")); n != 1 {
		t.Fatalf("%d rotations recorded, want only the first", n)
	}
}

// TestScheduledRotationOfUninvocableFunctionIsRecordedAsFailed: when a due
// secret's function cannot be invoked, Tick starts nothing, records one
// failed rotation (RotationFailed logged) without creating a version, does
// not record it again at the next tick, and rotates once the function can
// be invoked again.
func TestScheduledRotationOfUninvocableFunctionIsRecordedAsFailed(t *testing.T) {
	clk := newFakeClock()
	var can invocable
	var logs syncBuffer
	srv, c, fn := rotationServer(t, Options{Clock: clk.Now, CanInvoke: can.check, Logger: newJSONLogger(&logs)})
	arn := createSecret(t, c, "sched-denied", "pw")
	rotate(t, c, &secretsmanager.RotateSecretInput{
		SecretId: aws.String("sched-denied"), RotationLambdaARN: aws.String(fnARN), RotateImmediately: aws.Bool(false),
		RotationRules: &types.RotationRulesType{ScheduleExpression: aws.String("rate(6 hours)")},
	})
	waitRotation(t, srv, "sched-denied")
	invocations := len(fn.steps())
	before := snapshot(t, c, "sched-denied")
	can.denyAll.Store(true)
	clk.Advance(6 * time.Hour)
	ctx := context.Background()
	for i := range 2 {
		if started := srv.Tick(ctx); len(started) != 0 {
			t.Fatalf("tick %d started %v with a function that cannot be invoked", i, started)
		}
	}
	rs := srv.Rotations("sched-denied")
	if len(rs) != 2 {
		t.Fatalf("%d rotations recorded, want the first and one failed scheduled one", len(rs))
	}
	r := rs[1]
	if r.State != RotationFailed || !r.Scheduled || len(r.Attempts) != 0 || r.Token != "" || r.FunctionARN != fnARN ||
		!strings.Contains(r.Err, msgCannotInvoke) || !strings.Contains(r.Err, "no function") {
		t.Fatalf("scheduled rotation %+v, want failed, no attempts, no token, Err saying why", r)
	}
	if w := waitRotation(t, srv, "sched-denied"); w.State != RotationFailed {
		t.Fatalf("WaitRotation = %s, want the failed scheduled rotation", w.State)
	}
	if after := snapshot(t, c, "sched-denied"); !sameSnapshot(before, after) {
		t.Fatalf("the refused scheduled rotation changed the secret:\nbefore %s\nafter  %s", before, after)
	}
	if n := len(fn.steps()); n != invocations {
		t.Fatalf("%d invocations for a function that cannot be invoked", n-invocations)
	}
	if got := logEvents(t, logs.String(), arn); !slices.Equal(got, []string{"RotationStarted", "RotationSucceeded", "RotationFailed"}) {
		t.Fatalf("logged events %v, want the first rotation's and one RotationFailed", got)
	}

	can.denyAll.Store(false)
	if started := srv.Tick(ctx); !slices.Equal(started, []string{arn}) {
		t.Fatalf("Tick started %v once the function can be invoked, want %s", started, arn)
	}
	if r := waitRotation(t, srv, "sched-denied"); r.State != RotationSucceeded || !r.Scheduled {
		t.Fatalf("scheduled rotation after the function came back: %s %s", r.State, r.Err)
	}
	if v, _ := current(t, c, "sched-denied"); v != "pw+" {
		t.Fatalf("value %s, want rotated once", fp(v))
	}
}

func newJSONLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// logEvents returns the "event" fields logged for the secret, in order.
func logEvents(t *testing.T, logs, secretARN string) []string {
	t.Helper()
	var events []string
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec struct{ Event, Secret string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if rec.Event != "" && rec.Secret == secretARN {
			events = append(events, rec.Event)
		}
	}
	return events
}
