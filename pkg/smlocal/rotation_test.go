package smlocal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

const fnARN = "arn:aws:lambda:us-east-1:123456789012:function:rotate"

// protocolFunction is an in-process rotation function that follows the
// handler contract of docs/protocol.md through the SDK: the new value is the
// current one with "+" appended. fail, if set, may fail a step.
type protocolFunction struct {
	c      *secretsmanager.Client
	mu     sync.Mutex
	events []Event
	fail   func(ev Event) error
}

func (f *protocolFunction) Invoke(ctx context.Context, arn string, ev Event) error {
	f.mu.Lock()
	f.events = append(f.events, ev)
	fail := f.fail
	f.mu.Unlock()
	if arn != fnARN {
		return fmt.Errorf("unexpected function %s", arn)
	}
	d, err := f.c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(ev.SecretId)})
	if err != nil {
		return err
	}
	if d.RotationEnabled != nil && !*d.RotationEnabled {
		return errors.New("rotation is disabled")
	}
	stages, ok := d.VersionIdsToStages[ev.ClientRequestToken]
	if !ok {
		return errors.New("token is not a version of the secret")
	}
	if slices.Contains(stages, "AWSCURRENT") {
		return nil
	}
	if !slices.Contains(stages, "AWSPENDING") {
		return errors.New("token is not AWSPENDING")
	}
	if fail != nil {
		if err := fail(ev); err != nil {
			return err
		}
	}
	switch ev.Step {
	case StepCreate:
		cur, err := f.c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(ev.SecretId)})
		if err != nil {
			return err
		}
		_, err = f.c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(ev.SecretId), VersionId: aws.String(ev.ClientRequestToken), VersionStage: aws.String("AWSPENDING")})
		var rnf *types.ResourceNotFoundException
		if !errors.As(err, &rnf) {
			return err // nil: already has a value
		}
		_, err = f.c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
			SecretId: aws.String(ev.SecretId), ClientRequestToken: aws.String(ev.ClientRequestToken),
			SecretString: aws.String(aws.ToString(cur.SecretString) + "+"), VersionStages: []string{"AWSPENDING"},
			RotationToken: aws.String(ev.RotationToken),
		})
		return err
	case StepSet, StepTest:
		return nil
	case StepFinish:
		for id, st := range d.VersionIdsToStages {
			if slices.Contains(st, "AWSCURRENT") {
				_, err := f.c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
					SecretId: aws.String(ev.SecretId), VersionStage: aws.String("AWSCURRENT"),
					MoveToVersionId: aws.String(ev.ClientRequestToken), RemoveFromVersionId: aws.String(id),
				})
				return err
			}
		}
		return errors.New("no AWSCURRENT version")
	}
	return fmt.Errorf("unknown step %q", ev.Step)
}

func (f *protocolFunction) steps() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.events {
		out = append(out, e.Step)
	}
	return out
}

// rotationServer is a Server whose Invoker is a protocolFunction talking to it.
func rotationServer(t *testing.T, opts Options) (*Server, *secretsmanager.Client, *protocolFunction) {
	t.Helper()
	fn := &protocolFunction{}
	opts.Invoker = fn
	srv, c := newServer(t, opts)
	fn.c = c
	return srv, c, fn
}

func waitRotation(t *testing.T, srv *Server, id string) Rotation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := srv.WaitRotation(ctx, id)
	if err != nil {
		t.Fatalf("WaitRotation: %v", err)
	}
	return r
}

func rotate(t *testing.T, c *secretsmanager.Client, in *secretsmanager.RotateSecretInput) *secretsmanager.RotateSecretOutput {
	t.Helper()
	out, err := c.RotateSecret(context.Background(), in)
	if err != nil {
		t.Fatalf("RotateSecret: %v", err)
	}
	return out
}

func TestRotateSecretRunsFourStepsAndPromotesPending(t *testing.T) {
	clk := newFakeClock()
	srv, c, fn := rotationServer(t, Options{Clock: clk.Now})
	arn := createSecret(t, c, "rot", "pw")
	_, oldVer := current(t, c, "rot")
	out := rotate(t, c, &secretsmanager.RotateSecretInput{
		SecretId: aws.String("rot"), RotationLambdaARN: aws.String(fnARN),
		RotationRules: &types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(30)},
	})
	if aws.ToString(out.ARN) != arn || aws.ToString(out.Name) != "rot" || len(aws.ToString(out.VersionId)) < 32 {
		t.Fatalf("RotateSecret returned %+v", out)
	}
	r := waitRotation(t, srv, "rot")
	if r.State != RotationSucceeded {
		t.Fatalf("rotation state %s (%s), want succeeded", r.State, r.Err)
	}
	if got := fn.steps(); !slices.Equal(got, allSteps) {
		t.Fatalf("steps invoked %v, want %v", got, allSteps)
	}
	for _, ev := range fn.events {
		if ev.SecretId != arn || ev.ClientRequestToken != aws.ToString(out.VersionId) || ev.RotationToken == "" || ev.RotationToken != r.RotationToken {
			t.Fatalf("event %+v: want SecretId=ARN, the token and the rotation's RotationToken", ev)
		}
	}
	v, ver := current(t, c, "rot")
	if v != "pw+" || ver != aws.ToString(out.VersionId) {
		t.Fatalf("AWSCURRENT = %s (%s), want the rotated value at the token", ver, fp(v))
	}
	got := stagesOf(t, c, "rot")
	if !slices.Equal(got[ver], []string{"AWSCURRENT"}) || !slices.Equal(got[oldVer], []string{"AWSPREVIOUS"}) {
		t.Fatalf("labels after rotation %v: want AWSPENDING removed, AWSPREVIOUS on the old version", got)
	}
	d, err := c.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String("rot")})
	if err != nil {
		t.Fatal(err)
	}
	if !aws.ToBool(d.RotationEnabled) || aws.ToString(d.RotationLambdaARN) != fnARN || aws.ToInt64(d.RotationRules.AutomaticallyAfterDays) != 30 {
		t.Fatalf("rotation config not stored: %+v", d)
	}
	if d.LastRotatedDate == nil || !d.LastRotatedDate.Equal(clk.Now()) {
		t.Fatalf("LastRotatedDate = %v, want %v", d.LastRotatedDate, clk.Now())
	}
	// The end of the window (no Duration: the UTC day), as AWS reports it.
	if want := time.Date(2026, 4, 9, 23, 59, 59, 0, time.UTC); d.NextRotationDate == nil || !d.NextRotationDate.Equal(want) {
		t.Fatalf("NextRotationDate = %v, want %v", d.NextRotationDate, want)
	}
}

func TestRotateSecretWithoutFunctionARNIsInvalidRequest(t *testing.T) {
	_, c, _ := rotationServer(t, Options{})
	createSecret(t, c, "nofn", "pw")
	_, err := c.RotateSecret(context.Background(), &secretsmanager.RotateSecretInput{SecretId: aws.String("nofn")})
	wantAPIError(t, err, "InvalidRequestException", msgNoRotationFunction)
}

func TestRotateSecretUsesStoredConfig(t *testing.T) {
	srv, c, fn := rotationServer(t, Options{})
	createSecret(t, c, "stored", "pw")
	rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String("stored"), RotationLambdaARN: aws.String(fnARN)})
	waitRotation(t, srv, "stored")
	rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String("stored")})
	if r := waitRotation(t, srv, "stored"); r.State != RotationSucceeded || r.FunctionARN != fnARN {
		t.Fatalf("second rotation %+v", r)
	}
	if v, _ := current(t, c, "stored"); v != "pw++" {
		t.Fatalf("value after two rotations %s", fp(v))
	}
	if n := len(fn.steps()); n != 8 {
		t.Fatalf("%d invocations, want 8", n)
	}
}

func TestFailedStepIsRetriedWithSameTokenThenSucceeds(t *testing.T) {
	srv, c, fn := rotationServer(t, Options{Retry: RetryPolicy{Attempts: 3}})
	createSecret(t, c, "retry", "pw")
	var fails atomic.Int32
	fn.fail = func(ev Event) error {
		if ev.Step == StepSet && fails.Add(1) == 1 {
			return errors.New("database unreachable")
		}
		return nil
	}
	out := rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String("retry"), RotationLambdaARN: aws.String(fnARN)})
	r := waitRotation(t, srv, "retry")
	if r.State != RotationSucceeded || len(r.Attempts) != 2 {
		t.Fatalf("state %s after %d attempts, want succeeded after 2", r.State, len(r.Attempts))
	}
	if a := r.Attempts[0]; len(a.Steps) != 2 || a.Steps[1].Step != StepSet || a.Steps[1].Err == "" || a.Err == "" {
		t.Fatalf("first attempt %+v, want createSecret then a failed setSecret", a)
	}
	for _, ev := range fn.events {
		if ev.ClientRequestToken != aws.ToString(out.VersionId) {
			t.Fatalf("a retry used token %s, want %s", ev.ClientRequestToken, aws.ToString(out.VersionId))
		}
	}
	if v, _ := current(t, c, "retry"); v != "pw+" {
		t.Fatalf("value %s, want rotated once", fp(v))
	}
}

// TestRotationGivesUpLeavingPendingAndOldCredentialCurrent: after the last
// attempt the secret stays as AWS leaves it: AWSPENDING where it was,
// AWSCURRENT unchanged, RotationFailed logged once.
func TestRotationGivesUpLeavingPendingAndOldCredentialCurrent(t *testing.T) {
	var logs syncBuffer
	srv, c, fn := rotationServer(t, Options{Retry: RetryPolicy{Attempts: 2}, Logger: newJSONLogger(&logs)})
	arn := createSecret(t, c, "giveup", "pw")
	_, oldVer := current(t, c, "giveup")
	fn.fail = func(ev Event) error {
		if ev.Step == StepTest {
			return errors.New("login failed")
		}
		return nil
	}
	out := rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String("giveup"), RotationLambdaARN: aws.String(fnARN)})
	r := waitRotation(t, srv, "giveup")
	if r.State != RotationFailed || len(r.Attempts) != 2 || r.Err == "" {
		t.Fatalf("rotation %+v, want failed after 2 attempts", r)
	}
	if v, ver := current(t, c, "giveup"); v != "pw" || ver != oldVer {
		t.Fatalf("AWSCURRENT moved to %s after a failed rotation", ver)
	}
	if got := stagesOf(t, c, "giveup"); !slices.Equal(got[aws.ToString(out.VersionId)], []string{"AWSPENDING"}) {
		t.Fatalf("labels %v, want AWSPENDING left on the token", got)
	}
	_, err := c.RotateSecret(context.Background(), &secretsmanager.RotateSecretInput{SecretId: aws.String("giveup")})
	wantAPIError(t, err, "InvalidRequestException", msgPreviousRotation)
	d, err := c.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String("giveup")})
	if err != nil || d.LastRotatedDate != nil {
		t.Fatalf("LastRotatedDate = %v after a failed rotation (err %v), want unset", d.LastRotatedDate, err)
	}
	if got := logEvents(t, logs.String(), arn); !slices.Equal(got, []string{"RotationStarted", "RotationFailed"}) {
		t.Fatalf("logged events %v, want RotationStarted then RotationFailed", got)
	}
}

func TestRotateImmediatelyFalseOnlyTestsCurrentValue(t *testing.T) {
	srv, c, fn := rotationServer(t, Options{})
	createSecret(t, c, "testonly", "pw")
	_, oldVer := current(t, c, "testonly")
	var tested string
	fn.fail = func(ev Event) error {
		out, err := fn.c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(ev.SecretId), VersionStage: aws.String("AWSPENDING")})
		if err != nil {
			return err
		}
		tested = aws.ToString(out.SecretString)
		return nil
	}
	rotate(t, c, &secretsmanager.RotateSecretInput{
		SecretId: aws.String("testonly"), RotationLambdaARN: aws.String(fnARN), RotateImmediately: aws.Bool(false),
		RotationRules: &types.RotationRulesType{ScheduleExpression: aws.String("rate(10 days)")},
	})
	r := waitRotation(t, srv, "testonly")
	if r.State != RotationSucceeded || !r.TestOnly {
		t.Fatalf("rotation %+v", r)
	}
	if got := fn.steps(); !slices.Equal(got, []string{StepTest}) {
		t.Fatalf("steps %v, want only testSecret", got)
	}
	if tested != "pw" {
		t.Fatalf("testSecret saw %s as AWSPENDING, want the current value", fp(tested))
	}
	got := stagesOf(t, c, "testonly")
	if len(got) != 1 || !slices.Equal(got[oldVer], []string{"AWSCURRENT"}) {
		t.Fatalf("labels %v, want only AWSCURRENT on the old version (AWSPENDING removed)", got)
	}
}

func TestCancelRotateSecretReturnsUnfinishedVersionAndKeepsPending(t *testing.T) {
	srv, c, fn := rotationServer(t, Options{Retry: RetryPolicy{Attempts: 1}})
	createSecret(t, c, "cancel", "pw")
	fn.fail = func(ev Event) error { return errors.New("down") }
	out := rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String("cancel"), RotationLambdaARN: aws.String(fnARN)})
	waitRotation(t, srv, "cancel")
	cr, err := c.CancelRotateSecret(context.Background(), &secretsmanager.CancelRotateSecretInput{SecretId: aws.String("cancel")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(cr.VersionId) != aws.ToString(out.VersionId) {
		t.Fatalf("CancelRotateSecret VersionId = %s, want %s", aws.ToString(cr.VersionId), aws.ToString(out.VersionId))
	}
	d, err := c.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String("cancel")})
	if err != nil {
		t.Fatal(err)
	}
	if d.RotationEnabled == nil || *d.RotationEnabled {
		t.Fatalf("RotationEnabled = %v, want false", d.RotationEnabled)
	}
	if st := d.VersionIdsToStages[aws.ToString(out.VersionId)]; !slices.Equal(st, []string{"AWSPENDING"}) {
		t.Fatalf("AWSPENDING not kept: %v", d.VersionIdsToStages)
	}
}

func TestRotationProgressIsReadableWhileRunning(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	var once sync.Once
	srv, c := newServer(t, Options{Invoker: InvokerFunc(func(ctx context.Context, _ string, ev Event) error {
		if ev.Step == StepSet {
			once.Do(func() { close(entered) })
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})})
	createSecret(t, c, "live", "pw")
	rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String("live"), RotationLambdaARN: aws.String(fnARN)})
	<-entered
	rs := srv.Rotations("live")
	if len(rs) != 1 || rs[0].State != RotationRunning {
		t.Fatalf("rotations while running: %+v", rs)
	}
	steps := rs[0].Attempts[0].Steps
	if len(steps) != 2 || !steps[0].Done || steps[1].Step != StepSet || steps[1].Done {
		t.Fatalf("steps while running: %+v, want createSecret done and setSecret in progress", steps)
	}
	_, err := c.RotateSecret(context.Background(), &secretsmanager.RotateSecretInput{SecretId: aws.String("live")})
	wantAPIError(t, err, "InvalidRequestException", msgPreviousRotation)
	close(release)
	if r := waitRotation(t, srv, "live"); r.State != RotationSucceeded || len(r.Attempts[0].Steps) != 4 {
		t.Fatalf("after release: %+v", r)
	}
}

func TestWaitRotationWithoutRotationIsErrNoRotation(t *testing.T) {
	srv, c := newServer(t, Options{})
	createSecret(t, c, "never", "pw")
	if _, err := srv.WaitRotation(context.Background(), "never"); !errors.Is(err, ErrNoRotation) {
		t.Fatalf("WaitRotation = %v, want ErrNoRotation", err)
	}
}

func TestCloseStopsBackgroundRotations(t *testing.T) {
	srv, err := New(Options{Retry: RetryPolicy{Attempts: 1000, Backoff: time.Hour}, Invoker: InvokerFunc(func(context.Context, string, Event) error {
		return errors.New("always fails")
	})})
	if err != nil {
		t.Fatal(err)
	}
	url, err := srv.ListenAndServe("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(url)
	createSecret(t, c, "closing", "pw")
	rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String("closing"), RotationLambdaARN: aws.String(fnARN)})
	done := make(chan struct{})
	go func() { srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return while a rotation was backing off")
	}
	if r := srv.Rotations("closing"); len(r) != 1 || r[0].State != RotationFailed {
		t.Fatalf("rotation after Close: %+v, want failed", r)
	}
}

func TestSchedulerStartsDueRotations(t *testing.T) {
	clk := newFakeClock()
	srv, c, fn := rotationServer(t, Options{Clock: clk.Now})
	createSecret(t, c, "sched", "pw")
	createSecret(t, c, "unscheduled", "pw")
	rotate(t, c, &secretsmanager.RotateSecretInput{
		SecretId: aws.String("sched"), RotationLambdaARN: aws.String(fnARN), RotateImmediately: aws.Bool(false),
		RotationRules: &types.RotationRulesType{ScheduleExpression: aws.String("rate(6 hours)")},
	})
	waitRotation(t, srv, "sched")
	ctx := context.Background()
	if started := srv.Tick(ctx); len(started) != 0 {
		t.Fatalf("Tick before the date started %v", started)
	}
	clk.Advance(6 * time.Hour)
	started := srv.Tick(ctx)
	if len(started) != 1 {
		t.Fatalf("Tick started %v, want the scheduled secret", started)
	}
	r := waitRotation(t, srv, "sched")
	if r.State != RotationSucceeded || !r.Scheduled {
		t.Fatalf("scheduled rotation %+v", r)
	}
	if v, _ := current(t, c, "sched"); v != "pw+" {
		t.Fatalf("value after the scheduled rotation %s", fp(v))
	}
	if n := len(fn.steps()); n != 5 {
		t.Fatalf("%d invocations, want testSecret then four steps", n)
	}
	d, _ := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("sched")})
	// The window opening 6 hours on closes an hour later (rate in hours, no Duration).
	if want := clk.Now().Add(7 * time.Hour); d.NextRotationDate == nil || !d.NextRotationDate.Equal(want) {
		t.Fatalf("NextRotationDate = %v, want %v", d.NextRotationDate, want)
	}
	if started := srv.Tick(ctx); len(started) != 0 {
		t.Fatalf("Tick right after a rotation started %v", started)
	}
}

func TestSchedulerReattemptsFailedRotationWithItsToken(t *testing.T) {
	clk := newFakeClock()
	srv, c, fn := rotationServer(t, Options{Clock: clk.Now, Retry: RetryPolicy{Attempts: 1}})
	createSecret(t, c, "reattempt", "pw")
	var failing atomic.Bool
	failing.Store(true)
	fn.fail = func(ev Event) error {
		if failing.Load() {
			return errors.New("down")
		}
		return nil
	}
	out := rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String("reattempt"), RotationLambdaARN: aws.String(fnARN),
		RotationRules: &types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(1)}})
	if r := waitRotation(t, srv, "reattempt"); r.State != RotationFailed {
		t.Fatalf("first rotation %s", r.State)
	}
	failing.Store(false)
	clk.Advance(24 * time.Hour)
	srv.Tick(context.Background())
	r := waitRotation(t, srv, "reattempt")
	if r.State != RotationSucceeded || r.Token != aws.ToString(out.VersionId) {
		t.Fatalf("reattempt %+v, want success with token %s", r, aws.ToString(out.VersionId))
	}
}

func rotateByName(t *testing.T, c *secretsmanager.Client, name string) {
	t.Helper()
	rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String(name), RotationLambdaARN: aws.String(fnARN)})
}

func TestRotationDatesAreNullWhenRotationIsDisabled(t *testing.T) {
	srv, c, _ := rotationServer(t, Options{})
	createSecret(t, c, "dates", "pw")
	rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String("dates"), RotationLambdaARN: aws.String(fnARN),
		RotationRules: &types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(7)}})
	waitRotation(t, srv, "dates")
	ctx := context.Background()
	if _, err := c.CancelRotateSecret(ctx, &secretsmanager.CancelRotateSecretInput{SecretId: aws.String("dates")}); err != nil {
		t.Fatal(err)
	}
	d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("dates")})
	if err != nil {
		t.Fatal(err)
	}
	if d.LastRotatedDate != nil || d.NextRotationDate != nil {
		t.Fatalf("LastRotatedDate %v, NextRotationDate %v; want both null once rotation is disabled", d.LastRotatedDate, d.NextRotationDate)
	}
	if d.RotationRules == nil || aws.ToInt64(d.RotationRules.AutomaticallyAfterDays) != 7 || aws.ToString(d.RotationLambdaARN) != fnARN {
		t.Fatalf("a disabled rotation's rules and function must still be shown: %+v", d)
	}
}

func TestManualUpdateCountsAsRotationForAutomaticallyAfterDays(t *testing.T) {
	clk := newFakeClock()
	srv, c, _ := rotationServer(t, Options{Clock: clk.Now})
	createSecret(t, c, "manual", "pw")
	rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String("manual"), RotationLambdaARN: aws.String(fnARN),
		RotationRules: &types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(10)}})
	waitRotation(t, srv, "manual")
	clk.Advance(5 * 24 * time.Hour)
	put(t, c, "manual", token(1), "by hand")
	d, err := c.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String("manual")})
	if err != nil {
		t.Fatal(err)
	}
	if want := dayOf(clk.Now()).AddDate(0, 0, 11).Add(-time.Second); d.NextRotationDate == nil || !d.NextRotationDate.Equal(want) {
		t.Fatalf("NextRotationDate = %v, want %v (10 days after the manual update)", d.NextRotationDate, want)
	}
}

func TestCancelRotateSecretCancelsRotationInProgress(t *testing.T) {
	entered := make(chan struct{})
	var once sync.Once
	srv, c := newServer(t, Options{Invoker: InvokerFunc(func(ctx context.Context, _ string, ev Event) error {
		if ev.Step == StepSet {
			once.Do(func() { close(entered) })
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})})
	createSecret(t, c, "inflight", "pw")
	_, oldVer := current(t, c, "inflight")
	out := rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String("inflight"), RotationLambdaARN: aws.String(fnARN)})
	<-entered
	cr, err := c.CancelRotateSecret(context.Background(), &secretsmanager.CancelRotateSecretInput{SecretId: aws.String("inflight")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(cr.VersionId) != aws.ToString(out.VersionId) {
		t.Fatalf("VersionId = %s, want the running rotation's %s", aws.ToString(cr.VersionId), aws.ToString(out.VersionId))
	}
	r := waitRotation(t, srv, "inflight")
	if r.State != RotationFailed || len(r.Attempts) != 1 || !strings.Contains(r.Err, "canceled by CancelRotateSecret") {
		t.Fatalf("rotation after cancel: state %s, %d attempts, err %q", r.State, len(r.Attempts), r.Err)
	}
	if _, ver := current(t, c, "inflight"); ver != oldVer {
		t.Fatalf("AWSCURRENT moved to %s after a canceled rotation", ver)
	}
}

// TestRotationsOfADeletedSecret: the record of a secret's rotations stays
// readable by name, ARN and partial ARN after the secret is deleted, and
// another secret's name that merely shares a prefix finds nothing.
func TestRotationsOfADeletedSecret(t *testing.T) {
	srv, c, _ := rotationServer(t, Options{})
	arn := createSecret(t, c, "gone", "pw")
	createSecret(t, c, "gone-too", "pw")
	rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String("gone"), RotationLambdaARN: aws.String(fnARN)})
	if r := waitRotation(t, srv, "gone"); r.State != RotationSucceeded {
		t.Fatalf("rotation %s: %s", r.State, r.Err)
	}
	if _, err := c.DeleteSecret(context.Background(), &secretsmanager.DeleteSecretInput{SecretId: aws.String(arn), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"gone", arn, arn[:len(arn)-7]} {
		if got := srv.Rotations(id); len(got) != 1 || got[0].SecretARN != arn {
			t.Fatalf("Rotations(%q) after delete = %d rotations, want the one of %s", id, len(got), arn)
		}
	}
	if got := srv.Rotations("gone-too"); len(got) != 0 {
		t.Fatalf("Rotations(gone-too) = %d rotations of another secret, want none", len(got))
	}
}
