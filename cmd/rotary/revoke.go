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
	before := c.revocable(ctx, s)
	if err := confirm(out, *yes, revokePrompt(s, fn, before)); err != nil {
		return err
	}
	_, err = c.revoke(ctx, out, s, fn, before, ff)
	return err
}

// revocableVersion is a credential valid before a revoke: a labeled version.
type revocableVersion struct {
	VersionID string `json:"versionId"`
	Label     string `json:"label"`
	User      string `json:"user,omitempty"`
}

func (v revocableVersion) String() string {
	desc := fmt.Sprintf("version %s (%s before", v.VersionID, v.Label)
	if v.User != "" {
		desc += ", user " + v.User
	}
	return desc + ")"
}

// revocable lists what is valid now and a revoke invalidates: the
// versions holding AWSCURRENT and AWSPREVIOUS.
func (c *clients) revocable(ctx context.Context, s *secretState) []revocableVersion {
	var before []revocableVersion
	for _, label := range []string{labelCurrent, labelPrevious} {
		v := s.labeled(label)
		if v == "" {
			continue
		}
		rv := revocableVersion{VersionID: v, Label: label}
		if val, err := c.value(ctx, s.arn, v, ""); err == nil {
			rv.User = usernameOf(val)
		}
		before = append(before, rv)
	}
	return before
}

func revokePrompt(s *secretState, fn string, before []revocableVersion) string {
	lines := make([]string, len(before))
	for i, v := range before {
		lines[i] = v.String()
	}
	return fmt.Sprintf("Revoke %s: rotate it now with %s, then invalidate every credential but the new AWSCURRENT:\n  %s\n"+
		"Anything still using an old credential will fail to log in until it reads the new one.", s.name, fn, strings.Join(lines, "\n  "))
}

// revoked is what a revoke did.
type revoked struct {
	NewVersion string    `json:"newVersion"`
	NewUser    string    `json:"newUser,omitempty"`
	At         time.Time `json:"at"`
}

// revoke rotates s with fn, follows the rotation, then runs the function's
// revokeSecret step, which invalidates every credential but the new
// AWSCURRENT and ends their sessions.
func (c *clients) revoke(ctx context.Context, out io.Writer, s *secretState, fn string, before []revocableVersion, ff *followFlags) (*revoked, error) {
	if err := c.canRevoke(ctx, fn, s); err != nil {
		return nil, err
	}
	token, err := c.startRotation(ctx, s, "")
	if err != nil {
		return nil, fmt.Errorf("%w\nThe credential is NOT revoked", err)
	}
	fmt.Fprintf(out, "Rotating %s (new version %s)\n", s.name, token)
	if err := c.follow(ctx, out, s.arn, token, ff); err != nil {
		return nil, fmt.Errorf("%w\nThe credential is NOT revoked: the rotation did not finish, so the revoke step did not run and credentials valid before may still log in. "+
			"Fix the cause, run 'rotary unstick %s', then revoke again", err, s.name)
	}
	t0 := time.Now()
	if err := c.invokeStep(ctx, fn, s.arn, stepRevoke, token); err != nil {
		return nil, fmt.Errorf("%w\nThe secret was rotated (AWSCURRENT is version %s), but the revoke step failed, so a credential valid before may still log in "+
			"(with alternating users: the other user's old password). Fix the cause and run 'rotary revoke %s' again", err, token, s.name)
	}
	fmt.Fprintf(out, "  %-13s ok  %s\n", "revokeSecret", time.Since(t0).Round(time.Millisecond))
	r := &revoked{NewVersion: token, At: time.Now().UTC()}
	cur := fmt.Sprintf("version %s", token)
	if val, err := c.value(ctx, s.arn, token, ""); err == nil && usernameOf(val) != "" {
		r.NewUser = usernameOf(val)
		cur += " (user " + r.NewUser + ")"
	}
	lines := make([]string, len(before))
	for i, v := range before {
		lines[i] = v.String()
	}
	fmt.Fprintf(out, "Revoked at %s: these no longer log in:\n  %s\nOnly AWSCURRENT, %s, is valid now.\n", r.At.Format(time.RFC3339), strings.Join(lines, "\n  "), cur)
	return r, nil
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
