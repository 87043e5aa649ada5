package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/recovery"
)

// errNotHealed is returned when unstick could not make AWSCURRENT log in.
var errNotHealed = errors.New("not healed")

// runUnstick heals a secret whose rotation did not finish, or whose
// AWSCURRENT no longer logs in, from what the rotation function's probes
// show (its recoverSecret step): it clears AWSPENDING when AWSCURRENT logs
// in, completes the rotation when only AWSPENDING does, makes an older
// version current again when only it does, and changes nothing when no
// version logs in. It never takes a label off the working credential.
func runUnstick(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("unstick", flag.ContinueOnError)
	af := addAWSFlags(fs)
	force := fs.Bool("force", false, "act even if the pending version is younger than --min-age")
	minAge := fs.Duration("min-age", 15*time.Minute, "against AWS, refuse a pending version younger than this (a rotation may still be running)")
	noProbe := fs.Bool("no-probe", false, "only remove AWSPENDING, without asking the rotation function which version logs in (it may take the label off the only working credential); asks for confirmation")
	yes := fs.Bool("yes", false, "with --no-probe, do not ask for confirmation")
	c, s, err := openSecret(ctx, fs, af, args, out, nil)
	if err != nil {
		return err
	}
	pending := s.stuckPending()
	if pending != "" {
		if err := c.checkNotRunning(ctx, s, pending, *minAge, *force); err != nil {
			return err
		}
	}
	if *noProbe {
		if pending == "" {
			fmt.Fprintf(out, "Nothing to unstick: %s has no AWSPENDING on a version other than AWSCURRENT; nothing changed.\n", s.name)
			return nil
		}
		if err := confirm(out, *yes, fmt.Sprintf("Remove AWSPENDING from version %s of %s without probing? If that version holds the only password the database accepts (a single-user rotation that set it and did not finish), applications stay locked out until 'rotary unstick %s' (without --no-probe) finds it again.", pending, s.name, s.name)); err != nil {
			return err
		}
		return c.removePending(ctx, out, s, pending)
	}
	fn := aws.ToString(s.desc.RotationLambdaARN)
	if fn == "" && pending == "" {
		fmt.Fprintf(out, "Nothing to unstick: %s has no AWSPENDING on a version other than AWSCURRENT (and no rotation function to probe AWSCURRENT with); nothing changed.\n", s.name)
		return nil
	}
	if fn == "" {
		return fmt.Errorf("refusing: %s has no rotation function, which alone can probe which version logs in; configure one ('rotary rotate --function ARN' or the CDK app), or pass --no-probe --yes to only remove AWSPENDING (it may hold the only working credential)", s.name)
	}
	token := pending
	if token == "" {
		token = s.labeled(labelCurrent)
	}
	r, err := c.report(ctx, fn, s.arn, stepRecover, token)
	if err != nil {
		return fmt.Errorf("%w\nThe recovery step failed, possibly after it had moved a label. Run 'rotary probe %s' to see where the secret is now", err, s.name)
	}
	if err := printReport(out, s.name, r); err != nil {
		return err
	}
	switch r.Action {
	case recovery.PlanClearPending:
		fmt.Fprintf(out, "Removed AWSPENDING from version %s: AWSCURRENT (version %s) logs in, so nothing else changed. Scheduled rotation can resume; 'rotary rotate %s --wait' rotates now.\n", r.PlanVersion, r.CurrentVersion, s.name)
	case recovery.PlanComplete:
		fmt.Fprintf(out, "Completed the rotation: the function tested version %s and made it AWSCURRENT (version %s is AWSPREVIOUS); applications reading AWSCURRENT log in again.\n", r.PlanVersion, s.labeled(labelCurrent))
	case recovery.PlanRestore:
		fmt.Fprintf(out, "Made version %s AWSCURRENT again (it logs in; version %s, which does not, is AWSPREVIOUS); applications reading AWSCURRENT log in again. Rotate when the cause is fixed.\n", r.PlanVersion, s.labeled(labelCurrent))
	default:
		if r.State == recovery.StateHealthy {
			fmt.Fprintf(out, "Nothing to unstick: AWSCURRENT (version %s) logs in and no rotation is unfinished; nothing changed.\n", r.CurrentVersion)
			return nil
		}
		return fmt.Errorf("%w: nothing changed. %s", errNotHealed, advice(s, r))
	}
	return nil
}

// checkNotRunning refuses while the unfinished rotation may still be
// running: the local stack says so exactly; AWS does not, so a pending
// version younger than minAge is refused unless force.
func (c *clients) checkNotRunning(ctx context.Context, s *secretState, pending string, minAge time.Duration, force bool) error {
	if feed, ok := c.rotations(ctx, s.arn); ok {
		for _, r := range feed.Rotations {
			if r.State == "running" && r.Token == pending {
				return fmt.Errorf("refusing: a rotation of %s is running now (version %s); wait for it to end, then run unstick again if it failed", s.name, r.Token)
			}
		}
		return nil
	}
	v, _ := s.version(pending)
	if age := time.Since(aws.ToTime(v.CreatedDate)); age < minAge && !force {
		return fmt.Errorf("refusing: the pending version %s was created %s ago, so its rotation may still be running "+
			"(Secrets Manager retries failed steps for a while and does not say when it has given up); "+
			"wait until it is older than %s, or pass --force if you know it has failed", pending, fmtAge(age), minAge)
	}
	return nil
}

// removePending is unstick --no-probe: it takes AWSPENDING off the version.
func (c *clients) removePending(ctx context.Context, out io.Writer, s *secretState, pending string) error {
	v, _ := s.version(pending)
	if _, err := c.sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String(s.arn), VersionStage: aws.String(labelPending), RemoveFromVersionId: aws.String(pending),
	}); err != nil {
		return fmt.Errorf("remove AWSPENDING from version %s: %w; check that you may call secretsmanager:UpdateSecretVersionStage on %s", pending, err, s.name)
	}
	left := "no labels left: it is now deprecated"
	var others []string
	for _, l := range v.VersionStages {
		if l != labelPending {
			others = append(others, l)
		}
	}
	if len(others) > 0 {
		left = fmt.Sprintf("it keeps %v", others)
	}
	fmt.Fprintf(out, "Removed AWSPENDING from version %s of %s (created %s; %s), without probing.\n", pending, s.name, fmtTime(v.CreatedDate), left)
	fmt.Fprintf(out, "AWSCURRENT stays on version %s. If it does not log in, 'rotary unstick %s' (without --no-probe) finds the version that does.\n", s.labeled(labelCurrent), s.name)
	return nil
}
