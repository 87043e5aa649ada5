package rotation_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/recovery"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// oneUser is a downstream with one user who has exactly one password, as a
// database user has: what the single-user types rotate. The engine tests
// below drive it through the real engine and local Secrets Manager; the
// real databases are proven by the conformance suite of each type.
type oneUser struct {
	mu          sync.Mutex
	password    string
	unreachable bool
	failTest    bool // Test fails although the password is right
	failRestore bool
	failSet     error // Set fails with it after setting the password
	refuseSet   error // Set fails with it before changing anything
	restores    int
	restoreLeft time.Duration // time left on the restore's context
	testBlocks  bool          // Test waits for its context to end
	onRestore   func()        // called when Restore starts
	probes      int
	afterProbe  func(n int) // called after the n-th Probe
}

func (u *oneUser) pw(v rotation.Version) string {
	var f struct{ Password string }
	_ = json.Unmarshal([]byte(v.Value), &f)
	return f.Password
}

func (u *oneUser) login(v rotation.Version) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.unreachable {
		return &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	}
	if u.pw(v) != u.password {
		return fmt.Errorf("%w: password authentication failed", rotation.ErrRefused)
	}
	return nil
}

func (u *oneUser) setPassword(p string) {
	u.mu.Lock()
	u.password = p
	u.mu.Unlock()
}

func (u *oneUser) current() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.password
}

func (u *oneUser) Validate(_ context.Context, v rotation.Version) error {
	_, err := v.Fields()
	return err
}

func (u *oneUser) Generate(_ context.Context, req rotation.GenerateRequest) (rotation.GenerateResponse, error) {
	pw, err := req.Passwords.Generate()
	return rotation.GenerateResponse{Changes: map[string]any{"password": pw}}, err
}

func (u *oneUser) Set(ctx context.Context, req rotation.SetRequest) (err error) {
	u.mu.Lock()
	failSet, refuseSet := u.failSet, u.refuseSet
	u.mu.Unlock()
	if refuseSet != nil {
		return refuseSet
	}
	if failSet != nil {
		defer func() { err = failSet }()
	}
	if u.login(req.Pending) == nil {
		return nil
	}
	if err := u.login(req.Current); err != nil {
		prev, ok, perr := req.Previous(ctx)
		if perr != nil || !ok || u.login(prev) != nil {
			return err
		}
	}
	u.setPassword(u.pw(req.Pending))
	return nil
}

func (u *oneUser) Test(ctx context.Context, req rotation.TestRequest) error {
	u.mu.Lock()
	fail, block := u.failTest, u.testBlocks
	u.mu.Unlock()
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	if fail {
		return errors.New("the test query failed")
	}
	return u.login(req.Pending)
}

func (u *oneUser) Restore(ctx context.Context, req rotation.RestoreRequest) (bool, error) {
	u.mu.Lock()
	u.restores++
	if d, ok := ctx.Deadline(); ok {
		u.restoreLeft = time.Until(d)
	}
	fail, hook := u.failRestore, u.onRestore
	u.onRestore = nil
	u.mu.Unlock()
	if hook != nil {
		hook()
	}
	if fail {
		return false, errors.New("the server is in maintenance")
	}
	if u.login(req.Current) == nil {
		return false, nil
	}
	if err := u.login(req.Pending); err != nil {
		prev, ok, perr := req.Previous(ctx)
		if perr != nil || !ok || u.login(prev) != nil {
			return false, err
		}
	}
	u.setPassword(u.pw(req.Current))
	return true, nil
}

func (u *oneUser) Probe(_ context.Context, req rotation.ProbeRequest) error {
	err := u.login(req.Version)
	u.mu.Lock()
	u.probes++
	n, hook := u.probes, u.afterProbe
	u.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	return err
}

// faultClient is the real SDK client whose UpdateSecretVersionStage fails
// when told: before the call reaches Secrets Manager, or after it took effect.
type faultClient struct {
	rotation.SecretsManager
	mu     sync.Mutex
	before bool
	after  bool
	// late, when set, fails the call at once and hands the real call to
	// late, which makes it when it likes: a move that lands after its
	// caller gave up.
	late func(apply func())
}

func (c *faultClient) UpdateSecretVersionStage(ctx context.Context, in *secretsmanager.UpdateSecretVersionStageInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error) {
	c.mu.Lock()
	before, after, late := c.before, c.after, c.late
	c.late = nil
	c.mu.Unlock()
	if late != nil {
		late(func() { _, _ = c.SecretsManager.UpdateSecretVersionStage(context.WithoutCancel(ctx), in, opts...) })
		return nil, context.DeadlineExceeded
	}
	if before {
		return nil, errors.New("InternalServiceError: injected before the call")
	}
	out, err := c.SecretsManager.UpdateSecretVersionStage(ctx, in, opts...)
	if err == nil && after {
		return nil, errors.New("InternalServiceError: injected after the call took effect")
	}
	return out, err
}

func (c *faultClient) set(before, after bool) {
	c.mu.Lock()
	c.before, c.after = before, after
	c.mu.Unlock()
}

type singleEnv struct {
	*harness
	user  *oneUser
	fault *faultClient
}

func newSingleEnv(t *testing.T) *singleEnv {
	t.Helper()
	u := &oneUser{password: "initial-password-1"}
	h := newHarness(t, u)
	fc := &faultClient{SecretsManager: h.client}
	var err error
	h.handler, err = rotation.NewHandler(u, rotation.Options{Client: fc, Logger: slog.New(slog.NewJSONHandler(lockedWriter{h.logMu, h.logs}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return &singleEnv{harness: h, user: u, fault: fc}
}

func (e *singleEnv) secret(t *testing.T) string {
	t.Helper()
	return e.create(t, fmt.Sprintf("single-%d", time.Now().UnixNano()), `{"username":"app","password":"initial-password-1"}`)
}

func (e *singleEnv) value(t *testing.T, arn, label string) (string, string) {
	t.Helper()
	out, err := e.client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionStage: aws.String(label)})
	if err != nil {
		t.Fatalf("read %s: %v", label, err)
	}
	return aws.ToString(out.VersionId), aws.ToString(out.SecretString)
}

func (e *singleEnv) valueOf(t *testing.T, arn, id string) (string, string) {
	t.Helper()
	out, err := e.client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionId: aws.String(id)})
	if err != nil {
		t.Fatalf("read version %s: %v", id, err)
	}
	return aws.ToString(out.VersionId), aws.ToString(out.SecretString)
}

func (e *singleEnv) currentLogsIn(t *testing.T, arn string) bool {
	t.Helper()
	_, v := e.value(t, arn, rotation.LabelCurrent)
	return e.user.login(rotation.Version{Value: v}) == nil
}

func (e *singleEnv) step(t *testing.T, step, arn, token string) (*recovery.Report, error) {
	t.Helper()
	return e.handler.Invoke(context.Background(), rotation.Event{Step: step, SecretID: arn, ClientRequestToken: token})
}

func (e *singleEnv) labels(t *testing.T, arn string) map[string][]string {
	t.Helper()
	out, err := e.client.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	return out.VersionIdsToStages
}

func holderOf(stages map[string][]string, label string) string {
	for id, s := range stages {
		for _, l := range s {
			if l == label {
				return id
			}
		}
	}
	return ""
}

func TestFailedTestRestoresCurrentDownstream(t *testing.T) {
	e := newSingleEnv(t)
	arn := e.secret(t)
	e.user.failTest = true
	r := e.rotate(t, arn)
	if r.State != smlocal.RotationFailed {
		t.Fatalf("rotation %s, want failed", r.State)
	}
	if !strings.Contains(r.Err, "was restored downstream") {
		t.Fatalf("the error does not say AWSCURRENT was restored: %s", r.Err)
	}
	if !e.currentLogsIn(t, arn) {
		t.Fatal("after the failed testSecret, AWSCURRENT does not log in")
	}
	if !strings.Contains(e.logText(), `"restore":"succeeded"`) {
		t.Fatal("the step's log line does not say the restore succeeded")
	}
	// The rotation's retry sets the pending password again and finishes.
	e.user.failTest = false
	pending := holderOf(e.labels(t, arn), rotation.LabelPending)
	for _, step := range []string{rotation.StepSet, rotation.StepTest, rotation.StepFinish} {
		if _, err := e.step(t, step, arn, pending); err != nil {
			t.Fatalf("retry %s: %v", step, err)
		}
	}
	if !e.currentLogsIn(t, arn) || holderOf(e.labels(t, arn), rotation.LabelCurrent) != pending {
		t.Fatal("the retried rotation did not make the new password current")
	}
}

func TestFailedRestoreIsReported(t *testing.T) {
	e := newSingleEnv(t)
	arn := e.secret(t)
	e.user.failTest, e.user.failRestore = true, true
	r := e.rotate(t, arn)
	if !strings.Contains(r.Err, "restoring AWSCURRENT's credential downstream failed too") || !strings.Contains(e.logText(), `"restore":"failed"`) {
		t.Fatalf("a failed restore is not reported in the error and the log: %s", r.Err)
	}
	if e.currentLogsIn(t, arn) {
		t.Fatal("the test is void: AWSCURRENT logs in although the restore failed")
	}
}

func TestFailedSetAfterChangeIsRestored(t *testing.T) {
	e := newSingleEnv(t)
	arn := e.secret(t)
	e.user.failSet = errors.New("the reply to the password change was lost")
	r := e.rotate(t, arn)
	if r.State != smlocal.RotationFailed || !strings.Contains(r.Err, "was restored downstream") || !strings.Contains(e.logText(), `"restore":"succeeded"`) {
		t.Fatalf("rotation %s: %s; want a failed setSecret that restored AWSCURRENT", r.State, r.Err)
	}
	if !e.currentLogsIn(t, arn) {
		t.Fatal("AWSCURRENT does not log in after setSecret failed after changing the password")
	}
}

func TestSetThatChangedNothingIsNotRestored(t *testing.T) {
	e := newSingleEnv(t)
	arn := e.secret(t)
	e.user.refuseSet = fmt.Errorf("the database is another one; %w", rotation.ErrUnchanged)
	r := e.rotate(t, arn)
	if r.State != smlocal.RotationFailed || strings.Contains(r.Err, "restor") || strings.Contains(e.logText(), `"restore"`) || e.user.restores != 0 {
		t.Fatalf("rotation %s: %s (%d restores); want a failed setSecret without a restore", r.State, r.Err, e.user.restores)
	}
	if !e.currentLogsIn(t, arn) {
		t.Fatal("AWSCURRENT does not log in")
	}
}

func TestNoRestoreWithoutTheAbility(t *testing.T) {
	h := newHarness(t, &fakeType{test: func(context.Context, rotation.TestRequest) error { return errors.New("boom") }})
	arn := h.create(t, "plain", `{"password":"initial-password-1"}`)
	r := h.rotate(t, arn)
	if r.State != smlocal.RotationFailed || strings.Contains(r.Err, "restor") || strings.Contains(h.logText(), `"restore"`) {
		t.Fatalf("a type without Restore was restored, or the rotation did not fail: %s %s", r.State, r.Err)
	}
}

func TestFailedFinishRestoresOnlyWhenTheLabelStayed(t *testing.T) {
	t.Run("before the call took effect", func(t *testing.T) {
		e := newSingleEnv(t)
		arn := e.secret(t)
		e.fault.set(true, false)
		r := e.rotate(t, arn)
		if r.State != smlocal.RotationFailed || !strings.Contains(r.Err, "was restored downstream") {
			t.Fatalf("rotation %s: %s; want a failure that restored AWSCURRENT", r.State, r.Err)
		}
		if !e.currentLogsIn(t, arn) {
			t.Fatal("after the failed finishSecret, AWSCURRENT does not log in")
		}
	})
	t.Run("after the call took effect", func(t *testing.T) {
		e := newSingleEnv(t)
		arn := e.secret(t)
		e.fault.set(false, true)
		r := e.rotate(t, arn)
		if r.State != smlocal.RotationSucceeded {
			t.Fatalf("rotation %s: %s; the label moved, so finishSecret succeeded", r.State, r.Err)
		}
		if e.user.restores != 0 {
			t.Fatal("the engine restored the old password although AWSCURRENT had moved: the application is locked out")
		}
		if !e.currentLogsIn(t, arn) {
			t.Fatal("AWSCURRENT does not log in")
		}
		if !strings.Contains(e.logText(), "AWSCURRENT moved to the version although the call reported a failure") {
			t.Fatal("the log line does not say why a failed call counted as success")
		}
	})
}

// TestLateLabelMove: finishSecret's call gives up (a timeout) but the move
// lands later, after the engine put AWSCURRENT's old password back: the
// engine must set the new one again, at once when the move lands during
// the restore, or on the retry's finishSecret when it lands after the step.
func TestLateLabelMove(t *testing.T) {
	t.Run("lands during the restore", func(t *testing.T) {
		e := newSingleEnv(t)
		arn := e.secret(t)
		e.fault.mu.Lock()
		e.fault.late = func(apply func()) { e.user.onRestore = apply }
		e.fault.mu.Unlock()
		r := e.rotate(t, arn)
		if r.State != smlocal.RotationSucceeded {
			t.Fatalf("rotation %s: %s; the move landed, so finishSecret should end well", r.State, r.Err)
		}
		if !e.currentLogsIn(t, arn) {
			t.Fatal("AWSCURRENT (moved late) does not log in: the restore's old password stayed")
		}
	})
	t.Run("lands after the step", func(t *testing.T) {
		e := newSingleEnv(t)
		arn := e.secret(t)
		var apply func()
		e.fault.mu.Lock()
		e.fault.late = func(a func()) { apply = a }
		e.fault.mu.Unlock()
		r := e.rotate(t, arn)
		if r.State != smlocal.RotationFailed {
			t.Fatalf("rotation %s, want failed (the move had not landed)", r.State)
		}
		token := holderOf(e.labels(t, arn), rotation.LabelPending)
		apply()
		if e.currentLogsIn(t, arn) {
			t.Fatal("the test is void: AWSCURRENT logs in although the restore put the old password back")
		}
		// Secrets Manager retries; the token is AWSCURRENT now.
		for _, step := range []string{rotation.StepCreate, rotation.StepSet, rotation.StepTest, rotation.StepFinish} {
			if _, err := e.step(t, step, arn, token); err != nil {
				t.Fatalf("retry %s: %v", step, err)
			}
		}
		if !e.currentLogsIn(t, arn) {
			t.Fatal("after the retry's finishSecret AWSCURRENT does not log in")
		}
	})
}

// TestAbandonedRotationRestores: when AWSPENDING is removed from the version
// whose password setSecret set (a recovery racing the rotation), the
// rotation's next testSecret or finishSecret still puts AWSCURRENT's back.
func TestAbandonedRotationRestores(t *testing.T) {
	for _, step := range []string{rotation.StepTest, rotation.StepFinish} {
		t.Run(step, func(t *testing.T) {
			e := newSingleEnv(t)
			arn := e.secret(t)
			e.user.failTest = true
			if r := e.rotate(t, arn); r.State != smlocal.RotationFailed {
				t.Fatal(r.State)
			}
			e.user.failTest = false
			token := holderOf(e.labels(t, arn), rotation.LabelPending)
			if _, err := e.step(t, rotation.StepSet, arn, token); err != nil {
				t.Fatal(err)
			}
			if _, err := e.client.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{
				SecretId: aws.String(arn), VersionStage: aws.String(rotation.LabelPending), RemoveFromVersionId: aws.String(token),
			}); err != nil {
				t.Fatal(err)
			}
			if e.currentLogsIn(t, arn) {
				t.Fatal("the test is void: AWSCURRENT logs in")
			}
			_, err := e.step(t, step, arn, token)
			if !errors.Is(err, rotation.ErrNotPending) || !strings.Contains(err.Error(), "was restored downstream") {
				t.Fatalf("%s of an abandoned version: %v; want ErrNotPending with AWSCURRENT restored", step, err)
			}
			if !e.currentLogsIn(t, arn) {
				t.Fatal("AWSCURRENT does not log in")
			}
		})
	}
}

func TestRestoreKeepsTimeBeforeTheDeadline(t *testing.T) {
	e := newSingleEnv(t)
	arn := e.secret(t)
	e.user.failTest = true
	if r := e.rotate(t, arn); r.State != smlocal.RotationFailed {
		t.Fatalf("rotation %s, want failed", r.State)
	}
	pending := holderOf(e.labels(t, arn), rotation.LabelPending)
	if _, err := e.step(t, rotation.StepSet, arn, pending); err != nil {
		t.Fatal(err)
	}
	// testSecret never answers: Lambda's deadline would end the step; the
	// engine cuts it short so that the restore still runs in time.
	e.user.failTest, e.user.testBlocks = false, true
	e.user.restores = 0
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	err := e.handler.Handle(ctx, rotation.Event{Step: rotation.StepTest, SecretID: arn, ClientRequestToken: pending})
	if err == nil || !strings.Contains(err.Error(), "was restored downstream") {
		t.Fatalf("testSecret: %v; want a failure that restored AWSCURRENT", err)
	}
	if took := time.Since(start); took > 3500*time.Millisecond {
		t.Fatalf("the step took %s, past its 3s deadline", took)
	}
	if e.user.restores != 1 || e.user.restoreLeft < 500*time.Millisecond {
		t.Fatalf("restore ran %d times with %s left; want once, with a share of the time kept back", e.user.restores, e.user.restoreLeft)
	}
	if !e.currentLogsIn(t, arn) {
		t.Fatal("AWSCURRENT does not log in after the timed-out testSecret")
	}
}

func TestRecoveryFromProbes(t *testing.T) {
	// stuckAfterSet leaves a rotation whose setSecret changed the password
	// and whose testSecret failed (restore as given).
	stuckAfterSet := func(t *testing.T, e *singleEnv, restore bool) (arn, oldCurrent, pending string) {
		t.Helper()
		arn = e.secret(t)
		oldCurrent, _ = e.value(t, arn, rotation.LabelCurrent)
		e.user.failTest, e.user.failRestore = true, !restore
		if r := e.rotate(t, arn); r.State != smlocal.RotationFailed {
			t.Fatalf("rotation %s, want failed", r.State)
		}
		e.user.failTest, e.user.failRestore = false, false
		return arn, oldCurrent, holderOf(e.labels(t, arn), rotation.LabelPending)
	}
	t.Run("stuck: AWSCURRENT logs in, AWSPENDING is cleared", func(t *testing.T) {
		e := newSingleEnv(t)
		arn, cur, pending := stuckAfterSet(t, e, true)
		r, err := e.step(t, rotation.StepProbe, arn, pending)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != recovery.StateStuck || r.Plan != recovery.PlanClearPending || r.PlanVersion != pending {
			t.Fatalf("probe: %s, plan %s %s; want stuck, clear-pending %s", r.State, r.Plan, r.PlanVersion, pending)
		}
		if _, err := e.step(t, rotation.StepRecover, arn, pending); err != nil {
			t.Fatal(err)
		}
		l := e.labels(t, arn)
		if holderOf(l, rotation.LabelPending) != "" || holderOf(l, rotation.LabelCurrent) != cur || !e.currentLogsIn(t, arn) {
			t.Fatalf("after recovery: labels %v; want AWSPENDING gone and AWSCURRENT unchanged and logging in", l)
		}
		if r := e.rotate(t, arn); r.State != smlocal.RotationSucceeded || !e.currentLogsIn(t, arn) {
			t.Fatalf("a new rotation after recovery: %s %s", r.State, r.Err)
		}
	})
	t.Run("locked out: only AWSPENDING logs in, the rotation is completed", func(t *testing.T) {
		e := newSingleEnv(t)
		arn, cur, pending := stuckAfterSet(t, e, false)
		if e.currentLogsIn(t, arn) {
			t.Fatal("the test is void: AWSCURRENT logs in")
		}
		r, err := e.step(t, rotation.StepProbe, arn, pending)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != recovery.StateLockedOut || r.Plan != recovery.PlanComplete {
			t.Fatalf("probe: %s, plan %s; want locked-out, complete", r.State, r.Plan)
		}
		r, err = e.step(t, rotation.StepRecover, arn, pending)
		if err != nil || !r.Changed || r.Action != recovery.PlanComplete {
			t.Fatalf("recover: %v, %+v", err, r)
		}
		l := e.labels(t, arn)
		if holderOf(l, rotation.LabelCurrent) != pending || holderOf(l, rotation.LabelPrevious) != cur || holderOf(l, rotation.LabelPending) != "" {
			t.Fatalf("after recovery: labels %v; want AWSCURRENT on %s, AWSPREVIOUS on %s, no AWSPENDING", l, pending, cur)
		}
		if !e.currentLogsIn(t, arn) {
			t.Fatal("after recovery AWSCURRENT does not log in")
		}
		if r := e.rotate(t, arn); r.State != smlocal.RotationSucceeded || !e.currentLogsIn(t, arn) {
			t.Fatalf("a new rotation after recovery: %s %s", r.State, r.Err)
		}
	})
	t.Run("locked out: only a deprecated version logs in, it is made current", func(t *testing.T) {
		e := newSingleEnv(t)
		arn, cur, pending := stuckAfterSet(t, e, false)
		// What the old 'rotary unstick' did: AWSPENDING removed from the
		// version holding the live password.
		if _, err := e.client.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{
			SecretId: aws.String(arn), VersionStage: aws.String(rotation.LabelPending), RemoveFromVersionId: aws.String(pending),
		}); err != nil {
			t.Fatal(err)
		}
		r, err := e.step(t, rotation.StepProbe, arn, cur)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != recovery.StateLockedOut || r.Plan != recovery.PlanRestore || r.PlanVersion != pending {
			t.Fatalf("probe: %s, plan %s %s; want locked-out, restore %s", r.State, r.Plan, r.PlanVersion, pending)
		}
		if _, err := e.step(t, rotation.StepRecover, arn, cur); err != nil {
			t.Fatal(err)
		}
		if l := e.labels(t, arn); holderOf(l, rotation.LabelCurrent) != pending || !e.currentLogsIn(t, arn) {
			t.Fatalf("after recovery: labels %v; want AWSCURRENT on the working version %s", l, pending)
		}
	})
	t.Run("drifted: nothing logs in, nothing changes", func(t *testing.T) {
		e := newSingleEnv(t)
		arn, _, pending := stuckAfterSet(t, e, true)
		e.user.setPassword("set-by-someone-else")
		before := e.labels(t, arn)
		r, err := e.step(t, rotation.StepRecover, arn, pending)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != recovery.StateDrifted || r.Changed {
			t.Fatalf("recover: state %s changed %v; want drifted and nothing changed", r.State, r.Changed)
		}
		for _, v := range r.Versions {
			if v.Outcome != recovery.OutcomeRefused || v.Error == "" {
				t.Fatalf("version %s: %s %q; want refused, with the reason", v.VersionID, v.Outcome, v.Error)
			}
		}
		if after := e.labels(t, arn); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("labels changed from %v to %v", before, after)
		}
	})
	t.Run("unreachable: the probes cannot tell, nothing changes", func(t *testing.T) {
		e := newSingleEnv(t)
		arn, _, pending := stuckAfterSet(t, e, false)
		e.user.unreachable = true
		r, err := e.step(t, rotation.StepRecover, arn, pending)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != recovery.StateUnknown || r.Changed || holderOf(e.labels(t, arn), rotation.LabelPending) != pending {
			t.Fatalf("recover: %s changed %v; want unknown and AWSPENDING kept", r.State, r.Changed)
		}
		if v, _ := r.Version(pending); v.Outcome != recovery.OutcomeUnreachable {
			t.Fatalf("pending outcome %s, want unreachable", v.Outcome)
		}
	})
	t.Run("a rotation racing the probes: nothing changes", func(t *testing.T) {
		e := newSingleEnv(t)
		arn, cur, pending := stuckAfterSet(t, e, true)
		_, pendValue := e.valueOf(t, arn, pending)
		// setSecret lands after the probes found AWSCURRENT working and
		// AWSPENDING refused, before the label would come off.
		e.user.probes = 0
		e.user.afterProbe = func(n int) {
			if n == 2 {
				e.user.setPassword(e.user.pw(rotation.Version{Value: pendValue}))
			}
		}
		_, err := e.step(t, rotation.StepRecover, arn, pending)
		if !errors.Is(err, rotation.ErrRecoverRefused) {
			t.Fatalf("recover while the password changed under it: %v, want ErrRecoverRefused", err)
		}
		if l := e.labels(t, arn); holderOf(l, rotation.LabelPending) != pending || holderOf(l, rotation.LabelCurrent) != cur {
			t.Fatalf("labels changed: %v; AWSPENDING holds the live password and must stay", l)
		}
	})
	t.Run("the token must match what the caller saw", func(t *testing.T) {
		e := newSingleEnv(t)
		arn, cur, _ := stuckAfterSet(t, e, true)
		if _, err := e.step(t, rotation.StepRecover, arn, cur); !errors.Is(err, rotation.ErrRecoverRefused) {
			t.Fatalf("recover with AWSCURRENT's token while AWSPENDING is elsewhere: %v, want ErrRecoverRefused", err)
		}
	})
	t.Run("healthy: previous refused", func(t *testing.T) {
		e := newSingleEnv(t)
		arn := e.secret(t)
		if r := e.rotate(t, arn); r.State != smlocal.RotationSucceeded {
			t.Fatal(r.Err)
		}
		cur, _ := e.value(t, arn, rotation.LabelCurrent)
		r, err := e.step(t, rotation.StepProbe, arn, cur)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != recovery.StateHealthy || !r.SingleCredential || len(r.StillValid) != 0 || r.Plan != recovery.PlanNone {
			t.Fatalf("probe of a healthy secret: %+v", r)
		}
		b, _ := json.Marshal(r)
		for _, leak := range []string{"initial-password-1", e.user.current()} {
			if strings.Contains(string(b), leak) || strings.Contains(e.logText(), leak) {
				t.Fatal("a password reached the report or the log")
			}
		}
	})
}

func TestProbeNeedsTheAbility(t *testing.T) {
	h := newHarness(t, &fakeType{})
	arn := h.create(t, "noprobe", `{"password":"initial-password-1"}`)
	out, _ := h.client.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	cur := holderOf(out.VersionIdsToStages, rotation.LabelCurrent)
	if _, err := h.handler.Invoke(context.Background(), rotation.Event{Step: rotation.StepProbe, SecretID: arn, ClientRequestToken: cur}); !errors.Is(err, rotation.ErrCannotProbe) {
		t.Fatalf("probe of a type without Probe: %v, want ErrCannotProbe", err)
	}
}
