package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

func runUnstick(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("unstick", flag.ContinueOnError)
	af := addAWSFlags(fs)
	force := fs.Bool("force", false, "clear AWSPENDING even if the pending version is younger than --min-age")
	minAge := fs.Duration("min-age", 15*time.Minute, "against AWS, refuse a pending version younger than this (a rotation may still be running)")
	c, s, err := openSecret(ctx, fs, af, args, out, nil)
	if err != nil {
		return err
	}
	pending := s.stuckPending()
	if pending == "" {
		fmt.Fprintf(out, "Nothing to unstick: %s has no AWSPENDING on a version other than AWSCURRENT; nothing changed.\n", s.name)
		return nil
	}
	v, _ := s.version(pending)
	if feed, ok := c.rotations(ctx, s.arn); ok {
		// The local stack knows exactly whether a rotation is running.
		for _, r := range feed.Rotations {
			if r.State == "running" {
				return fmt.Errorf("refusing: a rotation of %s is running now (version %s); wait for it to end, then run unstick again if it failed", s.name, r.Token)
			}
		}
	} else if age := time.Since(aws.ToTime(v.CreatedDate)); age < *minAge && !*force {
		// AWS does not say whether the service is still working on it.
		return fmt.Errorf("refusing: the pending version %s was created %s ago, so its rotation may still be running "+
			"(Secrets Manager retries failed steps for a while and does not say when it has given up); "+
			"wait until it is older than %s, or pass --force if you know it has failed", pending, fmtAge(age), *minAge)
	}
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
	fmt.Fprintf(out, "Removed AWSPENDING from version %s of %s (created %s; %s).\n", pending, s.name, fmtTime(v.CreatedDate), left)
	fmt.Fprintf(out, "AWSCURRENT stays on version %s; nothing else changed. Scheduled rotation can resume; 'rotary rotate %s --wait' rotates now.\n", s.labeled(labelCurrent), s.name)
	return nil
}
