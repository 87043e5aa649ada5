package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/recovery"
)

// secretStatus is one secret's line in `rotary status` (and its --json).
type secretStatus struct {
	Name            string     `json:"name"`
	ARN             string     `json:"arn"`
	RotationEnabled bool       `json:"rotationEnabled"`
	Function        string     `json:"rotationFunction,omitempty"`
	Schedule        string     `json:"schedule,omitempty"`
	Window          string     `json:"window,omitempty"`
	LastRotated     *time.Time `json:"lastRotated,omitempty"`
	NextRotation    *time.Time `json:"nextRotation,omitempty"`
	CurrentVersion  string     `json:"currentVersion,omitempty"`
	CurrentCreated  *time.Time `json:"currentCreated,omitempty"`
	CurrentAgeSecs  int64      `json:"currentAgeSeconds"`
	PendingVersion  string     `json:"pendingVersion,omitempty"`
	Stuck           bool       `json:"stuck"`
	Overdue         bool       `json:"overdue"`
	// State is the probe's diagnosis of a stuck secret (healthy, stuck,
	// locked-out, drifted, unknown); empty when nothing was probed.
	State string `json:"state,omitempty"`
	// Probe is the rotation function's report; ProbeError says why there is none.
	Probe      *recovery.Report `json:"probe,omitempty"`
	ProbeError string           `json:"probeError,omitempty"`
	// Advice is the one command that fixes the secret.
	Advice string `json:"advice,omitempty"`
	// Error says why the secret could not be read (when several are listed).
	Error string `json:"error,omitempty"`
}

func runStatus(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	af := addAWSFlags(fs)
	all := fs.Bool("all", false, "every secret in the account and region")
	asJSON := fs.Bool("json", false, "machine-readable output")
	noProbe := fs.Bool("no-probe", false, "do not ask the rotation functions of stuck secrets which version logs in")
	verify := fs.Bool("verify", false, "ask the rotation function of every secret (not only stuck ones) which versions log in; exit 1 when any is unhealthy")
	pos, err := parseArgs(fs, args, out)
	if err != nil {
		return err
	}
	if *all == (len(pos) > 0) {
		return fmt.Errorf("%w: name one or more SECRETs, or pass --all", errUsage)
	}
	c, err := af.connect(ctx)
	if err != nil {
		return err
	}
	ids, names := pos, pos
	if *all {
		ids, names = nil, nil
		p := secretsmanager.NewListSecretsPaginator(c.sm, &secretsmanager.ListSecretsInput{})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("list secrets: %w", err)
			}
			for _, s := range page.SecretList {
				ids, names = append(ids, aws.ToString(s.ARN)), append(names, aws.ToString(s.Name))
			}
		}
	}
	now := time.Now()
	statuses := make([]secretStatus, 0, len(ids))
	failed := 0
	for i, id := range ids {
		s, err := c.describe(ctx, id)
		switch {
		case err != nil && len(ids) == 1:
			return err
		case err != nil:
			// One secret this identity may not read must not hide the others.
			failed++
			statuses = append(statuses, secretStatus{Name: names[i], ARN: id, Error: err.Error()})
		default:
			st := statusOf(s, now)
			if *verify || (st.Stuck && !*noProbe) {
				c.diagnose(ctx, s, &st)
			}
			statuses = append(statuses, st)
		}
	}
	var errFailed error
	if failed > 0 {
		errFailed = fmt.Errorf("could not read %d of %d secrets (their rows say why); check your permissions on them", failed, len(ids))
	}
	if *verify && errFailed == nil {
		unhealthy := 0
		for _, st := range statuses {
			if st.State != recovery.StateHealthy {
				unhealthy++
			}
		}
		if unhealthy > 0 {
			errFailed = fmt.Errorf("%d of %d secrets are not healthy (their lines say why and what fixes them)", unhealthy, len(statuses))
		}
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(statuses); err != nil {
			return err
		}
		return errFailed
	}
	if len(statuses) == 0 {
		fmt.Fprintln(out, "no secrets")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SECRET\tROTATION\tSCHEDULE\tLAST ROTATED\tNEXT ROTATION\tCURRENT AGE\tFLAGS")
	for _, st := range statuses {
		rot := "off"
		switch {
		case st.Error != "":
			rot = "?"
		case st.RotationEnabled:
			rot = "on"
		}
		sched := st.Schedule
		if sched == "" {
			sched = "-"
		}
		if st.Window != "" {
			sched += " (window " + st.Window + ")"
		}
		age := "-"
		if st.CurrentCreated != nil {
			age = fmtAge(time.Duration(st.CurrentAgeSecs) * time.Second)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", st.Name, rot, sched, fmtTime(st.LastRotated), fmtTime(st.NextRotation), age, flags(st))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, st := range statuses {
		if st.Error != "" {
			fmt.Fprintf(out, "\n%s: %s\n", st.Name, st.Error)
		}
		if !st.Stuck && st.Probe != nil && st.Probe.State != recovery.StateHealthy {
			fmt.Fprintf(out, "\n%s: %s. %s.\n", st.Name, capitalize(st.Probe.Summary), st.Advice)
		}
		if !st.Stuck && st.ProbeError != "" {
			fmt.Fprintf(out, "\n%s: its credentials could not be probed: %s\n", st.Name, st.ProbeError)
		}
		if st.Stuck {
			fmt.Fprintf(out, "\n%s: AWSPENDING is on version %s, not on AWSCURRENT: a rotation is running or failed.", st.Name, st.PendingVersion)
			switch {
			case st.Probe != nil:
				fmt.Fprintf(out, " %s. %s.\n", capitalize(st.Probe.Summary), st.Advice)
			case st.ProbeError != "":
				fmt.Fprintf(out, " Its credentials could not be probed (%s); if no rotation is running, run 'rotary unstick %s'.\n", st.ProbeError, st.Name)
			default:
				fmt.Fprintf(out, " If none is running, run 'rotary unstick %s' (it probes which version logs in first).\n", st.Name)
			}
		}
	}
	return errFailed
}

func flags(st secretStatus) string {
	if st.Error != "" {
		return "ERROR"
	}
	var f []string
	switch {
	case st.State == recovery.StateLockedOut:
		f = append(f, "LOCKED-OUT")
	case st.State == recovery.StateDrifted:
		f = append(f, "DRIFTED")
	case st.State == recovery.StateLoginDisabled:
		f = append(f, "LOGIN-DISABLED")
	case st.Stuck:
		f = append(f, "STUCK")
	case st.State == recovery.StateUnknown || st.ProbeError != "":
		f = append(f, "UNVERIFIED")
	}
	if st.Overdue {
		f = append(f, "OVERDUE")
	}
	if len(f) == 0 {
		return "ok"
	}
	return strings.Join(f, ",")
}

func statusOf(s *secretState, now time.Time) secretStatus {
	d := s.desc
	st := secretStatus{
		Name: s.name, ARN: s.arn,
		RotationEnabled: aws.ToBool(d.RotationEnabled),
		Function:        aws.ToString(d.RotationLambdaARN),
		LastRotated:     d.LastRotatedDate,
		NextRotation:    d.NextRotationDate,
		CurrentVersion:  s.labeled(labelCurrent),
		PendingVersion:  s.stuckPending(),
	}
	if r := d.RotationRules; r != nil {
		switch {
		case r.ScheduleExpression != nil:
			st.Schedule = aws.ToString(r.ScheduleExpression)
		case r.AutomaticallyAfterDays != nil:
			st.Schedule = fmt.Sprintf("every %d days", aws.ToInt64(r.AutomaticallyAfterDays))
		}
		st.Window = aws.ToString(r.Duration)
	}
	if v, ok := s.version(st.CurrentVersion); ok && v.CreatedDate != nil {
		st.CurrentCreated = v.CreatedDate
		st.CurrentAgeSecs = int64(now.Sub(*v.CreatedDate) / time.Second)
	}
	st.Stuck = st.PendingVersion != ""
	st.Overdue = st.RotationEnabled && d.NextRotationDate != nil && d.NextRotationDate.Before(now)
	return st
}

func runHistory(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("history", flag.ContinueOnError)
	af := addAWSFlags(fs)
	asJSON := fs.Bool("json", false, "machine-readable output")
	_, s, err := openSecret(ctx, fs, af, args, out, nil)
	if err != nil {
		return err
	}
	type entry struct {
		VersionID    string     `json:"versionId"`
		Labels       []string   `json:"labels"`
		Created      *time.Time `json:"created,omitempty"`
		LastAccessed *time.Time `json:"lastAccessed,omitempty"`
		Deprecated   bool       `json:"deprecated"`
	}
	entries := make([]entry, 0, len(s.versions))
	for _, v := range s.versions {
		labels := v.VersionStages
		if labels == nil {
			labels = []string{}
		}
		entries = append(entries, entry{VersionID: aws.ToString(v.VersionId), Labels: labels, Created: v.CreatedDate, LastAccessed: v.LastAccessedDate, Deprecated: len(v.VersionStages) == 0})
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Name     string  `json:"name"`
			ARN      string  `json:"arn"`
			Versions []entry `json:"versions"`
		}{s.name, s.arn, entries})
	}
	fmt.Fprintf(out, "%s (%d versions, newest first; values are never shown)\n", s.name, len(entries))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tCREATED\tLAST ACCESSED\tLABELS")
	for _, e := range entries {
		labels := strings.Join(e.Labels, ",")
		if e.Deprecated {
			labels = "(deprecated)"
		}
		accessed := "-"
		if e.LastAccessed != nil {
			accessed = e.LastAccessed.UTC().Format("2006-01-02")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.VersionID, fmtTime(e.Created), accessed, labels)
	}
	return tw.Flush()
}

// diagnose fills in what the rotation function's probes say about a
// secret: its state and the one command that fixes it.
func (c *clients) diagnose(ctx context.Context, s *secretState, st *secretStatus) {
	token := st.PendingVersion
	if token == "" {
		token = st.CurrentVersion
	}
	r, err := c.probe(ctx, s, token)
	if err != nil {
		st.ProbeError = err.Error()
		return
	}
	st.Probe, st.State, st.Advice = r, r.State, advice(s, r)
}
