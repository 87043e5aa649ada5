package watch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/rotary-secrets/rotary/pkg/recovery"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
	"github.com/rotary-secrets/rotary/pkg/watch"
)

const fnARN = "arn:aws:lambda:us-east-1:123456789012:function:rotary-random-secret"

// clock is a settable clock for the local Secrets Manager.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeFunction answers probeSecret and recoverSecret as a rotation function
// would, from the labels the real local Secrets Manager holds: state says
// what its probes would find, per secret name.
type fakeFunction struct {
	sm    *secretsmanager.Client
	mu    sync.Mutex
	state map[string]string // secret name -> recovery state
	calls []string          // "step name"
	block chan struct{}     // when set, invocations wait for it or ctx
}

func (f *fakeFunction) Invoke(ctx context.Context, in *lambda.InvokeInput, _ ...func(*lambda.Options)) (*lambda.InvokeOutput, error) {
	var ev struct{ Step, SecretId, ClientRequestToken string }
	if err := json.Unmarshal(in.Payload, &ev); err != nil {
		return nil, err
	}
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	d, err := f.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: &ev.SecretId})
	if err != nil {
		return nil, err
	}
	name := aws.ToString(d.Name)
	f.mu.Lock()
	f.calls = append(f.calls, ev.Step+" "+name)
	state := f.state[name]
	f.mu.Unlock()
	if state == "error" {
		return &lambda.InvokeOutput{FunctionError: aws.String("Unhandled"), Payload: []byte(`{"errorMessage":"probeSecret failed: [REDACTED] refused"}`)}, nil
	}
	r := recovery.Report{SecretARN: ev.SecretId, SingleCredential: state != "reaper", Reaper: state == "reaper"}
	for id, labels := range d.VersionIdsToStages {
		for _, l := range labels {
			switch l {
			case "AWSCURRENT":
				r.CurrentVersion = id
			case "AWSPENDING":
				r.PendingVersion = id
			}
		}
	}
	if r.PendingVersion == r.CurrentVersion {
		r.PendingVersion = ""
	}
	cur := recovery.OutcomeLogsIn
	pend := recovery.OutcomeRefused
	switch state {
	case recovery.StateDrifted:
		cur = recovery.OutcomeRefused
	case recovery.StateLockedOut:
		cur, pend = recovery.OutcomeRefused, recovery.OutcomeLogsIn
	case recovery.StateUnknown:
		cur = recovery.OutcomeUnreachable
	}
	r.Versions = append(r.Versions, recovery.VersionProbe{VersionID: r.CurrentVersion, Labels: []string{"AWSCURRENT"}, Outcome: cur})
	if r.PendingVersion != "" {
		r.Versions = append(r.Versions, recovery.VersionProbe{VersionID: r.PendingVersion, Labels: []string{"AWSPENDING"}, Outcome: pend})
	}
	recovery.Decide(&r)
	if ev.Step == watch.StepReap {
		if ev.ClientRequestToken != r.CurrentVersion {
			return &lambda.InvokeOutput{FunctionError: aws.String("Unhandled"), Payload: []byte(`{"errorMessage":"reapSecret: the token must name the AWSCURRENT version"}`)}, nil
		}
		b, _ := json.Marshal(recovery.Report{SecretARN: ev.SecretId, Action: watch.StepReapAction, Reaped: []string{"app_260301110000_abcd"}, ReapKept: 1})
		return &lambda.InvokeOutput{Payload: b}, nil
	}
	if ev.Step == watch.StepRecover && r.Plan == recovery.PlanComplete {
		// Complete the rotation as the function would.
		if _, err := f.sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: &ev.SecretId, VersionStage: aws.String("AWSCURRENT"), MoveToVersionId: &r.PendingVersion, RemoveFromVersionId: &r.CurrentVersion}); err != nil {
			return nil, err
		}
		if _, err := f.sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: &ev.SecretId, VersionStage: aws.String("AWSPENDING"), RemoveFromVersionId: &r.PendingVersion}); err != nil {
			return nil, err
		}
		r.Action, r.Changed = "completed the rotation", true
		f.mu.Lock()
		f.state[name] = recovery.StateHealthy
		f.mu.Unlock()
	}
	b, _ := json.Marshal(r)
	return &lambda.InvokeOutput{Payload: b}, nil
}

type recorder struct {
	mu sync.Mutex
	ns []watch.Notification
}

func (r *recorder) Notify(_ context.Context, n watch.Notification) error {
	r.mu.Lock()
	r.ns = append(r.ns, n)
	r.mu.Unlock()
	return nil
}

type env struct {
	clk  *clock
	sm   *secretsmanager.Client
	fn   *fakeFunction
	note *recorder
	logs *bytes.Buffer
	w    *watch.Watcher
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	srv, err := smlocal.New(smlocal.Options{Clock: clk.now, CanInvoke: func(string) error { return nil }, Invoker: smlocal.InvokerFunc(func(context.Context, string, smlocal.Event) error { return fmt.Errorf("no rotations in this test") })})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); srv.Close() })
	sm := smlocal.NewClient(hs.URL)
	e := &env{clk: clk, sm: sm, fn: &fakeFunction{sm: sm, state: map[string]string{}}, note: &recorder{}, logs: &bytes.Buffer{}}
	e.w = &watch.Watcher{SM: sm, Lambda: e.fn, Notifier: e.note, Log: slog.New(slog.NewJSONHandler(e.logs, nil)),
		Config: watch.Config{RepairAfter: time.Hour, OverdueAfter: time.Hour}}
	return e
}

// secret creates a secret with rotation on (every day, 2h window) by
// putting the rules on directly: a version, then rotation configured
// without rotating.
func (e *env) secret(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	out, err := e.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(`{"password":"not-checked-here"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sm.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: out.ARN, RotationLambdaARN: aws.String(fnARN),
		RotationRules: &smtypes.RotationRulesType{AutomaticallyAfterDays: aws.Int64(1), Duration: aws.String("2h")}, RotateImmediately: aws.Bool(false)}); err != nil {
		t.Fatal(err)
	}
	// RotateImmediately=false runs testSecret, which fails here; drop the
	// pending version it leaves.
	e.clearPending(t, *out.ARN)
	return *out.ARN
}

func (e *env) clearPending(t *testing.T, arn string) {
	t.Helper()
	d, err := e.sm.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: &arn})
	if err != nil {
		t.Fatal(err)
	}
	for id, labels := range d.VersionIdsToStages {
		for _, l := range labels {
			if l == "AWSPENDING" && len(labels) == 1 {
				if _, err := e.sm.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{SecretId: &arn, VersionStage: aws.String("AWSPENDING"), RemoveFromVersionId: aws.String(id)}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// pending leaves a stuck rotation: a new version labelled AWSPENDING only.
func (e *env) pending(t *testing.T, arn string) string {
	t.Helper()
	tok := strings.Repeat("p", 32) + fmt.Sprint(time.Now().UnixNano())
	if _, err := e.sm.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{SecretId: &arn, ClientRequestToken: &tok, SecretString: aws.String(`{"password":"pending-not-checked"}`), VersionStages: []string{"AWSPENDING"}}); err != nil {
		t.Fatal(err)
	}
	return tok
}

func (e *env) run(t *testing.T, targets ...watch.Target) *watch.Result {
	t.Helper()
	res, err := e.w.Run(context.Background(), watch.Event{Time: e.clk.now().Format(time.RFC3339), Secrets: targets})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// lines decodes the watch's log lines with message msg.
func (e *env) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %v", err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func TestStatesAndMetrics(t *testing.T) {
	e := newEnv(t)
	ok := e.secret(t, "app/ok")
	drift := e.secret(t, "app/drifted")
	e.fn.state["app/drifted"] = recovery.StateDrifted
	unk := e.secret(t, "app/unknown")
	e.fn.state["app/unknown"] = recovery.StateUnknown
	failing := e.secret(t, "app/failing")
	e.fn.state["app/failing"] = "error"
	off := e.secret(t, "app/off")
	if _, err := e.sm.CancelRotateSecret(context.Background(), &secretsmanager.CancelRotateSecretInput{SecretId: &off}); err != nil {
		t.Fatal(err)
	}
	missing := "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/missing-AbCdEf"
	res := e.run(t, watch.Target{ARN: ok}, watch.Target{ARN: drift}, watch.Target{ARN: unk}, watch.Target{ARN: failing, Function: fnARN}, watch.Target{ARN: off}, watch.Target{ARN: missing})
	want := []string{watch.StateOK, watch.StateDrifted, watch.StateUnverified, watch.StateUnverified, watch.StateRotationDisabled, watch.StateError}
	for i, c := range res.Secrets {
		if c.State != want[i] {
			t.Errorf("%s: state %s (%v), want %s", c.SecretARN, c.State, c.Problems, want[i])
		}
		if c.Advice == "" {
			t.Errorf("%s: no advice", c.SecretARN)
		}
	}
	// Checked through: ok, drifted, rotation off (its probe told). Not:
	// the probe that could not tell, the failing probe, the missing secret
	// (a watch that lost its permissions must not count them as checked).
	if res.Checked != 3 || res.Unverified != 3 || res.Unhealthy != 5 {
		t.Errorf("checked %d, unverified %d, unhealthy %d; want 3, 3 and 5", res.Checked, res.Unverified, res.Unhealthy)
	}
	lines := e.lines(t, watch.MsgCheck)
	if len(lines) != 6 {
		t.Fatalf("%d check lines, want 6", len(lines))
	}
	metric := func(i int, name string) any { return lines[i][name] }
	if metric(0, "CurrentLogsIn") != 1.0 || metric(0, "Overdue") != 0.0 || metric(0, "Stuck") != 0.0 || metric(0, "FunctionName") != "rotary-random-secret" || metric(0, "SecretName") != "app/ok" {
		t.Errorf("healthy line: %v", lines[0])
	}
	if metric(1, "CurrentLogsIn") != 0.0 {
		t.Errorf("drifted line: CurrentLogsIn %v, want 0", metric(1, "CurrentLogsIn"))
	}
	for _, i := range []int{2, 3} { // could not tell: no CurrentLogsIn at all
		if v, ok := lines[i]["CurrentLogsIn"]; ok {
			t.Errorf("%s: CurrentLogsIn %v, want it omitted", lines[i]["SecretName"], v)
		}
		if dir := fmt.Sprint(lines[i]["_aws"]); strings.Contains(dir, "CurrentLogsIn") {
			t.Errorf("%s: the directive names CurrentLogsIn, which the line omits", lines[i]["SecretName"])
		}
	}
	if !strings.Contains(fmt.Sprint(lines[3]["probeError"]), "[REDACTED]") {
		t.Errorf("the function's (scrubbed) error is not kept: %v", lines[3]["probeError"])
	}
	if _, ok := lines[5]["_aws"]; ok {
		t.Errorf("an error line has metrics: %v", lines[5])
	}
	sum := e.lines(t, watch.MsgSummary)
	if len(sum) != 1 || sum[0]["SecretsChecked"] != 3.0 || sum[0]["SecretsUnverified"] != 3.0 || sum[0]["SecretsUnhealthy"] != 5.0 {
		t.Errorf("summary: %v", sum)
	}
	if len(e.note.ns) != 0 {
		t.Errorf("notifications without any repair: %v", e.note.ns)
	}
}

func TestOverdue(t *testing.T) {
	e := newEnv(t)
	arn := e.secret(t, "app/overdue")
	d, _ := e.sm.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: &arn})
	next := aws.ToTime(d.NextRotationDate)
	// NextRotationDate is the end of the window (AWS: "the latest date
	// that rotation will occur"), so due at next + 1h grace: a second
	// before, not overdue.
	e.clk.t = next.Add(time.Hour - time.Second)
	if c := e.run(t, watch.Target{ARN: arn}).Secrets[0]; c.Overdue || c.State != watch.StateOK {
		t.Fatalf("a second before the grace ends: overdue %v, state %s", c.Overdue, c.State)
	}
	e.clk.add(2 * time.Second)
	c := e.run(t, watch.Target{ARN: arn}).Secrets[0]
	if !c.Overdue || c.State != watch.StateOverdue || !strings.Contains(c.Advice, "rotary rotate app/overdue") {
		t.Fatalf("a second after: overdue %v, state %s, advice %q", c.Overdue, c.State, c.Advice)
	}
	if l := e.lines(t, watch.MsgCheck); l[len(l)-1]["Overdue"] != 1.0 {
		t.Fatalf("Overdue metric %v, want 1", l[len(l)-1]["Overdue"])
	}
}

func TestRepair(t *testing.T) {
	e := newEnv(t)
	locked := e.secret(t, "app/locked")
	e.fn.state["app/locked"] = recovery.StateLockedOut
	young := e.secret(t, "app/young")
	e.fn.state["app/young"] = recovery.StateLockedOut
	e.pending(t, locked)
	e.clk.add(time.Hour + 4*time.Minute)
	e.pending(t, young)
	e.clk.add(time.Minute)

	// Repair off: both reported, nothing changed. The old one (1h5m, just
	// past RepairAfter) is notified as refused; the young one is not yet.
	res := e.run(t, watch.Target{ARN: locked}, watch.Target{ARN: young})
	for _, c := range res.Secrets {
		if c.State != watch.StateLockedOut || c.Repaired || c.Repair != watch.RepairDisabled {
			t.Errorf("repair off: %s is %s, repair %q", c.SecretName, c.State, c.Repair)
		}
	}
	if len(e.note.ns) != 1 || e.note.ns[0].SecretName != "app/locked" {
		t.Fatalf("repair off: notifications %+v, want one refusal for app/locked", e.note.ns)
	}
	e.note.ns = nil
	// The next run, an interval later: the refusal was notified once, the
	// Stuck alarm speaks for it now.
	e.clk.add(watch.DefaultInterval)
	e.run(t, watch.Target{ARN: locked}, watch.Target{ARN: young})
	if len(e.note.ns) != 0 {
		t.Fatalf("the run after: notifications %+v, want none (notified once already)", e.note.ns)
	}

	// Repair on for one secret by the event: the old stuck rotation is
	// completed, the young one refused.
	on := true
	res = e.run(t, watch.Target{ARN: locked, Repair: &on}, watch.Target{ARN: young, Repair: &on})
	if c := res.Secrets[0]; !c.Repaired || c.State != watch.StateOK || c.StateBefore != watch.StateLockedOut || c.Stuck {
		t.Errorf("old stuck rotation: repaired %v, state %s (was %s), stuck %v: %s", c.Repaired, c.State, c.StateBefore, c.Stuck, c.RepairDetail)
	}
	if c := res.Secrets[1]; c.Repaired || c.Repair != watch.RepairTooYoung || c.State != watch.StateLockedOut {
		t.Errorf("young stuck rotation: repaired %v, repair %q, state %s", c.Repaired, c.Repair, c.State)
	}
	if len(e.note.ns) != 1 || e.note.ns[0].Outcome != watch.RepairDone {
		t.Fatalf("notifications %+v, want the repair only (a rotation too young to repair may be running)", e.note.ns)
	}
	lines := e.lines(t, watch.MsgCheck)
	if last := lines[len(lines)-2]; last["Repaired"] != 1.0 || last["CurrentLogsIn"] != 1.0 || last["Stuck"] != 0.0 {
		t.Errorf("repaired line: %v", last)
	}
	if n := len(e.lines(t, watch.MsgRepair)); n != 6 {
		t.Errorf("%d repair lines, want 6 (one per repair or refusal, notified or not)", n)
	}
}

// TestDeadline: a function that never answers does not hold the run past
// its deadline; the secrets it did not reach are reported unchecked.
func TestDeadline(t *testing.T) {
	e := newEnv(t)
	e.fn.block = make(chan struct{})
	e.w.Config.Concurrency = 2
	var targets []watch.Target
	for i := range 5 {
		targets = append(targets, watch.Target{ARN: e.secret(t, fmt.Sprintf("app/slow-%d", i))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	res, err := e.w.Run(ctx, watch.Event{Time: e.clk.now().Format(time.RFC3339), Secrets: targets})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("the run took %s with a 500ms deadline; a function that never answers must not hold it (the bound leaves room for a loaded machine)", d)
	}
	unchecked := 0
	for _, c := range res.Secrets {
		switch c.State {
		case watch.StateUnchecked:
			unchecked++
		case watch.StateUnverified: // probed, and the probe timed out
		default:
			t.Errorf("%s: %s", c.SecretARN, c.State)
		}
	}
	if unchecked < 3 || res.Unchecked != unchecked || res.Unhealthy != 5 {
		t.Fatalf("unchecked %d (result %d), unhealthy %d: want the 3 never started unchecked and all 5 unhealthy", unchecked, res.Unchecked, res.Unhealthy)
	}
}

func TestConfigFromEnv(t *testing.T) {
	c, err := watch.ConfigFromEnv(func(string) string { return "" })
	if err != nil || c.Repair || c.RepairAfter != time.Hour || c.OverdueAfter != time.Hour || c.Concurrency != 8 || c.TopicARN != "" {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	good := map[string]string{"ROTARY_WATCH_REPAIR": "yes", "ROTARY_WATCH_REPAIR_AFTER": "5m", "ROTARY_WATCH_OVERDUE_AFTER": "30m", "ROTARY_WATCH_CONCURRENCY": "64", "ROTARY_WATCH_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t", "ROTARY_WATCH_INTERVAL": "5m"}
	c, err = watch.ConfigFromEnv(func(k string) string { return good[k] })
	if err != nil || !c.Repair || c.RepairAfter != 5*time.Minute || c.OverdueAfter != 30*time.Minute || c.Concurrency != 64 || c.TopicARN != good["ROTARY_WATCH_TOPIC_ARN"] || c.Interval != 5*time.Minute {
		t.Fatalf("set: %+v, %v", c, err)
	}
	for k, v := range map[string]string{"ROTARY_WATCH_REPAIR": "maybe", "ROTARY_WATCH_REPAIR_AFTER": "4m59s", "ROTARY_WATCH_OVERDUE_AFTER": "-1h", "ROTARY_WATCH_CONCURRENCY": "65", "ROTARY_WATCH_TOPIC_ARN": "alarms", "ROTARY_WATCH_INTERVAL": "30s"} {
		if _, err := watch.ConfigFromEnv(func(key string) string {
			if key == k {
				return v
			}
			return ""
		}); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v, want an error naming the variable", k, v, err)
		}
	}
}

// TestLinesAreEMFRecords: every check and summary line is a valid
// CloudWatch embedded-metric-format record: a millisecond Timestamp, and
// for each directive every dimension key and every metric present at the
// top level (a metric as a number).
func TestLinesAreEMFRecords(t *testing.T) {
	e := newEnv(t)
	ok := e.secret(t, "app/emf-ok")
	drift := e.secret(t, "app/emf-drifted")
	e.fn.state["app/emf-drifted"] = recovery.StateDrifted
	e.run(t, watch.Target{ARN: ok}, watch.Target{ARN: drift})
	lines := append(e.lines(t, watch.MsgCheck), e.lines(t, watch.MsgSummary)...)
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 2 checks and a summary", len(lines))
	}
	for _, l := range lines {
		dir, isMap := l["_aws"].(map[string]any)
		if !isMap {
			t.Fatalf("line without an _aws directive: %v", l)
		}
		ts, _ := dir["Timestamp"].(float64)
		if ts < 1e12 || ts > 1e14 {
			t.Errorf("Timestamp %v is not in milliseconds", dir["Timestamp"])
		}
		sets, _ := dir["CloudWatchMetrics"].([]any)
		if len(sets) == 0 {
			t.Fatalf("no CloudWatchMetrics in %v", dir)
		}
		for _, set := range sets {
			m := set.(map[string]any)
			if m["Namespace"] != watch.MetricNamespace {
				t.Errorf("namespace %v", m["Namespace"])
			}
			for _, dims := range m["Dimensions"].([]any) {
				for _, d := range dims.([]any) {
					if v, ok := l[d.(string)].(string); !ok || v == "" {
						t.Errorf("dimension %v missing from the line %v", d, l["msg"])
					}
				}
			}
			metrics := m["Metrics"].([]any)
			if len(metrics) == 0 {
				t.Errorf("a directive with no metrics: %v", m)
			}
			for _, mt := range metrics {
				name := mt.(map[string]any)["Name"].(string)
				if _, ok := l[name].(float64); !ok {
					t.Errorf("metric %s named in the directive is not a number on the line (%v)", name, l[name])
				}
			}
		}
	}
}

// TestNoRepairWithoutTime: a run with less than MinRecoverTime left does
// not start a recoverSecret it could not wait for; it says so.
func TestNoRepairWithoutTime(t *testing.T) {
	e := newEnv(t)
	arn := e.secret(t, "app/late")
	e.fn.state["app/late"] = recovery.StateLockedOut
	e.pending(t, arn)
	e.clk.add(2 * time.Hour)
	on := true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := e.w.CheckAndRepair(ctx, watch.Target{ARN: arn, Repair: &on}, e.clk.now())
	if c.Repaired || c.Repair != watch.RepairNoTime || !c.Stuck {
		t.Fatalf("with a minute left: repaired %v, repair %q, stuck %v", c.Repaired, c.Repair, c.Stuck)
	}
	c = e.w.CheckAndRepair(context.Background(), watch.Target{ARN: arn, Repair: &on}, e.clk.now())
	if !c.Repaired {
		t.Fatalf("with time left: repaired %v, repair %q (%s)", c.Repaired, c.Repair, c.RepairDetail)
	}
}

// TestReap: for a type whose probe report says it reaps, the watch invokes
// reapSecret with the AWSCURRENT version and reports what was dropped; for
// any other type it never does.
func TestReap(t *testing.T) {
	e := newEnv(t)
	reaping, plain := e.secret(t, "expiring"), e.secret(t, "single")
	e.fn.state["expiring"] = "reaper"
	res := e.run(t, watch.Target{ARN: reaping, Function: fnARN}, watch.Target{ARN: plain, Function: fnARN})
	var calls []string
	e.fn.mu.Lock()
	calls = append(calls, e.fn.calls...)
	e.fn.mu.Unlock()
	if !slices.Contains(calls, "reapSecret expiring") || slices.Contains(calls, "reapSecret single") {
		t.Fatalf("invocations %v: want reapSecret for the reaping type only", calls)
	}
	for _, c := range res.Secrets {
		switch c.SecretARN {
		case reaping:
			if strings.Join(c.Reaped, ",") != "app_260301110000_abcd" || c.ReapError != "" || c.State != watch.StateOK {
				t.Fatalf("check of the reaping type: reaped %v, reapError %q, state %s", c.Reaped, c.ReapError, c.State)
			}
		case plain:
			if len(c.Reaped) != 0 || c.ReapError != "" {
				t.Fatalf("check of the plain type reaped: %+v", c)
			}
		}
	}
	found := false
	for _, l := range e.lines(t, watch.MsgCheck) {
		if r, ok := l["reaped"].([]any); ok && len(r) == 1 {
			found = true
		}
	}
	if !found {
		t.Fatalf("no watch line names the reaped user: %s", e.logs.String())
	}
}
