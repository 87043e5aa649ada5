package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/recovery"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
)

// readersPolicy is the resource policy the CDK app writes: reads denied to
// everyone but the listed principals.
func readersPolicy(readers ...string) string {
	b, _ := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Sid": "OnlyReaders", "Effect": "Deny", "Principal": map[string]any{"AWS": "*"},
			"Action": []string{"secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue"}, "Resource": "*",
			"Condition": map[string]any{"ArnNotLike": map[string]any{"aws:PrincipalArn": readers}},
		}},
	})
	return string(b)
}

func putPolicy(t *testing.T, name, policy string) {
	t.Helper()
	if _, err := stack(t).Client.PutResourcePolicy(context.Background(), &secretsmanager.PutResourcePolicyInput{
		SecretId: aws.String(name), ResourcePolicy: aws.String(policy), BlockPublicPolicy: aws.Bool(true),
	}); err != nil {
		t.Fatal(err)
	}
}

func readAs(t *testing.T, key, name string, in *secretsmanager.GetSecretValueInput) error {
	t.Helper()
	in.SecretId = aws.String(name)
	_, err := stack(t).ClientAs(key).GetSecretValue(context.Background(), in)
	return err
}

func auditOf(t *testing.T, args ...string) (auditReport, result) {
	t.Helper()
	r := rotary(t, append([]string{"audit", "--json"}, args...)...)
	var rep auditReport
	if err := json.Unmarshal([]byte(r.out), &rep); err != nil {
		t.Fatalf("rotary audit --json printed no report (exit %d): %v\n%s\n%s", r.code, err, r.out, r.errOut)
	}
	return rep, r
}

// TestAuditFlagsExactlyTheUnexpectedReads: the application (a reader by
// its role, through a wildcard) and the rotation function (the suite, not
// in the policy) read without a flag; someone outside the readers is
// flagged for each read and each attempt, with the version each read got.
func TestAuditFlagsExactlyTheUnexpectedReads(t *testing.T) {
	name := randomSecret(t)
	prev, cur := labels(t, name)[labelPrevious], labels(t, name)[labelCurrent]
	putPolicy(t, name, readersPolicy("arn:aws:iam::123456789012:role/orders-*", localstack.OperatorPrincipalARN()))
	for i := 0; i < 2; i++ {
		if err := readAs(t, appKey, name, &secretsmanager.GetSecretValueInput{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := readAs(t, intruderKey, name, &secretsmanager.GetSecretValueInput{VersionStage: aws.String(labelPrevious)}); err != nil {
		t.Fatal(err)
	}
	if err := readAs(t, intruderKey, name, &secretsmanager.GetSecretValueInput{VersionStage: aws.String("NO-SUCH-LABEL")}); err == nil {
		t.Fatal("a read of a missing label succeeded")
	}

	rep, r := auditOf(t, name, "--since", "1h")
	if r.code != 1 {
		t.Fatalf("rotary audit exit %d with flagged reads, want 1\n%s", r.code, r.errOut)
	}
	if rep.ReadersFrom != "resource policy" || !slices.Contains(rep.Suite, localstack.FunctionRoleARN("random-secret")) {
		t.Fatalf("readers from %q, suite %v", rep.ReadersFrom, rep.Suite)
	}
	var flagged, appReads, suiteReads int
	for _, e := range rep.Events {
		if e.Kind != "read" {
			if e.Flagged {
				t.Errorf("%s flagged: only reads are", e.EventName)
			}
			continue
		}
		switch {
		case e.Principal == intruderARN:
			if !e.Flagged || e.AccessKeyID != intruderKey || e.SourceIP != "127.0.0.1" || !strings.Contains(e.UserAgent, "aws-sdk-go-v2") {
				t.Errorf("intruder's read %+v: want flagged with key, address and user agent", e)
			}
			if e.Error == "" && e.Version != prev {
				t.Errorf("intruder read AWSPREVIOUS, the audit says version %q, want %s", e.Version, prev)
			}
			flagged++
		case e.Principal == appSession:
			if e.Flagged || e.Role != appRole || e.Version != cur {
				t.Errorf("app's read %+v: want unflagged, role %s, version %s", e, appRole, cur)
			}
			appReads++
		case e.Role == localstack.FunctionRoleARN("random-secret"):
			if e.Flagged || !e.Suite {
				t.Errorf("the function's read %+v: want the suite's, unflagged", e)
			}
			suiteReads++
		case e.Flagged:
			t.Errorf("unexpected flagged read %+v", e)

		}
	}
	if flagged != 2 || rep.Flagged != 2 || appReads != 2 || suiteReads == 0 {
		t.Fatalf("flagged %d (report %d), app reads %d, suite reads %d; want 2, 2, 2, some", flagged, rep.Flagged, appReads, suiteReads)
	}
	// The version table says who read what.
	for _, v := range rep.Versions {
		if v.ID == cur && v.ReadBy[appSession] != 2 || v.ID == prev && v.ReadBy[intruderARN] != 1 {
			t.Errorf("version %s read by %v", v.ID, v.ReadBy)
		}
	}
	// The rotation is there, by the suite and the service.
	var kinds []string
	for _, e := range rep.Events {
		kinds = append(kinds, e.EventName)
	}
	for _, w := range []string{"CreateSecret", "RotateSecret", "RotationStarted", "PutSecretValue", "UpdateSecretVersionStage", "RotationSucceeded", "PutResourcePolicy"} {
		if !slices.Contains(kinds, w) {
			t.Errorf("timeline lacks %s: %v", w, kinds)
		}
	}

	// The text report flags the same, and prints no value.
	text := rotary(t, "audit", name)
	if text.code != 1 || strings.Count(text.out, "FLAGGED:") != 2+1 || !strings.Contains(text.out, "user/contractor") {
		t.Errorf("text audit (exit %d):\n%s", text.code, text.out)
	}
	_, v := currentOf(t, name)
	noSecretIn(t, text.out+text.errOut+r.out, v)

	// --readers replaces the policy: naming the contractor too flags nothing.
	rep, r = auditOf(t, name, "--readers", intruderARN+",arn:aws:iam::123456789012:role/orders-app,"+localstack.OperatorPrincipalARN())
	if r.code != 0 || rep.Flagged != 0 || rep.ReadersFrom != "--readers" {
		t.Errorf("with --readers: exit %d, %d flagged, from %s", r.code, rep.Flagged, rep.ReadersFrom)
	}
	// A window that ends before it starts is a usage error.
	if r := rotary(t, "audit", name, "--since", "1h", "--until", "2000-01-01"); r.code != 2 {
		t.Errorf("--until before --since: exit %d, want 2", r.code)
	}
}

// TestAuditWithoutReaders: no policy and no --readers: nothing can be
// flagged, and the report says so.
func TestAuditWithoutReaders(t *testing.T) {
	name := randomSecret(t)
	if err := readAs(t, intruderKey, name, &secretsmanager.GetSecretValueInput{}); err != nil {
		t.Fatal(err)
	}
	rep, r := auditOf(t, name)
	if r.code != 0 || rep.ReadersFrom != "unknown" || rep.Flagged != 0 || len(rep.Notes) == 0 {
		t.Fatalf("exit %d, readers from %s, %d flagged, notes %v", r.code, rep.ReadersFrom, rep.Flagged, rep.Notes)
	}
	for _, bad := range [][]string{{"audit", name, "--since", "yesterday"}, {"audit"}} {
		if r := rotary(t, bad...); r.code != 2 {
			t.Errorf("rotary %v: exit %d, want 2 (usage)", bad, r.code)
		}
	}
}

// TestIncidentRevokesAndKeepsTheEvidence: on a PostgreSQL user that really
// checks passwords, someone outside the readers reads the secret; the
// incident bundle names them, holds no value, was written before the
// revoke, and proves every credential valid before is refused, which a
// real login confirms.
func TestIncidentRevokesAndKeepsTheEvidence(t *testing.T) {
	c := cluster(t)
	_, initial := pgRole(t, c, "", "")
	name := newSecret(t, initial)
	mustRotary(t, "rotate", name, "--wait", "--function", localstack.FunctionARN("postgres-single-user"))
	putPolicy(t, name, readersPolicy(appRole, localstack.OperatorPrincipalARN()))
	oldCur, before := currentOf(t, name)
	if err := readAs(t, appKey, name, &secretsmanager.GetSecretValueInput{}); err != nil {
		t.Fatal(err)
	}
	if err := readAs(t, intruderKey, name, &secretsmanager.GetSecretValueInput{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	// Without --yes (and no terminal): the evidence, and nothing revoked.
	r := rotary(t, "incident", name, "--out", dir)
	if r.code == 0 || !strings.Contains(r.errOut, "NOT revoked") {
		t.Fatalf("incident without --yes: exit %d\n%s\n%s", r.code, r.out, r.errOut)
	}
	if id, _ := currentOf(t, name); id != oldCur {
		t.Fatal("incident without confirmation changed AWSCURRENT")
	}

	r = mustRotary(t, "incident", name, "--yes", "--out", dir)
	if !strings.Contains(r.out, "Evidence written before any change") || !strings.Contains(r.out, "Incident bundle: ") || !strings.Contains(r.out, "revokeSecret  ok") {
		t.Errorf("incident output:\n%s", r.out)
	}
	bundles, _ := filepath.Glob(filepath.Join(dir, "*", "incident.json"))
	if len(bundles) != 2 {
		t.Fatalf("bundles %v, want one per incident", bundles)
	}
	_, after, _ := strings.Cut(r.out, "Incident bundle: ")
	bundle, _, _ := strings.Cut(after, " ")
	raw, err := os.ReadFile(filepath.Join(bundle, "incident.json"))
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(bundle, "incident.md"))
	if err != nil {
		t.Fatal(err)
	}
	var b incidentBundle
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	_, now := currentOf(t, name)
	for i, v := range []string{initial, before, now} {
		var pw struct{ Password string }
		_ = json.Unmarshal([]byte(v), &pw)
		for _, text := range []string{string(raw), string(md), r.out, r.errOut} {
			if rotationtest.Leaks(text, pw.Password) || rotationtest.Leaks(text, v) {
				t.Fatalf("the incident bundle or output holds value %d (%s)", i, fingerprint(pw.Password))
			}
		}
	}
	// The evidence: the intruder's read flagged, the application's not;
	// nothing of the revoke in the audit, which ended before it.
	var sawIntruder bool
	for _, e := range b.Audit.Events {
		if e.Principal == intruderARN && e.Kind == "read" {
			sawIntruder = e.Flagged && e.Version == oldCur
		}
		if e.Principal == appSession && e.Flagged {
			t.Error("the application's read is flagged")
		}
		if e.EventName == "RotateSecret" && e.Time.After(b.Opened) {
			t.Error("the audit holds the incident's own rotation")
		}
	}
	if !sawIntruder || b.Audit.Flagged != 1 || b.ReadsByVersion[oldCur][intruderARN] != 1 {
		t.Fatalf("evidence: intruder flagged %v, %d flagged, reads of %s %v", sawIntruder, b.Audit.Flagged, oldCur, b.ReadsByVersion[oldCur])
	}
	if !strings.Contains(string(md), "**FLAGGED**") || !strings.Contains(string(md), "## Revocation") || !strings.Contains(string(md), intruderARN) {
		t.Errorf("incident.md lacks the flag, the revocation or the intruder:\n%s", md)
	}
	// The revocation: both credentials valid at opening proven refused, and really refused.
	if b.Revocation == nil || b.Revocation.Revoked == nil || len(b.Revocation.Proofs) != 2 {
		t.Fatalf("revocation %+v", b.Revocation)
	}
	for _, p := range b.Revocation.Proofs {
		if !p.Refused || p.Outcome != recovery.OutcomeRefused {
			t.Errorf("proof %+v: want refused", p)
		}
	}
	for what, v := range map[string]string{"AWSCURRENT at opening": before, "AWSPREVIOUS at opening": initial} {
		if err := login(c, v); err == nil {
			t.Errorf("%s still logs in after the incident's revoke", what)
		}
	}
	if err := login(c, now); err != nil {
		t.Fatalf("AWSCURRENT does not log in after the incident: %v", err)
	}
}

// TestAuditThousandsOfEvents: 3,000 reads are paged through (60 pages and
// more) quickly, each counted once, only the stranger's flagged.
func TestAuditThousandsOfEvents(t *testing.T) {
	name := newSecret(t, `{"apiKey":"`+initialKey+`"}`)
	putPolicy(t, name, readersPolicy(appRole))
	app := stack(t).ClientAs(appKey)
	for i := 0; i < 3000; i++ {
		if _, err := app.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := readAs(t, intruderKey, name, &secretsmanager.GetSecretValueInput{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rep, r := auditOf(t, name)
	took := time.Since(start)
	reads := 0
	for _, e := range rep.Events {
		if e.Kind == "read" && e.Principal == appSession {
			reads++
		}
	}
	if r.code != 1 || reads != 3000 || rep.Flagged != 1 {
		t.Fatalf("exit %d, %d application reads, %d flagged; want 1, 3000, 1", r.code, reads, rep.Flagged)
	}
	if took > 20*time.Second {
		t.Errorf("auditing 3,000 events took %s", took)
	}
	t.Logf("audited %d events in %s", len(rep.Events), took)
}

// The resource policy as the CDK app writes it with requireVpcEndpoint and
// an admin (infra/rotary/access.go): the endpoint statement's ARN list
// exempts principals from the endpoint rule, it does not name the readers,
// so an application reading through the endpoint is not flagged.
func TestAuditReadsThePolicyOfTheCDKApp(t *testing.T) {
	const (
		app     = "arn:aws:iam::123456789012:role/orders-app"
		admin   = "arn:aws:iam::123456789012:role/break-glass"
		rotRole = "arn:aws:iam::123456789012:role/rotary-postgres-single-user"
		vpce    = "vpce-0a1b2c3d"
	)
	policy := `{"Version":"2012-10-17","Statement":[
	 {"Sid":"DenyReadExceptReadersAdminsAndSuite","Effect":"Deny","Principal":{"AWS":"*"},"Action":"secretsmanager:GetSecretValue","Resource":"*",
	  "Condition":{"ArnNotLike":{"aws:PrincipalArn":["` + app + `","` + admin + `","` + rotRole + `"]},"BoolIfExists":{"aws:PrincipalIsAWSService":"false"}}},
	 {"Sid":"DenyVersionWritesExceptRotationAndAdmins","Effect":"Deny","Principal":{"AWS":"*"},"Action":["secretsmanager:PutSecretValue","secretsmanager:UpdateSecretVersionStage"],"Resource":"*",
	  "Condition":{"ArnNotLike":{"aws:PrincipalArn":["` + admin + `","` + rotRole + `"]},"BoolIfExists":{"aws:PrincipalIsAWSService":"false"}}},
	 {"Sid":"DenyReadOutsideVpcEndpoint","Effect":"Deny","Principal":{"AWS":"*"},"Action":"secretsmanager:GetSecretValue","Resource":"*",
	  "Condition":{"StringNotEquals":{"aws:SourceVpce":"` + vpce + `"},"ArnNotLike":{"aws:PrincipalArn":["` + admin + `"]},"BoolIfExists":{"aws:PrincipalIsAWSService":"false"}}}]}`
	sets, endpoints, exempt, err := readersOf(policy)
	if err != nil {
		t.Fatal(err)
	}
	read := func(principal, role, endpoint string) *auditEntry {
		return &auditEntry{Kind: "read", Principal: principal, Role: role, VPCEndpoint: endpoint}
	}
	for _, c := range []struct {
		name string
		e    *auditEntry
		want string
	}{
		{"the application through the endpoint", read("arn:aws:sts::123456789012:assumed-role/orders-app/task-1", app, vpce), ""},
		{"the application from outside the endpoint", read("arn:aws:sts::123456789012:assumed-role/orders-app/task-1", app, ""), outsideEndpoint},
		{"the admin from anywhere", read("arn:aws:sts::123456789012:assumed-role/break-glass/alice", admin, ""), ""},
		{"a stranger through the endpoint", read("arn:aws:iam::123456789012:user/contractor", "", vpce), outsideReaders},
		{"a stranger from outside", read("arn:aws:iam::123456789012:user/contractor", "", ""), outsideReaders},
	} {
		if got := whyFlagged(c.e, sets, endpoints, exempt); got != c.want {
			t.Errorf("%s: flagged %q, want %q", c.name, got, c.want)
		}
	}
}
