package localstack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/rotary-secrets/rotary/pkg/localauth"
)

// TestFunctionURLEvent: a request signed by the SDK's signer reaches the
// function as the function URL event (payload format 2.0) with the caller's
// IAM identity, its headers, query, cookies and body (base64 when binary);
// the function's answer becomes the HTTP response (a response object, or a
// bare JSON value as a 200); a function error is a 502; nothing reaches the
// function without a valid signature.
func TestFunctionURLEvent(t *testing.T) {
	const (
		key    = "AKIABOBEXAMPLE000001"
		secret = "bob-secret"
		arn    = "arn:aws:sts::123456789012:assumed-role/dev/bob"
	)
	dir := localauth.New(localauth.Principal{AccessKeyID: key, SecretAccessKey: secret, ARN: arn})
	s := &Stack{}
	u := &functionURL{name: "fn", arn: FunctionARN("fn"), id: "abcdefghijklmnopqrstuvwxyz012345"}
	var (
		mu  sync.Mutex // the handler runs on the server's goroutines
		got []events.LambdaFunctionURLRequest
	)
	answer := func([]byte) ([]byte, error) { return nil, nil }
	invoke := func(_ context.Context, payload []byte) ([]byte, error) {
		var ev events.LambdaFunctionURLRequest
		if err := json.Unmarshal(payload, &ev); err != nil {
			t.Errorf("the function got no function URL event: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, ev)
		return answer(payload)
	}
	var log bytes.Buffer
	srv := httptest.NewServer(s.urlHandler(u, invoke, dir, &log))
	defer srv.Close()

	do := func(method, path, contentType string, body []byte, sign bool, header http.Header) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if sign {
			sum := sha256.Sum256(body)
			if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: key, SecretAccessKey: secret, SessionToken: "tok"}, req, hex.EncodeToString(sum[:]), "lambda", Region, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	read := func(r *http.Response) string { b, _ := io.ReadAll(r.Body); return string(b) }

	answer = func([]byte) ([]byte, error) {
		return json.Marshal(events.LambdaFunctionURLResponse{StatusCode: 201, Headers: map[string]string{"X-Answer": "yes"}, Cookies: []string{"a=1"}, Body: `{"ok":true}`})
	}
	resp := do("POST", "/creds/x?b=2&a=1&a=3", "application/json", []byte(`{"role":"r"}`), true, http.Header{"Cookie": {"c1=v1; c2=v2"}, "X-Custom": {"one", "two"}})
	if resp.StatusCode != 201 || resp.Header.Get("X-Answer") != "yes" || resp.Header.Get("Set-Cookie") != "a=1" || read(resp) != `{"ok":true}` {
		t.Fatalf("the function's response object became HTTP %d %v", resp.StatusCode, resp.Header)
	}
	if len(got) != 1 {
		t.Fatalf("the function ran %d times for one request", len(got))
	}
	ev := got[0]
	iam := ev.RequestContext.Authorizer.IAM
	if ev.Version != "2.0" || ev.RawPath != "/creds/x" || ev.RawQueryString != "a=1&a=3&b=2" || ev.QueryStringParameters["a"] != "1,3" ||
		ev.Body != `{"role":"r"}` || ev.IsBase64Encoded || ev.RequestContext.HTTP.Method != "POST" || ev.RequestContext.HTTP.Path != "/creds/x" ||
		ev.RequestContext.APIID != u.id || ev.RequestContext.RequestID == "" {
		t.Errorf("event = %+v", ev)
	}
	if iam == nil || iam.UserARN != arn || iam.AccessKey != key || iam.AccountID != "123456789012" || !strings.HasPrefix(iam.CallerID, "AROA") || !strings.HasSuffix(iam.CallerID, ":bob") {
		t.Errorf("authorizer.iam = %+v; want the signing principal %s", iam, arn)
	}
	if ev.Headers["x-custom"] != "one,two" || ev.Headers["content-type"] != "application/json" || ev.Headers["authorization"] == "" || ev.Headers["cookie"] != "" ||
		strings.Join(ev.Cookies, " ") != "c1=v1 c2=v2" {
		t.Errorf("headers %v, cookies %v", ev.Headers, ev.Cookies)
	}

	// A binary body arrives base64; a bare JSON answer is a 200.
	answer = func([]byte) ([]byte, error) { return []byte(`{"plain":1}`), nil }
	resp = do("PUT", "/", "application/octet-stream", []byte{0, 1, 2, 0xff}, true, nil)
	if b := read(resp); resp.StatusCode != 200 || b != `{"plain":1}` || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("a bare JSON answer became HTTP %d %q", resp.StatusCode, b)
	}
	if ev := got[len(got)-1]; !ev.IsBase64Encoded || ev.Body != base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 0xff}) {
		t.Errorf("binary body: base64 %v %q", ev.IsBase64Encoded, ev.Body)
	}
	// A function error is Lambda's 502.
	answer = func([]byte) ([]byte, error) { return nil, errors.New("boom") }
	if resp := do("POST", "/", "application/json", []byte(`{}`), true, nil); resp.StatusCode != 502 || read(resp) != `{"Message":"Internal Server Error"}` {
		t.Errorf("a function error became HTTP %d", resp.StatusCode)
	}
	// Unsigned: 403, and the function does not run.
	n := len(got)
	if resp := do("POST", "/", "application/json", []byte(`{}`), false, nil); resp.StatusCode != 403 || read(resp) != `{"Message":"Forbidden"}` {
		t.Errorf("unsigned request: HTTP %d", resp.StatusCode)
	}
	if len(got) != n || !strings.Contains(log.String(), "MissingAuthenticationTokenException") {
		t.Errorf("an unsigned request reached the function, or its refusal was not logged: %s", log.String())
	}
}
