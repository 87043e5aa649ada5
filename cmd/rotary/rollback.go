package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/recovery"
)

// Where confirmations are read from; tests replace both.
var (
	stdin           io.Reader = os.Stdin
	stdinIsTerminal           = func() bool { return isTerminal(os.Stdin) }
)

// errNotConfirmed is returned when the operator did not confirm.
var errNotConfirmed = errors.New("not confirmed; nothing changed")

// confirm asks before a change, unless yes. Without a terminal it refuses.
func confirm(out io.Writer, yes bool, what string) error {
	fmt.Fprintln(out, what)
	if yes {
		return nil
	}
	if !stdinIsTerminal() {
		return fmt.Errorf("%w: standard input is not a terminal, so rotary cannot ask; pass --yes to confirm", errNotConfirmed)
	}
	fmt.Fprint(out, "Type yes to continue: ")
	line, _ := bufio.NewReader(stdin).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(line)); a != "yes" && a != "y" {
		return errNotConfirmed
	}
	return nil
}

// actionable checks what rollback and revoke need before they change
// anything: no unfinished rotation, a rotation function, rotation not
// turned off (the function refuses to act then).
func (c *clients) actionable(ctx context.Context, s *secretState) (string, error) {
	if p := s.stuckPending(); p != "" {
		return "", c.unfinished(ctx, s, p)
	}
	fn := aws.ToString(s.desc.RotationLambdaARN)
	if fn == "" {
		return "", fmt.Errorf("refusing: %s has no rotation function, and only the function can change the credential downstream; configure rotation first (the CDK app, or 'rotary rotate --function ARN')", s.name)
	}
	if s.desc.RotationEnabled != nil && !*s.desc.RotationEnabled {
		return "", fmt.Errorf("refusing: rotation is turned off for %s, so its function refuses to act; turn it on ('rotary rotate %s --function %s') and try again", s.name, s.name, fn)
	}
	return fn, nil
}

func (c *clients) value(ctx context.Context, arn, versionID, stage string) (string, error) {
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)}
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	}
	if stage != "" {
		in.VersionStage = aws.String(stage)
	}
	out, err := c.sm.GetSecretValue(ctx, in)
	if err != nil {
		return "", fmt.Errorf("read version %s%s: %w", versionID, stage, err)
	}
	if out.SecretString == nil {
		return "", fmt.Errorf("version %s%s holds a binary secret; Rotary handles JSON secrets in SecretString", versionID, stage)
	}
	return *out.SecretString, nil
}

func describeValue(value string) string {
	if u := usernameOf(value); u != "" {
		return fmt.Sprintf("user %s, %s", u, fingerprint(value))
	}
	return fingerprint(value)
}

func runRollback(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("rollback", flag.ContinueOnError)
	af := addAWSFlags(fs)
	to := fs.String("to", "", "version to make current again (default: AWSPREVIOUS); see 'rotary history'")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	c, s, err := openSecret(ctx, fs, af, args, out, nil)
	if err != nil {
		return err
	}
	fn, err := c.actionable(ctx, s)
	if err != nil {
		return err
	}
	cur := s.labeled(labelCurrent)
	target := *to
	if target == "" {
		if target = s.labeled(labelPrevious); target == "" {
			msg := fmt.Sprintf("refusing: %s has no AWSPREVIOUS version to roll back to; pass --to VERSION (see 'rotary history %s')", s.name, s.name)
			if r, err := c.probe(ctx, s, cur); err == nil && r.State != recovery.StateHealthy {
				msg += ". " + capitalize(r.Summary) + ". " + advice(s, r)
			}
			return errors.New(msg)
		}
	}
	tv, ok := s.version(target)
	switch {
	case !ok:
		return fmt.Errorf("refusing: %s is not a version of %s; see 'rotary history %s'", target, s.name, s.name)
	case target == cur:
		return fmt.Errorf("refusing: version %s is already AWSCURRENT; nothing to roll back", target)
	}
	targetValue, err := c.value(ctx, s.arn, target, "")
	if err != nil {
		return err
	}
	curValue, err := c.value(ctx, s.arn, "", labelCurrent)
	if err != nil {
		return err
	}
	if targetValue == curValue {
		return fmt.Errorf("refusing: version %s holds the same value as AWSCURRENT (%s); nothing to roll back", target, fingerprint(curValue))
	}
	if err := confirm(out, *yes, fmt.Sprintf("Roll back %s:\n  AWSCURRENT now: version %s (%s)\n  make current:   the value of version %s (created %s; %s), as a new version\n  %s will set it downstream (setSecret), test it (testSecret) and make it AWSCURRENT (finishSecret).",
		s.name, cur, describeValue(curValue), target, fmtTime(tv.CreatedDate), describeValue(targetValue), fn)); err != nil {
		return err
	}
	token := newToken()
	if _, err := c.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(s.arn), ClientRequestToken: aws.String(token), SecretString: aws.String(targetValue), VersionStages: []string{labelPending},
	}); err != nil {
		return fmt.Errorf("store the rollback version: %w; nothing changed", err)
	}
	fmt.Fprintf(out, "Created version %s (AWSPENDING) holding the value of version %s\n", token, target)
	for _, step := range []string{"setSecret", "testSecret", "finishSecret"} {
		t0 := time.Now()
		if err := c.invokeStep(ctx, fn, s.arn, step, token); err != nil {
			hint := "the credential downstream may not have changed"
			if step != "setSecret" {
				hint = "setSecret already set the earlier credential downstream (the function restores AWSCURRENT's when it can, and says so above)"
			}
			return fmt.Errorf("%w\nRollback stopped: AWSCURRENT is still version %s in Secrets Manager, and %s. "+
				"AWSPENDING stays on version %s: fix the cause, run 'rotary unstick %s --force' (it probes which version logs in and heals from that; --force because rollback, not a running rotation, made that version), "+
				"then roll back again (or rotate)", err, cur, hint, token, s.name)
		}
		fmt.Fprintf(out, "  %-13s ok  %s\n", step, time.Since(t0).Round(time.Millisecond))
	}
	if _, err := c.sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String(s.arn), VersionStage: aws.String(labelPending), RemoveFromVersionId: aws.String(token),
	}); err != nil {
		// The rollback itself is done. AWSPENDING on the AWSCURRENT version
		// blocks nothing (unstick leaves it alone; the next rotation moves it).
		fmt.Fprintf(out, "warning: could not remove AWSPENDING from version %s, which is now AWSCURRENT (%v); this blocks no rotation, and the next one moves the label\n", token, err)
	}
	fmt.Fprintf(out, "Rolled back %s at %s: AWSCURRENT is version %s holding the value of version %s (%s); AWSPREVIOUS is version %s. Version %s itself is unchanged.\n",
		s.name, time.Now().UTC().Format(time.RFC3339), token, target, describeValue(targetValue), cur, target)
	return nil
}
