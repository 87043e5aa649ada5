package smlocal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// The four rotation steps, in the order Secrets Manager runs them.
const (
	StepCreate = "createSecret"
	StepSet    = "setSecret"
	StepTest   = "testSecret"
	StepFinish = "finishSecret"
)

var allSteps = []string{StepCreate, StepSet, StepTest, StepFinish}

// RetryPolicy says how a failed rotation is retried: the whole rotation is
// run up to Attempts times with the same token, waiting Backoff before the
// second attempt and twice as long before each later one.
type RetryPolicy struct {
	Attempts int
	Backoff  time.Duration
}

// DefaultRetryPolicy is 3 attempts, 1s backoff.
func DefaultRetryPolicy() RetryPolicy { return RetryPolicy{Attempts: 3, Backoff: time.Second} }

// RotationState is the state of a rotation.
type RotationState string

// Rotation states.
const (
	RotationRunning   RotationState = "running"
	RotationSucceeded RotationState = "succeeded"
	RotationFailed    RotationState = "failed"
)

// Rotation records one rotation: every attempt and every step of it. It is
// readable while the rotation runs. A scheduled rotation that failed because
// its function cannot be invoked (see Tick) has no attempts.
type Rotation struct {
	SecretARN   string
	SecretName  string
	FunctionARN string
	// Token is the ClientRequestToken, the VersionId of the pending version.
	Token         string
	RotationToken string
	// TestOnly is true for RotateImmediately=false: only testSecret runs.
	TestOnly bool
	// Scheduled is true when the scheduler (Tick) started the rotation.
	Scheduled bool
	State     RotationState
	Started   time.Time // by the server's clock
	Ended     time.Time
	Attempts  []Attempt
	// Err is the error of the last failed attempt.
	Err string
}

// Attempt is one run through the steps.
type Attempt struct {
	Number  int
	Started time.Time
	Steps   []StepRun
	Err     string
}

// StepRun is one invocation of the rotation function.
type StepRun struct {
	Step    string
	Started time.Time
	// Duration is measured with the wall clock; zero while Done is false.
	Duration time.Duration
	Done     bool
	Err      string
}

func (r *Rotation) clone() Rotation {
	c := *r
	c.Attempts = slices.Clone(r.Attempts)
	for i := range c.Attempts {
		c.Attempts[i].Steps = slices.Clone(c.Attempts[i].Steps)
	}
	return c
}

// rotationRun is a rotation and the channel closed when it ends.
type rotationRun struct {
	rec    Rotation
	done   chan struct{}
	ctx    context.Context // canceled by Close and by CancelRotateSecret
	cancel context.CancelFunc
	// wake is signaled (never closed) when a change took AWSPENDING off the
	// run's token, so that a run waiting out a retry backoff looks again.
	wake chan struct{}
	// denied is true for a scheduled rotation recorded as failed without
	// running because its function cannot be invoked.
	denied bool
}

// errCanceled ends a rotation that CancelRotateSecret canceled.
var errCanceled = errors.New("canceled by CancelRotateSecret")

// errAbandoned ends a rotation whose token no longer holds AWSPENDING.
var errAbandoned = errors.New("the rotation was abandoned")

// ErrNoRotation is returned by WaitRotation for a secret that never rotated.
var ErrNoRotation = errors.New("smlocal: no rotation recorded for this secret")

// runsLocked returns the rotations of the secret named by id (name, ARN or
// partial ARN), also after it was deleted.
func (s *Server) runsLocked(id string) []*rotationRun {
	if sec := s.st.lookup(id); sec != nil {
		return s.rotations[sec.ARN]
	}
	for arn, runs := range s.rotations {
		if len(runs) > 0 && refersTo(arn, runs[0].rec.SecretName, id) {
			return runs
		}
	}
	return nil
}

// Rotations returns a copy of every rotation of the secret, oldest first,
// including one that is running.
func (s *Server) Rotations(secretID string) []Rotation {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Rotation
	for _, r := range s.runsLocked(secretID) {
		out = append(out, r.rec.clone())
	}
	return out
}

// WaitRotation blocks until the secret's newest rotation has ended and
// returns it, or ErrNoRotation if it never rotated. An older rotation may
// still be running then: one whose AWSPENDING was removed by hand ends after
// the step it is running, and RotateSecret does not wait for it.
func (s *Server) WaitRotation(ctx context.Context, secretID string) (Rotation, error) {
	for {
		s.mu.Lock()
		runs := s.runsLocked(secretID)
		if len(runs) == 0 {
			s.mu.Unlock()
			return Rotation{}, fmt.Errorf("wait for rotation of %s: %w", secretID, ErrNoRotation)
		}
		last := runs[len(runs)-1]
		if last.rec.State != RotationRunning {
			r := last.rec.clone()
			s.mu.Unlock()
			return r, nil
		}
		done := last.done
		s.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return Rotation{}, fmt.Errorf("wait for rotation of %s: %w", secretID, ctx.Err())
		}
	}
}

// rotatingLocked says whether a rotation of sec is really running: its
// record is running and its token still holds AWSPENDING. A running record
// whose token lost AWSPENDING is abandoned and ends on its own.
func (s *Server) rotatingLocked(sec *storedSecret) bool {
	for _, run := range s.rotations[sec.ARN] {
		if run.rec.State == RotationRunning && sec.Labels[labelPending] == run.rec.Token {
			return true
		}
	}
	return false
}

// abandonedLocked says why a run must stop: its secret was deleted, or its
// token no longer holds AWSPENDING (removed or moved by hand, for example
// with UpdateSecretVersionStage). Nil means it may go on.
func (s *Server) abandonedLocked(r *Rotation) error {
	sec := s.st.Secrets[r.SecretARN]
	if sec == nil {
		return fmt.Errorf("the secret was deleted; %w", errAbandoned)
	}
	if sec.Labels[labelPending] != r.Token {
		return fmt.Errorf("AWSPENDING was removed from version %s; %w", r.Token, errAbandoned)
	}
	return nil
}

// wakeAbandonedLocked wakes every running rotation that a change abandoned,
// so that one waiting out a retry backoff ends now rather than when the
// backoff is over. One in the middle of a step ends once the step returns:
// the invocation is never canceled, since the function would go on running
// (and, in the local stack, its queue would be freed while it still runs).
// It looks at the running rotations only (s.running), not at every
// rotation ever recorded: every change calls it, and a scan of the whole
// history made each call grow with the number of secrets.
func (s *Server) wakeAbandonedLocked() {
	for run := range s.running {
		if run.rec.State != RotationRunning || s.abandonedLocked(&run.rec) == nil {
			continue
		}
		select {
		case run.wake <- struct{}{}:
		default:
		}
	}
}

// canInvokeLocked asks Options.CanInvoke whether the function may be invoked.
func (s *Server) canInvokeLocked(functionARN string) error {
	if s.opts.CanInvoke == nil {
		return nil
	}
	return s.opts.CanInvoke(functionARN)
}

// startRotationLocked records a rotation and runs it in the background.
func (s *Server) startRotationLocked(sec *storedSecret, token string, testOnly, scheduled bool) {
	run := &rotationRun{
		rec: Rotation{
			SecretARN:     sec.ARN,
			SecretName:    sec.Name,
			FunctionARN:   sec.RotationLambdaARN,
			Token:         token,
			RotationToken: newToken(),
			TestOnly:      testOnly,
			Scheduled:     scheduled,
			State:         RotationRunning,
			Started:       s.now(),
		},
		done: make(chan struct{}),
		wake: make(chan struct{}, 1),
	}
	ctx, cancel := context.WithCancelCause(s.ctx)
	run.ctx, run.cancel = ctx, func() { cancel(errCanceled) }
	s.rotations[sec.ARN] = append(s.rotations[sec.ARN], run)
	s.running[run] = struct{}{}
	s.log.Info("smlocal: rotation started", "event", "RotationStarted", "secret", sec.ARN, "token", token, "testOnly", testOnly, "scheduled", scheduled)
	s.recordServiceEvent("RotationStarted", sec.ARN)
	s.wg.Add(1)
	go s.runRotation(run)
}

func (s *Server) runRotation(run *rotationRun) {
	defer s.wg.Done()
	defer close(run.done)
	defer run.cancel()
	ctx := run.ctx
	s.mu.Lock()
	r := &run.rec
	ev := Event{SecretId: r.SecretARN, ClientRequestToken: r.Token, RotationToken: r.RotationToken}
	fn, arn, testOnly := r.FunctionARN, r.SecretARN, r.TestOnly
	s.mu.Unlock()
	steps := allSteps
	if testOnly {
		steps = []string{StepTest}
	}
	var lastErr error
	for n := 1; n <= s.opts.Retry.Attempts; n++ {
		if n > 1 {
			s.backoff(run, s.opts.Retry.Backoff<<(n-2))
		}
		if ctx.Err() != nil {
			lastErr = stopReason(ctx)
			break
		}
		// Before each attempt and each step: a token that lost AWSPENDING
		// (removed by hand, then perhaps a new rotation started) is no
		// longer this run's to rotate.
		s.mu.Lock()
		if err := s.abandonedLocked(r); err != nil {
			s.mu.Unlock()
			lastErr = err
			break
		}
		r.Attempts = append(r.Attempts, Attempt{Number: n, Started: s.now()})
		s.mu.Unlock()
		var att *Attempt
		lastErr = nil
		for _, step := range steps {
			if ctx.Err() != nil {
				lastErr = stopReason(ctx)
				break
			}
			ev.Step = step
			s.mu.Lock()
			att = &r.Attempts[len(r.Attempts)-1]
			if err := s.abandonedLocked(r); err != nil {
				att.Err = err.Error()
				s.mu.Unlock()
				lastErr = err
				break
			}
			att.Steps = append(att.Steps, StepRun{Step: step, Started: s.now()})
			s.mu.Unlock()
			start := time.Now()
			err := s.opts.Invoker.Invoke(ctx, fn, ev)
			if err != nil && ctx.Err() != nil {
				err = fmt.Errorf("%w (%w)", stopReason(ctx), err)
			}
			d := time.Since(start)
			s.mu.Lock()
			att = &r.Attempts[len(r.Attempts)-1]
			sr := &att.Steps[len(att.Steps)-1]
			sr.Duration, sr.Done = d, true
			if err != nil {
				sr.Err = err.Error()
				lastErr = fmt.Errorf("step %s: %w", step, err)
				att.Err = lastErr.Error()
			}
			s.mu.Unlock()
			s.log.Info("smlocal: rotation step", "secret", arn, "token", ev.ClientRequestToken, "attempt", n, "step", step, "duration", d, "ok", err == nil)
			if err != nil {
				break
			}
		}
		if lastErr == nil || ctx.Err() != nil || errors.Is(lastErr, errAbandoned) {
			break
		}
	}
	s.finishRotation(run, lastErr)
}

// backoff waits d before a retry; it returns early when the run is canceled
// or abandoned (woken by a change that took AWSPENDING off its token).
func (s *Server) backoff(run *rotationRun, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return
		case <-run.ctx.Done():
			return
		case <-run.wake:
			s.mu.Lock()
			err := s.abandonedLocked(&run.rec)
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

// stopReason says why a rotation's context ended.
func stopReason(ctx context.Context) error {
	if errors.Is(context.Cause(ctx), errCanceled) {
		return errCanceled
	}
	return errors.New("the local Secrets Manager was closed before the rotation finished")
}

// finishRotation records the outcome; on success it removes AWSPENDING (if
// it is still on the rotation's token) and moves the schedule on. A
// test-only rotation removes its AWSPENDING either way. A failed rotation,
// after its last attempt, leaves the labels as they are, as AWS does:
// AWSPENDING stays where it was, so the next RotateSecret is refused until
// it is removed, and Tick reattempts it with its token.
func (s *Server) finishRotation(run *rotationRun, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &run.rec
	now := s.now()
	r.Ended = now
	delete(s.running, run)
	if err != nil {
		r.State, r.Err = RotationFailed, err.Error()
	} else {
		r.State = RotationSucceeded
	}
	event := "RotationSucceeded"
	switch {
	case errors.Is(err, errAbandoned):
		// AWS's word for a rotation whose AWSPENDING someone replaced by
		// hand: a manual override, not a failure of the function.
		event = "RotationAbandoned"
	case err != nil:
		event = "RotationFailed"
	}
	s.recordServiceEvent(event, r.SecretARN)
	s.log.Info("smlocal: rotation ended", "event", event, "secret", r.SecretARN, "token", r.Token, "state", r.State, "attempts", len(r.Attempts), "abandoned", errors.Is(err, errAbandoned))
	sec := s.st.Secrets[r.SecretARN]
	if sec == nil {
		return // deleted meanwhile
	}
	switch {
	case r.TestOnly:
		if sec.Labels[labelPending] == r.Token {
			sec.detach(labelPending)
		}
	case err == nil:
		if sec.Labels[labelPending] == r.Token {
			sec.detach(labelPending)
		}
		sec.LastRotated = now
		sec.NextRotation = nextRotation(sec)
	default:
		return
	}
	if cerr := s.commitLocked(); cerr != nil {
		r.Err = cerr.Error()
	}
}

func (s *Server) rotateSecret(body []byte) (any, error) {
	var in struct {
		SecretId           *string
		ClientRequestToken *string
		RotationLambdaARN  *string
		RotationRules      *rotationRules
		RotateImmediately  *bool
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if _, err := parseRules(in.RotationRules); err != nil {
		return nil, err
	}
	token := newToken()
	if in.ClientRequestToken != nil {
		token = *in.ClientRequestToken
	}
	if err := checkToken(token); err != nil {
		return nil, err
	}
	testOnly := in.RotateImmediately != nil && !*in.RotateImmediately
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, &apiError{Type: excInternal, Message: "the local Secrets Manager is closing"}
	}
	sec, err := s.secretRefLocked(in.SecretId, true)
	if err != nil {
		return nil, err
	}
	fn := sec.RotationLambdaARN
	if in.RotationLambdaARN != nil && *in.RotationLambdaARN != "" {
		fn = *in.RotationLambdaARN
	}
	if fn == "" {
		return nil, &apiError{Type: excInvalidRequest, Message: msgNoRotationFunction}
	}
	// AWS checks that it may invoke the function on every RotateSecret,
	// whether the ARN is new or the stored one, before it changes anything.
	if err := s.canInvokeLocked(fn); err != nil {
		s.log.Warn("smlocal: RotateSecret refused: the rotation function cannot be invoked", "secret", sec.ARN, "function", fn, "err", err)
		return nil, &apiError{Type: excAccessDenied, Message: msgCannotInvoke}
	}
	// Only the labels say whether a rotation is unfinished, as in AWS: a
	// rotation record still running (in retry backoff, or in a step) whose
	// token lost AWSPENDING does not block a new one; it ends on its own.
	if p, ok := sec.Labels[labelPending]; ok && p != sec.Labels[labelCurrent] {
		return nil, &apiError{Type: excInvalidRequest, Message: msgPreviousRotation}
	}
	if _, exists := sec.Versions[token]; exists {
		return nil, errorf(excResourceExists, "You can't use ClientRequestToken %s because that value is already in use for a version of secret %s.", token, sec.ARN)
	}
	now := s.now()
	var cur *storedVersion
	if testOnly {
		cur = sec.Versions[sec.Labels[labelCurrent]]
		if cur == nil || !cur.HasValue {
			return nil, errorf(excInvalidRequest, "secret %s has no AWSCURRENT value to test; put a value first or rotate immediately", sec.Name)
		}
	}
	sec.RotationLambdaARN = fn
	if in.RotationRules != nil {
		r := *in.RotationRules
		sec.Rules = &r
		sec.RotationBase = now
	}
	enabled := true
	sec.RotationEnabled = &enabled
	v := &storedVersion{ID: token, Created: now}
	if testOnly {
		v.HasValue, v.String, v.Binary = true, cur.String, slices.Clone(cur.Binary)
	}
	sec.Versions[token] = v
	sec.attach(labelPending, token)
	sec.NextRotation = nextRotation(sec)
	sec.LastChanged = now
	sec.prune(now)
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	s.startRotationLocked(sec, token, testOnly, false)
	return map[string]any{"ARN": sec.ARN, "Name": sec.Name, "VersionId": token}, nil
}

func (s *Server) cancelRotateSecret(body []byte) (any, error) {
	var in struct{ SecretId *string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secretRefLocked(in.SecretId, true)
	if err != nil {
		return nil, err
	}
	disabled := false
	sec.RotationEnabled = &disabled
	sec.LastChanged = s.now()
	runs := s.rotations[sec.ARN]
	for i := len(runs) - 1; i >= 0; i-- {
		if runs[i].rec.State == RotationRunning {
			runs[i].cancel() // the reference: "if a rotation is in progress, cancels the rotation"
			break
		}
	}
	out := map[string]any{"ARN": sec.ARN, "Name": sec.Name}
	if p, ok := sec.Labels[labelPending]; ok && p != sec.Labels[labelCurrent] {
		out["VersionId"] = p
	}
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return out, nil
}

// Tick starts the rotations that are due at the clock's current time (the
// secret has rotation enabled and its NextRotationDate has come, and no
// rotation of it is running with AWSPENDING) and purges secrets whose
// recovery window is over. A rotation left unfinished is reattempted with
// its token. It returns the ARNs of the secrets whose rotation it started.
//
// A due secret whose function cannot be invoked (Options.CanInvoke) is not
// rotated: AWS would fail the rotation without running a step, so Tick
// records a failed rotation (RotationFailed, no attempts, Err saying why)
// and changes nothing on the secret: no new version, AWSPENDING where it
// was. It records that once, not at every tick, until the secret's newest
// rotation is another one or its function changes; the secret stays due,
// so it rotates at the first tick after the function can be invoked.
func (s *Server) Tick(ctx context.Context) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	now := s.now()
	var started []string
	changed := false
	for arn, sec := range s.st.Secrets {
		if ctx.Err() != nil {
			break
		}
		if sec.isDeleted() {
			if !sec.DeletionDate.After(now) {
				delete(s.st.Secrets, arn)
				changed = true
			}
			continue
		}
		if sec.RotationEnabled == nil || !*sec.RotationEnabled || sec.RotationLambdaARN == "" ||
			sec.NextRotation.IsZero() || now.Before(sec.NextRotation) || s.rotatingLocked(sec) {
			continue
		}
		if err := s.canInvokeLocked(sec.RotationLambdaARN); err != nil {
			s.recordDeniedLocked(sec, err)
			continue
		}
		token, ok := sec.Labels[labelPending]
		if !ok || token == sec.Labels[labelCurrent] {
			token = newToken()
			sec.Versions[token] = &storedVersion{ID: token, Created: now}
			sec.attach(labelPending, token)
			sec.prune(now)
			changed = true
		}
		s.startRotationLocked(sec, token, false, true)
		started = append(started, arn)
	}
	if changed {
		_ = s.commitLocked()
	}
	slices.Sort(started)
	return started
}

// recordDeniedLocked records a scheduled rotation of sec that failed because
// its function cannot be invoked, unless the secret's newest rotation is
// already that failure.
func (s *Server) recordDeniedLocked(sec *storedSecret, cause error) {
	runs := s.rotations[sec.ARN]
	if n := len(runs); n > 0 && runs[n-1].denied && runs[n-1].rec.FunctionARN == sec.RotationLambdaARN {
		return
	}
	token := sec.Labels[labelPending]
	if token == sec.Labels[labelCurrent] {
		token = "" // no version was created
	}
	now := s.now()
	run := &rotationRun{
		rec: Rotation{
			SecretARN:   sec.ARN,
			SecretName:  sec.Name,
			FunctionARN: sec.RotationLambdaARN,
			Token:       token,
			Scheduled:   true,
			State:       RotationFailed,
			Started:     now,
			Ended:       now,
			Err:         fmt.Sprintf("%s (%v)", msgCannotInvoke, cause),
		},
		done:   make(chan struct{}),
		ctx:    s.ctx,
		cancel: func() {},
		denied: true,
	}
	close(run.done)
	s.rotations[sec.ARN] = append(s.rotations[sec.ARN], run)
	s.log.Warn("smlocal: scheduled rotation not started: the rotation function cannot be invoked", "event", "RotationFailed", "secret", sec.ARN, "function", sec.RotationLambdaARN, "err", cause)
	s.recordServiceEvent("RotationFailed", sec.ARN)
}

// RunScheduler calls Tick every interval until ctx is done.
func (s *Server) RunScheduler(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.Tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
	}
}
