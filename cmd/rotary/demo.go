package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

func runDemo(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	rotations := fs.Int("rotations", 3, "how many rotations to run")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	t0 := time.Now()
	fmt.Fprintln(out, "Rotary demo: building the random-secret function and starting the local stack...")
	stack, err := localstack.Start(ctx, localstack.Config{
		Functions:   []string{"random-secret"},
		FunctionEnv: map[string][]string{"random-secret": {"ROTATE_FIELDS=apiKey:40:alnum,signingKey:64:hex"}},
	})
	if err != nil {
		return err
	}
	defer stack.Close()
	fmt.Fprintf(out, "  local Secrets Manager  %s\n", stack.Endpoint)
	fmt.Fprintf(out, "  rotation function      %s (functions/random-secret under the Lambda Runtime Interface Emulator)\n", localstack.FunctionARN("random-secret"))
	fmt.Fprintf(out, "  ready in               %s\n\n", time.Since(t0).Round(time.Millisecond))

	sm := stack.Client
	name := fmt.Sprintf("demo/payments-api-%d", time.Now().Unix())
	initial := `{"apiKey":"` + strings.Repeat("0", 40) + `","signingKey":"` + strings.Repeat("0", 64) + `","clientId":"payments-web","endpoint":"https://api.example.com"}`
	created, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(initial)})
	if err != nil {
		return fmt.Errorf("create the demo secret: %w", err)
	}
	arn := aws.ToString(created.ARN)
	fmt.Fprintf(out, "Created secret %s\n  %s\n  rotates apiKey (40 alphanumerics) and signingKey (64 hex digits); keeps clientId and endpoint\n", name, arn)
	if err := printVersions(ctx, out, sm, arn); err != nil {
		return err
	}

	for i := 1; i <= *rotations; i++ {
		_, before, err := current(ctx, sm, arn)
		if err != nil {
			return err
		}
		rot, err := sm.RotateSecret(ctx, &secretsmanager.RotateSecretInput{
			SecretId:          aws.String(arn),
			RotationLambdaARN: aws.String(localstack.FunctionARN("random-secret")),
		})
		if err != nil {
			return fmt.Errorf("rotation %d: %w", i, err)
		}
		fmt.Fprintf(out, "\nRotation %d of %d (version %s)\n", i, *rotations, aws.ToString(rot.VersionId))
		r, err := stack.SM.WaitRotation(ctx, arn)
		if err != nil {
			return err
		}
		printSteps(out, r)
		if r.State != smlocal.RotationSucceeded {
			return fmt.Errorf("rotation %d %s: %s", i, r.State, r.Err)
		}
		id, after, err := current(ctx, sm, arn)
		if err != nil {
			return err
		}
		if id != aws.ToString(rot.VersionId) {
			return fmt.Errorf("rotation %d: AWSCURRENT is on %s, not on the new version", i, id)
		}
		if err := proveRotated(before, after); err != nil {
			return fmt.Errorf("rotation %d: %w", i, err)
		}
		if err := noPending(ctx, sm, arn); err != nil {
			return fmt.Errorf("rotation %d: %w", i, err)
		}
		fmt.Fprintln(out, "  checked: apiKey and signingKey are new, clientId and endpoint kept, AWSPENDING gone")
		if err := printVersions(ctx, out, sm, arn); err != nil {
			return err
		}
	}
	calls := stack.SM.Calls()
	fmt.Fprintf(out, "\nDone in %s: %d rotations, %d Secrets Manager calls in all. Values are shown as sha256 fingerprints, never in full.\n",
		time.Since(t0).Round(time.Millisecond), *rotations, sumCalls(calls))
	return nil
}

func noPending(ctx context.Context, sm *secretsmanager.Client, arn string) error {
	d, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	if err != nil {
		return fmt.Errorf("describe secret: %w", err)
	}
	for v, labels := range d.VersionIdsToStages {
		if slices.Contains(labels, "AWSPENDING") {
			return fmt.Errorf("AWSPENDING is still on version %s", v)
		}
	}
	return nil
}

func printSteps(out io.Writer, r smlocal.Rotation) {
	for _, a := range r.Attempts {
		if len(r.Attempts) > 1 {
			fmt.Fprintf(out, "  attempt %d\n", a.Number)
		}
		for _, s := range a.Steps {
			status := "ok"
			if s.Err != "" {
				status = "FAILED: " + s.Err
			}
			fmt.Fprintf(out, "  %-13s %-4s %8s\n", s.Step, status, s.Duration.Round(10*time.Microsecond))
		}
	}
}

func current(ctx context.Context, sm *secretsmanager.Client, arn string) (string, map[string]any, error) {
	v, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return "", nil, fmt.Errorf("read AWSCURRENT: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(aws.ToString(v.SecretString)), &m); err != nil {
		return "", nil, fmt.Errorf("AWSCURRENT is not a JSON object")
	}
	return aws.ToString(v.VersionId), m, nil
}

func proveRotated(before, after map[string]any) error {
	for _, f := range []string{"apiKey", "signingKey"} {
		if before[f] == after[f] {
			return fmt.Errorf("field %s did not change", f)
		}
	}
	for _, f := range []string{"clientId", "endpoint"} {
		if before[f] != after[f] {
			return fmt.Errorf("field %s was not kept", f)
		}
	}
	return nil
}

func printVersions(ctx context.Context, out io.Writer, sm *secretsmanager.Client, arn string) error {
	vs, err := sm.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(arn), IncludeDeprecated: aws.Bool(true)})
	if err != nil {
		return fmt.Errorf("list versions: %w", err)
	}
	sort.Slice(vs.Versions, func(i, j int) bool {
		return aws.ToTime(vs.Versions[i].CreatedDate).After(aws.ToTime(vs.Versions[j].CreatedDate))
	})
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  VERSION\tLABELS\tVALUE")
	for _, v := range vs.Versions {
		val, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionId: v.VersionId})
		fp := "(no value)"
		if err == nil {
			sum := sha256.Sum256([]byte(aws.ToString(val.SecretString)))
			fp = "sha256:" + hex.EncodeToString(sum[:4])
		}
		labels := strings.Join(v.VersionStages, ",")
		if labels == "" {
			labels = "(deprecated)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", aws.ToString(v.VersionId), labels, fp)
	}
	return tw.Flush()
}

func sumCalls(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
