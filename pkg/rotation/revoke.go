package rotation

import (
	"context"
	"fmt"
	"slices"
)

// revokeSecret runs the operator's revoke step: the token must be the
// AWSCURRENT version and no rotation may be unfinished, so that revoking
// never leaves the secret without a working credential.
func (h *Handler) revokeSecret(ctx context.Context, inv *invocation) error {
	r, ok := h.cred.(Revoker)
	if !ok {
		return fmt.Errorf("%w: %T has no Revoke; rotate the secret instead", ErrCannotRevoke, h.cred)
	}
	token := inv.ev.ClientRequestToken
	stages, ok := inv.stages[token]
	if !ok {
		return fmt.Errorf("%w: the token is not a version of the secret", ErrUnknownToken)
	}
	if !slices.Contains(stages, LabelCurrent) {
		return fmt.Errorf("%w: the token must name the AWSCURRENT version (it has %v); rotate first, then revoke with the new version", ErrRevokeRefused, stages)
	}
	if id, ok := holder(inv.stages, LabelPending); ok && id != token {
		return fmt.Errorf("%w: a rotation is unfinished (AWSPENDING is on version %s); finish or clear it first", ErrRevokeRefused, id)
	}
	cur, err := h.getVersion(ctx, inv, inv.arn, token, LabelCurrent)
	if err != nil {
		return err
	}
	if err := h.validate(ctx, LabelCurrent, cur); err != nil {
		return err
	}
	if err := r.Revoke(ctx, RevokeRequest{SecretARN: inv.arn, Current: cur, Previous: h.previous(inv), Secrets: h.store(inv), Note: func(n string) { inv.note = n }}); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	return nil
}
