package rotation

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/rotary-secrets/rotary/pkg/recovery"
)

// maxDeprecatedProbes bounds how many unlabeled versions a probe tries.
const maxDeprecatedProbes = 5

// probeSecret runs the operator's probe step: it logs in with the
// credentials of the secret's recent versions and reports what works,
// changing nothing.
func (h *Handler) probeSecret(ctx context.Context, inv *invocation) error {
	r, err := h.diagnose(ctx, inv)
	if err != nil {
		return err
	}
	inv.report = r
	return nil
}

// diagnose probes the secret's versions and works out its state and the
// recovery plan.
func (h *Handler) diagnose(ctx context.Context, inv *invocation) (*recovery.Report, error) {
	p, ok := h.cred.(Prober)
	if !ok {
		return nil, fmt.Errorf("%w: %T has no Probe", ErrCannotProbe, h.cred)
	}
	token := inv.ev.ClientRequestToken
	if _, ok := inv.stages[token]; !ok && !h.isDeprecatedVersion(ctx, inv, token) {
		return nil, fmt.Errorf("%w: the token is not a version of the secret", ErrUnknownToken)
	}
	_, single := h.cred.(Restorer)
	_, reaper := h.cred.(Reaper)
	_, standalone := h.cred.(Standalone)
	r := &recovery.Report{SecretARN: inv.arn, SingleCredential: single, Reaper: reaper, NothingDownstream: standalone, Versions: []recovery.VersionProbe{}}
	r.CurrentVersion, _ = holder(inv.stages, LabelCurrent)
	if id, ok := holder(inv.stages, LabelPending); ok && id != r.CurrentVersion {
		r.PendingVersion = id
	}
	if r.CurrentVersion == "" {
		return nil, fmt.Errorf("%w: the secret has no AWSCURRENT version", ErrInvalidSecret)
	}
	listed, err := h.listVersions(ctx, inv)
	if err != nil {
		return nil, err
	}
	cur, err := h.getVersion(ctx, inv, inv.arn, r.CurrentVersion, "")
	if err == nil {
		err = h.validate(ctx, LabelCurrent, cur)
	}
	if err != nil {
		// Every probe connects the way AWSCURRENT says: without it nothing
		// can be tried.
		r.Versions = append(r.Versions, recovery.VersionProbe{VersionID: r.CurrentVersion, Labels: inv.stages[r.CurrentVersion], Outcome: recovery.OutcomeInvalid, Error: inv.scrub.scrub(err.Error())})
		recovery.Decide(r)
		return r, nil
	}
	inv.current = cur
	for _, e := range probeOrder(listed, inv.stages, r.CurrentVersion, token) {
		vp := h.probeVersion(ctx, inv, p, aws.ToString(e.VersionId))
		vp.Created = e.CreatedDate
		r.Versions = append(r.Versions, vp)
	}
	recovery.Decide(r)
	return r, nil
}

// probeVersion tries one version's credential over AWSCURRENT's settings
// (inv.current, already read and validated).
func (h *Handler) probeVersion(ctx context.Context, inv *invocation, p Prober, id string) recovery.VersionProbe {
	vp := recovery.VersionProbe{VersionID: id, Labels: inv.stages[id]}
	if vp.Labels == nil {
		vp.Labels = []string{}
	}
	v, err := inv.current, error(nil)
	if id != v.ID {
		v, err = h.getVersion(ctx, inv, inv.arn, id, "")
		if err == nil {
			if verr := h.cred.Validate(ctx, v); verr != nil {
				err = fmt.Errorf("%w: %w", ErrInvalidSecret, verr)
			}
		}
	}
	if err == nil {
		err = p.Probe(ctx, ProbeRequest{SecretARN: inv.arn, Version: v, Current: inv.current, Secrets: h.store(inv)})
	}
	vp.Outcome = classify(err)
	if err != nil {
		vp.Error = inv.scrub.scrub(err.Error())
	}
	return vp
}

// isDeprecatedVersion reports whether id is an unlabeled version of the
// secret (DescribeSecret lists only labeled ones).
func (h *Handler) isDeprecatedVersion(ctx context.Context, inv *invocation, id string) bool {
	listed, err := h.listVersions(ctx, inv)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(listed, func(e smtypes.SecretVersionsListEntry) bool { return aws.ToString(e.VersionId) == id })
}

// listVersions returns every version of the secret, deprecated ones
// included, newest first. The result is kept for the invocation.
func (h *Handler) listVersions(ctx context.Context, inv *invocation) ([]smtypes.SecretVersionsListEntry, error) {
	if inv.versions != nil {
		return inv.versions, nil
	}
	var all []smtypes.SecretVersionsListEntry
	in := &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(inv.arn), IncludeDeprecated: aws.Bool(true)}
	for {
		out, err := h.sm.ListSecretVersionIds(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list the versions of the secret: %w", err)
		}
		all = append(all, out.Versions...)
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	sort.SliceStable(all, func(i, j int) bool { return aws.ToTime(all[i].CreatedDate).After(aws.ToTime(all[j].CreatedDate)) })
	inv.versions = all
	return all, nil
}

// probeOrder picks the versions to probe: AWSCURRENT, AWSPENDING,
// AWSPREVIOUS, the token, then the newest unlabeled versions created after
// AWSCURRENT's (where a failed rotation or a careless label removal leaves
// a live credential).
func probeOrder(listed []smtypes.SecretVersionsListEntry, stages map[string][]string, current, token string) []smtypes.SecretVersionsListEntry {
	byID := map[string]smtypes.SecretVersionsListEntry{}
	for _, e := range listed {
		byID[aws.ToString(e.VersionId)] = e
	}
	var out []smtypes.SecretVersionsListEntry
	seen := map[string]bool{}
	add := func(id string) {
		if id == "" || seen[id] {
			return
		}
		seen[id] = true
		e, ok := byID[id]
		if !ok {
			e = smtypes.SecretVersionsListEntry{VersionId: aws.String(id)}
		}
		out = append(out, e)
	}
	add(current)
	for _, label := range []string{LabelPending, LabelPrevious} {
		id, _ := holder(stages, label)
		add(id)
	}
	add(token)
	curCreated := aws.ToTime(byID[current].CreatedDate)
	n := 0
	for _, e := range listed { // newest first
		id := aws.ToString(e.VersionId)
		// Not older than AWSCURRENT: dates may have second precision, so a
		// version created in the same second counts as newer.
		if n == maxDeprecatedProbes || aws.ToTime(e.CreatedDate).Before(curCreated) {
			break
		}
		if len(stages[id]) == 0 && len(e.VersionStages) == 0 && !seen[id] {
			add(id)
			n++
		}
	}
	return out
}

// classify turns a probe's error into its outcome.
func classify(err error) string {
	var (
		unknownCA *x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		record    tls.RecordHeaderError
		alert     tls.AlertError
		netErr    net.Error
		opErr     *net.OpError
		dnsErr    *net.DNSError
		notFound  *smtypes.ResourceNotFoundException
	)
	switch {
	case err == nil:
		return recovery.OutcomeLogsIn
	case errors.Is(err, ErrLoginDisabled):
		return recovery.OutcomeLoginDisabled
	case errors.Is(err, ErrRefused):
		return recovery.OutcomeRefused
	case errors.Is(err, ErrUnproven):
		return recovery.OutcomeUnproven
	case errors.Is(err, ErrOtherTarget):
		return recovery.OutcomeOtherTarget
	case errors.Is(err, ErrInvalidSecret):
		return recovery.OutcomeInvalid
	case errors.As(err, &notFound):
		return recovery.OutcomeEmpty
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid),
		errors.As(err, &verify), errors.As(err, &record), errors.As(err, &alert):
		return recovery.OutcomeTLS
	case errors.As(err, &dnsErr), errors.As(err, &opErr), errors.As(err, &netErr),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return recovery.OutcomeUnreachable
	}
	return recovery.OutcomeError
}

// recoverSecret runs the operator's recovery step: it probes (as
// probeSecret) and carries out the plan. The token must name the version
// the caller saw holding AWSPENDING (an unfinished rotation) or, when none
// is unfinished, AWSCURRENT: if the labels moved since, it refuses.
func (h *Handler) recoverSecret(ctx context.Context, inv *invocation) error {
	token := inv.ev.ClientRequestToken
	current, _ := holder(inv.stages, LabelCurrent)
	pending, _ := holder(inv.stages, LabelPending)
	stuck := pending != "" && pending != current
	switch {
	case stuck && token != pending:
		return fmt.Errorf("%w: the token must name the unfinished rotation's version %s (AWSPENDING), not %s: the secret changed since you looked; look again", ErrRecoverRefused, pending, token)
	case !stuck && token != current:
		return fmt.Errorf("%w: no rotation is unfinished, so the token must name AWSCURRENT's version %s, not %s: the secret changed since you looked; look again", ErrRecoverRefused, current, token)
	}
	r, err := h.diagnose(ctx, inv)
	if err != nil {
		return err
	}
	inv.report = r
	r.Action = recovery.PlanNone
	switch r.Plan {
	case recovery.PlanClearPending:
		// The probes ran one after another: a rotation's setSecret may
		// have changed the credential since. Look again just before the
		// label comes off: AWSCURRENT must still log in (and, for a single
		// user, AWSPENDING still not).
		p := h.cred.(Prober)
		if now := h.probeVersion(ctx, inv, p, r.CurrentVersion); now.Outcome != recovery.OutcomeLogsIn {
			return fmt.Errorf("%w: AWSCURRENT stopped logging in while the versions were probed (%s: %s): a rotation is probably running; nothing changed, look again when it has ended", ErrRecoverRefused, now.Outcome, now.Error)
		}
		if r.SingleCredential {
			if now := h.probeVersion(ctx, inv, p, r.PlanVersion); now.Outcome == recovery.OutcomeLogsIn {
				return fmt.Errorf("%w: AWSPENDING's credential started logging in while the versions were probed: a rotation is probably running; nothing changed, look again when it has ended", ErrRecoverRefused)
			}
		}
		if err := h.removeLabel(ctx, inv, LabelPending, r.PlanVersion); err != nil {
			return err
		}
	case recovery.PlanComplete:
		// As Secrets Manager would end the rotation: testSecret, then
		// finishSecret, then AWSPENDING comes off.
		sub := *inv
		sub.ev.ClientRequestToken = r.PlanVersion
		if err := h.test(ctx, &sub); err != nil {
			return fmt.Errorf("complete the rotation to version %s: %w; nothing changed", r.PlanVersion, err)
		}
		if err := h.moveCurrent(ctx, inv, r.PlanVersion, r.CurrentVersion); err != nil {
			return fmt.Errorf("complete the rotation to version %s: %w", r.PlanVersion, err)
		}
		if err := h.removeLabel(ctx, inv, LabelPending, r.PlanVersion); err != nil {
			// The rotation is complete; AWSPENDING on the AWSCURRENT
			// version blocks nothing.
			r.Summary += fmt.Sprintf(" (AWSPENDING could not be taken off the new AWSCURRENT: %s; it blocks nothing)", inv.scrub.scrub(err.Error()))
		}
		r.CurrentVersion, r.PendingVersion = r.PlanVersion, ""
	case recovery.PlanRestore:
		if err := h.moveCurrent(ctx, inv, r.PlanVersion, r.CurrentVersion); err != nil {
			return fmt.Errorf("make version %s AWSCURRENT again: %w", r.PlanVersion, err)
		}
		r.CurrentVersion = r.PlanVersion
		if r.PendingVersion != "" {
			// Its credential does not log in (the plan restores an older
			// version only then): the unfinished rotation is dead.
			if err := h.removeLabel(ctx, inv, LabelPending, r.PendingVersion); err != nil {
				return fmt.Errorf("version %s is AWSCURRENT again, but removing AWSPENDING from version %s failed: %w", r.PlanVersion, r.PendingVersion, err)
			}
			r.PendingVersion = ""
		}
	}
	if r.Plan != recovery.PlanNone {
		r.Action, r.Changed = r.Plan, true
	}
	return nil
}

func (h *Handler) moveCurrent(ctx context.Context, inv *invocation, to, from string) error {
	in := &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(inv.arn), VersionStage: aws.String(LabelCurrent), MoveToVersionId: aws.String(to)}
	if from != "" {
		in.RemoveFromVersionId = aws.String(from)
	}
	if _, err := h.sm.UpdateSecretVersionStage(ctx, in); err != nil {
		return fmt.Errorf("move AWSCURRENT from version %s to %s: %w", from, to, err)
	}
	return nil
}

func (h *Handler) removeLabel(ctx context.Context, inv *invocation, label, from string) error {
	if _, err := h.sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String(inv.arn), VersionStage: aws.String(label), RemoveFromVersionId: aws.String(from),
	}); err != nil {
		return fmt.Errorf("remove %s from version %s: %w", label, from, err)
	}
	return nil
}
