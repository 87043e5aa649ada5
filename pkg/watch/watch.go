// Package watch checks the health of rotated secrets: whether rotation is
// on, overdue or stuck (from DescribeSecret and ListSecretVersionIds), and
// whether AWSCURRENT still logs in (through the secret's rotation function's
// probeSecret step); and, when enabled, it repairs stuck rotations with the
// function's recoverSecret step. The watch function (functions/watch) runs
// it on a schedule over a list of secrets; the CLI can call Check for one
// secret with repair off. It never reads a secret value: no GetSecretValue,
// no ListSecrets (docs/watch.md).
package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/rotary-secrets/rotary/pkg/recovery"
)

// States of a checked secret, most urgent first (a secret has one: the
// first that applies). Where pkg/recovery has the state, the name is its.
const (
	StateError            = "error"                 // the secret could not be described
	StateLockedOut        = recovery.StateLockedOut // AWSCURRENT refused, another version logs in
	StateDrifted          = recovery.StateDrifted   // no version logs in
	StateLoginDisabled    = recovery.StateLoginDisabled
	StateStuck            = recovery.StateStuck // AWSPENDING on another version than AWSCURRENT
	StateRotationDisabled = "rotation-disabled"
	StateOverdue          = "overdue"
	StateUnverified       = "unverified" // the probe failed or could not tell
	StateOK               = "ok"
	// StateUnchecked: the run's deadline came before the secret was checked.
	StateUnchecked = "unchecked"
)

// Staging labels.
const (
	labelCurrent  = "AWSCURRENT"
	labelPending  = "AWSPENDING"
	labelPrevious = "AWSPREVIOUS"
)

// Operator steps of the rotation functions (pkg/rotation).
const (
	StepProbe   = "probeSecret"
	StepRecover = "recoverSecret"
	// StepReap drops expired credentials of types whose probe report says
	// they reap (expiring users): the watch has no database access of its
	// own, so it asks the secret's rotation function.
	StepReap = "reapSecret"
)

// SecretsManager is the part of the Secrets Manager API the watch calls;
// *secretsmanager.Client satisfies it. It has no GetSecretValue on purpose.
type SecretsManager interface {
	DescribeSecret(context.Context, *secretsmanager.DescribeSecretInput, ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
	ListSecretVersionIds(context.Context, *secretsmanager.ListSecretVersionIdsInput, ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretVersionIdsOutput, error)
}

// Lambda is the part of the Lambda API the watch calls; *lambda.Client
// satisfies it.
type Lambda interface {
	Invoke(context.Context, *lambda.InvokeInput, ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

// Target is one secret of the event: its ARN, the rotation function the
// suite configured for it (empty: the secret's own RotationLambdaARN), and
// whether to repair it (nil: Config.Repair).
type Target struct {
	ARN      string `json:"arn"`
	Function string `json:"function,omitempty"`
	Repair   *bool  `json:"repair,omitempty"`
}

// Event is what the schedule sends the watch function.
type Event struct {
	// Time is the schedule's time (RFC 3339), the "now" of ages and
	// overdue; empty means the clock.
	Time    string   `json:"time,omitempty"`
	Secrets []Target `json:"secrets"`
}

// Watcher checks secrets. Only SM is required: without Lambda nothing is
// probed or repaired (the check says so), and without Notifier
// notifications are only logged.
type Watcher struct {
	SM       SecretsManager
	Lambda   Lambda
	Notifier Notifier
	Config   Config
	// Log receives the per-secret lines, the repair lines and the summary;
	// nil discards them.
	Log *slog.Logger
	// Now is the clock when the event has no time; nil means time.Now.
	Now func() time.Time
}

// Check is what the watch found about one secret. It never holds a value.
type Check struct {
	SecretARN  string `json:"secretArn"`
	SecretName string `json:"secretName,omitempty"`
	// Function is the rotation function probed (ARN); FunctionName is its
	// name, the metrics' dimension. FunctionMismatch is set when the suite
	// configured another function than the secret's RotationLambdaARN.
	Function         string `json:"function,omitempty"`
	FunctionName     string `json:"functionName"`
	FunctionMismatch string `json:"functionMismatch,omitempty"`
	State            string `json:"state"`
	// Problems lists every finding, worst first; State is the first's.
	Problems        []string   `json:"problems,omitempty"`
	RotationEnabled bool       `json:"rotationEnabled"`
	LastRotated     *time.Time `json:"lastRotated,omitempty"`
	NextRotation    *time.Time `json:"nextRotation,omitempty"`
	Window          string     `json:"window,omitempty"`
	Overdue         bool       `json:"overdue"`
	// OverdueSince is when the secret became overdue (NextRotationDate plus
	// the window plus the grace), when it is.
	OverdueSince   *time.Time `json:"overdueSince,omitempty"`
	CurrentVersion string     `json:"currentVersion,omitempty"`
	CurrentCreated *time.Time `json:"currentCreated,omitempty"`
	CurrentAge     Duration   `json:"currentAge,omitempty"`
	Stuck          bool       `json:"stuck"`
	PendingVersion string     `json:"pendingVersion,omitempty"`
	PendingCreated *time.Time `json:"pendingCreated,omitempty"`
	PendingAge     Duration   `json:"pendingAge,omitempty"`
	// Probe is the rotation function's report; ProbeError why there is
	// none (scrubbed by the function).
	Probe      *recovery.Report `json:"probe,omitempty"`
	ProbeError string           `json:"probeError,omitempty"`
	// CurrentLogsIn and PreviousRefused are nil when the probe could not
	// tell (PreviousRefused also when the type is not single-credential or
	// there is no AWSPREVIOUS).
	CurrentLogsIn   *bool `json:"currentLogsIn,omitempty"`
	PreviousRefused *bool `json:"previousRefused,omitempty"`
	// Repair says what the watch did about a stuck rotation: empty for
	// nothing to do; else one of the Repair* outcomes, with RepairDetail.
	Repair       string `json:"repair,omitempty"`
	RepairDetail string `json:"repairDetail,omitempty"`
	Repaired     bool   `json:"repaired"`
	// StateBefore is the state found before a repair (State is after it).
	StateBefore string `json:"stateBefore,omitempty"`
	// Reaped names the expired users the rotation function's reapSecret
	// dropped for this check (types that reap only); ReapError says why
	// the reap failed.
	Reaped    []string `json:"reaped,omitempty"`
	ReapError string   `json:"reapError,omitempty"`
	// Advice is the one rotary command that fixes it.
	Advice string `json:"advice"`
	Error  string `json:"error,omitempty"`
}

// Healthy reports whether the secret needs nothing.
func (c *Check) Healthy() bool { return c.State == StateOK }

// verified reports whether the check went through: the secret was
// described and its rotation function's probe told its state.
func (c *Check) verified() bool {
	return c.State != StateError && c.State != StateUnchecked && c.Probe != nil && c.Probe.State != recovery.StateUnknown
}

// Repair outcomes: one repaired, or why not.
const (
	RepairDone       = "repaired"
	RepairTooYoung   = "refused-too-young"   // AWSPENDING is younger than RepairAfter
	RepairDisabled   = "refused-disabled"    // locked out, but repair is off for the secret
	RepairNotStuck   = "refused-not-stuck"   // locked out with no unfinished rotation: no automatic repair
	RepairPlanNone   = "refused-plan-none"   // recoverSecret found nothing it may safely change
	RepairFailed     = "failed"              // recoverSecret failed or could not be invoked
	RepairNoFunction = "refused-no-function" // no rotation function to recover with
	RepairNoTime     = "refused-no-time"     // too little of the run left to wait for recoverSecret
)

// Duration is a time.Duration that encodes as Go's text ("1h2m3s").
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// Result is one run over an event's secrets, in the event's order.
type Result struct {
	Time time.Time `json:"time"`
	// Checked counts the secrets checked through (described and probed,
	// the probe telling); Unverified the others.
	Checked    int     `json:"secretsChecked"`
	Unverified int     `json:"secretsUnverified"`
	Unhealthy  int     `json:"secretsUnhealthy"`
	Unchecked  int     `json:"secretsUnchecked"`
	Repaired   int     `json:"secretsRepaired"`
	Secrets    []Check `json:"secrets"`
}

// ErrBadEvent is returned for an event the watch cannot run.
var ErrBadEvent = errors.New("watch: bad event")

// Run checks every secret of the event, at most Config.Concurrency at once,
// logs one line per secret (an embedded-metric-format record) and one
// summary line, and returns what it found. A secret that fails does not
// stop the others. When ctx ends first, the secrets not yet checked are
// reported as StateUnchecked. The error is only for an event it cannot
// run.
func (w *Watcher) Run(ctx context.Context, ev Event) (*Result, error) {
	now, err := w.eventTime(ev)
	if err != nil {
		return nil, err
	}
	res := &Result{Time: now, Secrets: make([]Check, len(ev.Secrets))}
	// Keep a little of the deadline back to log what was found.
	runCtx, cancel := reserve(ctx)
	defer cancel()
	sem := make(chan struct{}, w.Config.concurrency())
	var wg sync.WaitGroup
	for i, t := range ev.Secrets {
		res.Secrets[i] = Check{SecretARN: t.ARN, FunctionName: functionName(t.Function), State: StateUnchecked, Advice: "The watch ran out of time before checking it: raise the watch function's timeout or split the schedule"}
		select {
		case sem <- struct{}{}:
		case <-runCtx.Done():
			continue
		}
		if runCtx.Err() != nil {
			<-sem
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c := w.check(runCtx, t, now, true)
			if c.State == StateUnchecked {
				return
			}
			res.Secrets[i] = c
		}()
	}
	wg.Wait()
	for i := range res.Secrets {
		c := &res.Secrets[i]
		w.logCheck(ctx, c, now)
		if c.State == StateUnchecked {
			res.Unchecked++
		}
		if c.verified() {
			res.Checked++
		} else {
			res.Unverified++
		}
		if !c.Healthy() {
			res.Unhealthy++
		}
		if c.Repaired {
			res.Repaired++
		}
	}
	w.logSummary(ctx, res)
	return res, nil
}

// reserve returns a context that ends a little before ctx's deadline (a
// tenth of what is left, at most 5s), so that the run can still log.
func reserve(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	margin := min(time.Until(dl)/10, 5*time.Second)
	return context.WithDeadline(ctx, dl.Add(-margin))
}

func (w *Watcher) eventTime(ev Event) (time.Time, error) {
	if strings.TrimSpace(ev.Time) == "" {
		if w.Now != nil {
			return w.Now().UTC(), nil
		}
		return time.Now().UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(ev.Time))
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: time %q is not RFC 3339 (such as 2026-01-02T15:04:05Z)", ErrBadEvent, ev.Time)
	}
	return t.UTC(), nil
}

// Check checks one secret at now, without logging it and without
// repairing it, whatever Config.Repair says: what `rotary status --verify`
// shows. The probe runs when Lambda is set.
func (w *Watcher) Check(ctx context.Context, t Target, now time.Time) Check {
	return w.check(ctx, t, now, false)
}

// CheckAndRepair is Check, then the repair the configuration allows (the
// repair and refusal lines are logged and notified as in Run).
func (w *Watcher) CheckAndRepair(ctx context.Context, t Target, now time.Time) Check {
	return w.check(ctx, t, now, true)
}

func (w *Watcher) check(ctx context.Context, t Target, now time.Time, mayRepair bool) Check {
	c := Check{SecretARN: t.ARN, Function: t.Function, FunctionName: functionName(t.Function)}
	if ctx.Err() != nil {
		c.State = StateUnchecked
		return c
	}
	if strings.TrimSpace(t.ARN) == "" {
		c.fail("the event names a secret without an arn")
		return c
	}
	desc, err := w.SM.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(t.ARN)})
	if err != nil {
		c.fail(fmt.Sprintf("DescribeSecret: %v; check that the watch may call secretsmanager:DescribeSecret on it and that it exists", err))
		return c
	}
	if ctx.Err() != nil {
		c.State = StateUnchecked
		return c
	}
	versions, err := w.listVersions(ctx, t.ARN)
	if err != nil {
		c.fail(fmt.Sprintf("ListSecretVersionIds: %v; check that the watch may call secretsmanager:ListSecretVersionIds on it", err))
		return c
	}
	w.health(&c, t, desc, versions, now)
	w.verify(ctx, &c)
	w.reap(ctx, &c)
	if mayRepair {
		w.repair(ctx, &c, t, now)
	}
	c.decide()
	if c.Repair != "" {
		w.reportRepair(ctx, &c)
	}
	return c
}

func (c *Check) fail(msg string) {
	c.State, c.Error = StateError, msg
	c.Problems = []string{msg}
	c.Advice = "Fix what the error says; then the next watch run checks it"
}

func (w *Watcher) listVersions(ctx context.Context, arn string) ([]smtypes.SecretVersionsListEntry, error) {
	var out []smtypes.SecretVersionsListEntry
	// Labeled versions only: the watch reads the creation dates of
	// AWSCURRENT and AWSPENDING, and a secret may keep ~100 unlabeled ones.
	in := &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(arn)}
	for range 100 { // at most 100 versions a page, 100 unlabeled kept: bounded anyway
		page, err := w.SM.ListSecretVersionIds(ctx, in)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Versions...)
		if aws.ToString(page.NextToken) == "" {
			return out, nil
		}
		in.NextToken = page.NextToken
	}
	return out, nil
}

// Due returns a secret's rotation window (RotationRules.Duration, else
// DefaultWindow; for the record only) and the time after which it is
// overdue: its NextRotationDate, which AWS documents as "the latest date
// that rotation will occur" (the end of the window; in the past after a
// rotation failed), plus grace; nil when rotation is off or no rotation is
// scheduled. The watch and `rotary status` share this rule.
func Due(desc *secretsmanager.DescribeSecretOutput, grace time.Duration) (window time.Duration, due *time.Time) {
	window = DefaultWindow
	if r := desc.RotationRules; r != nil && aws.ToString(r.Duration) != "" {
		if d, err := time.ParseDuration(aws.ToString(r.Duration)); err == nil && d > 0 {
			window = d
		}
	}
	if aws.ToBool(desc.RotationEnabled) && desc.NextRotationDate != nil {
		t := desc.NextRotationDate.Add(grace)
		due = &t
	}
	return window, due
}

// health fills in what Secrets Manager alone tells: rotation on, the
// schedule, overdue, the labels and their ages.
func (w *Watcher) health(c *Check, t Target, desc *secretsmanager.DescribeSecretOutput, versions []smtypes.SecretVersionsListEntry, now time.Time) {
	if a := aws.ToString(desc.ARN); a != "" {
		c.SecretARN = a
	}
	c.SecretName = aws.ToString(desc.Name)
	c.Overdue, c.OverdueSince, c.Stuck = false, nil, false
	c.CurrentVersion, c.CurrentCreated, c.CurrentAge = "", nil, 0
	c.PendingVersion, c.PendingCreated, c.PendingAge = "", nil, 0
	own := aws.ToString(desc.RotationLambdaARN)
	switch {
	case t.Function == "":
		c.Function = own
	case own != "" && own != t.Function:
		c.FunctionMismatch = fmt.Sprintf("the suite configured rotation function %s, but the secret's RotationLambdaARN is %s", t.Function, own)
	}
	c.FunctionName = functionName(c.Function)
	c.RotationEnabled = aws.ToBool(desc.RotationEnabled)
	c.LastRotated, c.NextRotation = desc.LastRotatedDate, desc.NextRotationDate
	window, due := Due(desc, w.Config.overdueAfter())
	c.Window = window.String()
	if due != nil && now.After(*due) {
		c.Overdue, c.OverdueSince = true, due
	}
	stages := desc.VersionIdsToStages
	created := map[string]*time.Time{}
	for _, v := range versions {
		created[aws.ToString(v.VersionId)] = v.CreatedDate
	}
	for id, labels := range stages {
		for _, l := range labels {
			switch l {
			case labelCurrent:
				c.CurrentVersion = id
			case labelPending:
				c.PendingVersion = id
			}
		}
	}
	if c.PendingVersion == c.CurrentVersion {
		c.PendingVersion = "" // AWSPENDING on AWSCURRENT is a finished rotation
	}
	if c.CurrentVersion != "" {
		c.CurrentCreated = created[c.CurrentVersion]
		if c.CurrentCreated != nil {
			c.CurrentAge = Duration(max(now.Sub(*c.CurrentCreated), 0).Round(time.Second))
		}
	}
	if c.PendingVersion != "" {
		c.Stuck = true
		c.PendingCreated = created[c.PendingVersion]
		if c.PendingCreated != nil {
			c.PendingAge = Duration(max(now.Sub(*c.PendingCreated), 0).Round(time.Second))
		}
	}
}

// verify probes the secret through its rotation function: the pending
// version when a rotation is unfinished, else AWSCURRENT.
func (w *Watcher) verify(ctx context.Context, c *Check) {
	c.Probe, c.CurrentLogsIn, c.PreviousRefused, c.ProbeError = nil, nil, nil, ""
	token := c.PendingVersion
	if token == "" {
		token = c.CurrentVersion
	}
	switch {
	case c.Function == "":
		c.ProbeError = "the secret has no rotation function, which alone can reach the downstream system to probe the credentials"
		return
	case token == "":
		c.ProbeError = "the secret has no AWSCURRENT version to probe"
		return
	case w.Lambda == nil:
		c.ProbeError = "probes are off (no Lambda client)"
		return
	}
	r, err := w.report(ctx, c.Function, c.SecretARN, StepProbe, token)
	if err != nil {
		c.ProbeError = err.Error()
		return
	}
	c.Probe = r
	if cur, ok := r.Version(r.CurrentVersion); ok {
		switch cur.Outcome {
		case recovery.OutcomeLogsIn:
			c.CurrentLogsIn = aws.Bool(true)
		case recovery.OutcomeRefused, recovery.OutcomeLoginDisabled:
			c.CurrentLogsIn = aws.Bool(false)
		}
	}
	if r.SingleCredential {
		for _, v := range r.Versions {
			if v.VersionID == r.CurrentVersion || !hasLabel(v.Labels, labelPrevious) {
				continue
			}
			switch v.Outcome {
			case recovery.OutcomeLogsIn:
				c.PreviousRefused = aws.Bool(false)
			case recovery.OutcomeRefused, recovery.OutcomeLoginDisabled:
				c.PreviousRefused = aws.Bool(true)
			}
		}
	}
}

// reap invokes the rotation function's reapSecret with the AWSCURRENT
// version when the probe report says the type reaps (expiring users), so
// that expired users are dropped between rotations too: on MySQL and
// MariaDB, which cannot expire an account, this is what ends an expired
// credential. The function keeps AWSCURRENT's and AWSPENDING's users.
func (w *Watcher) reap(ctx context.Context, c *Check) {
	if c.Probe == nil || !c.Probe.Reaper || c.CurrentVersion == "" || w.Lambda == nil || c.Function == "" {
		return
	}
	r, err := w.invoke(ctx, c.Function, c.SecretARN, StepReap, c.CurrentVersion)
	switch {
	case err != nil:
		c.ReapError = err.Error()
	case r.Action != StepReapAction:
		c.ReapError = fmt.Sprintf("%s answered %s without a reap report: is it a Rotary function that knows the step?", c.Function, StepReap)
	default:
		c.Reaped = r.Reaped
	}
}

// StepReapAction is the Action of reapSecret's report.
const StepReapAction = "reap"

// repair heals a stuck rotation when the configuration allows, or records
// why not.
func (w *Watcher) repair(ctx context.Context, c *Check, t Target, now time.Time) {
	enabled := w.Config.Repair
	if t.Repair != nil {
		enabled = *t.Repair
	}
	lockedOut := c.Probe != nil && c.Probe.State == recovery.StateLockedOut
	switch {
	case !c.Stuck && lockedOut:
		c.refuse(RepairNotStuck, "AWSCURRENT is refused but no rotation is unfinished, so the watch does not repair it by itself: "+recovery.Advice(c.name(), c.Probe))
	case !c.Stuck:
		return
	case !enabled && lockedOut:
		c.refuse(RepairDisabled, "applications reading AWSCURRENT cannot log in, and repair is off for this secret (ROTARY_WATCH_REPAIR, or the event's repair): "+recovery.Advice(c.name(), c.Probe))
	case !enabled:
		return
	case c.PendingCreated == nil:
		c.refuse(RepairFailed, "the AWSPENDING version's creation date is unknown, so its age cannot be told")
	case time.Duration(c.PendingAge) < w.Config.repairAfter():
		c.refuse(RepairTooYoung, fmt.Sprintf("AWSPENDING (version %s) is %s old, younger than %s (ROTARY_WATCH_REPAIR_AFTER): the rotation may still be running", c.PendingVersion, time.Duration(c.PendingAge), w.Config.repairAfter()))
	case c.Function == "" || w.Lambda == nil:
		c.refuse(RepairNoFunction, "no rotation function to run recoverSecret with")
	default:
		w.recover(ctx, c, now)
	}
}

// MinRecoverTime is the least time a run must have left to start a
// recoverSecret: one the watch stops waiting for would be reported failed
// while the function may still finish it. The next run tries again.
const MinRecoverTime = 2 * time.Minute

func (w *Watcher) recover(ctx context.Context, c *Check, now time.Time) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < MinRecoverTime {
		c.refuse(RepairNoTime, fmt.Sprintf("less than %s of the watch's run is left, too little to wait for recoverSecret; the next run repairs it", MinRecoverTime))
		return
	}
	before := c.stateNow()
	r, err := w.report(ctx, c.Function, c.SecretARN, StepRecover, c.PendingVersion)
	if err != nil {
		c.refuse(RepairFailed, "recoverSecret failed: "+err.Error())
		return
	}
	if !r.Changed {
		c.Probe = r
		c.refuse(RepairPlanNone, fmt.Sprintf("recoverSecret changed nothing (state %s, plan %s): %s", r.State, r.Plan, r.Summary))
		return
	}
	c.Repaired, c.Repair, c.StateBefore = true, RepairDone, before
	c.RepairDetail = fmt.Sprintf("was %s; recoverSecret did %s: %s", before, r.Action, r.Summary)
	// Look again, so that the line's state and metrics are the secret's
	// after the repair.
	desc, err := w.SM.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(c.SecretARN)})
	if err == nil {
		var versions []smtypes.SecretVersionsListEntry
		if versions, err = w.listVersions(ctx, c.SecretARN); err == nil {
			fn, mismatch := c.Function, c.FunctionMismatch
			w.health(c, Target{ARN: c.SecretARN, Function: fn}, desc, versions, now)
			c.Function, c.FunctionName, c.FunctionMismatch = fn, functionName(fn), mismatch
			w.verify(ctx, c)
			return
		}
	}
	c.ProbeError = "after the repair: " + err.Error()
	c.Probe, c.CurrentLogsIn, c.PreviousRefused = nil, nil, nil
}

func (c *Check) refuse(outcome, detail string) {
	c.Repair, c.RepairDetail = outcome, detail
}

// stateNow is the state the findings so far give (decide without the
// side effects).
func (c *Check) stateNow() string {
	cp := *c
	cp.decide()
	return cp.State
}

// decide sets State, Problems and Advice from the findings.
func (c *Check) decide() {
	if c.State == StateError || c.State == StateUnchecked {
		return
	}
	type finding struct{ state, what string }
	var fs []finding
	r := c.Probe
	if r != nil {
		switch r.State {
		case recovery.StateLockedOut, recovery.StateDrifted, recovery.StateLoginDisabled:
			fs = append(fs, finding{r.State, r.Summary})
		}
	}
	if c.Stuck {
		fs = append(fs, finding{StateStuck, fmt.Sprintf("AWSPENDING is on version %s (created %s ago), not on AWSCURRENT: a rotation is running or failed", c.PendingVersion, time.Duration(c.PendingAge))})
	}
	if !c.RotationEnabled {
		fs = append(fs, finding{StateRotationDisabled, "rotation is off, although the suite manages the secret"})
	}
	if c.Overdue {
		fs = append(fs, finding{StateOverdue, fmt.Sprintf("the rotation due by %s (the end of its window) has not happened, nor within the grace after it", fmtTime(c.NextRotation))})
	}
	switch {
	case r == nil:
		fs = append(fs, finding{StateUnverified, "the probe did not run: " + c.ProbeError})
	case r.State == recovery.StateUnknown:
		fs = append(fs, finding{StateUnverified, r.Summary})
	}
	if c.FunctionMismatch != "" {
		fs = append(fs, finding{"", c.FunctionMismatch})
	}
	if r != nil && r.SingleCredential && len(r.StillValid) > 0 {
		fs = append(fs, finding{"", r.Summary})
	}
	if c.ReapError != "" {
		fs = append(fs, finding{"", "the reaper did not drop the expired users (on MySQL and MariaDB they still log in until it does): " + c.ReapError})
	}
	c.State, c.Problems = StateOK, nil
	for _, f := range fs {
		if c.State == StateOK && f.state != "" {
			c.State = f.state
		}
		c.Problems = append(c.Problems, f.what)
	}
	c.Advice = c.advice()
}

func (c *Check) name() string {
	if c.SecretName != "" {
		return c.SecretName
	}
	return c.SecretARN
}

// advice is the one rotary command that fixes the secret's state.
func (c *Check) advice() string {
	name := c.name()
	switch c.State {
	case StateLockedOut, StateDrifted, StateLoginDisabled:
		return recovery.Advice(name, c.Probe)
	case StateStuck:
		if c.Probe != nil {
			return recovery.Advice(name, c.Probe)
		}
		return fmt.Sprintf("Run 'rotary unstick %s' (it probes which version logs in first)", name)
	case StateRotationDisabled:
		return fmt.Sprintf("Turn rotation on again: 'rotary rotate %s --function %s' (or redeploy the CDK app, which configures it)", name, orDash(c.Function))
	case StateOverdue:
		return fmt.Sprintf("Rotate it now and watch the steps: 'rotary rotate %s --wait'", name)
	case StateUnverified:
		if c.Probe != nil {
			return recovery.Advice(name, c.Probe)
		}
		return fmt.Sprintf("Fix why the probe did not run, then 'rotary probe %s'", name)
	}
	if c.Probe != nil {
		return recovery.Advice(name, c.Probe)
	}
	return "Nothing needs fixing"
}

// report invokes a probe or recovery step and decodes the function's report.
func (w *Watcher) report(ctx context.Context, function, arn, step, token string) (*recovery.Report, error) {
	r, err := w.invoke(ctx, function, arn, step, token)
	if err != nil {
		return nil, err
	}
	if r.State == "" {
		return nil, fmt.Errorf("%s answered %s without a report: is it a Rotary rotation function that knows the %s step?", function, step, step)
	}
	return r, nil
}

// invoke invokes an operator step and decodes the function's answer.
func (w *Watcher) invoke(ctx context.Context, function, arn, step, token string) (*recovery.Report, error) {
	payload, err := json.Marshal(map[string]string{"Step": step, "SecretId": arn, "ClientRequestToken": token})
	if err != nil {
		return nil, err
	}
	var opts []func(*lambda.Options)
	if step == StepRecover {
		// recoverSecret moves labels: the SDK must not send it twice (a
		// retry after a slow first answer would find the labels moved and
		// report a failure for a repair that succeeded).
		opts = append(opts, func(o *lambda.Options) { o.RetryMaxAttempts = 1 })
	}
	out, err := w.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(function), Payload: payload}, opts...)
	if err != nil {
		return nil, fmt.Errorf("invoke %s for %s: %v; check that the watch may call lambda:InvokeFunction on it", function, step, err)
	}
	if out.FunctionError != nil {
		var fe struct {
			ErrorMessage string `json:"errorMessage"`
		}
		if json.Unmarshal(out.Payload, &fe) != nil || fe.ErrorMessage == "" {
			fe.ErrorMessage = "function error " + aws.ToString(out.FunctionError)
		}
		return nil, fmt.Errorf("%s failed in %s: %s", step, function, truncate(fe.ErrorMessage, 600))
	}
	var r recovery.Report
	if err := json.Unmarshal(out.Payload, &r); err != nil {
		return nil, fmt.Errorf("%s answered %s without a report: is it a Rotary rotation function that knows the %s step?", function, step, step)
	}
	return &r, nil
}

// functionName is the name in a Lambda function ARN (or the name itself).
func functionName(arn string) string {
	if arn == "" {
		return "none"
	}
	if _, rest, ok := strings.Cut(arn, ":function:"); ok {
		name, _, _ := strings.Cut(rest, ":")
		return name
	}
	return arn
}

func hasLabel(labels []string, l string) bool {
	for _, x := range labels {
		if x == l {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "..."
	}
	return s
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "FUNCTION_ARN"
	}
	return s
}

func hours(d Duration) float64 {
	return math.Round(time.Duration(d).Hours()*100) / 100
}
