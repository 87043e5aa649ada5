package rotation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/rotary-secrets/rotary/pkg/recovery"
)

// ActionReap is the Action of the report reapSecret answers with.
const ActionReap = "reap"

// ReapBudget bounds the reap after finishSecret: the label has moved, so
// the rotation is done whatever the reap does, and the next rotation or
// the watch's reapSecret finishes what it leaves.
const ReapBudget = 30 * time.Second

// reapSecret runs the operator step reapSecret: the token must name the
// AWSCURRENT version (the watch passes it from ListSecretVersionIds). The
// type keeps AWSCURRENT's and, when a rotation is unfinished, AWSPENDING's
// credential. It answers with a report whose Action is ActionReap.
func (h *Handler) reapSecret(ctx context.Context, inv *invocation) error {
	r, ok := h.cred.(Reaper)
	if !ok {
		return fmt.Errorf("%w: %T has no Reap; its credentials do not expire", ErrCannotReap, h.cred)
	}
	token := inv.ev.ClientRequestToken
	stages, ok := inv.stages[token]
	if !ok {
		return fmt.Errorf("%w: the token is not a version of the secret", ErrUnknownToken)
	}
	if !slices.Contains(stages, LabelCurrent) {
		return fmt.Errorf("%w: the token must name the AWSCURRENT version (it has %v)", ErrReapRefused, stages)
	}
	res, err := h.reap(ctx, inv, r, token)
	if err != nil {
		return fmt.Errorf("reap: %w", err)
	}
	pending, _ := holder(inv.stages, LabelPending)
	if pending == token {
		pending = ""
	}
	inv.report = &recovery.Report{SecretARN: inv.arn, Action: ActionReap, CurrentVersion: token, PendingVersion: pending,
		Reaped: res.Dropped, ReapKept: res.Kept, Versions: []recovery.VersionProbe{}}
	return nil
}

// reap reads AWSCURRENT (the version token) and AWSPENDING when it is on
// another version, and calls the type's Reap.
func (h *Handler) reap(ctx context.Context, inv *invocation, r Reaper, token string) (ReapResponse, error) {
	cur, err := h.getVersion(ctx, inv, inv.arn, token, LabelCurrent)
	if err != nil {
		return ReapResponse{}, err
	}
	if err := h.validate(ctx, LabelCurrent, cur); err != nil {
		return ReapResponse{}, err
	}
	req := ReapRequest{SecretARN: inv.arn, Current: cur, Secrets: h.store(inv)}
	if id, ok := holder(inv.stages, LabelPending); ok && id != token {
		pend, err := h.getVersion(ctx, inv, inv.arn, id, LabelPending)
		var notFound *smtypes.ResourceNotFoundException
		switch {
		case errors.As(err, &notFound):
			// A rotation that has not run createSecret yet: its version
			// has no value, so no credential of it exists downstream.
		case err != nil:
			return ReapResponse{}, fmt.Errorf("read AWSPENDING, whose credential must be kept: %w", err)
		default:
			req.Pending = &pend
		}
	}
	return r.Reap(ctx, req)
}

// reapAfterFinish reaps after finishSecret moved AWSCURRENT to token, for a
// Reaper, within ReapBudget (or a third of the time left). It never fails
// the step: the rotation is complete, and a reap that fails now is retried
// by the next rotation and by the watch. The outcome goes into the step's
// log line.
func (h *Handler) reapAfterFinish(ctx context.Context, inv *invocation, token string) {
	r, ok := h.cred.(Reaper)
	if !ok {
		return
	}
	budget := ReapBudget
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl) / 3; left < budget {
			budget = left
		}
	}
	rctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	// AWSPENDING is on the new AWSCURRENT (Secrets Manager removes it
	// after this step), so reap finds no other pending credential.
	res, err := h.reap(rctx, inv, r, token)
	if err != nil {
		inv.reap = "failed (the rotation is complete; the next rotation or the watch's reapSecret retries): " + err.Error()
		return
	}
	inv.reap = fmt.Sprintf("dropped %d expired, kept %d", len(res.Dropped), res.Kept)
	if len(res.Dropped) > 0 {
		inv.reap += ": " + strings.Join(res.Dropped, ", ")
	}
}
