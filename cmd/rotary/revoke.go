package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

func runRevoke(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("revoke", flag.ContinueOnError)
	af := addAWSFlags(fs)
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	ff := addFollowFlags(fs)
	leases := fs.String("leases", "", "instead of a secret: drop every user the credential issuer handed out for this role, ending their sessions")
	inf := addIssuerFlags(fs)
	pos, err := parseArgs(fs, args, out)
	if err != nil {
		return err
	}
	if *leases != "" {
		if len(pos) != 0 {
			return fmt.Errorf("%w: --leases ROLE takes no SECRET, got %q", errUsage, pos)
		}
		return revokeLeases(ctx, af, inf, *leases, *yes, out)
	}
	c, s, err := openParsed(ctx, fs, af, pos, ff.check)
	if err != nil {
		return err
	}
	fn, err := c.actionable(ctx, s)
	if err != nil {
		return err
	}
	if err := c.checkFeed(ctx, s.arn, ff); err != nil {
		return err
	}
	if err := c.canRevoke(ctx, fn, s); err != nil {
		return err
	}
	// What is valid now and will be revoked: the labeled versions.
	var before []string
	for _, label := range []string{labelCurrent, labelPrevious} {
		v := s.labeled(label)
		if v == "" {
			continue
		}
		desc := fmt.Sprintf("version %s (%s before", v, label)
		if val, err := c.value(ctx, s.arn, v, ""); err == nil && usernameOf(val) != "" {
			desc += ", user " + usernameOf(val)
		}
		before = append(before, desc+")")
	}
	if err := confirm(out, *yes, fmt.Sprintf("Revoke %s: rotate it now with %s, then invalidate every credential but the new AWSCURRENT:\n  %s\n"+
		"Anything still using an old credential will fail to log in until it reads the new one.", s.name, fn, strings.Join(before, "\n  "))); err != nil {
		return err
	}
	token, err := c.startRotation(ctx, s, "")
	if err != nil {
		return fmt.Errorf("%w\nThe credential is NOT revoked", err)
	}
	fmt.Fprintf(out, "Rotating %s (new version %s)\n", s.name, token)
	if err := c.follow(ctx, out, s.arn, token, ff); err != nil {
		return fmt.Errorf("%w\nThe credential is NOT revoked: the rotation did not finish, so the revoke step did not run and credentials valid before may still log in. "+
			"Fix the cause, run 'rotary unstick %s', then revoke again", err, s.name)
	}
	t0 := time.Now()
	if err := c.invokeStep(ctx, fn, s.arn, stepRevoke, token); err != nil {
		return fmt.Errorf("%w\nThe secret was rotated (AWSCURRENT is version %s), but the revoke step failed, so a credential valid before may still log in "+
			"(with alternating users: the other user's old password). Fix the cause and run 'rotary revoke %s' again", err, token, s.name)
	}
	fmt.Fprintf(out, "  %-13s ok  %s\n", "revokeSecret", time.Since(t0).Round(time.Millisecond))
	now := time.Now().UTC().Format(time.RFC3339)
	cur := fmt.Sprintf("version %s", token)
	if val, err := c.value(ctx, s.arn, token, ""); err == nil && usernameOf(val) != "" {
		cur += " (user " + usernameOf(val) + ")"
	}
	fmt.Fprintf(out, "Revoked at %s: these no longer log in:\n  %s\nOnly AWSCURRENT, %s, is valid now.\n", now, strings.Join(before, "\n  "), cur)
	return nil
}

// canRevoke asks the function, before anything changes, whether its type
// can revoke at all (rds-master without a network path cannot): it invokes
// revokeSecret with a token that is no version of the secret. The engine
// answers "cannot revoke" before it looks at the token, and refuses every
// token but AWSCURRENT's, so this changes nothing whatever the function.
func (c *clients) canRevoke(ctx context.Context, fn string, s *secretState) error {
	err := c.invokeStep(ctx, fn, s.arn, stepRevoke, newToken())
	var rf *rotationFailedError
	switch {
	case err == nil:
		return fmt.Errorf("%s accepted revokeSecret for a token that is no version of %s; it is not a Rotary rotation function of this version, so nothing was changed", fn, s.name)
	case !errors.As(err, &rf):
		return fmt.Errorf("%w\nNothing was changed", err)
	case strings.Contains(rf.Msg, "credential type cannot revoke"):
		return fmt.Errorf("%s cannot revoke: %s\nNothing was changed. 'rotary rotate %s' replaces the credential (for rds-master, which holds one password at a time, that ends the old one; docs/rds-master.md)", fn, rf.Msg, s.name)
	}
	return nil // refused for the token, as it must be: the function can revoke
}
