package smlocal

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHTTPInvokerPostsEventAndReadsEmulatorErrors(t *testing.T) {
	ev := Event{Step: StepCreate, SecretId: "arn:aws:secretsmanager:us-east-1:123456789012:secret:x-abcdef", ClientRequestToken: token(1), RotationToken: "rt"}
	for _, tc := range []struct {
		name    string
		status  int
		body    string
		header  string
		wantErr string // "" for success
	}{
		{name: "success with null body", status: 200, body: "null"},
		{name: "success with a value", status: 200, body: `"ok"`},
		{name: "handler error with status 200", status: 200, body: `{"errorMessage":"setSecret: login failed","errorType":"errorString"}`, wantErr: "errorString: setSecret: login failed"},
		{name: "function error header", status: 200, body: `{}`, header: "Unhandled", wantErr: "HTTP 200"},
		{name: "non-2xx status", status: 502, body: "bad gateway", wantErr: "HTTP 502"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got Event
			var path string
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				path = r.URL.Path
				b, _ := io.ReadAll(r.Body)
				if err := json.Unmarshal(b, &got); err != nil {
					t.Errorf("event is not JSON: %v", err)
				}
				var raw map[string]any
				_ = json.Unmarshal(b, &raw)
				for _, k := range []string{"Step", "SecretId", "ClientRequestToken", "RotationToken"} {
					if _, ok := raw[k]; !ok {
						t.Errorf("event lacks field %s", k)
					}
				}
				if tc.header != "" {
					w.Header().Set("X-Amz-Function-Error", tc.header)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			t.Cleanup(hs.Close)
			inv := &HTTPInvoker{Resolve: EndpointMap(map[string]string{fnARN: hs.URL})}
			err := inv.Invoke(context.Background(), fnARN, ev)
			if path != "/2015-03-31/functions/function/invocations" {
				t.Errorf("path = %s", path)
			}
			if got != ev {
				t.Errorf("event received %+v, want %+v", got, ev)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Invoke: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrFunction) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Invoke error = %v, want ErrFunction containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestHTTPInvokerTimesOut(t *testing.T) {
	block := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(block); hs.Close() })
	inv := &HTTPInvoker{Resolve: StaticEndpoint(hs.URL), Timeout: 100 * time.Millisecond}
	start := time.Now()
	err := inv.Invoke(context.Background(), fnARN, Event{Step: StepSet})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Invoke = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Invoke took %v, want about the 100ms timeout", d)
	}
}

func TestHTTPInvokerUnknownFunctionFailsClearly(t *testing.T) {
	inv := &HTTPInvoker{Resolve: EndpointMap(nil)}
	err := inv.Invoke(context.Background(), fnARN, Event{})
	if err == nil || !strings.Contains(err.Error(), "no endpoint known for rotation function "+fnARN) {
		t.Fatalf("Invoke = %v", err)
	}
}

func TestRotationThroughHTTPInvokerFailsOnEmulatorErrorBody(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"errorMessage":"boom","errorType":"Runtime.Error"}`))
	}))
	t.Cleanup(hs.Close)
	srv, c := newServer(t, Options{Retry: RetryPolicy{Attempts: 2}, Invoker: &HTTPInvoker{Resolve: StaticEndpoint(hs.URL)}})
	createSecret(t, c, "emu", "pw")
	rotateByName(t, c, "emu")
	r := waitRotation(t, srv, "emu")
	if r.State != RotationFailed || len(r.Attempts) != 2 || !strings.Contains(r.Attempts[0].Steps[0].Err, "Runtime.Error: boom") {
		t.Fatalf("rotation %+v, want failed twice at createSecret with the emulator's error", r)
	}
}
