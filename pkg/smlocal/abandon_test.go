package smlocal

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// eventually polls cond (cheaply: it reads the server's memory) until it
// holds, failing the test with what after 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// rotationOf returns the secret's rotation whose token is tok.
func rotationOf(srv *Server, id, tok string) (Rotation, bool) {
	for _, r := range srv.Rotations(id) {
		if r.Token == tok {
			return r, true
		}
	}
	return Rotation{}, false
}

func removePending(t *testing.T, c *secretsmanager.Client, id, version string) {
	t.Helper()
	if _, err := c.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String(id), VersionStage: aws.String("AWSPENDING"), RemoveFromVersionId: aws.String(version),
	}); err != nil {
		t.Fatalf("remove AWSPENDING from %s: %v", version, err)
	}
}

// TestRotateSecretRightAfterPendingRemovedDuringBackoff: a failed rotation
// waiting out a (one hour) retry backoff blocks RotateSecret only through
// its AWSPENDING label. Once that is removed by hand, RotateSecret is
// accepted at once, the old run ends as abandoned without another attempt,
// and the new rotation runs to success.
func TestRotateSecretRightAfterPendingRemovedDuringBackoff(t *testing.T) {
	srv, c, fn := rotationServer(t, Options{Retry: RetryPolicy{Attempts: 3, Backoff: time.Hour}})
	createSecret(t, c, "backoff", "pw")
	_, oldVer := current(t, c, "backoff")
	tokA, tokB := token(1), token(2)
	fn.fail = func(ev Event) error {
		if ev.ClientRequestToken == tokA {
			return errors.New("database unreachable")
		}
		return nil
	}
	rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String("backoff"), RotationLambdaARN: aws.String(fnARN), ClientRequestToken: aws.String(tokA)})
	eventually(t, "the first attempt did not fail", func() bool {
		r, _ := rotationOf(srv, "backoff", tokA)
		return len(r.Attempts) == 1 && r.Attempts[0].Err != ""
	})
	// In backoff with AWSPENDING on its token: refused, by the labels.
	_, err := c.RotateSecret(context.Background(), &secretsmanager.RotateSecretInput{SecretId: aws.String("backoff"), ClientRequestToken: aws.String(tokB)})
	wantAPIError(t, err, "InvalidRequestException", msgPreviousRotation)

	removePending(t, c, "backoff", tokA)
	out := rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String("backoff"), ClientRequestToken: aws.String(tokB)})
	if aws.ToString(out.VersionId) != tokB {
		t.Fatalf("RotateSecret VersionId %s, want %s", aws.ToString(out.VersionId), tokB)
	}
	r := waitRotation(t, srv, "backoff")
	if r.Token != tokB || r.State != RotationSucceeded {
		t.Fatalf("WaitRotation returned %s %s (%s), want the new rotation succeeded", r.Token, r.State, r.Err)
	}
	eventually(t, "the abandoned run is still waiting out its backoff", func() bool {
		r, _ := rotationOf(srv, "backoff", tokA)
		return r.State != RotationRunning
	})
	old, _ := rotationOf(srv, "backoff", tokA)
	if old.State != RotationFailed || len(old.Attempts) != 1 || !strings.Contains(old.Err, "AWSPENDING was removed from version "+tokA) || !strings.Contains(old.Err, "abandoned") {
		t.Fatalf("old rotation: %s after %d attempts, err %q; want failed after 1, saying it was abandoned", old.State, len(old.Attempts), old.Err)
	}
	var stepsA []string
	for _, ev := range fn.events {
		if ev.ClientRequestToken == tokA {
			stepsA = append(stepsA, ev.Step)
		}
	}
	if !slices.Equal(stepsA, []string{StepCreate}) {
		t.Fatalf("steps invoked with the abandoned token %v, want only the first attempt's createSecret", stepsA)
	}
	if v, ver := current(t, c, "backoff"); v != "pw+" || ver != tokB {
		t.Fatalf("AWSCURRENT %s (%s), want the new rotation's", ver, fp(v))
	}
	got := stagesOf(t, c, "backoff")
	if _, ok := got[tokA]; ok || !slices.Equal(got[oldVer], []string{"AWSPREVIOUS"}) {
		t.Fatalf("labels %v: want the abandoned version unlabeled and AWSPREVIOUS on %s", got, oldVer)
	}
}

// blockedStep is an Invoker around a protocolFunction that holds the first
// invocation of one step of one token, once the function has done its work,
// until release is closed; it then reports whether that invocation's
// context had been canceled meanwhile.
type blockedStep struct {
	fn       *protocolFunction
	token    string
	step     string
	entered  chan struct{}
	release  chan struct{}
	canceled chan bool
	once     sync.Once
}

func (b *blockedStep) Invoke(ctx context.Context, arn string, ev Event) error {
	err := b.fn.Invoke(ctx, arn, ev)
	if ev.ClientRequestToken == b.token && ev.Step == b.step {
		first := false
		b.once.Do(func() { first = true; close(b.entered) })
		if first { // a retry of the step runs through
			<-b.release
			b.canceled <- ctx.Err() != nil
		}
	}
	return err
}

// blockedServer is a rotationServer whose function holds step of token.
func blockedServer(t *testing.T, opts Options, token, step string) (*Server, *secretsmanager.Client, *blockedStep) {
	t.Helper()
	b := &blockedStep{fn: &protocolFunction{}, token: token, step: step,
		entered: make(chan struct{}), release: make(chan struct{}), canceled: make(chan bool, 1)}
	opts.Invoker = b
	srv, c := newServer(t, opts)
	b.fn.c = c
	t.Cleanup(func() {
		select {
		case <-b.release:
		default:
			close(b.release)
		}
	})
	return srv, c, b
}

// wantAbandonedAfterStep checks that the rotation of tok, whose step was
// held, ended as abandoned right after that step: the step completed, its
// invocation was not canceled, and no later step or attempt ran.
func wantAbandonedAfterStep(t *testing.T, srv *Server, id, tok string, b *blockedStep) {
	t.Helper()
	if old, _ := rotationOf(srv, id, tok); old.State != RotationRunning {
		t.Fatalf("old rotation %s before its held step returned, want running", old.State)
	}
	close(b.release)
	if <-b.canceled {
		t.Fatal("the in-flight invocation was canceled when AWSPENDING was removed")
	}
	eventually(t, "the old run did not end after its step returned", func() bool {
		r, _ := rotationOf(srv, id, tok)
		return r.State != RotationRunning
	})
	old, _ := rotationOf(srv, id, tok)
	if old.State != RotationFailed || len(old.Attempts) != 1 || !strings.Contains(old.Err, "AWSPENDING was removed from version "+tok) {
		t.Fatalf("old rotation %s after %d attempts (%q), want failed after 1, abandoned", old.State, len(old.Attempts), old.Err)
	}
	steps := old.Attempts[0].Steps
	if n := len(steps); n == 0 || steps[n-1].Step != b.step || !steps[n-1].Done || steps[n-1].Err != "" {
		t.Fatalf("old rotation's steps %+v, want %s completed last", steps, b.step)
	}
}

// TestPendingRemovedDuringAStep: AWSPENDING removed while a step of the
// rotation is in flight. RotateSecret is accepted at once and WaitRotation
// waits for that newest rotation; the in-flight invocation is not canceled,
// and once it returns the old run runs no further step.
func TestPendingRemovedDuringAStep(t *testing.T) {
	tokA, tokB := token(1), token(2)
	srv, c, b := blockedServer(t, Options{Retry: RetryPolicy{Attempts: 3}}, tokA, StepSet)
	createSecret(t, c, "inflight-removed", "pw")
	rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String("inflight-removed"), RotationLambdaARN: aws.String(fnARN), ClientRequestToken: aws.String(tokA)})
	<-b.entered
	removePending(t, c, "inflight-removed", tokA)
	rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String("inflight-removed"), ClientRequestToken: aws.String(tokB)})
	if r := waitRotation(t, srv, "inflight-removed"); r.Token != tokB || r.State != RotationSucceeded {
		t.Fatalf("WaitRotation returned %s %s (%s), want the new rotation succeeded while the old one is in its step", r.Token, r.State, r.Err)
	}
	wantAbandonedAfterStep(t, srv, "inflight-removed", tokA, b)
	if v, ver := current(t, c, "inflight-removed"); ver != tokB || v != "pw+" {
		t.Fatalf("AWSCURRENT %s (%s), want the new rotation's", ver, fp(v))
	}
}

// TestTickSkipsARotationRunningWithPending: a due secret whose rotation is
// running with AWSPENDING is not rotated again; once AWSPENDING is removed
// by hand the running record no longer counts, and Tick starts a rotation
// with a new token.
func TestTickSkipsARotationRunningWithPending(t *testing.T) {
	clk := newFakeClock()
	tokA := token(1)
	srv, c, b := blockedServer(t, Options{Clock: clk.Now, Retry: RetryPolicy{Attempts: 3}}, tokA, StepCreate)
	arn := createSecret(t, c, "tick-inflight", "pw")
	rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String("tick-inflight"), RotationLambdaARN: aws.String(fnARN), ClientRequestToken: aws.String(tokA),
		RotationRules: &types.RotationRulesType{ScheduleExpression: aws.String("rate(6 hours)")}})
	<-b.entered
	clk.Advance(6 * time.Hour)
	ctx := context.Background()
	if started := srv.Tick(ctx); len(started) != 0 {
		t.Fatalf("Tick started %v while a rotation runs with AWSPENDING", started)
	}
	removePending(t, c, "tick-inflight", tokA)
	if started := srv.Tick(ctx); !slices.Equal(started, []string{arn}) {
		t.Fatalf("Tick started %v after AWSPENDING was removed, want %s", started, arn)
	}
	r := waitRotation(t, srv, "tick-inflight")
	if r.Token == tokA || !r.Scheduled || r.State != RotationSucceeded {
		t.Fatalf("scheduled rotation %s %s (%s) scheduled=%v, want a new token, succeeded", r.Token, r.State, r.Err, r.Scheduled)
	}
	wantAbandonedAfterStep(t, srv, "tick-inflight", tokA, b)
	if _, ver := current(t, c, "tick-inflight"); ver != r.Token {
		t.Fatalf("AWSCURRENT on %s, want the scheduled rotation's %s", ver, r.Token)
	}
}

// TestFinishingRotationKeepsANewerRotationsPending: once finishSecret has
// moved AWSCURRENT, AWSPENDING is on AWSCURRENT's version, so a new
// RotateSecret is accepted while the old run is still in that step. When
// the old run then ends as succeeded it must not take AWSPENDING off the
// new rotation's version (here one that failed and so keeps it).
func TestFinishingRotationKeepsANewerRotationsPending(t *testing.T) {
	tokA, tokB := token(1), token(2)
	srv, c, b := blockedServer(t, Options{Retry: RetryPolicy{Attempts: 2}}, tokA, StepFinish)
	b.fn.fail = func(ev Event) error {
		if ev.ClientRequestToken == tokB {
			return errors.New("database unreachable")
		}
		return nil
	}
	createSecret(t, c, "overlap", "pw")
	rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String("overlap"), RotationLambdaARN: aws.String(fnARN), ClientRequestToken: aws.String(tokA)})
	<-b.entered
	if got := stagesOf(t, c, "overlap"); !slices.Equal(got[tokA], []string{"AWSCURRENT", "AWSPENDING"}) {
		t.Fatalf("labels during finishSecret %v, want AWSCURRENT and AWSPENDING on %s", got, tokA)
	}
	rotate(t, c, &secretsmanager.RotateSecretInput{SecretId: aws.String("overlap"), ClientRequestToken: aws.String(tokB)})
	if r := waitRotation(t, srv, "overlap"); r.Token != tokB || r.State != RotationFailed {
		t.Fatalf("newest rotation %s %s, want %s failed", r.Token, r.State, tokB)
	}
	close(b.release)
	eventually(t, "the first rotation did not end", func() bool {
		r, _ := rotationOf(srv, "overlap", tokA)
		return r.State != RotationRunning
	})
	if r, _ := rotationOf(srv, "overlap", tokA); r.State != RotationSucceeded {
		t.Fatalf("first rotation %s (%s), want succeeded", r.State, r.Err)
	}
	got := stagesOf(t, c, "overlap")
	if !slices.Equal(got[tokA], []string{"AWSCURRENT"}) || !slices.Equal(got[tokB], []string{"AWSPENDING"}) {
		t.Fatalf("labels %v: want AWSCURRENT on %s and the failed rotation's AWSPENDING kept on %s", got, tokA, tokB)
	}
}
