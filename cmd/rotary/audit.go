package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// The audit: one secret's CloudTrail events as a timeline (who did what,
// when, from where, whether it failed), with the version each read got and
// the reads by principals outside the secret's readers flagged.

// cloudTrailRetention is how far back CloudTrail's event history (what
// LookupEvents reads) goes.
const cloudTrailRetention = 90 * 24 * time.Hour

// errFlagged is returned when the audit flagged something: exit code 1.
var errFlagged = errors.New("flagged")

// auditEntry is one event of the timeline. It never holds a secret value:
// CloudTrail records none.
type auditEntry struct {
	Time      time.Time `json:"time"`
	EventID   string    `json:"eventId"`
	EventName string    `json:"eventName"`
	// Kind is read, write, labels, policy, rotation, describe or other.
	Kind string `json:"kind"`
	// Principal is who called: an IAM user, an assumed-role session, or
	// the service itself (secretsmanager.amazonaws.com) for its own events.
	Principal     string `json:"principal"`
	PrincipalType string `json:"principalType,omitempty"`
	// Role is the role of an assumed-role session: what resource policies
	// match as aws:PrincipalArn.
	Role        string `json:"role,omitempty"`
	AccessKeyID string `json:"accessKeyId,omitempty"`
	SourceIP    string `json:"sourceIp,omitempty"`
	VPCEndpoint string `json:"vpcEndpointId,omitempty"`
	UserAgent   string `json:"userAgent,omitempty"`
	// What the call did, in words; Version and Stage are the version it
	// read or wrote and the label it asked for or moved.
	What    string `json:"what"`
	Version string `json:"version,omitempty"`
	Stage   string `json:"stage,omitempty"`
	Error   string `json:"error,omitempty"`
	// Suite marks the suite's own calls (the rotation function's role).
	Suite   bool   `json:"suite,omitempty"`
	Flagged bool   `json:"flagged,omitempty"`
	Why     string `json:"why,omitempty"`
}

// auditVersion is a version of the secret now, and who read it.
type auditVersion struct {
	ID      string         `json:"versionId"`
	Labels  []string       `json:"labels"`
	Created *time.Time     `json:"created,omitempty"`
	ReadBy  map[string]int `json:"readBy,omitempty"` // principal -> successful reads in the window
}

// auditReport is the whole audit, as `rotary audit --json` prints it and
// the incident bundle keeps it.
type auditReport struct {
	Secret string    `json:"secret"`
	ARN    string    `json:"arn"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	// Readers are the principals (ARN patterns) allowed to read, and where
	// they come from: the resource policy, --readers, or unknown.
	Readers      []string       `json:"readers"`
	ReadersFrom  string         `json:"readersFrom"`
	VPCEndpoints []string       `json:"vpcEndpoints,omitempty"`
	Suite        []string       `json:"suite"`
	Notes        []string       `json:"notes,omitempty"`
	Events       []auditEntry   `json:"events"` // oldest first
	Versions     []auditVersion `json:"versions"`
	Flagged      int            `json:"flagged"`
}

type auditFlags struct {
	since, until, readers string
}

func runAudit(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	af := addAWSFlags(fs)
	var f auditFlags
	fs.StringVar(&f.since, "since", "7d", "start of the timeline: a duration back from now (7d, 12h) or a time (2026-11-30, RFC 3339)")
	fs.StringVar(&f.until, "until", "", "end of the timeline, as --since (default: now)")
	fs.StringVar(&f.readers, "readers", "", "comma-separated principal ARNs (IAM wildcards allowed) that may read the secret (default: from its resource policy)")
	asJSON := fs.Bool("json", false, "print the timeline as JSON")
	var since, until time.Time
	check := func() (err error) {
		now := time.Now().UTC()
		if since, err = parseWhen(f.since, now); err != nil {
			return fmt.Errorf("%w: --since: %v", errUsage, err)
		}
		until = now
		if f.until != "" {
			if until, err = parseWhen(f.until, now); err != nil {
				return fmt.Errorf("%w: --until: %v", errUsage, err)
			}
		}
		if !since.Before(until) {
			return fmt.Errorf("%w: --since %s is not before --until %s", errUsage, since.Format(time.RFC3339), until.Format(time.RFC3339))
		}
		return nil
	}
	c, s, err := openSecret(ctx, fs, af, args, out, check)
	if err != nil {
		return err
	}
	rep, err := c.audit(ctx, s, since, until, splitList(f.readers), os.Stderr)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := printAudit(out, rep); err != nil {
		return err
	}
	if rep.Flagged > 0 {
		return fmt.Errorf("%w: %d event(s) of %s need a look (see the FLAGGED lines)", errFlagged, rep.Flagged, s.name)
	}
	return nil
}

// parseWhen reads 7d, 12h30m, 2026-11-30 or an RFC 3339 time.
func parseWhen(v string, now time.Time) (time.Time, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration (7d, 12h) nor a time (2026-11-30, 2026-11-30T10:00:00Z)", v)
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// audit builds the timeline of s between since and until. readers, when
// given, replace the resource policy's. Progress goes to progress on long
// look-ups.
func (c *clients) audit(ctx context.Context, s *secretState, since, until time.Time, readers []string, progress io.Writer) (*auditReport, error) {
	rep := &auditReport{Secret: s.name, ARN: s.arn, Since: since, Until: until, Events: []auditEntry{}, Versions: []auditVersion{}}
	if old := time.Now().Add(-cloudTrailRetention); since.Before(old) {
		rep.Notes = append(rep.Notes, fmt.Sprintf("CloudTrail's event history goes back 90 days: nothing before %s can be shown", old.UTC().Format(time.RFC3339)))
	}
	var sets [][]string
	var vpceExempt []string // who the VPC endpoint rule exempts (readersOf)
	switch {
	case len(readers) > 0:
		rep.ReadersFrom = "--readers"
		sets = [][]string{readers}
	default:
		pol, err := c.sm.GetResourcePolicy(ctx, &secretsmanager.GetResourcePolicyInput{SecretId: aws.String(s.arn)})
		switch {
		case err != nil:
			rep.ReadersFrom = "unknown"
			rep.Notes = append(rep.Notes, fmt.Sprintf("the resource policy could not be read (%v), so no read is flagged: pass --readers, or grant secretsmanager:GetResourcePolicy", err))
		case aws.ToString(pol.ResourcePolicy) == "":
			rep.ReadersFrom = "unknown"
			rep.Notes = append(rep.Notes, "the secret has no resource policy naming its readers, so no read is flagged: pass --readers, or attach the policy (docs/audit.md)")
		default:
			var vpce []string
			sets, vpce, vpceExempt, err = readersOf(aws.ToString(pol.ResourcePolicy))
			if err != nil {
				rep.ReadersFrom = "unknown"
				rep.Notes = append(rep.Notes, fmt.Sprintf("the resource policy cannot be read as JSON (%v), so no read is flagged: pass --readers", err))
			} else if len(sets) == 0 {
				rep.ReadersFrom = "unknown"
				rep.Notes = append(rep.Notes, "the resource policy has no Deny of GetSecretValue with an ArnNotLike aws:PrincipalArn condition, so it does not say who the readers are and no read is flagged: pass --readers")
			} else {
				rep.ReadersFrom = "resource policy"
			}
			rep.VPCEndpoints = vpce
		}
	}
	for _, set := range sets {
		rep.Readers = append(rep.Readers, set...)
	}
	slices.Sort(rep.Readers)
	rep.Readers = slices.Compact(rep.Readers)
	if rep.Readers == nil {
		rep.Readers = []string{}
	}
	rep.Suite = c.suiteRoles(ctx, s, rep)

	raw, err := c.lookupSecretEvents(ctx, s, since, until, progress)
	if err != nil {
		return nil, err
	}
	// LookupEvents answers newest first, to the second: reversed, the
	// events of one second are in the order they happened.
	for i := len(raw) - 1; i >= 0; i-- {
		rep.Events = append(rep.Events, entryOf(raw[i]))
	}
	sort.SliceStable(rep.Events, func(i, j int) bool { return rep.Events[i].Time.Before(rep.Events[j].Time) })
	resolveVersions(rep, s)
	for i := range rep.Events {
		e := &rep.Events[i]
		e.Suite = isSuite(e, rep.Suite)
		if e.Kind != "read" || e.Suite || rep.ReadersFrom == "unknown" {
			continue
		}
		attempt := "read"
		if e.Error != "" {
			attempt = "attempted read (" + e.Error + ")"
		}
		if why := whyFlagged(e, sets, rep.VPCEndpoints, vpceExempt); why != "" {
			e.Flagged, e.Why = true, attempt+why
			if why == outsideReaders {
				e.Why += " (" + rep.ReadersFrom + ")"
			}
			rep.Flagged++
		}
	}
	return rep, nil
}

// suiteRoles are the suite's own principals: the role of the secret's
// rotation function, from Lambda's GetFunctionConfiguration.
func (c *clients) suiteRoles(ctx context.Context, s *secretState, rep *auditReport) []string {
	fn := aws.ToString(s.desc.RotationLambdaARN)
	if fn == "" {
		return []string{}
	}
	conf, err := c.lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(fn)})
	if err != nil || aws.ToString(conf.Role) == "" {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the rotation function's role could not be read (%v); if its reads are flagged, add the role to --readers or grant lambda:GetFunctionConfiguration", err))
		return []string{}
	}
	return []string{aws.ToString(conf.Role)}
}

// lookupSecretEvents reads the secret's events: those naming its ARN, those
// naming it by name (a call that failed before it found the secret), and
// the service's rotation events about it; each once.
func (c *clients) lookupSecretEvents(ctx context.Context, s *secretState, since, until time.Time, progress io.Writer) ([]cttypes.Event, error) {
	seen := map[string]bool{}
	var out []cttypes.Event
	start, last := time.Now(), time.Now()
	lookups := []cttypes.LookupAttribute{
		{AttributeKey: cttypes.LookupAttributeKeyResourceName, AttributeValue: aws.String(s.arn)},
		{AttributeKey: cttypes.LookupAttributeKeyResourceName, AttributeValue: aws.String(s.name)},
	}
	for _, name := range []string{"RotationStarted", "RotationSucceeded", "RotationFailed", "RotationAbandoned"} {
		lookups = append(lookups, cttypes.LookupAttribute{AttributeKey: cttypes.LookupAttributeKeyEventName, AttributeValue: aws.String(name)})
	}
	for i, la := range lookups {
		p := cloudtrail.NewLookupEventsPaginator(c.trail, &cloudtrail.LookupEventsInput{
			LookupAttributes: []cttypes.LookupAttribute{la}, StartTime: aws.Time(since), EndTime: aws.Time(until), MaxResults: aws.Int32(50),
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("look up the CloudTrail events of %s (%s %s): %w; the caller needs cloudtrail:LookupEvents", s.name, la.AttributeKey, aws.ToString(la.AttributeValue), err)
			}
			for _, ev := range page.Events {
				id := aws.ToString(ev.EventId)
				if seen[id] {
					continue
				}
				if i >= 2 && !aboutSecret(ev, s) {
					continue
				}
				seen[id] = true
				out = append(out, ev)
			}
			if progress != nil && time.Since(last) > 2*time.Second {
				last = time.Now()
				fmt.Fprintf(progress, "rotary audit: %d events of %s so far (%s)...\n", len(out), s.name, time.Since(start).Round(time.Second))
			}
		}
	}
	return out, nil
}

// aboutSecret says whether a service event (found by name) is about s.
func aboutSecret(ev cttypes.Event, s *secretState) bool {
	for _, r := range ev.Resources {
		if n := aws.ToString(r.ResourceName); n == s.arn || n == s.name {
			return true
		}
	}
	var rec struct {
		AdditionalEventData struct {
			SecretID string `json:"SecretId"`
		} `json:"additionalEventData"`
	}
	_ = json.Unmarshal([]byte(aws.ToString(ev.CloudTrailEvent)), &rec)
	id := rec.AdditionalEventData.SecretID
	return id != "" && (id == s.arn || id == s.name || strings.HasPrefix(s.arn, id+"-"))
}

// ctRecord is what the audit reads of a CloudTrail record.
type ctRecord struct {
	EventTime    time.Time `json:"eventTime"`
	EventName    string    `json:"eventName"`
	EventType    string    `json:"eventType"`
	UserIdentity struct {
		Type           string `json:"type"`
		ARN            string `json:"arn"`
		AccessKeyID    string `json:"accessKeyId"`
		InvokedBy      string `json:"invokedBy"`
		SessionContext struct {
			SessionIssuer struct {
				ARN string `json:"arn"`
			} `json:"sessionIssuer"`
		} `json:"sessionContext"`
	} `json:"userIdentity"`
	SourceIPAddress   string         `json:"sourceIPAddress"`
	UserAgent         string         `json:"userAgent"`
	VPCEndpointID     string         `json:"vpcEndpointId"`
	ErrorCode         string         `json:"errorCode"`
	ErrorMessage      string         `json:"errorMessage"`
	RequestParameters map[string]any `json:"requestParameters"`
	ResponseElements  map[string]any `json:"responseElements"`
}

func str(m map[string]any, k string) string {
	v, _ := m[k].(string)
	return v
}

func strs(m map[string]any, k string) []string {
	var out []string
	if l, ok := m[k].([]any); ok {
		for _, v := range l {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// entryOf turns a looked-up event into a timeline entry; Version of reads
// and writes is filled in by resolveVersions.
func entryOf(ev cttypes.Event) auditEntry {
	var rec ctRecord
	_ = json.Unmarshal([]byte(aws.ToString(ev.CloudTrailEvent)), &rec)
	e := auditEntry{
		Time: aws.ToTime(ev.EventTime).UTC(), EventID: aws.ToString(ev.EventId), EventName: aws.ToString(ev.EventName),
		Principal: rec.UserIdentity.ARN, PrincipalType: rec.UserIdentity.Type, Role: rec.UserIdentity.SessionContext.SessionIssuer.ARN,
		AccessKeyID: rec.UserIdentity.AccessKeyID, SourceIP: rec.SourceIPAddress, VPCEndpoint: rec.VPCEndpointID, UserAgent: rec.UserAgent,
	}
	if e.Principal == "" {
		e.Principal = rec.UserIdentity.InvokedBy
	}
	if e.Principal == "" {
		e.Principal = "(anonymous)"
	}
	if rec.ErrorCode != "" {
		e.Error = rec.ErrorCode
		if rec.ErrorMessage != "" {
			e.Error += ": " + rec.ErrorMessage
		}
	}
	p := rec.RequestParameters
	switch e.EventName {
	case "GetSecretValue", "BatchGetSecretValue":
		e.Kind = "read"
		e.Version, e.Stage = str(p, "versionId"), str(p, "versionStage")
		if e.Version == "" && e.Stage == "" {
			e.Stage = labelCurrent
		}
	case "CreateSecret", "PutSecretValue", "UpdateSecret":
		e.Kind = "write"
		e.Version = str(rec.ResponseElements, "versionId")
		stages := strs(p, "versionStages")
		if len(stages) == 0 && e.Version != "" {
			stages = []string{labelCurrent}
		}
		e.Stage = strings.Join(stages, ",")
		e.What = "wrote a new version"
		if e.Version == "" {
			e.What = strings.ToLower(e.EventName[:1]) + e.EventName[1:] + " (no new version)"
			if e.EventName == "UpdateSecret" {
				e.What = "changed the secret's settings"
			}
		}
	case "UpdateSecretVersionStage":
		e.Kind = "labels"
		e.Stage = str(p, "versionStage")
		to, from := str(p, "moveToVersionId"), str(p, "removeFromVersionId")
		e.Version = to
		switch {
		case to != "" && from != "":
			e.What = fmt.Sprintf("moved %s from %s to %s", e.Stage, from, to)
		case to != "":
			e.What = fmt.Sprintf("put %s on %s", e.Stage, to)
		default:
			e.What = fmt.Sprintf("removed %s from %s", e.Stage, from)
		}
	case "PutResourcePolicy", "DeleteResourcePolicy", "ValidateResourcePolicy", "GetResourcePolicy":
		e.Kind = "policy"
		e.What = map[string]string{"PutResourcePolicy": "changed the resource policy", "DeleteResourcePolicy": "deleted the resource policy",
			"ValidateResourcePolicy": "validated a resource policy", "GetResourcePolicy": "read the resource policy"}[e.EventName]
	case "RotateSecret", "CancelRotateSecret", "RotationStarted", "RotationSucceeded", "RotationFailed", "RotationAbandoned":
		e.Kind = "rotation"
		e.Version = str(rec.ResponseElements, "versionId")
		e.What = map[string]string{
			"RotateSecret": "started a rotation", "CancelRotateSecret": "turned rotation off",
			"RotationStarted": "rotation started", "RotationSucceeded": "rotation succeeded",
			"RotationFailed": "rotation failed", "RotationAbandoned": "rotation abandoned: a version was written by hand during it (a manual override)",
		}[e.EventName]
		if e.EventName == "RotateSecret" && e.Version != "" {
			e.What += ": new version " + e.Version + " (AWSPENDING)"
		}
	case "DescribeSecret", "ListSecretVersionIds", "ListSecrets":
		e.Kind = "describe"
		e.What = "read metadata (" + e.EventName + "), no value"
	default:
		e.Kind = "other"
		e.What = e.EventName
	}
	return e
}

// resolveVersions replays the label moves of the timeline to name the
// version every read got, and counts who read which version. The labels
// before the first move are inferred: AWSCURRENT was the version the first
// move of AWSCURRENT took it from (or, with no move in the window, the one
// that holds it now).
func resolveVersions(rep *auditReport, s *secretState) {
	labels := map[string]string{}
	if cur := initialCurrent(rep, s); cur != "" {
		labels[labelCurrent] = cur
	}
	readBy := map[string]map[string]int{}
	for i := range rep.Events {
		e := &rep.Events[i]
		if e.Error != "" {
			if e.What == "" {
				e.What = "failed " + e.EventName
			}
			continue
		}
		switch e.Kind {
		case "read":
			if e.Version == "" {
				e.Version = labels[e.Stage]
			}
			v := e.Version
			if v == "" {
				v = "(version unknown)"
			}
			if e.Stage != "" {
				e.What = fmt.Sprintf("read %s: version %s", e.Stage, v)
			} else {
				e.What = "read version " + v
			}
			if e.Version != "" {
				if readBy[e.Version] == nil {
					readBy[e.Version] = map[string]int{}
				}
				readBy[e.Version][e.Principal]++
			}
		case "write":
			for _, l := range strings.Split(e.Stage, ",") {
				if l != "" && e.Version != "" {
					setLabel(labels, l, e.Version)
				}
			}
			if e.Version != "" {
				e.What = fmt.Sprintf("wrote version %s (%s)", e.Version, e.Stage)
			}
		case "labels":
			if e.Version != "" {
				setLabel(labels, e.Stage, e.Version)
			} else if labels[e.Stage] == removeFrom(e.What) {
				delete(labels, e.Stage)
			}
		case "rotation":
			if e.EventName == "RotateSecret" && e.Version != "" {
				labels[labelPending] = e.Version
			}
		}
	}
	for _, v := range s.versions {
		id := aws.ToString(v.VersionId)
		rep.Versions = append(rep.Versions, auditVersion{ID: id, Labels: append([]string{}, v.VersionStages...), Created: v.CreatedDate, ReadBy: readBy[id]})
	}
}

// initialCurrent infers the version that was AWSCURRENT when the window
// began: the one the window's first change of AWSCURRENT moved it from,
// the one that holds it now when nothing changed it, or "" when a write
// changed it first (the write does not say what it replaced).
func initialCurrent(rep *auditReport, s *secretState) string {
	for _, e := range rep.Events {
		if e.Error != "" {
			continue
		}
		switch {
		case e.Kind == "write" && strings.Contains(e.Stage, labelCurrent):
			return ""
		case e.Kind == "labels" && e.Stage == labelCurrent:
			return removeFrom(e.What)
		}
	}
	return s.labeled(labelCurrent)
}

func setLabel(labels map[string]string, label, version string) {
	if label == labelCurrent && labels[labelCurrent] != "" && labels[labelCurrent] != version {
		labels[labelPrevious] = labels[labelCurrent]
	}
	labels[label] = version
}

// removeFrom reads the version a label move took the label from, out of
// the entry's What ("moved L from A to B", "removed L from A").
func removeFrom(what string) string {
	_, rest, ok := strings.Cut(what, " from ")
	if !ok {
		return ""
	}
	from, _, _ := strings.Cut(rest, " ")
	return from
}

// principals returns what a policy's aws:PrincipalArn matches for e: the
// caller's ARN and, for a role session, the role's.
func principals(e *auditEntry) []string {
	out := []string{e.Principal}
	if e.Role != "" {
		out = append(out, e.Role)
	}
	return out
}

func isSuite(e *auditEntry, suite []string) bool {
	for _, p := range principals(e) {
		if slices.Contains(suite, p) {
			return true
		}
	}
	return false
}

const (
	outsideReaders  = " by a principal outside the secret's readers"
	outsideEndpoint = " from outside the required VPC endpoint"
)

// whyFlagged says why a read by e is flagged, or "": its principal is not
// among the readers of every set, or it came from outside the required VPC
// endpoints (vpce) and its principal is not exempt from that rule.
func whyFlagged(e *auditEntry, sets [][]string, vpce, vpceExempt []string) string {
	switch {
	case !isReader(e, sets):
		return outsideReaders
	case len(vpce) > 0 && !slices.Contains(vpce, e.VPCEndpoint) && !matchesAny(e, vpceExempt):
		return outsideEndpoint
	}
	return ""
}

// isReader says whether every Deny lets e's principal read: it matches a
// pattern of each set.
func isReader(e *auditEntry, sets [][]string) bool {
	for _, set := range sets {
		if !matchesAny(e, set) {
			return false
		}
	}
	return true
}

// matchesAny says whether e's principal (or its role) matches one of the
// ArnLike patterns.
func matchesAny(e *auditEntry, patterns []string) bool {
	for _, pat := range patterns {
		for _, p := range principals(e) {
			if arnLike(pat, p) {
				return true
			}
		}
	}
	return false
}

// arnLike is IAM's ArnLike: the six colon-separated parts of the ARN
// matched one by one, * any run of characters and ? one.
func arnLike(pattern, arn string) bool {
	pp, ap := strings.SplitN(pattern, ":", 6), strings.SplitN(arn, ":", 6)
	if len(pp) != 6 || len(ap) != 6 {
		return pattern == arn
	}
	for i := range pp {
		if !glob(pp[i], ap[i]) {
			return false
		}
	}
	return true
}

func glob(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for i := len(s); i >= 0; i-- {
				if glob(p[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
			p, s = p[1:], s[1:]
		default:
			if s == "" || p[0] != s[0] {
				return false
			}
			p, s = p[1:], s[1:]
		}
	}
	return s == ""
}

// readersOf reads a resource policy as the CDK app writes it: each Deny of
// GetSecretValue to Principal "*" with an ArnNotLike (or ArnNotEquals,
// StringNotLike, StringNotEquals) aws:PrincipalArn condition, and no
// aws:SourceVpce condition, names the principals it does not deny; a reader
// must be among those of every such statement. A Deny with StringNotEquals
// aws:SourceVpce names the VPC endpoints reads must come through; its own
// aws:PrincipalArn list (the conditions of one statement are ANDed) names
// who is exempt from that endpoint rule (admins, a rotation function outside
// the VPC), not who the readers are.
func readersOf(policy string) (sets [][]string, vpce, vpceExempt []string, err error) {
	var doc struct{ Statement json.RawMessage }
	if err := json.Unmarshal([]byte(policy), &doc); err != nil {
		return nil, nil, nil, err
	}
	type statement struct {
		Effect    string
		Principal json.RawMessage
		Action    json.RawMessage
		Condition map[string]map[string]json.RawMessage
	}
	var stmts []statement
	if err := json.Unmarshal(doc.Statement, &stmts); err != nil {
		var one statement
		if err := json.Unmarshal(doc.Statement, &one); err != nil {
			return nil, nil, nil, err
		}
		stmts = []statement{one}
	}
	for _, st := range stmts {
		if st.Effect != "Deny" || !deniesReads(st.Action) || !everyone(st.Principal) {
			continue
		}
		var arns, endpoints []string
		haveARNs, haveEndpoints := false, false
		for op, conds := range st.Condition {
			for key, vals := range conds {
				list := stringList(vals)
				switch {
				case strings.EqualFold(key, "aws:PrincipalArn") && (op == "ArnNotLike" || op == "ArnNotEquals" || op == "StringNotLike" || op == "StringNotEquals"):
					arns, haveARNs = append(arns, list...), true
				case strings.EqualFold(key, "aws:SourceVpce") && (op == "StringNotEquals" || op == "StringNotLike"):
					endpoints, haveEndpoints = append(endpoints, list...), true
				}
			}
		}
		switch {
		case haveEndpoints:
			vpce = append(vpce, endpoints...)
			vpceExempt = append(vpceExempt, arns...)
		case haveARNs:
			sets = append(sets, arns)
		}
	}
	return sets, vpce, vpceExempt, nil
}

func stringList(raw json.RawMessage) []string {
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	return nil
}

func deniesReads(action json.RawMessage) bool {
	for _, a := range stringList(action) {
		if glob(strings.ToLower(a), "secretsmanager:getsecretvalue") {
			return true
		}
	}
	return false
}

func everyone(p json.RawMessage) bool {
	if s := stringList(p); len(s) == 1 && s[0] == "*" {
		return true
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(p, &m) == nil {
		if s := stringList(m["AWS"]); len(s) == 1 && s[0] == "*" {
			return true
		}
	}
	return false
}

// shortPrincipal prints an ARN without its partition and account prefix
// when the account is the secret's.
func shortPrincipal(p, secretARN string) string {
	parts := strings.SplitN(secretARN, ":", 6)
	if len(parts) == 6 {
		for _, svc := range []string{"iam", "sts"} {
			if rest, ok := strings.CutPrefix(p, "arn:"+parts[1]+":"+svc+"::"+parts[4]+":"); ok {
				return rest
			}
		}
	}
	return p
}

func printAudit(out io.Writer, rep *auditReport) error {
	fmt.Fprintf(out, "Audit of %s from %s to %s: %d events\n  %s\n", rep.Secret, rep.Since.Format(time.RFC3339), rep.Until.Format(time.RFC3339), len(rep.Events), rep.ARN)
	readers := strings.Join(rep.Readers, ", ")
	if readers == "" {
		readers = "(unknown)"
	}
	fmt.Fprintf(out, "  readers (%s): %s\n", rep.ReadersFrom, readers)
	if len(rep.VPCEndpoints) > 0 {
		fmt.Fprintf(out, "  reads must come through: %s\n", strings.Join(rep.VPCEndpoints, ", "))
	}
	if len(rep.Suite) > 0 {
		fmt.Fprintf(out, "  suite (never flagged): %s\n", strings.Join(rep.Suite, ", "))
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(out, "  note: %s\n", n)
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tWHO\tWHAT\tFROM\tRESULT")
	hidden := 0
	for _, e := range rep.Events {
		if e.Kind == "describe" && e.Error == "" {
			hidden++ // metadata reads: no value, and many; --json has them
			continue
		}
		who := shortPrincipal(e.Principal, rep.ARN)
		if e.Suite {
			who += " (suite)"
		}
		from := e.SourceIP
		if e.VPCEndpoint != "" {
			from += " via " + e.VPCEndpoint
		}
		if e.AccessKeyID != "" {
			from += " key " + e.AccessKeyID
		}
		result := "ok"
		if e.Error != "" {
			result = "FAILED " + e.Error
		}
		if e.Flagged {
			result += "  FLAGGED: " + e.Why
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Time.Format("2006-01-02 15:04:05Z"), who, e.What, from, result)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if hidden > 0 {
		fmt.Fprintf(out, "(%d successful metadata calls, such as DescribeSecret and ListSecretVersionIds, not shown: --json lists every event)\n", hidden)
	}
	fmt.Fprintln(out)
	if err := printAuditVersions(out, rep); err != nil {
		return err
	}
	if rep.Flagged == 0 {
		fmt.Fprintf(out, "\nNothing flagged: every read was by a reader or by the suite.\n")
		if rep.ReadersFrom == "unknown" {
			fmt.Fprintf(out, "(The readers are unknown, so no read could be flagged.)\n")
		}
		return nil
	}
	fmt.Fprintf(out, "\n%d FLAGGED:\n", rep.Flagged)
	for _, e := range rep.Events {
		if e.Flagged {
			fmt.Fprintf(out, "  %s %s (key %s, %s, %s): %s; %s\n", e.Time.Format(time.RFC3339), e.Principal, e.AccessKeyID, e.SourceIP, e.UserAgent, e.What, e.Why)
		}
	}
	fmt.Fprintf(out, "If a credential may have leaked: 'rotary incident %s' writes the evidence and revokes it.\n", rep.Secret)
	return nil
}

func printAuditVersions(out io.Writer, rep *auditReport) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tLABELS\tCREATED\tREAD BY (in the window)")
	for _, v := range rep.Versions {
		labels := strings.Join(v.Labels, ",")
		if labels == "" {
			labels = "(deprecated)"
		}
		var by []string
		for p, n := range v.ReadBy {
			by = append(by, fmt.Sprintf("%s x%d", shortPrincipal(p, rep.ARN), n))
		}
		sort.Strings(by)
		if len(by) == 0 {
			by = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.ID, labels, fmtTime(v.Created), strings.Join(by, ", "))
	}
	return tw.Flush()
}
