package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/localauth"
	"github.com/rotary-secrets/rotary/pkg/localstack"
)

// The demo's principals besides the operator and the function: the
// application the secret is for, and a laptop that should not read it.
const (
	demoAppKey       = "AKIADEMOORDERSAPP001"
	demoAppRole      = "arn:aws:iam::123456789012:role/orders-app"
	demoAppSession   = "arn:aws:sts::123456789012:assumed-role/orders-app/orders-task-1"
	demoStrangerKey  = "AKIADEMOLAPTOP000001"
	demoStrangerUser = "arn:aws:iam::123456789012:user/contractor-laptop"
)

var demoPrincipals = []localauth.Principal{
	{AccessKeyID: demoAppKey, ARN: demoAppSession},
	{AccessKeyID: demoStrangerKey, ARN: demoStrangerUser},
}

// demoIncident gives the secret the resource policy the CDK app writes
// (readers: the application, the operator as admin, the rotation role),
// has the application and then a stranger read it, runs `rotary audit`
// (which flags the stranger) and `rotary incident` (evidence, then
// revoke), and proves every value valid before is refused.
func demoIncident(ctx context.Context, out io.Writer, stack *localstack.Stack, subject *demoSubject, name, arn string, valid []string,
	cli func(args ...string) error) error {
	policy, _ := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Sid": "OnlyReaders", "Effect": "Deny", "Principal": map[string]any{"AWS": "*"},
			"Action": []string{"secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue"}, "Resource": "*",
			"Condition": map[string]any{"ArnNotLike": map[string]any{"aws:PrincipalArn": []string{
				demoAppRole, localstack.OperatorPrincipalARN(), localstack.FunctionRoleARN(subject.function),
			}}},
		}},
	})
	// The demo's audit starts here; the incident's, at the oldest valid
	// credential. The trail records times to the second, as CloudTrail
	// does: wait for the next one, so that the audit shows this part only.
	next := stack.SM.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(next))
	since := next.Format(time.RFC3339)
	if _, err := stack.Client.PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{
		SecretId: aws.String(arn), ResourcePolicy: aws.String(string(policy)), BlockPublicPolicy: aws.Bool(true),
	}); err != nil {
		return fmt.Errorf("put the demo's resource policy: %w", err)
	}
	fmt.Fprintf(out, "\nThe secret's resource policy lets only these read it: %s (the application's role), %s (the operator), %s (the rotation function's role)\n",
		demoAppRole, localstack.OperatorPrincipalARN(), localstack.FunctionRoleARN(subject.function))
	for _, r := range []struct{ key, who string }{{demoAppKey, demoAppSession}, {demoStrangerKey, demoStrangerUser}} {
		if _, err := stack.ClientAs(r.key).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)}); err != nil {
			return fmt.Errorf("read as %s: %w", r.who, err)
		}
		fmt.Fprintf(out, "  %s read AWSCURRENT (access key %s)\n", r.who, r.key)
	}
	err := cli("audit", name, "--since", since)
	switch {
	case errors.Is(err, errFlagged):
		fmt.Fprintf(out, "  checked: rotary audit flagged the stranger's read (exit code 1), not the application's or the function's\n")
	case err != nil:
		return fmt.Errorf("audit: %w", err)
	default:
		return errors.New("audit: rotary audit flagged nothing, but a principal outside the readers read the secret")
	}
	dir, err := os.MkdirTemp("", "rotary-demo-incidents-")
	if err != nil {
		return err
	}
	if err := cli("incident", name, "--yes", "--out", dir); err != nil {
		return fmt.Errorf("incident: %w", err)
	}
	_, cur, err := current(ctx, stack.Client, arn)
	if err != nil {
		return err
	}
	proof := "AWSCURRENT is a new value; the bundle names the stranger and the version it read"
	if subject.works != nil {
		if err := subject.works(ctx, cur); err != nil {
			return fmt.Errorf("incident: AWSCURRENT does not log in: %w", err)
		}
		for _, v := range valid {
			if err := subject.refused(ctx, v); err != nil {
				return fmt.Errorf("incident: %w", err)
			}
		}
		proof = fmt.Sprintf("after the incident none of the %d passwords used before logs in; AWSCURRENT does", len(valid))
	}
	fmt.Fprintf(out, "  checked: %s\n", proof)
	return nil
}
