package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// followFlags say how to wait for a rotation.
type followFlags struct {
	timeout  time.Duration
	poll     time.Duration
	progress string
	// cleanup is how long to wait, once AWSCURRENT is on the new version,
	// for Secrets Manager to remove AWSPENDING. The API reference says a
	// successful rotation may instead leave AWSPENDING on the new AWSCURRENT
	// version (harmless: RotateSecret does not count it as unfinished).
	cleanup time.Duration
}

func addFollowFlags(fs *flag.FlagSet) *followFlags {
	f := &followFlags{cleanup: 30 * time.Second}
	fs.DurationVar(&f.timeout, "timeout", 5*time.Minute, "give up waiting for the rotation after this long")
	fs.DurationVar(&f.poll, "poll", 2*time.Second, "how often to poll Secrets Manager for the rotation's phase")
	fs.StringVar(&f.progress, "progress", "auto", "steps (the local stack's step feed), labels (poll staging labels, as against AWS) or auto")
	return f
}

func (f *followFlags) check() error {
	switch f.progress {
	case "auto", "steps", "labels":
	default:
		return fmt.Errorf("%w: --progress %q: use auto, steps or labels", errUsage, f.progress)
	}
	if f.timeout <= 0 || f.poll <= 0 {
		return fmt.Errorf("%w: --timeout and --poll must be positive durations such as 5m and 2s", errUsage)
	}
	return nil
}

// rotationFailedError says which step of a rotation failed and why.
type rotationFailedError struct {
	Step, Msg string
}

func (e *rotationFailedError) Error() string {
	if e.Step == "" {
		return "rotation failed: " + e.Msg
	}
	return fmt.Sprintf("rotation failed at step %s: %s", e.Step, e.Msg)
}

// errUnfinished is wrapped when a command refuses because of a rotation
// that has not finished.
var errUnfinished = errors.New("a previous rotation is unfinished")

func runRotate(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("rotate", flag.ContinueOnError)
	af := addAWSFlags(fs)
	wait := fs.Bool("wait", false, "follow the rotation step by step until it ends")
	function := fs.String("function", "", "rotation function ARN to set (default: the one the secret has)")
	ff := addFollowFlags(fs)
	c, s, err := openSecret(ctx, fs, af, args, out, ff.check)
	if err != nil {
		return err
	}
	if *wait {
		if err := c.checkFeed(ctx, s.arn, ff); err != nil {
			return err
		}
	}
	token, err := c.startRotation(ctx, s, *function)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Started rotation of %s: new version %s\n", s.name, token)
	if !*wait {
		fmt.Fprintf(out, "Follow it with 'rotary status %s', or pass --wait.\n", s.name)
		return nil
	}
	start := time.Now()
	if err := c.follow(ctx, out, s.arn, token, ff); err != nil {
		return err
	}
	fmt.Fprintf(out, "Rotated %s in %s: AWSCURRENT is version %s\n", s.name, time.Since(start).Round(time.Millisecond), token)
	return nil
}

// startRotation refuses when a rotation is unfinished, then calls
// RotateSecret and returns the new version's id.
func (c *clients) startRotation(ctx context.Context, s *secretState, function string) (string, error) {
	if p := s.stuckPending(); p != "" {
		return "", c.unfinished(ctx, s, p)
	}
	if function == "" && aws.ToString(s.desc.RotationLambdaARN) == "" {
		return "", fmt.Errorf("%s has no rotation function: pass --function ARN (the local stack's are printed by 'rotary local') or configure rotation with the CDK app", s.name)
	}
	in := &secretsmanager.RotateSecretInput{SecretId: aws.String(s.arn), ClientRequestToken: aws.String(newToken())}
	if function != "" {
		in.RotationLambdaARN = aws.String(function)
	}
	out, err := c.sm.RotateSecret(ctx, in)
	if err != nil {
		var ir *smtypes.InvalidRequestException
		if errors.As(err, &ir) {
			//lint:ignore ST1005 the message starts with the service's name
			return "", fmt.Errorf("Secrets Manager refused to rotate %s: %s", s.name, ir.ErrorMessage())
		}
		if msg, ok := cannotInvoke(err); ok {
			fn := cmp.Or(function, aws.ToString(s.desc.RotationLambdaARN))
			//lint:ignore ST1005 the message starts with the service's name
			return "", fmt.Errorf("Secrets Manager refused to rotate %s (AccessDeniedException): %s Nothing changed. "+
				"Check the function ARN %s: it must name a function in the secret's account and region whose resource policy "+
				"lets secretsmanager.amazonaws.com invoke it; 'rotary local' runs only the functions it was started with "+
				"(it prints their ARNs; --functions picks them)", s.name, msg, fn)
		}
		return "", fmt.Errorf("rotate %s: %w", s.name, err)
	}
	return aws.ToString(out.VersionId), nil
}

// cannotInvoke returns the message of Secrets Manager's
// AccessDeniedException for a rotation function it cannot invoke; ok is
// false for any other error, including the caller's own missing permission,
// which has the same code. It matches what the SDK's API errors have in
// common (smithy.APIError) without importing smithy-go.
func cannotInvoke(err error) (msg string, ok bool) {
	var ae interface {
		ErrorCode() string
		ErrorMessage() string
	}
	if errors.As(err, &ae) && ae.ErrorCode() == "AccessDeniedException" &&
		strings.Contains(ae.ErrorMessage(), "cannot invoke the specified Lambda function") {
		return ae.ErrorMessage(), true
	}
	return "", false
}

// follow waits until the rotation that created version token ends, printing
// its progress: every step with its duration from the local stack's feed,
// or, against AWS, the phase read from the staging labels.
func (c *clients) follow(ctx context.Context, out io.Writer, arn, token string, ff *followFlags) error {
	ctx, cancel := context.WithTimeout(ctx, ff.timeout)
	defer cancel()
	start := time.Now()
	if ff.progress != "labels" {
		if _, ok := c.rotations(ctx, arn); ok {
			return c.followSteps(ctx, out, arn, token)
		}
		if err := c.checkFeed(ctx, arn, ff); err != nil {
			return err
		}
	}
	return c.followLabels(ctx, out, arn, token, start, ff)
}

func (c *clients) followSteps(ctx context.Context, out io.Writer, arn, token string) error {
	printed := map[[2]int]bool{}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		feed, _ := c.rotations(ctx, arn)
		for _, r := range feed.Rotations {
			if r.Token != token {
				continue
			}
			for _, a := range r.Attempts {
				for i, st := range a.Steps {
					key := [2]int{a.Number, i}
					if !st.Done || printed[key] {
						continue
					}
					printed[key] = true
					if a.Number > 1 && i == 0 {
						fmt.Fprintf(out, "  attempt %d (Secrets Manager retries the whole rotation)\n", a.Number)
					}
					status := "ok"
					if st.Error != "" {
						status = "FAILED: " + st.Error
					}
					fmt.Fprintf(out, "  %-13s %-4s %6s\n", st.Step, status, (time.Duration(st.DurationMS) * time.Millisecond).String())
				}
			}
			switch r.State {
			case "succeeded":
				return nil
			case "failed":
				step := ""
				if n := len(r.Attempts); n > 0 {
					for _, st := range r.Attempts[n-1].Steps {
						if st.Error != "" {
							step = st.Step
						}
					}
				}
				return &rotationFailedError{Step: step, Msg: r.Error + "; AWSPENDING stays on version " + token +
					": fix the cause, run 'rotary unstick', then rotate again"}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rotation of version %s has not finished: %w", token, ctx.Err())
		case <-tick.C:
		}
	}
}

// checkFeed refuses --progress steps when the endpoint has no step feed
// (AWS); commands call it before they change anything.
func (c *clients) checkFeed(ctx context.Context, arn string, ff *followFlags) error {
	if ff.progress != "steps" {
		return nil
	}
	if _, ok := c.rotations(ctx, arn); !ok {
		return fmt.Errorf("%w: --progress steps needs the local stack's endpoint (--endpoint); against AWS use --progress labels", errUsage)
	}
	return nil
}

// Phases of a rotation as the staging labels show it.
var phases = []string{
	"AWSPENDING version created, no value yet",
	"createSecret done: the pending version has a value",
	"finishSecret done: AWSCURRENT moved to the new version",
	"done: AWSPENDING removed",
}

func (c *clients) followLabels(ctx context.Context, out io.Writer, arn, token string, start time.Time, ff *followFlags) error {
	shown := -1
	var finished time.Time // when AWSCURRENT was first seen on the new version
	for {
		phase, err := c.phase(ctx, arn, token)
		if err != nil && ctx.Err() == nil {
			return err
		}
		if err == nil {
			for ; shown < phase; shown++ {
				fmt.Fprintf(out, "  %-8s %s\n", time.Since(start).Round(100*time.Millisecond), phases[shown+1])
			}
			if phase == len(phases)-1 {
				return nil
			}
			if phase == 2 && finished.IsZero() {
				finished = time.Now()
			}
		}
		if !finished.IsZero() && time.Since(finished) < ff.cleanup {
			select {
			case <-ctx.Done():
			case <-time.After(ff.poll):
				continue
			}
		}
		if !finished.IsZero() {
			// The rotation succeeded; only the label cleanup is missing.
			fmt.Fprintf(out, "  %-8s done: AWSPENDING stays on the new AWSCURRENT version (Secrets Manager may leave it there; it does not block rotation)\n",
				time.Since(start).Round(100*time.Millisecond))
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(ff.poll):
			continue
		}
		return fmt.Errorf("rotation of version %s has not finished after %s (last phase: %s); the function may be failing: "+
			"read its log (in AWS: the CloudWatch log group /aws/lambda/<function name>); Secrets Manager retries failed rotations, "+
			"and if it has given up, 'rotary unstick' clears AWSPENDING: %w", token, ff.timeout, phases[max(shown, 0)], ctx.Err())
	}
}

// phase returns the index in phases that the rotation has reached.
func (c *clients) phase(ctx context.Context, arn, token string) (int, error) {
	d, err := c.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	if err != nil {
		return 0, fmt.Errorf("describe secret: %w", err)
	}
	s := &secretState{desc: d}
	cur, pend := s.labeled(labelCurrent), s.labeled(labelPending)
	switch {
	case cur == token && pend != token:
		return 3, nil
	case cur == token:
		return 2, nil
	case pend != token:
		return 0, &rotationFailedError{Msg: fmt.Sprintf("version %s is neither AWSPENDING nor AWSCURRENT any more: the rotation was abandoned (AWSCURRENT is %s)", token, cur)}
	}
	_, err = c.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionId: aws.String(token)})
	var nf *smtypes.ResourceNotFoundException
	switch {
	case errors.As(err, &nf):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("check the pending version: %w", err)
	}
	return 1, nil
}
