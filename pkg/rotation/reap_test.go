package rotation_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// reapingType records what Reap was given and answers err.
type reapingType struct {
	fakeType
	current string
	pending string
	calls   int
	err     error
	// failGenerate makes createSecret fail, leaving AWSPENDING on a
	// version without a value.
	failGenerate bool
}

func (r *reapingType) Generate(ctx context.Context, req rotation.GenerateRequest) (rotation.GenerateResponse, error) {
	if r.failGenerate {
		return rotation.GenerateResponse{}, errors.New("no passwords today")
	}
	return r.fakeType.Generate(ctx, req)
}

// Probe accepts every version: enough for the probe report's Reaper flag.
func (r *reapingType) Probe(context.Context, rotation.ProbeRequest) error { return nil }

func (r *reapingType) Reap(_ context.Context, req rotation.ReapRequest) (rotation.ReapResponse, error) {
	r.calls++
	r.current, r.pending = req.Current.ID, ""
	if req.Pending != nil {
		r.pending = req.Pending.ID
	}
	if r.err != nil {
		return rotation.ReapResponse{}, r.err
	}
	return rotation.ReapResponse{Dropped: []string{"app_260101000000_abcd"}, Kept: 2}, nil
}

// TestReapAfterFinish: a successful finishSecret reaps with the new
// AWSCURRENT and logs the outcome; a failing reap is logged and the
// rotation still succeeds; a type without Reap is never asked.
func TestReapAfterFinish(t *testing.T) {
	rt := &reapingType{}
	h := newHarness(t, rt)
	arn := h.create(t, "reap", `{"username":"app","password":"old-password-1"}`)
	if r := h.rotate(t, arn); r.State != smlocal.RotationSucceeded {
		t.Fatalf("rotation: %s", r.Err)
	}
	cur, _ := h.client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if rt.calls != 1 || rt.current != aws.ToString(cur.VersionId) || rt.pending != "" {
		t.Fatalf("Reap: %d calls, current %s pending %q; want one call with the new AWSCURRENT %s", rt.calls, rt.current, rt.pending, aws.ToString(cur.VersionId))
	}
	h.logMu.Lock()
	logs := h.logs.String()
	h.logMu.Unlock()
	if !strings.Contains(logs, `"reap":"dropped 1 expired, kept 2: app_260101000000_abcd"`) {
		t.Fatalf("the finishSecret line does not say what the reap did: %s", logs)
	}
	rt.err = errors.New("master refused")
	if r := h.rotate(t, arn); r.State != smlocal.RotationSucceeded {
		t.Fatalf("a failing reap failed the rotation: %s", r.Err)
	}
	h.logMu.Lock()
	logs = h.logs.String()
	h.logMu.Unlock()
	if !strings.Contains(logs, `"reap":"failed (the rotation is complete; the next rotation or the watch's reapSecret retries): master refused"`) {
		t.Fatalf("the failed reap is not logged: %s", logs)
	}
}

// TestReapStep: reapSecret needs the ability and the AWSCURRENT token,
// passes AWSPENDING while a rotation is unfinished, and answers a report
// naming what was dropped; the probe report says the type reaps.
func TestReapStep(t *testing.T) {
	rt := &reapingType{}
	h := newHarness(t, rt)
	arn := h.create(t, "reapstep", `{"username":"app","password":"old-password-1"}`)
	if r := h.rotate(t, arn); r.State != smlocal.RotationSucceeded {
		t.Fatalf("rotation: %s", r.Err)
	}
	cur, _ := h.client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	prev, _ := h.client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionStage: aws.String("AWSPREVIOUS")})
	reap := func(token string) (*rotation.Event, error) {
		ev := rotation.Event{Step: rotation.StepReap, SecretID: arn, ClientRequestToken: token}
		r, err := h.handler.Invoke(context.Background(), ev)
		if err == nil && (r == nil || r.Action != rotation.ActionReap || strings.Join(r.Reaped, ",") != "app_260101000000_abcd" || r.ReapKept != 2) {
			t.Fatalf("reapSecret answered %+v", r)
		}
		return &ev, err
	}
	if _, err := reap(aws.ToString(prev.VersionId)); !errors.Is(err, rotation.ErrReapRefused) {
		t.Fatalf("reap with AWSPREVIOUS: %v, want ErrReapRefused", err)
	}
	if _, err := reap(aws.ToString(cur.VersionId)); err != nil || rt.pending != "" {
		t.Fatalf("reap with AWSCURRENT: %v (pending %q)", err, rt.pending)
	}
	rt.set = func(context.Context, rotation.SetRequest) error { return errors.New("db down") }
	r := h.rotate(t, arn)
	if r.State != smlocal.RotationFailed {
		t.Fatalf("rotation should fail, got %s", r.State)
	}
	if _, err := reap(aws.ToString(cur.VersionId)); err != nil || rt.pending == "" || rt.pending == aws.ToString(cur.VersionId) {
		t.Fatalf("reap during an unfinished rotation: %v, pending %q; want AWSPENDING's version passed", err, rt.pending)
	}
	// A rotation that failed at createSecret: AWSPENDING's version has no
	// value, so there is nothing of it to keep, and the reap goes ahead.
	pendingID := rt.pending
	if _, err := h.client.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(arn), VersionStage: aws.String("AWSPENDING"), RemoveFromVersionId: aws.String(pendingID)}); err != nil {
		t.Fatal(err)
	}
	rt.set, rt.failGenerate = nil, true
	if r := h.rotate(t, arn); r.State != smlocal.RotationFailed {
		t.Fatalf("rotation should fail at createSecret, got %s", r.State)
	}
	if _, err := reap(aws.ToString(cur.VersionId)); err != nil || rt.pending != "" {
		t.Fatalf("reap while AWSPENDING has no value: %v (pending %q)", err, rt.pending)
	}
	report, err := h.handler.Invoke(context.Background(), rotation.Event{Step: rotation.StepProbe, SecretID: arn, ClientRequestToken: aws.ToString(cur.VersionId)})
	if err != nil || report == nil || !report.Reaper {
		t.Fatalf("probe report %+v (%v): want reaper true", report, err)
	}

	plain := newHarness(t, &fakeType{})
	parn := plain.create(t, "noreap", `{"password":"old-password-1"}`)
	pcur, _ := plain.client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(parn)})
	if err := plain.handler.Handle(context.Background(), rotation.Event{Step: rotation.StepReap, SecretID: parn, ClientRequestToken: aws.ToString(pcur.VersionId)}); !errors.Is(err, rotation.ErrCannotReap) {
		t.Fatalf("reap of a type without Reap: %v, want ErrCannotReap", err)
	}
}
