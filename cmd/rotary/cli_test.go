package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/rotary-secrets/rotary/pkg/credentials/postgres/scram"
	"github.com/rotary-secrets/rotary/pkg/localstack"
)

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"rotate without a secret", []string{"rotate"}, "give exactly one SECRET"},
		{"rotate with two secrets", []string{"rotate", "a", "b"}, "give exactly one SECRET"},
		{"status without secrets or --all", []string{"status"}, "or pass --all"},
		{"unknown flag", []string{"history", "x", "--bogus"}, "flag provided but not defined: -bogus"},
		{"bad progress", []string{"rotate", "x", "--progress", "fast"}, "use auto, steps or labels"},
		{"local with an argument", []string{"local", "extra"}, "local takes no arguments"},
		{"local with a bad principal", []string{"local", "--principal", "AKIASHORT=arn:aws:iam::123456789012:user/x"}, "must be 16 to 128 letters and digits"},
		{"local with a principal that is no ARN", []string{"local", "--principal", "AKIAORDERSAPP0000001=orders"}, "is not an IAM user, role or assumed-role ARN"},
		{"audit with a bad --since", []string{"audit", "x", "--since", "yesterday"}, "--since"},
		{"incident without a secret", []string{"incident"}, "give exactly one SECRET"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut strings.Builder
			code := run(context.Background(), tc.args, &out, &errOut)
			if code != 2 || !strings.Contains(errOut.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and %q", code, errOut.String(), tc.want)
			}
		})
	}
}

// TestRotateWait follows rotations of the real random-secret function with
// the local stack's step feed and with the label phases used against AWS.
func TestRotateWait(t *testing.T) {
	tests := []struct {
		progress string
		want     []string
	}{
		{"steps", []string{"createSecret  ok", "setSecret     ok", "testSecret    ok", "finishSecret  ok"}},
		{"labels", []string{"createSecret done", "finishSecret done", "done: AWSPENDING removed"}},
	}
	for _, tc := range tests {
		t.Run(tc.progress, func(t *testing.T) {
			name := randomSecret(t)
			before, beforeValue := currentOf(t, name)
			r := mustRotary(t, "rotate", name, "--wait", "--progress", tc.progress, "--poll", "100ms")
			for _, w := range tc.want {
				if !strings.Contains(r.out, w) {
					t.Errorf("output lacks %q:\n%s", w, r.out)
				}
			}
			after, afterValue := currentOf(t, name)
			l := labels(t, name)
			if after == before || l[labelPrevious] != before || l[labelPending] != "" {
				t.Fatalf("after rotate: AWSCURRENT %s (was %s), labels %v; want a new AWSCURRENT, the old one AWSPREVIOUS, no AWSPENDING", after, before, l)
			}
			if !strings.Contains(r.out, after) {
				t.Errorf("output does not name the new version %s", after)
			}
			noSecretIn(t, r.out+r.errOut, beforeValue, afterValue)
		})
	}
}

// TestRotatePostgres rotates a real PostgreSQL user through the CLI and
// proves it by logging in: AWSCURRENT works, the replaced password does not.
func TestRotatePostgres(t *testing.T) {
	c := cluster(t)
	_, value := pgRole(t, c, "", "")
	name := newSecret(t, value)
	r := mustRotary(t, "rotate", name, "--wait", "--function", localstack.FunctionARN("postgres-single-user"))
	_, cur := currentOf(t, name)
	if err := login(c, cur); err != nil {
		t.Fatalf("AWSCURRENT does not log in after rotate: %v", err)
	}
	if err := login(c, value); err == nil {
		t.Fatal("the replaced password still logs in after rotate")
	}
	noSecretIn(t, r.out+r.errOut, value, cur)
}

// TestRotateRefusals: what rotate refuses and that it says what to do.
func TestRotateRefusals(t *testing.T) {
	stuck := randomSecret(t)
	pending := makePending(t, stuck)
	noFunction := newSecret(t, `{"apiKey":"x"}`)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"unfinished rotation", []string{"rotate", stuck, "--wait"}, []string{"previous rotation is unfinished", pending, "rotary unstick " + stuck}},
		{"no rotation function", []string{"rotate", noFunction}, []string{"has no rotation function", "--function"}},
		{"function the stack does not run", []string{"rotate", noFunction, "--function", localstack.FunctionARN("nope")}, []string{
			"AccessDeniedException", "Secrets Manager cannot invoke the specified Lambda function", "Nothing changed",
			localstack.FunctionARN("nope"), "'rotary local' runs only the functions it was started with"}},
		{"unknown secret", []string{"rotate", "no/such/secret"}, []string{"secret no/such/secret not found"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rotary(t, tc.args...)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1; stderr %s", r.code, r.errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.errOut, w) {
					t.Errorf("stderr lacks %q: %s", w, r.errOut)
				}
			}
		})
	}
	if l := labels(t, stuck); l[labelPending] != pending {
		t.Fatalf("a refused rotate changed the labels: %v", l)
	}
	d, err := stack(t).Client.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(noFunction)})
	if err != nil {
		t.Fatal(err)
	}
	if d.RotationLambdaARN != nil || aws.ToBool(d.RotationEnabled) || len(d.VersionIdsToStages) != 1 {
		t.Fatalf("a refused rotate changed %s: function %q, rotation enabled %v, labels %v", noFunction, aws.ToString(d.RotationLambdaARN), aws.ToBool(d.RotationEnabled), d.VersionIdsToStages)
	}
}

// TestFailedRotationStatusUnstick: a rotation whose secret holds a password
// the server refuses fails at setSecret with its error; status probes the
// versions and flags the secret as drifted (no version logs in); unstick
// changes nothing and says how each version failed; --no-probe clears the
// label; the real password logs in throughout.
func TestFailedRotationStatusUnstick(t *testing.T) {
	c := cluster(t)
	_, value := pgRole(t, c, "", "")
	var m map[string]any
	_ = json.Unmarshal([]byte(value), &m)
	real := m["password"]
	m["password"] = "not-the-password"
	wrong, _ := json.Marshal(m)
	name := newSecret(t, string(wrong))

	r := rotary(t, "rotate", name, "--wait", "--function", localstack.FunctionARN("postgres-single-user"))
	if r.code != 1 || !strings.Contains(r.errOut, "rotation failed at step") || !strings.Contains(r.errOut, "cannot log in") {
		t.Fatalf("failed rotation: exit %d, stderr %s; want exit 1 naming the step and the error", r.code, r.errOut)
	}
	if !strings.Contains(r.out, "FAILED") {
		t.Errorf("progress does not show the failed step:\n%s", r.out)
	}
	m["password"] = real
	good, _ := json.Marshal(m)
	if err := login(c, string(good)); err != nil {
		t.Fatalf("the real password no longer logs in after the failed rotation: %v", err)
	}
	noSecretIn(t, r.out+r.errOut, string(good))

	st := mustRotary(t, "status", name, "--json")
	var statuses []secretStatus
	if err := json.Unmarshal([]byte(st.out), &statuses); err != nil {
		t.Fatalf("status --json: %v\n%s", err, st.out)
	}
	pending := labels(t, name)[labelPending]
	if len(statuses) != 1 || !statuses[0].Stuck || statuses[0].PendingVersion != pending || !statuses[0].RotationEnabled || statuses[0].State != "drifted" {
		t.Fatalf("status --json = %+v; want stuck on %s, drifted", statuses, pending)
	}
	if text := mustRotary(t, "status", name).out; !strings.Contains(text, "DRIFTED") || !strings.Contains(text, "one of the probed versions logs in") {
		t.Fatalf("status text does not flag the drifted secret:\n%s", text)
	}

	u := rotary(t, "unstick", name)
	if u.code != 1 || !strings.Contains(u.errOut, "nothing changed") || !strings.Contains(u.out, "refused") || !strings.Contains(u.out, pending) {
		t.Fatalf("unstick of a drifted secret: exit %d\nstdout %s\nstderr %s; want exit 1, every version refused, nothing changed", u.code, u.out, u.errOut)
	}
	if l := labels(t, name); l[labelPending] != pending {
		t.Fatalf("unstick changed the labels of a secret no version of which logs in: %v", l)
	}
	if r := rotary(t, "unstick", name, "--no-probe"); r.code != 1 || !strings.Contains(r.errOut, "pass --yes") {
		t.Fatalf("unstick --no-probe without --yes and without a terminal: exit %d, stderr %s; want a refusal", r.code, r.errOut)
	}
	n := mustRotary(t, "unstick", name, "--no-probe", "--yes")
	if !strings.Contains(n.out, "Removed AWSPENDING from version "+pending) {
		t.Fatalf("unstick --no-probe output: %s", n.out)
	}
	if l := labels(t, name); l[labelPending] != "" || l[labelCurrent] == pending {
		t.Fatalf("after unstick --no-probe, labels %v", l)
	}
	if again := mustRotary(t, "unstick", name, "--no-probe", "--yes"); !strings.Contains(again.out, "Nothing to unstick") {
		t.Fatalf("second unstick: %s", again.out)
	}
	noSecretIn(t, st.out+u.out+u.errOut+n.out, string(good))
}

// TestUnstickRefusals: against the local stack unstick knows a rotation is
// running and refuses; against an endpoint without the step feed (as AWS)
// it refuses a young pending version unless --force.
func TestUnstickRefusals(t *testing.T) {
	t.Run("running rotation", func(t *testing.T) {
		name := randomSecret(t)
		release := hold(t, name)
		mustRotary(t, "rotate", name)
		r := rotary(t, "unstick", name)
		if r.code != 1 || !strings.Contains(r.errOut, "is running now") {
			t.Fatalf("unstick during a rotation: exit %d, stderr %s", r.code, r.errOut)
		}
		pending := labels(t, name)[labelPending]
		if pending == "" {
			t.Fatal("the held rotation has no AWSPENDING")
		}
		release()
		if _, err := stack(t).SM.WaitRotation(context.Background(), name); err != nil {
			t.Fatal(err)
		}
		if l := labels(t, name); l[labelCurrent] != pending {
			t.Fatalf("the released rotation did not finish: %v", l)
		}
	})
	t.Run("young pending version without the feed", func(t *testing.T) {
		name := randomSecret(t)
		pending := makePending(t, name)
		r := rotaryAt(t, awsLike(t), "unstick", name)
		if r.code != 1 || !strings.Contains(r.errOut, "may still be running") || !strings.Contains(r.errOut, "--force") {
			t.Fatalf("unstick of a young pending version: exit %d, stderr %s", r.code, r.errOut)
		}
		if labels(t, name)[labelPending] != pending {
			t.Fatal("a refused unstick changed the labels")
		}
		forced := rotaryAt(t, awsLike(t), "unstick", name, "--force")
		if forced.code != 0 || labels(t, name)[labelPending] != "" {
			t.Fatalf("unstick --force: exit %d, stderr %s, labels %v", forced.code, forced.errOut, labels(t, name))
		}
	})
}

func TestHistory(t *testing.T) {
	name := randomSecret(t)
	mustRotary(t, "rotate", name, "--wait")
	_, cur := currentOf(t, name)
	r := mustRotary(t, "history", name)
	for _, w := range []string{"AWSCURRENT", "AWSPREVIOUS", "(deprecated)", "values are never shown"} {
		if !strings.Contains(r.out, w) {
			t.Errorf("history lacks %q:\n%s", w, r.out)
		}
	}
	noSecretIn(t, r.out, cur)
	j := mustRotary(t, "history", name, "--json")
	var h struct {
		Versions []struct {
			VersionID  string   `json:"versionId"`
			Labels     []string `json:"labels"`
			Deprecated bool     `json:"deprecated"`
		} `json:"versions"`
	}
	if err := json.Unmarshal([]byte(j.out), &h); err != nil {
		t.Fatal(err)
	}
	if len(h.Versions) != 3 || !h.Versions[2].Deprecated || len(h.Versions[0].Labels) == 0 || h.Versions[0].Labels[0] != labelCurrent {
		t.Fatalf("history --json = %+v; want 3 versions, newest AWSCURRENT, oldest deprecated", h.Versions)
	}
	if strings.Contains(j.out, "apiKey") {
		t.Fatal("history --json shows secret content")
	}
}

func TestStatusAll(t *testing.T) {
	a, b := randomSecret(t), newSecret(t, `{"apiKey":"x"}`)
	r := mustRotary(t, "status", "--all", "--json")
	var statuses []secretStatus
	if err := json.Unmarshal([]byte(r.out), &statuses); err != nil {
		t.Fatal(err)
	}
	found := map[string]secretStatus{}
	for _, s := range statuses {
		found[s.Name] = s
	}
	if sa, ok := found[a]; !ok || !sa.RotationEnabled || sa.LastRotated == nil || sa.CurrentCreated == nil || sa.Stuck {
		t.Errorf("status of %s = %+v, want rotation on, last rotated, current age", a, sa)
	}
	if sb, ok := found[b]; !ok || sb.RotationEnabled {
		t.Errorf("status of %s = %+v, want listed with rotation off", b, sb)
	}
}

// TestStatusAllShowsSecretsItCannotRead: a secret this identity may not
// describe gets an ERROR row; the others are still shown, and the exit is 1.
func TestStatusAllShowsSecretsItCannotRead(t *testing.T) {
	readable, denied := randomSecret(t), newSecret(t, `{"apiKey":"x"}`)
	u, err := url.Parse(stack(t).Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		// status --all reads each secret from its ListSecrets entry and
		// its ListSecretVersionIds; a named secret, with DescribeSecret.
		if op, _ := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "secretsmanager."); (op == "DescribeSecret" || op == "ListSecretVersionIds") && bytes.Contains(body, []byte(denied)) {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"__type":"AccessDeniedException","message":"not authorized to perform secretsmanager:%s"}`, op)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	r := rotaryAt(t, srv.URL, "status", "--all", "--json")
	var statuses []secretStatus
	if err := json.Unmarshal([]byte(r.out), &statuses); err != nil {
		t.Fatalf("status --all --json with one unreadable secret: %v\n%s", err, r.out)
	}
	found := map[string]secretStatus{}
	for _, s := range statuses {
		found[s.Name] = s
	}
	if r.code != 1 || !strings.Contains(r.errOut, "could not read 1 of") {
		t.Errorf("exit %d, stderr %s; want 1 and how many could not be read", r.code, r.errOut)
	}
	if s := found[denied]; !strings.Contains(s.Error, "AccessDenied") {
		t.Errorf("status of the denied secret = %+v; want its error", s)
	}
	if s := found[readable]; s.Error != "" || !s.RotationEnabled {
		t.Errorf("status of the readable secret = %+v; want it shown as usual", s)
	}
	text := rotaryAt(t, srv.URL, "status", "--all")
	if !strings.Contains(text.out, "ERROR") || !strings.Contains(text.out, denied+": ") || !strings.Contains(text.out, readable) {
		t.Errorf("status --all text:\n%s", text.out)
	}
}

// TestStatusOf checks the flags from a described secret.
func TestStatusOf(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	// Overdue means past the next rotation date (the end of its window)
	// and the watch's 1h grace (pkg/watch.Due).
	past, late, future, created := now.Add(-30*time.Minute), now.Add(-time.Hour-time.Minute), now.Add(time.Hour), now.Add(-50*time.Hour)
	tests := []struct {
		name          string
		enabled       bool
		next          *time.Time
		stages        map[string][]string
		stuck, overdo bool
	}{
		{"healthy", true, &future, map[string][]string{"v1": {labelCurrent}}, false, false},
		{"overdue", true, &late, map[string][]string{"v1": {labelCurrent}}, false, true},
		{"due, within the grace", true, &past, map[string][]string{"v1": {labelCurrent}}, false, false},
		{"off is never overdue", false, &late, map[string][]string{"v1": {labelCurrent}}, false, false},
		{"stuck", true, &future, map[string][]string{"v1": {labelCurrent}, "v2": {labelPending}}, true, false},
		{"pending on current is not stuck", true, &future, map[string][]string{"v1": {labelCurrent, labelPending}}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &secretState{
				desc: &secretsmanager.DescribeSecretOutput{RotationEnabled: aws.Bool(tc.enabled), NextRotationDate: tc.next, VersionIdsToStages: tc.stages,
					RotationRules: &smtypes.RotationRulesType{AutomaticallyAfterDays: aws.Int64(30), Duration: aws.String("2h")}},
				versions: []smtypes.SecretVersionsListEntry{{VersionId: aws.String("v1"), CreatedDate: &created}},
			}
			st := statusOf(s, now)
			if st.Stuck != tc.stuck || st.Overdue != tc.overdo || st.CurrentAgeSecs != 50*3600 || st.Schedule != "every 30 days" || st.Window != "2h" {
				t.Fatalf("statusOf = %+v", st)
			}
		})
	}
}

// TestRollbackPostgres: after a rotation, rollback makes the earlier
// password log in again and AWSCURRENT hold it, as a new version; the
// password it replaced no longer logs in.
func TestRollbackPostgres(t *testing.T) {
	c := cluster(t)
	_, initial := pgRole(t, c, "", "")
	name := newSecret(t, initial)
	firstVersion, _ := currentOf(t, name)
	mustRotary(t, "rotate", name, "--wait", "--function", localstack.FunctionARN("postgres-single-user"))
	rotatedVersion, rotated := currentOf(t, name)
	if err := login(c, initial); err == nil {
		t.Fatal("the initial password still logs in after the rotation")
	}

	r := mustRotary(t, "rollback", name, "--yes")
	for _, w := range []string{"setSecret     ok", "testSecret    ok", "finishSecret  ok", "Rolled back"} {
		if !strings.Contains(r.out, w) {
			t.Errorf("rollback output lacks %q:\n%s", w, r.out)
		}
	}
	noSecretIn(t, r.out+r.errOut, initial, rotated)
	newVersion, cur := currentOf(t, name)
	if cur != initial {
		t.Fatalf("AWSCURRENT after rollback holds %s, want the initial value %s", fingerprint(cur), fingerprint(initial))
	}
	if newVersion == firstVersion || newVersion == rotatedVersion {
		t.Fatalf("AWSCURRENT is version %s: rollback must make a new version", newVersion)
	}
	if err := login(c, initial); err != nil {
		t.Fatalf("the initial password does not log in after rollback: %v", err)
	}
	if err := login(c, rotated); err == nil {
		t.Fatal("the rotated password still logs in after rollback")
	}
	if l := labels(t, name); l[labelPrevious] != rotatedVersion || l[labelPending] != "" {
		t.Fatalf("labels after rollback: %v; want AWSPREVIOUS on %s and no AWSPENDING", l, rotatedVersion)
	}
	// The history is intact: the first version is still there.
	if h := mustRotary(t, "history", name); !strings.Contains(h.out, firstVersion) {
		t.Fatalf("history lost version %s:\n%s", firstVersion, h.out)
	}
	// And rotation goes on from the rolled-back credential.
	mustRotary(t, "rotate", name, "--wait")
	if _, cur := currentOf(t, name); login(c, cur) != nil {
		t.Fatal("AWSCURRENT does not log in after rotating the rolled-back secret")
	}
}

// TestRollbackFailsAtSetSecret: when the function cannot set the earlier
// password, rollback stops, AWSCURRENT still logs in, and the advice it gives
// (unstick --force, as against AWS) clears the version it made.
func TestRollbackFailsAtSetSecret(t *testing.T) {
	c := cluster(t)
	user, initial := pgRole(t, c, "", "")
	name := newSecret(t, initial)
	mustRotary(t, "rotate", name, "--wait", "--function", localstack.FunctionARN("postgres-single-user"))
	curVersion, cur := currentOf(t, name)
	grant(t, c, "ALTER ROLE "+user+" NOLOGIN") // the function can no longer log in to set it
	r := rotary(t, "rollback", name, "--yes")
	grant(t, c, "ALTER ROLE "+user+" LOGIN")
	if r.code != 1 || !strings.Contains(r.errOut, "rotation failed at step setSecret") || !strings.Contains(r.errOut, "rotary unstick "+name+" --force") {
		t.Fatalf("rollback with a failing setSecret: exit %d, stderr %s; want the step and the unstick --force advice", r.code, r.errOut)
	}
	noSecretIn(t, r.out+r.errOut, initial, cur)
	if v, _ := currentOf(t, name); v != curVersion {
		t.Fatalf("AWSCURRENT moved to %s after a failed rollback", v)
	}
	if err := login(c, cur); err != nil {
		t.Fatalf("AWSCURRENT no longer logs in after a failed rollback: %v", err)
	}
	if u := rotaryAt(t, awsLike(t), "unstick", name, "--force"); u.code != 0 || labels(t, name)[labelPending] != "" {
		t.Fatalf("unstick --force after the failed rollback: exit %d, stderr %s, labels %v", u.code, u.errOut, labels(t, name))
	}
}

// TestRollbackTo rolls back to a named version, answering the prompt.
func TestRollbackTo(t *testing.T) {
	name := randomSecret(t)
	first := labels(t, name)[labelPrevious]
	mustRotary(t, "rotate", name, "--wait")
	withStdin(t, "yes\n")
	mustRotary(t, "rollback", name, "--to", first)
	_, cur := currentOf(t, name)
	if !strings.Contains(cur, initialKey) {
		t.Fatalf("AWSCURRENT after rollback --to %s holds %s, want the first value", first, fingerprint(cur))
	}
}

// withStdin makes the prompt read answer from a terminal.
func withStdin(t *testing.T, answer string) {
	t.Helper()
	oldIn, oldTerm := stdin, stdinIsTerminal
	stdin, stdinIsTerminal = strings.NewReader(answer), func() bool { return true }
	t.Cleanup(func() { stdin, stdinIsTerminal = oldIn, oldTerm })
}

// TestRollbackRefusals: every refusal changes nothing and says why.
func TestRollbackRefusals(t *testing.T) {
	fresh := newSecret(t, `{"apiKey":"x"}`)
	tests := []struct {
		name  string
		setup func(t *testing.T, name string) []string // extra args
		stdin string
		want  string
	}{
		{"no --yes without a terminal", nil, "", "pass --yes"},
		{"answered no", nil, "no\n", "not confirmed; nothing changed"},
		{"unfinished rotation", func(t *testing.T, name string) []string { makePending(t, name); return []string{"--yes"} }, "", "previous rotation is unfinished"},
		{"unknown version", func(t *testing.T, name string) []string { return []string{"--to", "nope", "--yes"} }, "", "is not a version of"},
		{"current version", func(t *testing.T, name string) []string {
			return []string{"--to", labels(t, name)[labelCurrent], "--yes"}
		}, "", "already AWSCURRENT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := randomSecret(t)
			var extra []string
			if tc.setup != nil {
				extra = tc.setup(t, name)
			}
			if tc.stdin != "" {
				withStdin(t, tc.stdin)
			}
			before := labels(t, name)
			r := rotary(t, append([]string{"rollback", name}, extra...)...)
			if r.code == 0 || !strings.Contains(r.errOut, tc.want) {
				t.Fatalf("exit %d, stderr %s; want a refusal saying %q", r.code, r.errOut, tc.want)
			}
			if after := labels(t, name); len(after) != len(before) || after[labelCurrent] != before[labelCurrent] {
				t.Fatalf("a refused rollback changed the labels: %v -> %v", before, after)
			}
		})
	}
	t.Run("no rotation function", func(t *testing.T) {
		r := rotary(t, "rollback", fresh, "--yes")
		if r.code != 1 || !strings.Contains(r.errOut, "has no rotation function") {
			t.Fatalf("exit %d, stderr %s", r.code, r.errOut)
		}
	})
}

// TestRevokeSingleUser: after revoke, neither the password current before
// nor the one before it logs in; AWSCURRENT does.
func TestRevokeSingleUser(t *testing.T) {
	c := cluster(t)
	_, initial := pgRole(t, c, "", "")
	name := newSecret(t, initial)
	mustRotary(t, "rotate", name, "--wait", "--function", localstack.FunctionARN("postgres-single-user"))
	_, before := currentOf(t, name)
	r := mustRotary(t, "revoke", name, "--yes")
	for _, w := range []string{"revokeSecret  ok", "Revoked at", "no longer log in"} {
		if !strings.Contains(r.out, w) {
			t.Errorf("revoke output lacks %q:\n%s", w, r.out)
		}
	}
	_, cur := currentOf(t, name)
	noSecretIn(t, r.out+r.errOut, initial, before, cur)
	for what, v := range map[string]string{"AWSCURRENT before revoke": before, "AWSPREVIOUS before revoke": initial} {
		if err := login(c, v); err == nil {
			t.Errorf("%s still logs in after revoke", what)
		}
	}
	if err := login(c, cur); err != nil {
		t.Fatalf("AWSCURRENT does not log in after revoke: %v", err)
	}
}

// TestRevokeAlternatingUsers: with alternating users both users' earlier
// passwords stop working; only AWSCURRENT logs in.
func TestRevokeAlternatingUsers(t *testing.T) {
	c := cluster(t)
	masterUser, masterValue := pgRole(t, c, "CREATEROLE", "")
	grant(t, c, "GRANT pg_signal_backend TO "+masterUser)
	master := newSecret(t, masterValue)
	d, err := stack(t).Client.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(master)})
	if err != nil {
		t.Fatal(err)
	}
	user, initial := pgRole(t, c, "", aws.ToString(d.ARN))
	name := newSecret(t, initial)
	mustRotary(t, "rotate", name, "--wait", "--function", localstack.FunctionARN("postgres-multi-user"))
	_, before := currentOf(t, name)
	if usernameOf(before) != user+"_clone" || login(c, initial) != nil || login(c, before) != nil {
		t.Fatalf("setup: after one rotation AWSCURRENT is user %s; want %s_clone, with both users logging in", usernameOf(before), user)
	}
	r := mustRotary(t, "revoke", name, "--yes")
	if !strings.Contains(r.out, "user "+user) || !strings.Contains(r.out, "user "+user+"_clone") {
		t.Errorf("revoke output does not name both users:\n%s", r.out)
	}
	_, cur := currentOf(t, name)
	noSecretIn(t, r.out+r.errOut, initial, before, cur)
	for what, v := range map[string]string{"user's password before revoke": initial, "clone's password before revoke": before} {
		if err := login(c, v); err == nil {
			t.Errorf("the %s still logs in after revoke", what)
		}
	}
	if err := login(c, cur); err != nil {
		t.Fatalf("AWSCURRENT does not log in after revoke: %v", err)
	}
}

// TestRevokeRefusals: revoke refuses rather than half-revoking, and a
// failed rotation says the credential is NOT revoked and leaves it working.
func TestRevokeRefusals(t *testing.T) {
	t.Run("unfinished rotation", func(t *testing.T) {
		name := randomSecret(t)
		makePending(t, name)
		r := rotary(t, "revoke", name, "--yes")
		if r.code != 1 || !strings.Contains(r.errOut, "previous rotation is unfinished") {
			t.Fatalf("exit %d, stderr %s", r.code, r.errOut)
		}
	})
	t.Run("no rotation function", func(t *testing.T) {
		name := newSecret(t, `{"apiKey":"x"}`)
		r := rotary(t, "revoke", name, "--yes")
		if r.code != 1 || !strings.Contains(r.errOut, "has no rotation function") || labels(t, name)[labelPending] != "" {
			t.Fatalf("exit %d, stderr %s", r.code, r.errOut)
		}
	})
	t.Run("no --yes without a terminal", func(t *testing.T) {
		name := randomSecret(t)
		before := labels(t, name)
		r := rotary(t, "revoke", name)
		if r.code != 1 || !strings.Contains(r.errOut, "pass --yes") || labels(t, name)[labelCurrent] != before[labelCurrent] {
			t.Fatalf("exit %d, stderr %s", r.code, r.errOut)
		}
	})
	t.Run("rotation fails", func(t *testing.T) {
		c := cluster(t)
		_, value := pgRole(t, c, "", "")
		name := newSecret(t, value)
		mustRotary(t, "rotate", name, "--wait", "--function", localstack.FunctionARN("postgres-single-user"))
		_, cur := currentOf(t, name)
		// Make the database refuse the function: the secret's user may no
		// longer log in at all.
		var m map[string]any
		_ = json.Unmarshal([]byte(cur), &m)
		grant(t, c, "ALTER ROLE "+m["username"].(string)+" NOLOGIN")
		r := rotary(t, "revoke", name, "--yes")
		if r.code != 1 || !strings.Contains(r.errOut, "NOT revoked") || !strings.Contains(r.errOut, "rotation failed at step") {
			t.Fatalf("exit %d, stderr %s; want the failing step and NOT revoked", r.code, r.errOut)
		}
		grant(t, c, "ALTER ROLE "+m["username"].(string)+" LOGIN")
		if err := login(c, cur); err != nil {
			t.Fatalf("the credential current before the failed revoke no longer logs in: %v", err)
		}
		noSecretIn(t, r.out+r.errOut, cur)
	})
}

// TestRotateTimeoutWithoutFeed: against AWS there is no failure signal, so
// --wait gives up after --timeout and says where the rotation stands.
func TestRotateTimeoutWithoutFeed(t *testing.T) {
	name := randomSecret(t)
	release := hold(t, name)
	r := rotaryAt(t, awsLike(t), "rotate", name, "--wait", "--timeout", "1s", "--poll", "100ms")
	if r.code != 1 || !strings.Contains(r.errOut, "has not finished after 1s") || !strings.Contains(r.errOut, "AWSPENDING version created, no value yet") || !strings.Contains(r.errOut, "rotary unstick") {
		t.Fatalf("exit %d, stderr %s; want a timeout naming the last phase and what to do", r.code, r.errOut)
	}
	release()
	if _, err := stack(t).SM.WaitRotation(context.Background(), name); err != nil {
		t.Fatal(err)
	}
}

// TestStepsWithoutFeedChangeNothing: --progress steps against an endpoint
// without the step feed (as AWS) is a usage error before any rotation starts.
func TestStepsWithoutFeedChangeNothing(t *testing.T) {
	for _, cmd := range [][]string{{"rotate", "--wait"}, {"revoke", "--yes"}} {
		t.Run(cmd[0], func(t *testing.T) {
			name := randomSecret(t)
			before := labels(t, name)
			r := rotaryAt(t, awsLike(t), cmd[0], name, cmd[1], "--progress", "steps")
			if r.code != 2 || !strings.Contains(r.errOut, "--progress steps needs the local stack") {
				t.Fatalf("exit %d, stderr %s; want a usage error", r.code, r.errOut)
			}
			if after := labels(t, name); !reflect.DeepEqual(after, before) {
				t.Fatalf("labels changed from %v to %v: a rotation started", before, after)
			}
		})
	}
}

// TestFollowLabelsPendingLeftOnCurrent: the AWS API reference says a
// successful rotation may leave AWSPENDING on the new AWSCURRENT version;
// --wait (and so revoke) must then report success, not a timeout.
func TestFollowLabelsPendingLeftOnCurrent(t *testing.T) {
	tests := []struct {
		name             string
		timeout, cleanup time.Duration
	}{
		{"cleanup grace elapses", 30 * time.Second, 300 * time.Millisecond},
		{"timeout after finishSecret", 700 * time.Millisecond, time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := randomSecret(t)
			token := newToken()
			if _, err := stack(t).Client.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
				SecretId: aws.String(name), ClientRequestToken: aws.String(token), SecretString: aws.String(`{"apiKey":"new"}`),
				VersionStages: []string{labelCurrent, labelPending},
			}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			c, err := (&awsFlags{endpoint: awsLike(t)}).connect(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			ff := &followFlags{timeout: tc.timeout, poll: 50 * time.Millisecond, progress: "labels", cleanup: tc.cleanup}
			if err := c.followLabels(ctx, &out, name, token, time.Now(), ff); err != nil {
				t.Fatalf("followLabels: %v; want success once AWSCURRENT is on the new version\n%s", err, out.String())
			}
			for _, w := range []string{"finishSecret done", "AWSPENDING stays on the new AWSCURRENT version"} {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// TestLockedOutSecretIsHealed: a single-user rotation whose testSecret dies
// after setSecret changed the password leaves applications locked out
// (only AWSPENDING logs in). status says so and names the one command;
// rotate and rollback refuse with the same advice; unstick completes the
// rotation, after which AWSCURRENT logs in and the next rotation works.
func TestLockedOutSecretIsHealed(t *testing.T) {
	c := cluster(t)
	_, initial := pgRole(t, c, "", "")
	name := newSecret(t, initial)
	mustRotary(t, "rotate", name, "--wait", "--function", localstack.FunctionARN("postgres-single-user"))
	_, before := currentOf(t, name)
	lift := kill(t, name, "testSecret")
	if r := rotary(t, "rotate", name, "--wait"); r.code != 1 {
		t.Fatalf("rotation with testSecret killed: exit %d, stderr %s", r.code, r.errOut)
	}
	lift()
	pending := labels(t, name)[labelPending]
	if err := login(c, before); err == nil {
		t.Fatal("the test is void: AWSCURRENT still logs in, so nothing is locked out")
	}

	st := mustRotary(t, "status", name)
	if !strings.Contains(st.out, "LOCKED-OUT") || !strings.Contains(st.out, "rotary unstick "+name) || !strings.Contains(st.out, "cannot log in") {
		t.Fatalf("status does not show the lockout and its fix:\n%s", st.out)
	}
	var statuses []secretStatus
	if err := json.Unmarshal([]byte(mustRotary(t, "status", name, "--json").out), &statuses); err != nil || len(statuses) != 1 {
		t.Fatalf("status --json: %v", err)
	}
	if s := statuses[0]; s.State != "locked-out" || s.Probe == nil || s.Probe.Plan != "complete" || s.Probe.PlanVersion != pending {
		t.Fatalf("status --json: state %q, probe %+v; want locked-out, plan complete on %s", s.State, s.Probe, pending)
	}
	for _, args := range [][]string{{"rotate", name, "--wait"}, {"rollback", name, "--yes"}} {
		r := rotary(t, args...)
		if r.code != 1 || !strings.Contains(r.errOut, "cannot log in") || !strings.Contains(r.errOut, "rotary unstick "+name) {
			t.Fatalf("%s of a locked-out secret: exit %d, stderr %s; want a refusal naming the lockout and unstick", args[0], r.code, r.errOut)
		}
	}
	if l := labels(t, name); l[labelPending] != pending {
		t.Fatalf("a refused command changed the labels: %v", l)
	}

	u := mustRotary(t, "unstick", name)
	if !strings.Contains(u.out, "Completed the rotation") || !strings.Contains(u.out, "refused") || !strings.Contains(u.out, "logs-in") {
		t.Fatalf("unstick output:\n%s", u.out)
	}
	l := labels(t, name)
	if l[labelCurrent] != pending || l[labelPending] != "" {
		t.Fatalf("after unstick, labels %v; want AWSCURRENT on %s and no AWSPENDING", l, pending)
	}
	_, cur := currentOf(t, name)
	if err := login(c, cur); err != nil {
		t.Fatalf("after unstick AWSCURRENT does not log in: %v", err)
	}
	if err := login(c, before); err == nil {
		t.Fatal("the replaced password still logs in")
	}
	mustRotary(t, "rotate", name, "--wait")
	_, next := currentOf(t, name)
	if err := login(c, next); err != nil {
		t.Fatalf("the rotation after unstick: AWSCURRENT does not log in: %v", err)
	}
	noSecretIn(t, st.out+u.out, initial, before, cur, next)
}

// TestUnstickRestoresADeprecatedLiveCredential: when AWSPENDING was taken
// off the version holding the only working password (what unstick did
// before it probed, and what --no-probe still does), unstick finds that
// version and makes it AWSCURRENT again.
func TestUnstickRestoresADeprecatedLiveCredential(t *testing.T) {
	c := cluster(t)
	_, initial := pgRole(t, c, "", "")
	name := newSecret(t, initial)
	mustRotary(t, "rotate", name, "--wait", "--function", localstack.FunctionARN("postgres-single-user"))
	lift := kill(t, name, "testSecret")
	if r := rotary(t, "rotate", name, "--wait"); r.code != 1 {
		t.Fatalf("rotation with testSecret killed: exit %d", r.code)
	}
	lift()
	live := labels(t, name)[labelPending]
	if r := mustRotary(t, "unstick", name, "--no-probe", "--yes"); !strings.Contains(r.out, "without probing") {
		t.Fatalf("unstick --no-probe: %s", r.out)
	}
	_, cur := currentOf(t, name)
	if err := login(c, cur); err == nil {
		t.Fatal("the test is void: AWSCURRENT logs in")
	}
	// Nothing is pending now: plain status does not probe, --verify and
	// probe find the lockout and name unstick.
	v := rotary(t, "status", name, "--verify")
	if v.code != 1 || !strings.Contains(v.out, "LOCKED-OUT") || !strings.Contains(v.out, "rotary unstick "+name) {
		t.Fatalf("status --verify of a locked-out secret: exit %d\n%s\n%s", v.code, v.out, v.errOut)
	}
	p := rotary(t, "probe", name, "--json")
	var report struct{ State, Plan, PlanVersion string }
	if err := json.Unmarshal([]byte(p.out), &report); err != nil || p.code != 1 || report.State != "locked-out" || report.Plan != "restore" || report.PlanVersion != live {
		t.Fatalf("probe --json: exit %d, %+v (%v); want locked-out, restore %s", p.code, report, err, live)
	}
	u := mustRotary(t, "unstick", name)
	if !strings.Contains(u.out, "Made version "+live+" AWSCURRENT again") {
		t.Fatalf("unstick output:\n%s", u.out)
	}
	id, now := currentOf(t, name)
	if id != live {
		t.Fatalf("AWSCURRENT is %s, want the live version %s", id, live)
	}
	if err := login(c, now); err != nil {
		t.Fatalf("after unstick AWSCURRENT does not log in: %v", err)
	}
	if v := rotary(t, "status", name, "--verify"); v.code != 0 || !strings.Contains(v.out, " ok") {
		t.Fatalf("status --verify after unstick: exit %d\n%s\n%s", v.code, v.out, v.errOut)
	}
	probe := mustRotary(t, "probe", name)
	if !strings.Contains(probe.out, "State: healthy") || !strings.Contains(probe.out, "refused") {
		t.Fatalf("probe after unstick:\n%s", probe.out)
	}
	noSecretIn(t, u.out+v.out+p.out+probe.out, initial, cur, now)
}

// TestStatusVerifyFindsDrift: someone changes the user's password on the
// server behind Secrets Manager's back. Plain status cannot see it;
// status --verify (the watch's check) says DRIFTED, names no command that
// would make it worse, and exits 1.
func TestStatusVerifyFindsDrift(t *testing.T) {
	c := cluster(t)
	user, initial := pgRole(t, c, "", "")
	name := newSecret(t, initial)
	mustRotary(t, "rotate", name, "--wait", "--function", localstack.FunctionARN("postgres-single-user"))
	if v := rotary(t, "status", name, "--verify"); v.code != 0 || !strings.Contains(v.out, " ok") {
		t.Fatalf("status --verify of a healthy secret: exit %d\n%s\n%s", v.code, v.out, v.errOut)
	}
	_, cur := currentOf(t, name)
	// The new password goes over as a SCRAM verifier, so no statement
	// (nor a failure message quoting it) holds it.
	other := "Changed-by-hand-" + unique("pw")
	verifier, err := scram.Verifier(other)
	if err != nil {
		t.Fatal(err)
	}
	grant(t, c, "ALTER ROLE "+user+" PASSWORD '"+verifier+"'")
	if err := login(c, cur); err == nil {
		t.Fatal("the test is void: AWSCURRENT still logs in after the password was changed on the server")
	}
	if s := rotary(t, "status", name); s.code != 0 || strings.Contains(s.out, "DRIFTED") {
		t.Fatalf("plain status probes nothing, so it cannot tell: exit %d\n%s", s.code, s.out)
	}
	v := rotary(t, "status", name, "--verify")
	if v.code != 1 || !strings.Contains(v.out, "DRIFTED") || !strings.Contains(v.out, "put-secret-value") {
		t.Fatalf("status --verify of a drifted secret: exit %d\n%s\n%s", v.code, v.out, v.errOut)
	}
	j := rotary(t, "status", name, "--verify", "--json")
	var sts []secretStatus
	if err := json.Unmarshal([]byte(j.out), &sts); err != nil || len(sts) != 1 || sts[0].State != "drifted" || j.code != 1 {
		t.Fatalf("status --verify --json: exit %d, %+v (%v); want state drifted", j.code, sts, err)
	}
	noSecretIn(t, v.out+j.out, initial, cur)
}
