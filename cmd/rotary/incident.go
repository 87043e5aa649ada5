package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/rotary-secrets/rotary/pkg/recovery"
)

// The incident runbook as one command: evidence first (nothing changed
// yet), then the revoke, then the proof of what the revoke invalidated,
// all in one bundle. The bundle holds ids, labels, principals and times,
// never a secret value.

// incidentBundle is incident.json.
type incidentBundle struct {
	Secret   string    `json:"secret"`
	ARN      string    `json:"arn"`
	Opened   time.Time `json:"opened"`
	Operator string    `json:"operator,omitempty"` // who ran rotary incident, as AWS knows them
	// Valid are the credentials valid when the incident was opened, the
	// oldest of which sets where the audit starts.
	Valid []revocableVersion `json:"validAtOpening"`
	Audit *auditReport       `json:"audit"`
	// ReadsByVersion: which principals read which version, in the window.
	ReadsByVersion map[string]map[string]int `json:"readsByVersion"`
	Revocation     *incidentRevocation       `json:"revocation,omitempty"`
}

type incidentRevocation struct {
	Function string    `json:"function"`
	Started  time.Time `json:"started"`
	Revoked  *revoked  `json:"revoked,omitempty"`
	Error    string    `json:"error,omitempty"`
	// Proofs are the rotation function's probes after the revoke: each
	// credential valid before, and whether the downstream service refuses it.
	Proofs []incidentProof `json:"proofs,omitempty"`
}

type incidentProof struct {
	VersionID string   `json:"versionId"`
	Before    string   `json:"labelBefore"`
	Labels    []string `json:"labelsNow"`
	Outcome   string   `json:"outcome"`
	Refused   bool     `json:"refused"`
	// SingleCredential: the type keeps one valid credential at a time.
	SingleCredential bool `json:"singleCredential"`
	// NothingDownstream: the type has no downstream system (random
	// secrets), so "logs in" only means well-formed. For every other type
	// a version valid before the revoke that still logs in is a failed
	// revoke.
	NothingDownstream bool   `json:"nothingDownstream,omitempty"`
	Note              string `json:"note,omitempty"`
}

func runIncident(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("incident", flag.ContinueOnError)
	af := addAWSFlags(fs)
	yes := fs.Bool("yes", false, "do not ask for confirmation before revoking")
	dir := fs.String("out", filepath.Join(".rotary", "incidents"), "directory to write the evidence bundle under (a new subdirectory per incident)")
	readers := fs.String("readers", "", "comma-separated principal ARNs that may read the secret (default: from its resource policy)")
	ff := addFollowFlags(fs)
	c, s, err := openSecret(ctx, fs, af, args, out, ff.check)
	if err != nil {
		return err
	}
	if err := c.checkFeed(ctx, s.arn, ff); err != nil {
		return err
	}
	opened := time.Now().UTC()
	valid := c.revocable(ctx, s)
	if p := s.stuckPending(); p != "" {
		valid = append(valid, revocableVersion{VersionID: p, Label: labelPending})
	}
	// The audit starts when the oldest credential still valid was created:
	// a leak of it can have happened any time since.
	since := opened.Add(-cloudTrailRetention)
	var oldest time.Time
	for _, v := range valid {
		if sv, ok := s.version(v.VersionID); ok && sv.CreatedDate != nil && (oldest.IsZero() || sv.CreatedDate.Before(oldest)) {
			oldest = *sv.CreatedDate
		}
	}
	if !oldest.IsZero() && oldest.Add(-time.Minute).After(since) {
		since = oldest.Add(-time.Minute)
	}
	fmt.Fprintf(out, "Opening an incident for %s: collecting the audit trail since %s (the oldest valid credential's creation)...\n", s.name, since.Format(time.RFC3339))
	rep, err := c.audit(ctx, s, since, opened, splitList(*readers), os.Stderr)
	if err != nil {
		return fmt.Errorf("%w\nNothing was changed and no bundle was written: the evidence comes first", err)
	}
	b := &incidentBundle{Secret: s.name, ARN: s.arn, Opened: opened, Valid: valid, Audit: rep, ReadsByVersion: map[string]map[string]int{}}
	if valid == nil {
		b.Valid = []revocableVersion{}
	}
	for _, v := range rep.Versions {
		if len(v.ReadBy) > 0 {
			b.ReadsByVersion[v.ID] = v.ReadBy
		}
	}
	bundle := filepath.Join(*dir, safeName(s.name)+"-"+opened.Format("20060102T150405Z"))
	for n := 2; ; n++ {
		if _, err := os.Stat(bundle); os.IsNotExist(err) {
			break
		}
		bundle = filepath.Join(*dir, fmt.Sprintf("%s-%s-%d", safeName(s.name), opened.Format("20060102T150405Z"), n))
	}
	if err := writeBundle(bundle, b); err != nil {
		return fmt.Errorf("%w\nNothing was changed", err)
	}
	fmt.Fprintf(out, "Evidence written before any change: %s (%d events, %d flagged)\n", bundle, len(rep.Events), rep.Flagged)

	fn, err := c.actionable(ctx, s)
	if err != nil {
		return fmt.Errorf("%w\nThe evidence is in %s; the credential is NOT revoked", err, bundle)
	}
	if err := confirm(out, *yes, revokePrompt(s, fn, c.revocable(ctx, s))); err != nil {
		return fmt.Errorf("%w\nThe evidence is in %s; the credential is NOT revoked", err, bundle)
	}
	b.Revocation = &incidentRevocation{Function: fn, Started: time.Now().UTC()}
	r, rerr := c.revoke(ctx, out, s, fn, c.revocable(ctx, s), ff)
	b.Revocation.Revoked = r
	if rerr != nil {
		b.Revocation.Error = rerr.Error()
	} else {
		b.Revocation.Proofs = c.proveRevoked(ctx, s, valid, r.NewVersion)
	}
	if err := writeBundle(bundle, b); err != nil {
		return fmt.Errorf("%w\nThe evidence written before the revoke is in %s", err, bundle)
	}
	if rerr != nil {
		return fmt.Errorf("%w\nThe evidence and this failure are in %s", rerr, bundle)
	}
	var still []string
	for _, p := range b.Revocation.Proofs {
		switch {
		case p.Refused:
			fmt.Fprintf(out, "  proven refused: version %s (%s at opening)\n", p.VersionID, p.Before)
		case p.Outcome == recovery.OutcomeLogsIn && !p.NothingDownstream:
			still = append(still, p.VersionID)
		default:
			fmt.Fprintf(out, "  version %s (%s at opening): %s; %s\n", p.VersionID, p.Before, p.Outcome, dash(p.Note))
		}
	}
	fmt.Fprintf(out, "Incident bundle: %s (incident.md, incident.json)\n", bundle)
	if len(still) > 0 {
		return fmt.Errorf("after the revoke, versions %s still log in: see %s/incident.md and 'rotary probe %s'", strings.Join(still, ", "), bundle, s.name)
	}
	return nil
}

// proveRevoked asks the rotation function, for each credential valid
// before, whether it still logs in.
func (c *clients) proveRevoked(ctx context.Context, s *secretState, valid []revocableVersion, current string) []incidentProof {
	now, err := c.describe(ctx, s.arn)
	if err != nil {
		return []incidentProof{{Note: "could not describe the secret after the revoke: " + err.Error()}}
	}
	var proofs []incidentProof
	for _, v := range valid {
		p := incidentProof{VersionID: v.VersionID, Before: v.Label, Labels: []string{}}
		if sv, ok := now.version(v.VersionID); ok {
			p.Labels = append(p.Labels, sv.VersionStages...)
		}
		rep, err := c.report(ctx, aws.ToString(now.desc.RotationLambdaARN), now.arn, stepProbe, v.VersionID)
		if err != nil {
			p.Outcome, p.Note = "not probed", err.Error()
		} else if vp, ok := rep.Version(v.VersionID); ok {
			p.Outcome, p.Note = vp.Outcome, vp.Error
			p.Refused = vp.Outcome == recovery.OutcomeRefused
			p.SingleCredential, p.NothingDownstream = rep.SingleCredential, rep.NothingDownstream
			if rep.NothingDownstream && vp.Outcome == recovery.OutcomeLogsIn {
				p.Note = strings.TrimSpace(p.Note + " the function accepts the value; for a type with nothing downstream (random-secret) that only means it is well-formed, and revoking means AWSCURRENT is a new value (version " + current + ")")
			}
		} else {
			p.Outcome = "not probed"
		}
		proofs = append(proofs, p)
	}
	return proofs
}

func safeName(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, name)
}

// writeBundle (re)writes incident.json and incident.md, readable by their
// owner only: they name principals, keys and addresses.
func writeBundle(dir string, b *incidentBundle) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create the bundle directory (--out): %w", err)
	}
	js, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	var md strings.Builder
	writeIncidentMarkdown(&md, b)
	for name, data := range map[string][]byte{"incident.json": append(js, '\n'), "incident.md": []byte(md.String())} {
		if err := writeFileAtomic(filepath.Join(dir, name), data); err != nil {
			return fmt.Errorf("write the evidence bundle: %w", err)
		}
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func writeIncidentMarkdown(w io.Writer, b *incidentBundle) {
	rep := b.Audit
	fmt.Fprintf(w, "# Incident: %s\n\n", b.Secret)
	fmt.Fprintf(w, "- secret: `%s`\n- opened: %s\n- audit window: %s to %s (since the oldest credential valid at opening was created)\n",
		b.ARN, b.Opened.Format(time.RFC3339), rep.Since.Format(time.RFC3339), rep.Until.Format(time.RFC3339))
	fmt.Fprintf(w, "- readers (%s): %s\n", rep.ReadersFrom, mdList(rep.Readers))
	fmt.Fprintf(w, "- suite: %s\n- events: %d, flagged: %d\n", mdList(rep.Suite), len(rep.Events), rep.Flagged)
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "- note: %s\n", n)
	}
	fmt.Fprintf(w, "\nThis bundle holds no secret value: CloudTrail records none, and Rotary writes only ids, labels, principals and times.\n")

	fmt.Fprintf(w, "\n## Credentials valid at opening\n\n| version | label | user |\n|---|---|---|\n")
	for _, v := range b.Valid {
		fmt.Fprintf(w, "| `%s` | %s | %s |\n", v.VersionID, v.Label, dash(v.User))
	}

	fmt.Fprintf(w, "\n## Flagged\n\n")
	if rep.Flagged == 0 {
		fmt.Fprintf(w, "Nothing flagged.\n")
	}
	for _, e := range rep.Events {
		if e.Flagged {
			fmt.Fprintf(w, "- %s `%s` (key `%s`, %s, %s): %s. %s\n", e.Time.Format(time.RFC3339), e.Principal, dash(e.AccessKeyID), dash(e.SourceIP), dash(e.UserAgent), e.What, e.Why)
		}
	}

	fmt.Fprintf(w, "\n## Versions and who read them\n\n| version | labels | created | read by |\n|---|---|---|---|\n")
	for _, v := range rep.Versions {
		var by []string
		for p, n := range v.ReadBy {
			by = append(by, fmt.Sprintf("`%s` x%d", p, n))
		}
		sort.Strings(by)
		fmt.Fprintf(w, "| `%s` | %s | %s | %s |\n", v.ID, dash(strings.Join(v.Labels, ", ")), fmtTime(v.Created), dash(strings.Join(by, ", ")))
	}

	fmt.Fprintf(w, "\n## Timeline\n\n| time | who | what | from | result |\n|---|---|---|---|---|\n")
	for _, e := range rep.Events {
		who := "`" + e.Principal + "`"
		if e.Suite {
			who += " (suite)"
		}
		from := e.SourceIP
		if e.VPCEndpoint != "" {
			from += " via " + e.VPCEndpoint
		}
		if e.AccessKeyID != "" {
			from += " key `" + e.AccessKeyID + "`"
		}
		result := "ok"
		if e.Error != "" {
			result = "failed: " + e.Error
		}
		if e.Flagged {
			result += " **FLAGGED**: " + e.Why
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", e.Time.Format("2006-01-02 15:04:05Z"), who, mdCell(e.What), mdCell(from), mdCell(result))
	}

	fmt.Fprintf(w, "\n## Revocation\n\n")
	r := b.Revocation
	switch {
	case r == nil:
		fmt.Fprintf(w, "Not revoked yet: the evidence above was written before anything changed.\n")
		return
	case r.Error != "":
		fmt.Fprintf(w, "Started %s with `%s`. **FAILED**: %s\n", r.Started.Format(time.RFC3339), r.Function, mdCell(r.Error))
		return
	}
	fmt.Fprintf(w, "Revoked at %s with `%s`: rotated to version `%s`", r.Revoked.At.Format(time.RFC3339), r.Function, r.Revoked.NewVersion)
	if r.Revoked.NewUser != "" {
		fmt.Fprintf(w, " (user %s)", r.Revoked.NewUser)
	}
	fmt.Fprintf(w, ", then the function's revokeSecret step invalidated every other credential and ended their sessions.\n\n")
	fmt.Fprintf(w, "What the rotation function found afterwards, for each credential valid at opening:\n\n| version | label before | labels now | outcome | refused | note |\n|---|---|---|---|---|---|\n")
	for _, p := range r.Proofs {
		fmt.Fprintf(w, "| `%s` | %s | %s | %s | %v | %s |\n", p.VersionID, p.Before, dash(strings.Join(p.Labels, ", ")), p.Outcome, p.Refused, mdCell(dash(p.Note)))
	}
}

func mdList(l []string) string {
	if len(l) == 0 {
		return "(none known)"
	}
	return "`" + strings.Join(l, "`, `") + "`"
}

func mdCell(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ") }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
