package smlocal

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The Lambda Runtime Interface Emulator answers an invocation that ran past
// AWS_LAMBDA_FUNCTION_TIMEOUT with HTTP 200 and a plain-text body, without
// X-Amz-Function-Error. Lambda reports a timeout as a function error, so
// Secrets Manager fails the step: the local one must too, or a rotation
// whose finishSecret timed out would be recorded as succeeded.
func TestHTTPInvokerReportsAnEmulatorTimeoutAsAFunctionError(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("Task timed out after 3.00 seconds"))
	}))
	t.Cleanup(hs.Close)
	inv := &HTTPInvoker{Resolve: StaticEndpoint(hs.URL)}
	err := inv.Invoke(context.Background(), fnARN, Event{Step: StepFinish})
	if !errors.Is(err, ErrFunction) || !strings.Contains(err.Error(), "Sandbox.Timedout") || !strings.Contains(err.Error(), "Task timed out after 3.00 seconds") {
		t.Fatalf("Invoke = %v, want ErrFunction naming Sandbox.Timedout and the emulator's message", err)
	}
}

func TestRotationWhoseStepTimedOutFails(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("Task timed out after 3.00 seconds"))
	}))
	t.Cleanup(hs.Close)
	srv, c := newServer(t, Options{Retry: RetryPolicy{Attempts: 2}, Invoker: &HTTPInvoker{Resolve: StaticEndpoint(hs.URL)}})
	createSecret(t, c, "timed-out", "pw")
	rotateByName(t, c, "timed-out")
	r := waitRotation(t, srv, "timed-out")
	if r.State != RotationFailed || len(r.Attempts) != 2 || len(r.Attempts[0].Steps) != 1 || !strings.Contains(r.Attempts[0].Steps[0].Err, "Sandbox.Timedout") {
		t.Fatalf("rotation %+v, want failed twice at createSecret with the timeout", r)
	}
}
