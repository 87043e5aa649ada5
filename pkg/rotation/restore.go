package rotation

import (
	"context"
	"fmt"
	"time"
)

// RestoreBudget is the time kept back from setSecret, testSecret and
// finishSecret of a Restorer so that, when the step fails or runs out of time, restoring
// AWSCURRENT's credential still has time to run before Lambda's deadline.
// With less than three budgets left, a third of what is left is kept.
const RestoreBudget = 15 * time.Second

// stepContext returns the context a compensable step runs under: for a
// Restorer, the invocation's deadline less the restore budget.
func (h *Handler) stepContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := h.cred.(Restorer); !ok {
		return ctx, func() {}
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		return ctx, func() {}
	}
	reserve := RestoreBudget
	if left := time.Until(deadline); left < 3*RestoreBudget {
		reserve = left / 3
	}
	return context.WithDeadline(ctx, deadline.Add(-reserve))
}

// restoreContext returns the context the restore runs under: it ignores a
// step's cancellation but not the invocation's deadline, and is bounded by
// RestoreBudget when the invocation has none.
func restoreContext(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(RestoreBudget)
	}
	return context.WithDeadline(context.WithoutCancel(ctx), deadline)
}

// restoreCurrent is called when setSecret or testSecret failed (setSecret
// may have replaced the credential before it failed), or finishSecret failed
// with AWSCURRENT still on the old version, or either step found its
// version no longer AWSPENDING (the rotation was abandoned under it): for
// a Restorer it makes AWSCURRENT's credential valid downstream again,
// logging in with the step's version's credential (the one setSecret may
// have set), best-effort and bounded in time. The step fails all the same
// (with cause), so Secrets Manager retries the rotation and setSecret sets
// the pending credential again; the error and the log line say what the
// restore did.
func (h *Handler) restoreCurrent(ctx context.Context, inv *invocation, cause error) error {
	r, ok := h.cred.(Restorer)
	if !ok {
		return cause
	}
	ctx, cancel := restoreContext(ctx)
	defer cancel()
	cur, err := h.getVersion(ctx, inv, inv.arn, "", LabelCurrent)
	var pend Version
	if err == nil {
		// By id: the version may have lost its AWSPENDING label.
		pend, err = h.getVersion(ctx, inv, inv.arn, inv.ev.ClientRequestToken, "")
	}
	restored := false
	if err == nil {
		restored, err = r.Restore(ctx, RestoreRequest{SecretARN: inv.arn, Current: cur, Pending: pend, Previous: h.previous(inv), Secrets: h.store(inv)})
	}
	switch {
	case err != nil && inv.ev.Step == StepSet:
		// setSecret may have failed before it changed anything (the
		// server unreachable): say what is known, not a lockout.
		inv.restore = "failed"
		return fmt.Errorf("%w; AWSCURRENT's credential could not be proven or put back downstream either (%w): if setSecret changed it before failing, only AWSPENDING's credential may log in until the rotation is retried or 'rotary unstick' completes it", cause, err)
	case err != nil:
		inv.restore = "failed"
		return fmt.Errorf("%w; restoring AWSCURRENT's credential downstream failed too (%w): until the rotation is retried or 'rotary unstick' completes it, only AWSPENDING's credential may log in", cause, err)
	case restored:
		inv.restore = "succeeded"
		return fmt.Errorf("%w; AWSCURRENT's credential was restored downstream, so applications can log in while the rotation is retried", cause)
	default:
		inv.restore = "not needed"
		return fmt.Errorf("%w; AWSCURRENT's credential still logs in downstream (nothing to restore)", cause)
	}
}

// confirmCurrent is called when AWSCURRENT is on the step's version
// although an earlier call said it was not: a label move that landed after
// its caller gave up (a timed-out finishSecret), or a retry after a
// finishSecret whose reply was lost. For a Restorer, whose credential
// downstream may then be AWSPREVIOUS's (put back by an earlier restore),
// it makes AWSCURRENT's credential valid again, logging in with
// AWSPREVIOUS's. An error means AWSCURRENT does not log in.
func (h *Handler) confirmCurrent(ctx context.Context, inv *invocation) error {
	r, ok := h.cred.(Restorer)
	if !ok {
		return nil
	}
	ctx, cancel := restoreContext(ctx)
	defer cancel()
	cur, err := h.getVersion(ctx, inv, inv.arn, inv.ev.ClientRequestToken, LabelCurrent)
	if err != nil {
		return fmt.Errorf("AWSCURRENT moved to this version; reading it to prove it logs in failed: %w", err)
	}
	// Restore tries AWSCURRENT first, then (Pending being AWSCURRENT too)
	// AWSPREVIOUS, which it reads only if it gets that far.
	restored, err := r.Restore(ctx, RestoreRequest{SecretARN: inv.arn, Current: cur, Pending: cur, Previous: h.previous(inv), Secrets: h.store(inv)})
	switch {
	case err != nil:
		inv.restore = "failed"
		return fmt.Errorf("AWSCURRENT is this version, but its credential does not log in downstream and setting it again failed: %w", err)
	case restored:
		inv.restore = "succeeded"
		inv.note = "AWSCURRENT's credential was set downstream again (an earlier restore had put AWSPREVIOUS's back)"
	default:
		inv.restore = "not needed"
	}
	return nil
}
