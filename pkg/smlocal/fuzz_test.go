package smlocal

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// The secrets every FuzzRequest iteration starts with. Their values hold
// the characters whose encodings differ, so that a leak in any form shows.
const (
	fzDB       = "fuzz/db"
	fzBin      = "fuzz/bin"
	fzDeleted  = "fuzz/deleted"
	fzNoValue  = "fuzz/novalue"
	fzTok1     = "fz-token-0000000000000000000000001"
	fzTok2     = "fz-token-0000000000000000000000002"
	fzTok3     = "fz-token-0000000000000000000000003"
	fzPass1    = "Pw1-fz\"<&>\\-8c1e"
	fzPass2    = "Pw2-fz@;:é-77ab"
	fzPass3    = "Pw3-pending-\u2028-x"
	fzBinValue = "\x00\xffbinary-secret-fz"
	fzDelPass  = "Pw5-deleted-0e9d"
)

func fzSecretJSON(pw string) string {
	b, _ := json.Marshal(map[string]any{"engine": "postgres", "host": "db", "username": "app", "password": pw, "port": 5432})
	return string(b)
}

// fzStored is every secret string the setup stores, for the leak check.
var fzStored = []string{fzPass1, fzPass2, fzPass3, fzDelPass, fzSecretJSON(fzPass1), fzSecretJSON(fzPass2), fzSecretJSON(fzPass3), fzSecretJSON(fzDelPass)}

// knownExceptions are the error types the server may answer; an
// InternalServiceError (500) is never right for a client's input.
var knownExceptions = []string{excResourceNotFound, excInvalidRequest, excInvalidParameter, excResourceExists,
	excLimitExceeded, excInvalidNextToken, excUnknownOperation, excSerialization, excValidation}

// call sends one request straight to the handler.
func call(s *Server, target string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	if target != "" {
		req.Header.Set("X-Amz-Target", target)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

// fuzzServer returns a server holding fzDB (three versions: AWSPREVIOUS,
// AWSCURRENT, AWSPENDING, tags, a rotation schedule), fzBin (binary),
// fzDeleted (scheduled for deletion) and fzNoValue (no version).
func fuzzServer(t *testing.T) *Server {
	t.Helper()
	clock := newFakeClock()
	s, err := New(Options{Clock: clock.Now, Retry: RetryPolicy{Attempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	must := func(op string, in map[string]any) {
		b, _ := json.Marshal(in)
		if rec := call(s, targetPrefix+op, b); rec.Code != http.StatusOK {
			t.Fatalf("setup %s: %d %s", op, rec.Code, rec.Body)
		}
	}
	must("CreateSecret", map[string]any{"Name": fzDB, "ClientRequestToken": fzTok1, "SecretString": fzSecretJSON(fzPass1),
		"Tags": []map[string]string{{"Key": "team", "Value": "a"}}, "Description": "the fuzzed secret"})
	must("PutSecretValue", map[string]any{"SecretId": fzDB, "ClientRequestToken": fzTok2, "SecretString": fzSecretJSON(fzPass2)})
	must("PutSecretValue", map[string]any{"SecretId": fzDB, "ClientRequestToken": fzTok3, "SecretString": fzSecretJSON(fzPass3), "VersionStages": []string{labelPending}})
	must("CreateSecret", map[string]any{"Name": fzBin, "SecretBinary": []byte(fzBinValue)})
	must("CreateSecret", map[string]any{"Name": fzDeleted, "SecretString": fzSecretJSON(fzDelPass)})
	must("DeleteSecret", map[string]any{"SecretId": fzDeleted, "RecoveryWindowInDays": 7})
	must("CreateSecret", map[string]any{"Name": fzNoValue})
	s.mu.Lock()
	s.st.Secrets[s.st.lookup(fzDB).ARN].Rules = &rotationRules{ScheduleExpression: ptr("rate(10 days)")}
	s.mu.Unlock()
	s.ResetCalls()
	return s
}

func ptr[T any](v T) *T { return &v }

// FuzzRequest POSTs an arbitrary X-Amz-Target and body to a Server holding
// a few secrets (fuzzServer). The seeds are in testdata/fuzz/FuzzRequest:
// every operation, with valid, wrong-typed, malformed, null, huge and
// unicode bodies, and unknown or malformed targets.
//
// Properties:
//   - the server never panics and always answers JSON with Content-Type
//     application/x-amz-json-1.1;
//   - a success is 200 with a JSON object and no __type; an error is 400
//     (never 500: nothing a client sends is an internal error) with
//     {"__type","message"} naming a known exception, matching
//     X-Amzn-ErrorType; a body that is not JSON is a SerializationException,
//     an unknown operation an UnknownOperationException;
//   - no stored secret value (any form, or its base64 for a binary one)
//     appears in an error message, nor in any response but GetSecretValue's
//     SecretString and SecretBinary, unless the request itself holds it;
//   - afterwards (rotations stopped by Close) the state is consistent: every
//     label is on an existing version, AWSCURRENT is on a version with a
//     value and present whenever a version has one, labels are 1-256
//     characters and at most 20 per version, version IDs are 32-64
//     characters, names are valid and ARNs derive from them, tags are within
//     AWS's limits, and the state survives the state file's JSON round trip.
func FuzzRequest(f *testing.F) {
	f.Add(targetPrefix+"GetSecretValue", []byte(`{"SecretId":"`+fzDB+`"}`))
	f.Add(targetPrefix+"DescribeSecret", []byte(`{"SecretId":`))
	f.Fuzz(func(t *testing.T, target string, body []byte) {
		s := fuzzServer(t)
		rec := call(s, target, body)
		op, _ := strings.CutPrefix(target, targetPrefix)
		checkResponse(t, op, target, body, rec)
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		checkState(t, s.st)
	})
}

func checkResponse(t *testing.T, op, target string, body []byte, rec *httptest.ResponseRecorder) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		t.Fatalf("%s: Content-Type %q", op, ct)
	}
	var resp map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || resp == nil {
		t.Fatalf("%s: %d answer is not a JSON object (%v): %d bytes", op, rec.Code, err, rec.Body.Len())
	}
	// Leaks first, so that later failure messages may quote the answer.
	request := target + "\x00" + string(body) + "\x00" + jsonText(body)
	shown := resp
	if rec.Code == http.StatusOK && op == "GetSecretValue" {
		shown = map[string]any{}
		for k, v := range resp {
			if k != "SecretString" && k != "SecretBinary" {
				shown[k] = v
			}
		}
	}
	answer := jsonText(mustJSON(shown))
	for _, v := range fzStored {
		for i, form := range valueForms(v) {
			if !strings.Contains(request, form) && strings.Contains(answer, form) {
				t.Fatalf("%s: the %d answer shows form %d of a stored secret (%d bytes)", op, rec.Code, i, len(v))
			}
		}
	}
	bin := base64.StdEncoding.EncodeToString([]byte(fzBinValue))
	if !strings.Contains(request, bin) && strings.Contains(answer, bin) {
		t.Fatalf("%s: the %d answer shows the binary secret", op, rec.Code)
	}

	typ, _ := resp["__type"].(string)
	if rec.Code == http.StatusOK {
		if typ != "" {
			t.Fatalf("%s: 200 with __type %q", op, typ)
		}
		if _, known := operations[op]; !known || !strings.HasPrefix(target, targetPrefix) {
			t.Fatalf("target %q: 200 for an unknown operation", target)
		}
		return
	}
	msg, _ := resp["message"].(string)
	switch {
	case rec.Code != http.StatusBadRequest:
		t.Fatalf("%s: status %d (%s: %s), want 400 for any client input", op, rec.Code, typ, msg)
	case !slices.Contains(knownExceptions, typ):
		t.Fatalf("%s: unknown exception %q: %s", op, typ, msg)
	case rec.Header().Get("X-Amzn-ErrorType") != typ:
		t.Fatalf("%s: X-Amzn-ErrorType %q, __type %q", op, rec.Header().Get("X-Amzn-ErrorType"), typ)
	case msg == "":
		t.Fatalf("%s: %s without a message", op, typ)
	}
	_, known := operations[op]
	if !known || !strings.HasPrefix(target, targetPrefix) {
		if typ != excUnknownOperation {
			t.Fatalf("target %q: %s, want %s", target, typ, excUnknownOperation)
		}
		return
	}
	if len(body) > 0 && !json.Valid(body) && typ != excSerialization {
		t.Fatalf("%s: a body that is not JSON gave %s: %s", op, typ, msg)
	}
}

// valueForms are the forms a stored value could take in an answer: as is,
// JSON-escaped and Go-quoted.
func valueForms(v string) []string {
	b, _ := json.Marshal(v)
	q := strconv.Quote(v)
	return []string{v, string(b[1 : len(b)-1]), q[1 : len(q)-1]}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// jsonText returns every key and string of a JSON text, decoded, one per
// line (nothing if it is not JSON).
func jsonText(b []byte) string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return ""
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

func checkState(t *testing.T, st *state) {
	t.Helper()
	prefix := "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
	for arn, sec := range st.Secrets {
		if !validName.MatchString(sec.Name) || !strings.HasPrefix(arn, prefix+sec.Name+"-") || len(arn) != len(prefix)+len(sec.Name)+7 || sec.ARN != arn {
			t.Fatalf("secret %q has ARN %q (stored under %q)", sec.Name, sec.ARN, arn)
		}
		for l, id := range sec.Labels {
			if n := utf8.RuneCountInString(l); n < 1 || n > 256 {
				t.Fatalf("secret %s: label of %d characters on version %q", sec.Name, n, id)
			}
			if sec.Versions[id] == nil {
				t.Fatalf("secret %s: label %q on missing version %q", sec.Name, l, id)
			}
		}
		hasValue := false
		for id, v := range sec.Versions {
			if v.ID != id || len(id) < 32 || len(id) > 64 {
				t.Fatalf("secret %s: version %q stored as %q (IDs are 32-64 characters)", sec.Name, v.ID, id)
			}
			if n := len(sec.labelsOf(id)); n > 20 {
				t.Fatalf("secret %s: version %q has %d labels", sec.Name, id, n)
			}
			hasValue = hasValue || v.HasValue
		}
		cur, ok := sec.Labels[labelCurrent]
		if ok && !sec.Versions[cur].HasValue {
			t.Fatalf("secret %s: AWSCURRENT on version %q, which has no value", sec.Name, cur)
		}
		if hasValue && !ok {
			t.Fatalf("secret %s has a value but no AWSCURRENT", sec.Name)
		}
		if checkTags(sec.Tags) != nil {
			t.Fatalf("secret %s: %d tags, beyond AWS's limits", sec.Name, len(sec.Tags))
		}
		if sec.Rules != nil {
			if _, err := parseRules(sec.Rules); err != nil {
				t.Fatalf("secret %s: stored rotation rules are invalid: %v", sec.Name, err)
			}
		}
	}
	b, err := json.Marshal(stateFile{Version: stateVersion, state: st})
	if err != nil {
		t.Fatalf("state does not encode: %v", err)
	}
	again := stateFile{state: &state{}}
	if err := json.Unmarshal(b, &again); err != nil {
		t.Fatalf("state file does not decode: %v", err)
	}
	if b2, _ := json.Marshal(again); !bytes.Equal(b, b2) {
		t.Fatalf("state changes through the state file: %d bytes, then %d", len(b), len(b2))
	}
}
