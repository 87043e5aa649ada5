package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/rotary-secrets/rotary/pkg/recovery"
	"github.com/rotary-secrets/rotary/pkg/watch"
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
	// State is what the watch's check found (pkg/watch: ok, locked-out,
	// drifted, login-disabled, stuck, rotation-disabled, overdue,
	// unverified, error); empty when the secret was not probed (not stuck,
	// without --verify). Problems lists every finding, worst first.
	State    string   `json:"state,omitempty"`
	Problems []string `json:"problems,omitempty"`
	// Probe is the rotation function's report; ProbeError says why there is none.
	Probe      *recovery.Report `json:"probe,omitempty"`
	ProbeError string           `json:"probeError,omitempty"`
	// Advice is the one command that fixes the secret.
	Advice string `json:"advice,omitempty"`
	// Error says why the secret could not be read (when several are listed).
	Error string `json:"error,omitempty"`
}

// statusWorkers is how many secrets `rotary status` reads at once: far
// below Secrets Manager's DescribeSecret and ListSecretVersionIds quota
// (shared, thousands per second), enough to hide the round trips.
const statusWorkers = 8

// describedFromList is what DescribeSecret would say of a secret, from its
// ListSecrets entry, which carries the same fields: `status --all` then
// reads only each secret's versions.
func describedFromList(e smtypes.SecretListEntry) *secretsmanager.DescribeSecretOutput {
	return &secretsmanager.DescribeSecretOutput{
		ARN: e.ARN, Name: e.Name, Description: e.Description, KmsKeyId: e.KmsKeyId,
		RotationEnabled: e.RotationEnabled, RotationLambdaARN: e.RotationLambdaARN, RotationRules: e.RotationRules,
		LastRotatedDate: e.LastRotatedDate, LastChangedDate: e.LastChangedDate, LastAccessedDate: e.LastAccessedDate,
		DeletedDate: e.DeletedDate, NextRotationDate: e.NextRotationDate, Tags: e.Tags,
		VersionIdsToStages: e.SecretVersionsToStages, OwningService: e.OwningService,
		CreatedDate: e.CreatedDate, PrimaryRegion: e.PrimaryRegion,
	}
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
	var listed []*secretsmanager.DescribeSecretOutput
	if *all {
		ids, names = nil, nil
		// The largest page (100): 100 calls for 10,000 secrets, not 1,000.
		p := secretsmanager.NewListSecretsPaginator(c.sm, &secretsmanager.ListSecretsInput{MaxResults: aws.Int32(100)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("list secrets: %w", err)
			}
			for _, s := range page.SecretList {
				ids, names = append(ids, aws.ToString(s.ARN)), append(names, aws.ToString(s.Name))
				listed = append(listed, describedFromList(s))
			}
		}
	}
	now := time.Now()
	// The watch's check (repair off): the same states, overdue rule and
	// advice as the watch function's.
	w := &watch.Watcher{SM: c.sm, Lambda: c.lambda, Config: watch.Config{OverdueAfter: watch.DefaultOverdueAfter}}
	// Each secret's versions (and, when named, its description) are read
	// by statusWorkers at once, in the order given: --all over 10,000
	// secrets would otherwise wait for 10,000 round trips one after another.
	states := make([]*secretState, len(ids))
	errs := make([]error, len(ids))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(statusWorkers, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < len(ids); i = int(next.Add(1)) - 1 {
				if listed != nil {
					states[i], errs[i] = c.versionsOf(ctx, listed[i])
				} else {
					states[i], errs[i] = c.describe(ctx, ids[i])
				}
			}
		}()
	}
	wg.Wait()
	statuses := make([]secretStatus, 0, len(ids))
	failed := 0
	for i, id := range ids {
		s, err := states[i], errs[i]
		switch {
		case err != nil && len(ids) == 1:
			return err
		case err != nil:
			// One secret this identity may not read must not hide the others.
			failed++
			statuses = append(statuses, secretStatus{Name: names[i], ARN: id, Error: err.Error()})
		default:
			st := statusOf(s, now)
			// A secret that never had a rotation function is not one
			// Rotary rotates: listed, not checked (status --all --verify
			// over an account's other secrets stays meaningful).
			if (*verify || (st.Stuck && !*noProbe)) && st.Function != "" {
				diagnose(ctx, w, &st, now)
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
			if st.Function != "" && st.State != watch.StateOK {
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
		switch {
		case st.Error != "":
		case st.State != "" && (st.State != watch.StateOK || len(st.Problems) > 0):
			// What the check found, worst first, and the one command that fixes it.
			fmt.Fprintf(out, "\n%s: %s. %s.\n", st.Name, capitalize(strings.Join(st.Problems, "; ")), st.Advice)
		case st.Stuck:
			fmt.Fprintf(out, "\n%s: AWSPENDING is on version %s, not on AWSCURRENT: a rotation is running or failed. If none is running, run 'rotary unstick %s' (it probes which version logs in first).\n", st.Name, st.PendingVersion, st.Name)
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
	case st.State == watch.StateLockedOut:
		f = append(f, "LOCKED-OUT")
	case st.State == watch.StateDrifted:
		f = append(f, "DRIFTED")
	case st.State == watch.StateLoginDisabled:
		f = append(f, "LOGIN-DISABLED")
	case st.Stuck:
		f = append(f, "STUCK")
	case st.State == watch.StateRotationDisabled:
		f = append(f, "ROTATION-OFF")
	case st.State == watch.StateUnverified:
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
	_, due := watch.Due(d, watch.DefaultOverdueAfter)
	st.Overdue = due != nil && now.After(*due)
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

// diagnose runs the watch's check of the secret (its rotation function
// probes the versions; nothing is repaired) and takes its findings.
func diagnose(ctx context.Context, w *watch.Watcher, st *secretStatus, now time.Time) {
	chk := w.Check(ctx, watch.Target{ARN: st.ARN}, now)
	st.State, st.Problems, st.Advice = chk.State, chk.Problems, chk.Advice
	st.Probe, st.ProbeError = chk.Probe, chk.ProbeError
	st.Overdue, st.Stuck = chk.Overdue, chk.Stuck
	if chk.Error != "" {
		st.Error = chk.Error
	}
}
