package rotation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
)

// The one secret of the fake Secrets Manager, and its versions' tokens.
const (
	fzName     = "rotary/fuzz"
	fzARN      = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rotary/fuzz-Fz9aQ1"
	fzCurrent  = "tok-current-00000000-0000-0000-0001"
	fzPending  = "tok-pending-00000000-0000-0000-0002"
	fzPrevious = "tok-previous-0000000-0000-0000-0003"
)

// The secret strings of the versions: every form of each must stay out of
// errors and logs. They hold the characters whose encodings differ.
const (
	fzCurPassword  = "Cur-P@ss;w0rd\"<\x01>&-7f3a"
	fzPendPassword = "Pend-P@ss:w0rd&+=$ é-c4d1"
	fzPrevPassword = "Prev-pass/word?#\\-a07e"
	fzAPIKey       = "key-current-9b2e-\u2028-x"
	fzPlainValue   = "plain secret text 5d1e%"
)

func fzValue(password string) string {
	b, err := json.Marshal(map[string]string{"engine": "postgres", "host": "db.example.com", "username": "app", "password": password, "apiKey": fzAPIKey})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// fuzzState is the fuzzed shape of the fake secret, one bit per quirk.
type fuzzState uint16

const (
	stRotationDisabled fuzzState = 1 << iota // RotationEnabled false
	stRotationUnset                          // RotationEnabled absent
	stPendingBinary                          // AWSPENDING holds SecretBinary
	stCurrentPlain                           // AWSCURRENT is not a JSON object
	stNoARN                                  // DescribeSecret answers without ARN
	stCredentialPanics                       // the credential type panics with the value
	stNoPrevious                             // no AWSPREVIOUS version
	stPendingEmpty                           // AWSPENDING has no value yet (as RotateSecret leaves it)
	stNoPending                              // no AWSPENDING label: the last rotation finished
	stNoTags                                 // DescribeSecret of another secret (a master) fails
)

// fakeSM is a minimal in-memory Secrets Manager holding one secret: enough
// for the engine's event checks and steps, not a model of AWS (smlocal is).
type fakeSM struct {
	mu       sync.Mutex
	st       fuzzState
	values   map[string]*string // version ID -> SecretString; nil value: binary or empty
	binary   map[string]bool
	stages   map[string][]string
	calls    map[string]int
	puts     []secretsmanager.PutSecretValueInput
	updates  []secretsmanager.UpdateSecretVersionStageInput
	describe []string // SecretIds asked for
}

func newFakeSM(st fuzzState) *fakeSM {
	cur := fzValue(fzCurPassword)
	if st&stCurrentPlain != 0 {
		cur = fzPlainValue
	}
	pend, prev := fzValue(fzPendPassword), fzValue(fzPrevPassword)
	sm := &fakeSM{
		st:     st,
		values: map[string]*string{fzCurrent: &cur, fzPending: &pend, fzPrevious: &prev},
		binary: map[string]bool{},
		stages: map[string][]string{fzCurrent: {LabelCurrent}, fzPending: {LabelPending}, fzPrevious: {LabelPrevious}},
		calls:  map[string]int{},
	}
	if st&stPendingBinary != 0 {
		sm.values[fzPending], sm.binary[fzPending] = nil, true
	}
	if st&stPendingEmpty != 0 {
		delete(sm.values, fzPending)
	}
	if st&stNoPrevious != 0 {
		delete(sm.values, fzPrevious)
		delete(sm.stages, fzPrevious)
	}
	if st&stNoPending != 0 {
		delete(sm.stages, fzPending)
	}
	return sm
}

func notFound() error {
	return &smtypes.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret.")}
}

func (sm *fakeSM) known(id *string) bool {
	return id != nil && (*id == fzName || *id == fzARN)
}

func (sm *fakeSM) DescribeSecret(_ context.Context, in *secretsmanager.DescribeSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	sm.calls["DescribeSecret"]++
	sm.describe = append(sm.describe, aws.ToString(in.SecretId))
	if !sm.known(in.SecretId) {
		return nil, notFound()
	}
	if sm.st&stNoTags != 0 && sm.calls["DescribeSecret"] > 1 {
		return nil, &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized to perform secretsmanager:DescribeSecret"}
	}
	out := &secretsmanager.DescribeSecretOutput{Name: aws.String(fzName), VersionIdsToStages: map[string][]string{},
		Tags: []smtypes.Tag{{Key: aws.String("owner"), Value: aws.String("team-a")}}}
	if sm.st&stNoARN == 0 {
		out.ARN = aws.String(fzARN)
	}
	switch {
	case sm.st&stRotationDisabled != 0:
		out.RotationEnabled = aws.Bool(false)
	case sm.st&stRotationUnset == 0:
		out.RotationEnabled = aws.Bool(true)
	}
	for id, s := range sm.stages {
		out.VersionIdsToStages[id] = slices.Clone(s)
	}
	return out, nil
}

func (sm *fakeSM) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	sm.calls["GetSecretValue"]++
	if !sm.known(in.SecretId) {
		return nil, notFound()
	}
	id := aws.ToString(in.VersionId)
	stage := aws.ToString(in.VersionStage)
	if stage == "" && id == "" {
		stage = LabelCurrent
	}
	if id == "" {
		for v, s := range sm.stages {
			if slices.Contains(s, stage) {
				id = v
			}
		}
	} else if stage != "" && !slices.Contains(sm.stages[id], stage) {
		return nil, &smtypes.InvalidRequestException{Message: aws.String("You provided a VersionStage that is not associated to the provided VersionId.")}
	}
	v, ok := sm.values[id]
	if !ok && !sm.binary[id] {
		return nil, &smtypes.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret value for VersionId: " + id)}
	}
	out := &secretsmanager.GetSecretValueOutput{ARN: aws.String(fzARN), Name: aws.String(fzName), VersionId: aws.String(id), SecretString: v}
	if sm.binary[id] {
		out.SecretBinary = []byte(fzPendPassword)
	}
	return out, nil
}

func (sm *fakeSM) PutSecretValue(_ context.Context, in *secretsmanager.PutSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	sm.calls["PutSecretValue"]++
	sm.puts = append(sm.puts, *in)
	if !sm.known(in.SecretId) {
		return nil, notFound()
	}
	id := aws.ToString(in.ClientRequestToken)
	if _, ok := sm.values[id]; ok || sm.binary[id] {
		return nil, &smtypes.ResourceExistsException{Message: aws.String("You can't use ClientRequestToken " + id + " because that value is already in use for a version of secret " + fzARN + ".")}
	}
	sm.values[id] = in.SecretString
	return &secretsmanager.PutSecretValueOutput{ARN: aws.String(fzARN), VersionId: aws.String(id)}, nil
}

func (sm *fakeSM) ListSecretVersionIds(_ context.Context, in *secretsmanager.ListSecretVersionIdsInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretVersionIdsOutput, error) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	sm.calls["ListSecretVersionIds"]++
	if !sm.known(in.SecretId) {
		return nil, notFound()
	}
	out := &secretsmanager.ListSecretVersionIdsOutput{ARN: aws.String(fzARN), Name: aws.String(fzName)}
	ids := map[string]bool{}
	for id := range sm.values {
		ids[id] = true
	}
	for id := range sm.stages {
		ids[id] = true
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		out.Versions = append(out.Versions, smtypes.SecretVersionsListEntry{VersionId: aws.String(id), VersionStages: slices.Clone(sm.stages[id])})
	}
	return out, nil
}

func (sm *fakeSM) UpdateSecretVersionStage(_ context.Context, in *secretsmanager.UpdateSecretVersionStageInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	sm.calls["UpdateSecretVersionStage"]++
	sm.updates = append(sm.updates, *in)
	if !sm.known(in.SecretId) {
		return nil, notFound()
	}
	return &secretsmanager.UpdateSecretVersionStageOutput{ARN: aws.String(fzARN)}, nil
}

// leakyCredential is a credential type at its worst: every error quotes the
// values it was given, in every form a driver or a careless format might
// use, and with stCredentialPanics it panics with them. The engine must
// scrub all of it.
type leakyCredential struct{ panics bool }

func leak(what string, v Version) error {
	var f map[string]string
	_ = json.Unmarshal([]byte(v.Value), &f)
	pw := f["password"]
	return fmt.Errorf("%s: version %s value %s (%q); dsn postgres://app:%s@db/x, %s; query pw=%s; key %s",
		what, v.ID, v.Value, v.Value, pw, (&url.URL{Scheme: "postgres", User: url.UserPassword("app", pw), Host: "db"}).String(),
		url.QueryEscape(pw), f["apiKey"])
}

func (c leakyCredential) Validate(_ context.Context, v Version) error {
	if _, err := v.Fields(); err != nil {
		return leak("not a JSON object", v)
	}
	return nil
}

func (c leakyCredential) Generate(_ context.Context, req GenerateRequest) (GenerateResponse, error) {
	if c.panics {
		panic(leak("generate", req.Current))
	}
	pw, err := req.Passwords.Generate()
	return GenerateResponse{Changes: map[string]any{"password": pw}}, err
}

func (c leakyCredential) Set(ctx context.Context, req SetRequest) error {
	if c.panics {
		panic(leak("set", req.Pending).Error())
	}
	if prev, ok, err := req.Previous(ctx); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("%w; %w", leak("set current", req.Current), leak("previous", prev))
	}
	return leak("set pending", req.Pending)
}

func (c leakyCredential) Test(ctx context.Context, req TestRequest) error {
	if c.panics {
		panic(req.Pending.Value)
	}
	tags, err := req.Secrets.Tags(ctx, fzName)
	if err != nil {
		return err
	}
	cur, err := req.Secrets.Current(ctx, fzName)
	if err != nil {
		return err
	}
	return fmt.Errorf("%w; tags %v; %w", leak("test", req.Pending), tags, leak("current via the store", cur))
}

func (c leakyCredential) Revoke(ctx context.Context, req RevokeRequest) error {
	prev, ok, err := req.Previous(ctx)
	if err != nil {
		return err
	}
	if ok {
		return leak("revoke previous", prev)
	}
	return leak("revoke current", req.Current)
}

// FuzzEvent decodes a rotation event from JSON bytes exactly as the Lambda
// runtime does (aws-lambda-go: a json.Decoder reading one value into the
// handler's argument, trailing bytes ignored) and runs it through
// Handler.Handle against fakeSM, shaped by the fuzzed state bits, with a
// credential type that leaks every value it sees. The seeds are in
// testdata/fuzz/FuzzEvent.
//
// Properties:
//   - Handle never panics;
//   - every error is a *StepError naming the event's step, token and the
//     secret (its ARN once DescribeSecret found it, else the event's SecretId);
//   - an event with an empty SecretId or ClientRequestToken, or an unknown
//     step, fails with ErrInvalidEvent or ErrUnknownStep before any Secrets
//     Manager call;
//   - a step succeeds only for a known step and secret; nothing is written
//     unless the token names the AWSPENDING version of a secret whose
//     rotation is on (createSecret writes AWSPENDING with the event's token
//     and RotationToken; finishSecret moves AWSCURRENT to the event's token);
//   - Handle writes exactly one JSON log line, with the event's step and
//     token, outcome "failed" with the error's text when it fails;
//   - no form (secretForms) of any secret string of the fake secret's
//     versions appears in the error or anywhere in the log line, unless the
//     event itself carries it.
func FuzzEvent(f *testing.F) {
	f.Add([]byte(`{"Step":"createSecret","SecretId":"`+fzARN+`","ClientRequestToken":"`+fzPending+`","RotationToken":"rt-1"}`), uint16(0))
	f.Add([]byte(`{"Step":"setSecret","SecretId":"`+fzName+`","ClientRequestToken":"`+fzPending+`"}`), uint16(0))
	f.Fuzz(func(t *testing.T, payload []byte, state uint16) {
		var ev Event
		if err := json.NewDecoder(bytes.NewReader(payload)).Decode(&ev); err != nil {
			return // the runtime refuses the payload before the handler runs
		}
		st := fuzzState(state)
		sm := newFakeSM(st)
		var logs bytes.Buffer
		h, err := NewHandler(leakyCredential{panics: st&stCredentialPanics != 0}, Options{
			Client:       sm,
			Logger:       slog.New(slog.NewJSONHandler(&logs, nil)),
			FunctionName: "fuzz",
			Now:          func() time.Time { return time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC) },
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		herr := h.Handle(ctx, ev)
		checkEventOutcome(t, ev, st, sm, herr, logs.Bytes())
	})
}

var knownSteps = []string{StepCreate, StepSet, StepTest, StepFinish, StepRevoke, StepProbe, StepRecover}

func checkEventOutcome(t *testing.T, ev Event, st fuzzState, sm *fakeSM, herr error, logs []byte) {
	t.Helper()
	// Secrets first: a failure message below may print the error text only
	// once it is known to be clean.
	fields := ev.Step + "\x00" + ev.SecretID + "\x00" + ev.ClientRequestToken + "\x00" + ev.RotationToken
	for _, v := range []string{fzCurPassword, fzPendPassword, fzPrevPassword, fzAPIKey, fzPlainValue, fzValue(fzCurPassword), fzValue(fzPendPassword), fzValue(fzPrevPassword)} {
		forms := secretForms(v)
		if containsAny(fields, forms) {
			continue // the event carries it: echoing the event is not a leak
		}
		if herr != nil {
			if got := shown(herr.Error(), forms); got != "" {
				t.Fatalf("the error shows the %s form of a secret (%s)", got, fp(v))
			}
		}
		if got := shown(jsonStrings(logs), forms); got != "" {
			t.Fatalf("the log line shows the %s form of a secret (%s)", got, fp(v))
		}
	}
	describes := sm.calls["DescribeSecret"]
	var serr *StepError
	if herr != nil {
		if !errors.As(herr, &serr) || serr != herr {
			t.Fatalf("Handle returned a %T, not a *StepError: %v", herr, herr)
		}
		wantARN := ev.SecretID
		if describes > 0 && sm.known(&ev.SecretID) && st&stNoARN == 0 {
			wantARN = fzARN
		}
		if serr.Step != ev.Step || serr.Token != ev.ClientRequestToken || serr.SecretARN != wantARN {
			t.Fatalf("StepError names step %q, token %q, secret %q; want %q, %q, %q", serr.Step, serr.Token, serr.SecretARN, ev.Step, ev.ClientRequestToken, wantARN)
		}
		if !strings.HasPrefix(herr.Error(), ev.Step+" of secret "+wantARN+" (version "+ev.ClientRequestToken+") failed: ") {
			t.Fatalf("error text does not start with the step, secret and version: %v", herr)
		}
	}
	invalid := ev.SecretID == "" || ev.ClientRequestToken == "" || !slices.Contains(knownSteps, ev.Step)
	if invalid {
		want := ErrInvalidEvent
		if ev.SecretID != "" && ev.ClientRequestToken != "" {
			want = ErrUnknownStep
		}
		if !errors.Is(herr, want) {
			t.Fatalf("invalid event %+v: error %v, want %v", ev, herr, want)
		}
		if len(sm.calls) != 0 {
			t.Fatalf("invalid event %+v reached Secrets Manager: %v", ev, sm.calls)
		}
	}
	if herr == nil && (!sm.known(&ev.SecretID) || describes != 1) {
		t.Fatalf("event %+v succeeded for an unknown secret or without one DescribeSecret (%d)", ev, describes)
	}
	checkWrites(t, ev, st, sm, herr)
	checkLogShape(t, ev, herr, logs)
}

// checkWrites: the engine writes only what the rotation protocol allows.
func checkWrites(t *testing.T, ev Event, st fuzzState, sm *fakeSM, herr error) {
	t.Helper()
	if len(sm.puts) == 0 && len(sm.updates) == 0 {
		return
	}
	rotating := st&stRotationDisabled == 0
	if !rotating || ev.ClientRequestToken != fzPending || !sm.known(&ev.SecretID) {
		t.Fatalf("event %+v (state %010b) wrote: %d puts, %d label moves", ev, st, len(sm.puts), len(sm.updates))
	}
	for _, p := range sm.puts {
		if ev.Step != StepCreate || aws.ToString(p.ClientRequestToken) != ev.ClientRequestToken ||
			!slices.Equal(p.VersionStages, []string{LabelPending}) || aws.ToString(p.RotationToken) != ev.RotationToken ||
			(ev.RotationToken == "" && p.RotationToken != nil) {
			t.Fatalf("event %+v put token %q, stages %v, rotation token %q", ev, aws.ToString(p.ClientRequestToken), p.VersionStages, aws.ToString(p.RotationToken))
		}
	}
	for _, u := range sm.updates {
		if ev.Step != StepFinish || aws.ToString(u.VersionStage) != LabelCurrent || aws.ToString(u.MoveToVersionId) != ev.ClientRequestToken ||
			aws.ToString(u.RemoveFromVersionId) != fzCurrent {
			t.Fatalf("event %+v moved %s to %q from %q", ev, aws.ToString(u.VersionStage), aws.ToString(u.MoveToVersionId), aws.ToString(u.RemoveFromVersionId))
		}
	}
	if ev.Step == StepCreate && herr == nil && len(sm.puts) != 1 {
		t.Fatalf("createSecret succeeded with %d puts", len(sm.puts))
	}
}

// checkLogShape: one JSON line per step, naming it and its outcome.
func checkLogShape(t *testing.T, ev Event, herr error, logs []byte) {
	t.Helper()
	if n := bytes.Count(logs, []byte("\n")); n != 1 {
		t.Fatalf("Handle wrote %d log lines, want 1", n)
	}
	var line map[string]any
	if err := json.Unmarshal(logs, &line); err != nil {
		t.Fatalf("the log line is not JSON: %v", err)
	}
	fields := ev.Step + ev.SecretID + ev.ClientRequestToken + ev.RotationToken
	if strings.Contains(fields, Redacted) || len(fields) > 0 && scrubsSomething(ev) {
		return // the event itself holds a secret or a marker; the line is scrubbed
	}
	outcome := "succeeded"
	if herr != nil {
		outcome = "failed"
	}
	if line["step"] != ev.Step || line["token"] != ev.ClientRequestToken || line["outcome"] != outcome {
		t.Fatalf("log line has step %q, token %q, outcome %q; want %q, %q, %q", line["step"], line["token"], line["outcome"], ev.Step, ev.ClientRequestToken, outcome)
	}
	if herr != nil && line["error"] != herr.Error() {
		t.Fatal("the log line's error is not the error Handle returned")
	}
}

// scrubsSomething reports whether the event holds a form of a secret of
// the fake, which the log line then shows as [REDACTED].
func scrubsSomething(ev Event) bool {
	fields := ev.Step + "\x00" + ev.SecretID + "\x00" + ev.ClientRequestToken + "\x00" + ev.RotationToken
	for _, v := range []string{fzCurPassword, fzPendPassword, fzPrevPassword, fzAPIKey, fzPlainValue} {
		if containsAny(fields, secretForms(v)) {
			return true
		}
	}
	return false
}

// jsonStrings returns every key and string value of a JSON text, one per
// line, so that a form is looked for in decoded text.
func jsonStrings(b []byte) string {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return string(b)
	}
	var out strings.Builder
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				out.WriteString(k + "\n")
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case string:
			out.WriteString(x + "\n")
		}
	}
	walk(v)
	return out.String()
}
