package rotationtest

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/recovery"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// failingTest is a credential type whose testSecret fails after setSecret
// has run for real: what a database that stops answering, or refuses the
// user, between the two steps looks like to the engine.
type failingTest struct{ rotation.Credential }

func (failingTest) Test(context.Context, rotation.TestRequest) error { return errInjected }

// withFailingTest wraps c so that Test fails, keeping c's optional abilities.
func withFailingTest(c rotation.Credential) rotation.Credential {
	f := failingTest{c}
	r, isRestorer := c.(rotation.Restorer)
	p, isProber := c.(rotation.Prober)
	switch {
	case isRestorer && isProber:
		return struct {
			failingTest
			rotation.Restorer
			rotation.Prober
		}{f, r, p}
	case isProber:
		return struct {
			failingTest
			rotation.Prober
		}{f, p}
	case isRestorer:
		return struct {
			failingTest
			rotation.Restorer
		}{f, r}
	}
	return f
}

// failingSet is a credential type whose setSecret fails after the real Set
// changed the credential downstream: what a reply lost after the server
// took the change looks like to the engine.
type failingSet struct{ rotation.Credential }

func (f failingSet) Set(ctx context.Context, req rotation.SetRequest) error {
	if err := f.Credential.Set(ctx, req); err != nil {
		return err
	}
	return errInjected
}

// withFailingSet wraps a Restorer so that Set fails after it ran, keeping
// its optional abilities.
func withFailingSet(c rotation.Credential, r rotation.Restorer) rotation.Credential {
	f := failingSet{c}
	if p, ok := c.(rotation.Prober); ok {
		return struct {
			failingSet
			rotation.Restorer
			rotation.Prober
		}{f, r, p}
	}
	return struct {
		failingSet
		rotation.Restorer
	}{f, r}
}

// runSetFault checks, for a Restorer, that a setSecret failing after it
// replaced the credential downstream is followed by a restore: AWSCURRENT
// logs in again while the rotation is retried, and the retry with the
// same token completes it.
func runSetFault(t *testing.T, e *Env, s Subject, seen *valuesSeen) {
	r, ok := s.Credential.(rotation.Restorer)
	if !ok {
		return
	}
	logs := &syncBuffer{}
	failing, err := rotation.NewHandler(withFailingSet(s.Credential, r), rotation.Options{
		Client: e.Client, Passwords: s.Passwords, Logger: slog.New(slog.NewJSONHandler(io.MultiWriter(e.logs, logs), nil)),
	})
	if err != nil {
		t.Fatalf("build the failing handler: %v", err)
	}
	t.Run("Restore/SetFailedAfterChange", func(t *testing.T) {
		arn, old := e.NewSecret(t)
		seen.add(old)
		e.useHandler(failing)
		_, err := e.Rotate(t, arn)
		e.useHandler(nil)
		if err == nil {
			t.Fatal("the rotation succeeded although setSecret always fails")
		}
		if !strings.Contains(err.Error(), "was restored downstream") {
			t.Fatalf("the failed rotation's error does not say AWSCURRENT was restored: %s", err)
		}
		if !slices.ContainsFunc(strings.Split(logs.String(), "\n"), func(l string) bool {
			return strings.Contains(l, `"step":"setSecret"`) && strings.Contains(l, `"restore":"succeeded"`)
		}) {
			t.Fatal("no setSecret log line says the restore succeeded")
		}
		// With the fault still there, applications log in with AWSCURRENT.
		e.mustBeValid(t, "AWSCURRENT after setSecret failed after changing the credential", old)
		pending := labeled(e.Versions(t, arn), rotation.LabelPending)
		if pending == "" {
			t.Fatal("the failed rotation left no AWSPENDING")
		}
		_, pendValue, _ := pendingValue(t, e, arn, pending)
		seen.add(pendValue)
		e.mustBeRefused(t, "AWSPENDING after the restore", pendValue)
		// Secrets Manager retries the whole rotation with the same token.
		for _, st := range steps {
			if err := e.Step(arn, st, pending); err != nil {
				t.Fatalf("retry of %s with the same token: %v", st, err)
			}
		}
		if err := e.removePending(arn, pending); err != nil {
			t.Fatal(err)
		}
		e.mustEndRotated(t, arn, pending, old)
		seen.addCurrent(e, t, arn)
	})
}

// Probe runs the probeSecret step for token.
func (e *Env) Probe(t *testing.T, arn, token string) *recovery.Report {
	t.Helper()
	return e.report(t, rotation.StepProbe, arn, token)
}

// Recover runs the recoverSecret step for token.
func (e *Env) Recover(t *testing.T, arn, token string) *recovery.Report {
	t.Helper()
	return e.report(t, rotation.StepRecover, arn, token)
}

func (e *Env) report(t *testing.T, step, arn, token string) *recovery.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := e.Handler.Invoke(ctx, rotation.Event{Step: step, SecretID: arn, ClientRequestToken: token})
	if err != nil {
		t.Fatalf("%s: %v", step, err)
	}
	if r == nil {
		t.Fatalf("%s answered no report", step)
	}
	return r
}

// labeled returns the version holding label, or "".
func labeled(stages map[string][]string, label string) string {
	for id, s := range stages {
		if slices.Contains(s, label) {
			return id
		}
	}
	return ""
}

// runAbilities checks the optional abilities a type implements: probing
// (Prober) and restoring AWSCURRENT after a failed test (Restorer), and the
// recovery built on them, each proven downstream with Check.
func runAbilities(t *testing.T, e *Env, s Subject, seen *valuesSeen) {
	if _, ok := s.Credential.(rotation.Prober); !ok {
		return
	}
	_, single := s.Credential.(rotation.Restorer)
	ctx := context.Background()
	mustBeRefused := e.mustBeRefused
	// A second handler on the same local Secrets Manager whose testSecret
	// fails after a real setSecret.
	failing, err := rotation.NewHandler(withFailingTest(s.Credential), rotation.Options{
		Client: e.Client, Passwords: s.Passwords, Logger: slog.New(slog.NewJSONHandler(e.logs, nil)),
	})
	if err != nil {
		t.Fatalf("build the failing handler: %v", err)
	}
	rotateFailing := func(t *testing.T, arn string) (pending string, rotErr string) {
		t.Helper()
		e.useHandler(failing)
		defer e.useHandler(nil)
		_, err := e.Rotate(t, arn)
		if err == nil {
			t.Fatal("the rotation succeeded although testSecret always fails")
		}
		return labeled(e.Versions(t, arn), rotation.LabelPending), err.Error()
	}
	killTest := func(t *testing.T, arn string) string {
		t.Helper()
		e.Inject(func(ev smlocal.Event, run func() error) error {
			if ev.Step == rotation.StepTest {
				return errInjected // the function died before it ran
			}
			return run()
		})
		defer e.Inject(nil)
		if _, err := e.Rotate(t, arn); err == nil {
			t.Fatal("the rotation succeeded although testSecret was killed every time")
		}
		return labeled(e.Versions(t, arn), rotation.LabelPending)
	}

	t.Run("Probe/AfterRotation", func(t *testing.T) {
		arn, old := e.NewSecret(t)
		seen.add(old)
		token, err := e.Rotate(t, arn)
		if err != nil {
			t.Fatal(err)
		}
		seen.addCurrent(e, t, arn)
		r := e.Probe(t, arn, token)
		if r.State != recovery.StateHealthy || r.Plan != recovery.PlanNone || r.CurrentVersion != token {
			t.Fatalf("probe after a rotation: state %s, plan %s, current %s; want healthy, none, %s (%s)", r.State, r.Plan, r.CurrentVersion, token, r.Summary)
		}
		if v, _ := r.Version(token); v.Outcome != recovery.OutcomeLogsIn {
			t.Fatalf("AWSCURRENT probed %s (%s), want logs-in", v.Outcome, v.Error)
		}
		if r.SingleCredential != single {
			t.Fatalf("report says singleCredential=%v for a type that is a Restorer=%v", r.SingleCredential, single)
		}
		if single {
			prev, _, _ := e.Value(t, arn, rotation.LabelPrevious)
			if v, _ := r.Version(prev); v.Outcome != recovery.OutcomeRefused || len(r.StillValid) != 0 {
				t.Fatalf("AWSPREVIOUS probed %s, still valid %v; a single-user type must report it refused", v.Outcome, r.StillValid)
			}
			mustBeRefused(t, "AWSPREVIOUS", old)
		}
	})

	t.Run("Recover/TestFailedAfterSet", func(t *testing.T) {
		arn, old := e.NewSecret(t)
		seen.add(old)
		pending, msg := rotateFailing(t, arn)
		if single && !strings.Contains(msg, "was restored downstream") {
			t.Fatalf("the failed rotation's error does not say AWSCURRENT was restored: %s", msg)
		}
		// With the fault still there, applications log in with AWSCURRENT.
		e.mustBeValid(t, "AWSCURRENT after testSecret failed", old)
		r := e.Probe(t, arn, pending)
		if r.State != recovery.StateStuck || r.Plan != recovery.PlanClearPending {
			t.Fatalf("probe: %s, plan %s (%s); want stuck, clear-pending", r.State, r.Plan, r.Summary)
		}
		r = e.Recover(t, arn, pending)
		if !r.Changed || labeled(e.Versions(t, arn), rotation.LabelPending) != "" {
			t.Fatalf("recover did not clear AWSPENDING: %+v", r)
		}
		e.mustBeValid(t, "AWSCURRENT after recovery", old)
		token, err := e.Rotate(t, arn)
		if err != nil {
			t.Fatalf("a rotation after recovery: %v", err)
		}
		e.mustEndRotated(t, arn, token, old)
		seen.addCurrent(e, t, arn)
	})

	t.Run("Recover/KilledBeforeTest", func(t *testing.T) {
		arn, old := e.NewSecret(t)
		seen.add(old)
		pending := killTest(t, arn)
		_, pendValue, _ := pendingValue(t, e, arn, pending)
		seen.add(pendValue)
		r := e.Probe(t, arn, pending)
		want, plan := recovery.StateStuck, recovery.PlanClearPending
		if single {
			// setSecret replaced the password and nothing put it back:
			// locked out until the rotation is completed.
			want, plan = recovery.StateLockedOut, recovery.PlanComplete
			mustBeRefused(t, "AWSCURRENT after setSecret and a killed testSecret", old)
		}
		if r.State != want || r.Plan != plan {
			t.Fatalf("probe: %s, plan %s (%s); want %s, %s", r.State, r.Plan, r.Summary, want, plan)
		}
		r = e.Recover(t, arn, pending)
		if !r.Changed {
			t.Fatalf("recover changed nothing: %+v", r)
		}
		id, cur, _ := e.Value(t, arn, rotation.LabelCurrent)
		e.mustBeValid(t, "AWSCURRENT after recovery", cur)
		if labeled(e.Versions(t, arn), rotation.LabelPending) != "" {
			t.Fatal("AWSPENDING is still there after recovery")
		}
		if single {
			if id != pending {
				t.Fatalf("AWSCURRENT is version %s, want the completed rotation's %s", id, pending)
			}
			mustBeRefused(t, "the replaced password", old)
		}
		token, err := e.Rotate(t, arn)
		if err != nil {
			t.Fatalf("a rotation after recovery: %v", err)
		}
		e.mustEndRotated(t, arn, token, cur)
		seen.addCurrent(e, t, arn)
	})

	if !single {
		return
	}
	t.Run("Recover/LiveCredentialDeprecated", func(t *testing.T) {
		arn, old := e.NewSecret(t)
		seen.add(old)
		pending := killTest(t, arn)
		_, pendValue, _ := pendingValue(t, e, arn, pending)
		seen.add(pendValue)
		// What the old 'rotary unstick' did: AWSPENDING removed from the
		// version holding the live password, which is now deprecated.
		if err := e.removePending(arn, pending); err != nil {
			t.Fatal(err)
		}
		cur, _, _ := e.Value(t, arn, rotation.LabelCurrent)
		r := e.Probe(t, arn, cur)
		if r.State != recovery.StateLockedOut || r.Plan != recovery.PlanRestore || r.PlanVersion != pending {
			t.Fatalf("probe: %s, plan %s on %s (%s); want locked-out, restore %s", r.State, r.Plan, r.PlanVersion, r.Summary, pending)
		}
		e.Recover(t, arn, cur)
		id, now, _ := e.Value(t, arn, rotation.LabelCurrent)
		if id != pending {
			t.Fatalf("AWSCURRENT is version %s, want the working version %s", id, pending)
		}
		e.mustBeValid(t, "AWSCURRENT after recovery", now)
		token, err := e.Rotate(t, arn)
		if err != nil {
			t.Fatalf("a rotation after recovery: %v", err)
		}
		e.mustEndRotated(t, arn, token, now)
		seen.addCurrent(e, t, arn)
	})

	t.Run("Recover/WrongValueStored", func(t *testing.T) {
		arn, old := e.NewSecret(t)
		seen.add(old)
		oldID, _, _ := e.Value(t, arn, rotation.LabelCurrent)
		// Someone stores a value the server refuses as AWSCURRENT; the
		// working one becomes AWSPREVIOUS.
		bad := s.Corrupt(old)
		seen.add(bad)
		if _, err := e.Client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(arn), SecretString: aws.String(bad)}); err != nil {
			t.Fatal(err)
		}
		badID, _, _ := e.Value(t, arn, rotation.LabelCurrent)
		r := e.Probe(t, arn, badID)
		if r.State != recovery.StateLockedOut || r.Plan != recovery.PlanRestore || r.PlanVersion != oldID {
			t.Fatalf("probe: %s, plan %s on %s (%s); want locked-out, restore %s", r.State, r.Plan, r.PlanVersion, r.Summary, oldID)
		}
		if v, _ := r.Version(badID); v.Outcome != recovery.OutcomeRefused || v.Error == "" {
			t.Fatalf("the stored wrong value probed %s (%q); want refused, with the server's reason", v.Outcome, v.Error)
		}
		e.Recover(t, arn, badID)
		if id, _, _ := e.Value(t, arn, rotation.LabelCurrent); id != oldID {
			t.Fatalf("AWSCURRENT is version %s, want the working version %s", id, oldID)
		}
		e.mustBeValid(t, "AWSCURRENT after recovery", old)
	})
}

func pendingValue(t *testing.T, e *Env, arn, id string) (string, string, bool) {
	t.Helper()
	out, err := e.Client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionId: aws.String(id)})
	if err != nil {
		t.Fatalf("read version %s: %v", id, err)
	}
	return aws.ToString(out.VersionId), aws.ToString(out.SecretString), true
}
