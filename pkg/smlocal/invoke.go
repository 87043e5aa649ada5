package smlocal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Event is what Secrets Manager sends a rotation function for each step.
type Event struct {
	Step               string `json:"Step"`
	SecretId           string `json:"SecretId"`
	ClientRequestToken string `json:"ClientRequestToken"`
	RotationToken      string `json:"RotationToken"`
}

// Invoker runs one step of a rotation function synchronously. A returned
// error fails the step.
type Invoker interface {
	Invoke(ctx context.Context, functionARN string, ev Event) error
}

// InvokerFunc is an in-process Invoker.
type InvokerFunc func(ctx context.Context, functionARN string, ev Event) error

// Invoke calls f.
func (f InvokerFunc) Invoke(ctx context.Context, functionARN string, ev Event) error {
	return f(ctx, functionARN, ev)
}

// ErrNoInvoker is returned for every step when Options.Invoker is nil.
var ErrNoInvoker = errors.New("smlocal: no rotation function invoker configured; set Options.Invoker")

type noInvoker struct{}

func (noInvoker) Invoke(context.Context, string, Event) error { return ErrNoInvoker }

// ErrFunction is wrapped by the error HTTPInvoker returns when the function
// itself failed (as opposed to the endpoint being unreachable).
var ErrFunction = errors.New("rotation function failed")

// DefaultInvokeTimeout bounds one invocation when HTTPInvoker.Timeout is zero.
const DefaultInvokeTimeout = 2 * time.Minute

// HTTPInvoker invokes functions through the Lambda Invoke API, as served by
// the AWS Lambda Runtime Interface Emulator: it POSTs the event to
// <endpoint>/2015-03-31/functions/function/invocations.
type HTTPInvoker struct {
	// Resolve returns the base URL (such as http://127.0.0.1:9001) of the
	// emulator running functionARN.
	Resolve func(functionARN string) (string, error)
	// Client is the HTTP client; nil means a new http.Client.
	Client *http.Client
	// Timeout bounds each invocation; zero means DefaultInvokeTimeout.
	Timeout time.Duration
}

// StaticEndpoint is a resolver that sends every function to one endpoint.
func StaticEndpoint(url string) func(string) (string, error) {
	return func(string) (string, error) { return url, nil }
}

// EndpointMap is a resolver that looks functions up by ARN.
func EndpointMap(m map[string]string) func(string) (string, error) {
	return func(arn string) (string, error) {
		if u, ok := m[arn]; ok {
			return u, nil
		}
		return "", fmt.Errorf("no endpoint known for rotation function %s; add it to the endpoint map", arn)
	}
}

// Invoke posts ev and fails on a non-2xx status, on a Lambda function error
// header, or on a body of the form {"errorMessage":...,"errorType":...}, which
// is how the emulator reports a failed handler with status 200, or on the
// emulator's "Task timed out after ..." (a timeout, also with status 200).
func (h *HTTPInvoker) Invoke(ctx context.Context, functionARN string, ev Event) error {
	if h.Resolve == nil {
		return errors.New("smlocal: HTTPInvoker.Resolve is nil; set it to a func returning the emulator URL for a function ARN")
	}
	base, err := h.Resolve(functionARN)
	if err != nil {
		return fmt.Errorf("resolve endpoint of %s: %w", functionARN, err)
	}
	timeout := h.Timeout
	if timeout == 0 {
		timeout = DefaultInvokeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	url := strings.TrimRight(base, "/") + "/2015-03-31/functions/function/invocations"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("invoke %s: %w", functionARN, err)
	}
	req.Header.Set("Content-Type", "application/json")
	client := h.Client
	if client == nil {
		client = &http.Client{}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("invoke %s step %s at %s: %w", functionARN, ev.Step, base, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("invoke %s step %s: read response: %w", functionARN, ev.Step, err)
	}
	if msg, ok := emulatorTimeout(resp.StatusCode, out); ok {
		return fmt.Errorf("%w: %s step %s: Sandbox.Timedout: %s", ErrFunction, functionARN, ev.Step, msg)
	}
	var fe struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}
	_ = json.Unmarshal(out, &fe) // a non-object response is a success value
	if resp.StatusCode/100 != 2 || fe.ErrorMessage != "" || fe.ErrorType != "" || resp.Header.Get("X-Amz-Function-Error") != "" {
		msg := fe.ErrorMessage
		if msg == "" && fe.ErrorType == "" {
			msg = fmt.Sprintf("HTTP %d", resp.StatusCode)
		}
		if fe.ErrorType != "" {
			msg = fe.ErrorType + ": " + msg
		}
		return fmt.Errorf("%w: %s step %s: %s", ErrFunction, functionARN, ev.Step, msg)
	}
	return nil
}
