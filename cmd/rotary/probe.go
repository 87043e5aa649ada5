package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/rotary-secrets/rotary/pkg/recovery"
)

// Operator steps of the rotation functions (see pkg/rotation).
const (
	stepRevoke  = "revokeSecret"
	stepProbe   = "probeSecret"
	stepRecover = "recoverSecret"
)

// invoke runs one step of the secret's rotation function through the
// Lambda Invoke API, as Secrets Manager would, and returns the function's
// answer (null for the four rotation steps).
func (c *clients) invoke(ctx context.Context, function, arn, step, token string) ([]byte, error) {
	payload, err := json.Marshal(map[string]string{"Step": step, "SecretId": arn, "ClientRequestToken": token})
	if err != nil {
		return nil, fmt.Errorf("encode the %s event: %w", step, err)
	}
	out, err := c.lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(function), Payload: payload})
	if err != nil {
		return nil, fmt.Errorf("invoke %s for step %s: %w; check that you may call lambda:InvokeFunction on it and that --region (or --endpoint) is where it runs", function, step, err)
	}
	if out.FunctionError != nil {
		var fe struct {
			ErrorMessage string `json:"errorMessage"`
			ErrorType    string `json:"errorType"`
		}
		if json.Unmarshal(out.Payload, &fe) != nil || fe.ErrorMessage == "" {
			fe.ErrorMessage = fmt.Sprintf("function error %s", aws.ToString(out.FunctionError))
		}
		return nil, &rotationFailedError{Step: step, Msg: fe.ErrorMessage}
	}
	return out.Payload, nil
}

// invokeStep runs a step whose answer does not matter.
func (c *clients) invokeStep(ctx context.Context, function, arn, step, token string) error {
	_, err := c.invoke(ctx, function, arn, step, token)
	return err
}

// report runs probeSecret or recoverSecret and decodes the function's report.
func (c *clients) report(ctx context.Context, function, arn, step, token string) (*recovery.Report, error) {
	payload, err := c.invoke(ctx, function, arn, step, token)
	if err != nil {
		return nil, err
	}
	var r recovery.Report
	if err := json.Unmarshal(payload, &r); err != nil || r.State == "" {
		return nil, fmt.Errorf("the function %s answered %s without a report: is it a Rotary rotation function of this version (one that knows the %s step)?", function, step, step)
	}
	return &r, nil
}

// probe asks the secret's rotation function which of its versions log in,
// changing nothing. token is the version of interest (AWSPENDING when a
// rotation is unfinished, else AWSCURRENT).
func (c *clients) probe(ctx context.Context, s *secretState, token string) (*recovery.Report, error) {
	fn := aws.ToString(s.desc.RotationLambdaARN)
	if fn == "" {
		return nil, fmt.Errorf("%s has no rotation function, which alone can reach the database to probe the credentials", s.name)
	}
	return c.report(ctx, fn, s.arn, stepProbe, token)
}

// unfinished is the refusal of commands that need no rotation to be
// unfinished. It probes first, so that it can name the one command that
// fixes the secret, and says plainly when applications are locked out.
func (c *clients) unfinished(ctx context.Context, s *secretState, pending string) error {
	created := "-"
	if v, ok := s.version(pending); ok {
		created = fmtTime(v.CreatedDate)
	}
	msg := fmt.Sprintf("AWSPENDING is on version %s (created %s), not on AWSCURRENT", pending, created)
	r, perr := c.probe(ctx, s, pending)
	if perr != nil {
		return fmt.Errorf("%w: %s; if a rotation is still running, wait for it ('rotary status %s'); if it failed, run 'rotary unstick %s' (it probes which version logs in first), then try again (the probe failed: %v)",
			errUnfinished, msg, s.name, s.name, perr)
	}
	return fmt.Errorf("%w: %s. %s. %s", errUnfinished, msg, capitalize(r.Summary), advice(s, r))
}

// advice is the one command that fixes what a probe found
// (recovery.Advice, which the watch prints too).
func advice(s *secretState, r *recovery.Report) string { return recovery.Advice(s.name, r) }

// runProbe asks the rotation function which versions' credentials log in,
// changing nothing.
func runProbe(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	af := addAWSFlags(fs)
	version := fs.String("version", "", "the version of interest (default: AWSPENDING when a rotation is unfinished, else AWSCURRENT)")
	asJSON := fs.Bool("json", false, "print the function's report as JSON")
	c, s, err := openSecret(ctx, fs, af, args, out, nil)
	if err != nil {
		return err
	}
	token := *version
	if token == "" {
		if token = s.stuckPending(); token == "" {
			token = s.labeled(labelCurrent)
		}
	}
	if _, ok := s.version(token); !ok {
		return fmt.Errorf("refusing: %s is not a version of %s; see 'rotary history %s'", token, s.name, s.name)
	}
	r, err := c.probe(ctx, s, token)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		if err := printReport(out, s.name, r); err != nil {
			return err
		}
		fmt.Fprintln(out, advice(s, r)+".")
	}
	if r.State != recovery.StateHealthy {
		return fmt.Errorf("%s is %s", s.name, r.State)
	}
	return nil
}

// printReport shows every probed version and what the function found (and
// did). Values are never shown: only version ids, labels and outcomes.
func printReport(out io.Writer, name string, r *recovery.Report) error {
	fmt.Fprintf(out, "Probed %d versions of %s through its rotation function:\n", len(r.Versions), name)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  VERSION\tLABELS\tCREATED\tOUTCOME\tWHY")
	for _, v := range r.Versions {
		labels := strings.Join(v.Labels, ",")
		if labels == "" {
			labels = "(deprecated)"
		}
		why := v.Error
		if r := []rune(why); len(r) > 140 {
			// The server's own reason comes last (SQLSTATE, error number).
			why = "..." + string(r[len(r)-137:])
		}
		if why == "" {
			why = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", v.VersionID, labels, fmtTime(v.Created), v.Outcome, why)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "State: %s: %s.\n", r.State, r.Summary)
	return nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
