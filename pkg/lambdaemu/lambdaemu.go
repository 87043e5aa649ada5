// Package lambdaemu runs Lambda function binaries locally under the AWS Lambda
// Runtime Interface Emulator.
//
// A typical test builds a function once, starts it, and closes it in
// t.Cleanup so that no process outlives the test, even a failing one:
//
//	root, _ := lambdaemu.ModuleRoot()
//	rie, err := lambdaemu.EmulatorPath(ctx, root)
//	bootstrap, err := lambdaemu.BuildFunction(ctx, root, "postgres", t.TempDir())
//	fn, err := lambdaemu.Start(ctx, lambdaemu.Config{
//		Name: "rotary-postgres", Bootstrap: bootstrap, Emulator: rie,
//		Env: []string{"SECRETS_MANAGER_ENDPOINT=" + sm.URL, "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test"},
//	})
//	t.Cleanup(func() { fn.Close() })
//	out, err := fn.Invoke(ctx, []byte(`{"Step":"createSecret",...}`))
//
// What the emulator does, as observed with the version go.mod pins:
//   - It starts the bootstrap lazily, on the first invocation ("Init Duration"
//     in its REPORT line), not when it starts listening.
//   - A handler that returns an error gives HTTP 200 with a body
//     {"errorMessage":...,"errorType":...}; Invoke turns it into a
//     *FunctionError.
//   - A handler that panics gives HTTP 502 with errorType "string" (the type
//     of the panic value) and a stackTrace; the aws-lambda-go runtime then
//     exits, and the emulator starts a fresh bootstrap on the next invocation,
//     so the Function keeps serving.
//   - A bootstrap that exits without reporting an error (say, main fails
//     before lambda.Start) gives HTTP 502 with an empty body; Invoke returns
//     a *FunctionError of type "Runtime.ExitError" whose message carries the
//     last lines of output.
//   - A handler that runs past AWS_LAMBDA_FUNCTION_TIMEOUT seconds (default
//     300) gives the plain text "Task timed out after N.00 seconds"; Invoke
//     returns a *FunctionError of type "Sandbox.Timedout", and the next
//     invocation runs in a fresh bootstrap.
//   - It runs one invocation at a time (a second concurrent one is refused
//     with HTTP 400), so Function serializes Invoke.
package lambdaemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// invokePath is the emulator's invoke URL path (the Lambda Invoke API's,
// with the function name fixed to "function").
const invokePath = "/2015-03-31/functions/function/invocations"

// Defaults for Config.
const (
	defaultStartTimeout     = 15 * time.Second
	defaultEmulatorLogLevel = "warn"
	defaultRegion           = "us-east-1"
	startAttempts           = 3
	closeGrace              = 2 * time.Second
	outputTailBytes         = 4096
)

// ErrClosed is returned by Invoke on a Function that has been closed.
var ErrClosed = errors.New("lambdaemu: function is closed")

// Config says which function to run and how.
type Config struct {
	// Name is the function's name, given to it as AWS_LAMBDA_FUNCTION_NAME.
	// Required.
	Name string
	// Bootstrap is the path of the function binary (see BuildFunction).
	// Required.
	Bootstrap string
	// Env holds extra KEY=VALUE variables for the function, such as
	// SECRETS_MANAGER_ENDPOINT, AWS_REGION and fake credentials. The
	// function does NOT inherit this process's environment (so real AWS
	// credentials or PG* variables never reach it); it gets PATH, TZ=UTC,
	// LAMBDA_TASK_ROOT, AWS_LAMBDA_FUNCTION_NAME, AWS_REGION and
	// AWS_DEFAULT_REGION (us-east-1 unless Env sets them), plus Env, which
	// wins over those. AWS_LAMBDA_FUNCTION_TIMEOUT (seconds) sets the
	// emulator's invocation timeout.
	Env []string
	// Log receives the emulator's and the function's output (stdout and
	// stderr, interleaved). Nil discards it. Writes come from one goroutine
	// per Function; a Log shared by several Functions must be safe for
	// concurrent use.
	Log io.Writer
	// Emulator is the path of the aws-lambda-rie binary (see EmulatorPath).
	// Required.
	Emulator string
	// StartTimeout bounds how long Start waits for the emulator to answer
	// (default 15s).
	StartTimeout time.Duration
	// EmulatorLogLevel is the emulator's own log level: debug, info, warn
	// (default) or error. Its START/END/REPORT lines and the function's
	// output are written whatever the level.
	EmulatorLogLevel string
}

// Function is one function running under its own emulator process. Its
// methods are safe for concurrent use; invocations run one at a time.
// Whoever calls Start must call Close (in tests: in t.Cleanup).
type Function struct {
	name     string
	endpoint string
	cmd      *exec.Cmd
	out      *tailWriter
	exited   chan struct{} // closed when the emulator process has been waited for
	client   *http.Client
	slot     chan struct{} // holds one token: the right to invoke

	closeOnce sync.Once
	closeErr  error
	mu        sync.Mutex
	closed    bool
}

// FunctionError is the error Invoke returns when the function itself failed:
// the handler returned an error or panicked, the runtime crashed, or the
// invocation timed out.
type FunctionError struct {
	// Function is the function's name.
	Function string
	// Type is the errorType the runtime reported, e.g. the handler error's
	// Go type name, "string" for a panic with a string, or
	// "Sandbox.Timedout".
	Type string `json:"errorType"`
	// Message is the errorMessage the runtime reported.
	Message string `json:"errorMessage"`
	// StackTrace is the runtime's stackTrace (for panics), raw JSON.
	StackTrace json.RawMessage `json:"stackTrace,omitempty"`
	// StatusCode is the HTTP status the emulator answered with (200 for a
	// handler error, 502 for a panic or crash).
	StatusCode int `json:"-"`
}

// Error implements error.
func (e *FunctionError) Error() string {
	return fmt.Sprintf("function %s failed: %s: %s", e.Function, e.Type, e.Message)
}

// Start starts the emulator with cfg.Bootstrap on free loopback ports and
// waits until it answers. ctx bounds the start-up only: the function runs
// until Close. The bootstrap itself is started by the emulator on the first
// Invoke.
func Start(ctx context.Context, cfg Config) (*Function, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < startAttempts; attempt++ {
		f, err := start(ctx, cfg)
		if err == nil {
			return f, nil
		}
		lastErr = err
		// Another process may take a port between our probe and the
		// emulator's bind; only that is worth another try.
		if !errors.Is(err, errPortTaken) || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// errPortTaken marks a start that failed because a port was taken.
var errPortTaken = errors.New("address already in use")

// check validates cfg.
func (cfg *Config) check() error {
	if cfg.Name == "" {
		return errors.New("start function: Config.Name is empty; set it to the function's name")
	}
	if cfg.Emulator == "" {
		return fmt.Errorf("start function %s: Config.Emulator is empty; set it from lambdaemu.EmulatorPath", cfg.Name)
	}
	if cfg.Bootstrap == "" {
		return fmt.Errorf("start function %s: Config.Bootstrap is empty; set it from lambdaemu.BuildFunction", cfg.Name)
	}
	for _, p := range []struct{ field, path string }{{"Emulator", cfg.Emulator}, {"Bootstrap", cfg.Bootstrap}} {
		fi, err := os.Stat(p.path)
		if err != nil {
			return fmt.Errorf("start function %s: Config.%s: %w", cfg.Name, p.field, err)
		}
		if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("start function %s: Config.%s %s is not an executable file", cfg.Name, p.field, p.path)
		}
	}
	for _, kv := range cfg.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			// Print the key only: the value may be a secret.
			return fmt.Errorf("start function %s: Config.Env entry %q is not KEY=VALUE", cfg.Name, k)
		}
		// The emulator panics on every invocation if this is not a number.
		if v, ok := strings.CutPrefix(kv, "AWS_LAMBDA_FUNCTION_TIMEOUT="); ok {
			if n, err := strconv.Atoi(v); err != nil || n < 1 {
				return fmt.Errorf("start function %s: Config.Env AWS_LAMBDA_FUNCTION_TIMEOUT=%q must be a whole number of seconds, at least 1", cfg.Name, v)
			}
		}
	}
	return nil
}

// start makes one attempt at starting the emulator.
func start(ctx context.Context, cfg Config) (*Function, error) {
	bootstrap, err := filepath.Abs(cfg.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("start function %s: bootstrap path: %w", cfg.Name, err)
	}
	ports, err := pickPorts(2)
	if err != nil {
		return nil, fmt.Errorf("start function %s: %w", cfg.Name, err)
	}
	invokeAddr := net.JoinHostPort("127.0.0.1", fmt.Sprint(ports[0]))
	runtimeAddr := net.JoinHostPort("127.0.0.1", fmt.Sprint(ports[1]))
	logLevel := cfg.EmulatorLogLevel
	if logLevel == "" {
		logLevel = defaultEmulatorLogLevel
	}

	cmd := exec.Command(cfg.Emulator,
		"--log-level", logLevel,
		"--runtime-interface-emulator-address", invokeAddr,
		"--runtime-api-address", runtimeAddr,
		bootstrap)
	cmd.Dir = filepath.Dir(bootstrap)
	cmd.Env = functionEnv(cfg, filepath.Dir(bootstrap))
	cmd.SysProcAttr = sysProcAttr()
	out := newTailWriter(cfg.Log, outputTailBytes)
	cmd.Stdout = out
	cmd.Stderr = out
	// The bootstrap inherits the emulator's output pipe; do not let a
	// straggler hold Wait forever.
	cmd.WaitDelay = closeGrace
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start function %s: run emulator %s: %w", cfg.Name, cfg.Emulator, err)
	}
	f := &Function{
		name:     cfg.Name,
		endpoint: "http://" + invokeAddr,
		cmd:      cmd,
		out:      out,
		exited:   make(chan struct{}),
		client: &http.Client{Transport: &http.Transport{
			Proxy:        nil, // loopback only, never through a proxy
			MaxIdleConns: 1,
		}},
		slot: make(chan struct{}, 1),
	}
	f.slot <- struct{}{}
	go func() {
		_ = cmd.Wait()
		close(f.exited)
	}()

	timeout := cfg.StartTimeout
	if timeout <= 0 {
		timeout = defaultStartTimeout
	}
	if err := f.waitReady(ctx, timeout); err != nil {
		_ = f.Close()
		tail := out.tail()
		if strings.Contains(tail, "address already in use") {
			err = fmt.Errorf("%w (%w)", err, errPortTaken)
		}
		return nil, fmt.Errorf("start function %s: %w; last output:\n%s", cfg.Name, err, tail)
	}
	return f, nil
}

// functionEnv builds the emulator's environment, which it hands on to the
// function whole.
func functionEnv(cfg Config, taskRoot string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	env := []string{
		"PATH=" + path,
		"TZ=UTC",
		"LAMBDA_TASK_ROOT=" + taskRoot,
		"AWS_LAMBDA_FUNCTION_NAME=" + cfg.Name,
		"AWS_REGION=" + defaultRegion,
		"AWS_DEFAULT_REGION=" + defaultRegion,
	}
	// Later entries win: os/exec keeps the last value of a duplicated key.
	return append(env, cfg.Env...)
}

// waitReady polls the emulator until it answers HTTP, it exits, or the
// deadline passes.
func (f *Function) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	backoff := 5 * time.Millisecond
	for {
		// Any answer will do: "/" is the emulator's 404. Never poll the
		// invoke path, which would run the function.
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.endpoint+"/", nil)
		if err != nil {
			return fmt.Errorf("poll emulator: %w", err)
		}
		resp, err := f.client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			select {
			case <-f.exited:
				return errors.New("emulator exited right after answering")
			default:
				return nil
			}
		}
		select {
		case <-f.exited:
			return fmt.Errorf("emulator exited before it answered (%v)", f.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("emulator did not answer on %s within %v: %w", f.endpoint, timeout, ctx.Err())
		case <-time.After(backoff):
		}
		if backoff < 100*time.Millisecond {
			backoff *= 2
		}
	}
}

// pickPorts chooses the emulator's ports; tests replace it to force a clash.
var pickPorts = freePorts

// freePorts returns n distinct loopback TCP ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free loopback port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Name returns the function's name.
func (f *Function) Name() string { return f.name }

// Endpoint returns the emulator's base URL, e.g. "http://127.0.0.1:41234";
// the invoke URL is Endpoint() + "/2015-03-31/functions/function/invocations".
// Callers that POST there themselves bypass Invoke's serialization: the
// emulator refuses a second concurrent invocation with HTTP 400.
func (f *Function) Endpoint() string { return f.endpoint }

// Invoke invokes the function synchronously with payload (JSON; empty means
// "{}") and returns its response. When the function failed (handler error,
// panic, crash, timeout) the error is a *FunctionError (use errors.As);
// other errors mean the emulator could not be reached or misbehaved.
// Invocations run one at a time: Invoke waits for an earlier one to finish
// (or for ctx). If ctx ends during an invocation, the handler still runs to
// its end inside the emulator and the next Invoke may be refused until it has.
func (f *Function) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	select {
	case <-f.slot:
	case <-ctx.Done():
		return nil, fmt.Errorf("invoke function %s: wait for the previous invocation: %w", f.name, ctx.Err())
	}
	defer func() { f.slot <- struct{}{} }()
	f.mu.Lock()
	closed := f.closed
	f.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("invoke function %s: %w", f.name, ErrClosed)
	}
	if len(payload) == 0 {
		payload = []byte("{}")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.endpoint+invokePath, bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("invoke function %s: %w", f.name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		select {
		case <-f.exited:
			return nil, fmt.Errorf("invoke function %s: emulator has exited (%v): %w; last output:\n%s",
				f.name, f.cmd.ProcessState, err, f.out.tail())
		default:
		}
		return nil, fmt.Errorf("invoke function %s: %w", f.name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("invoke function %s: read response: %w", f.name, err)
	}
	return f.result(resp.StatusCode, body)
}

// result interprets the emulator's answer.
func (f *Function) result(status int, body []byte) ([]byte, error) {
	if fe, ok := parseFunctionError(body); ok {
		fe.Function = f.name
		fe.StatusCode = status
		return nil, fe
	}
	if status == http.StatusOK && bytes.HasPrefix(body, []byte("Task timed out after ")) {
		return nil, &FunctionError{Function: f.name, Type: "Sandbox.Timedout", Message: string(body), StatusCode: status}
	}
	switch {
	case status == http.StatusOK:
		return body, nil
	case status == http.StatusBadRequest:
		return nil, fmt.Errorf("invoke function %s: emulator refused the invocation (HTTP 400): it is still busy with an earlier one, whose caller gave up; retry when that handler has returned", f.name)
	case status == http.StatusBadGateway:
		// The runtime died without an error document: typically a
		// bootstrap that exits before lambda.Start. Its last words are in
		// the output, which the pipe may still be delivering.
		time.Sleep(50 * time.Millisecond)
		return nil, &FunctionError{
			Function:   f.name,
			Type:       "Runtime.ExitError",
			Message:    fmt.Sprintf("the runtime failed without reporting an error (HTTP 502 %.200q); did the bootstrap exit? last output:\n%s", body, f.out.tail()),
			StatusCode: status,
		}
	default:
		return nil, fmt.Errorf("invoke function %s: emulator answered HTTP %d: %.200s", f.name, status, body)
	}
}

// parseFunctionError recognises the runtime's error document: a JSON object
// with errorType and errorMessage and nothing but those and stackTrace. (A
// handler returning exactly such an object on success would be taken for a
// failure; the emulator gives no other sign.)
func parseFunctionError(body []byte) (*FunctionError, bool) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, false
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, false
	}
	_, hasType := fields["errorType"]
	_, hasMessage := fields["errorMessage"]
	if !hasType || !hasMessage {
		return nil, false
	}
	for k := range fields {
		if k != "errorType" && k != "errorMessage" && k != "stackTrace" {
			return nil, false
		}
	}
	var fe FunctionError
	if err := json.Unmarshal(body, &fe); err != nil {
		return nil, false
	}
	return &fe, true
}

// Close stops the emulator and the function's bootstrap, and waits for them.
// It is safe to call more than once, and concurrently with Invoke (which
// then fails).
func (f *Function) Close() error {
	f.closeOnce.Do(func() {
		f.mu.Lock()
		f.closed = true
		f.mu.Unlock()
		f.closeErr = f.stop()
		f.client.CloseIdleConnections()
	})
	return f.closeErr
}

// PIDs returns the process IDs of the emulator and of every process it
// started (the function's bootstrap once it was invoked), for a caller
// that measures them (peak memory in /proc/<pid>/status). Empty once the
// emulator has exited.
func (f *Function) PIDs() []int {
	select {
	case <-f.exited:
		return nil
	default:
	}
	pids := []int{f.cmd.Process.Pid}
	for _, c := range descendants(f.cmd.Process.Pid) {
		pids = append(pids, c.pid)
	}
	return pids
}

// stop kills the emulator and everything it started. The emulator runs the
// bootstrap in a process group of its own, so its children are found first
// and killed by name (PID and start time) after the emulator is gone.
func (f *Function) stop() error {
	pid := f.cmd.Process.Pid
	var children []proc
	select {
	case <-f.exited:
	default:
		children = descendants(pid)
		// The emulator shuts its runtime down on SIGTERM; give it a moment,
		// then kill its whole group.
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-f.exited:
		case <-time.After(closeGrace):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-f.exited
		}
	}
	for _, c := range children {
		c.kill()
	}
	deadline := time.Now().Add(closeGrace)
	for _, c := range children {
		for c.alive() {
			if time.Now().After(deadline) {
				return fmt.Errorf("close function %s: process %d is still running after SIGKILL", f.name, c.pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// tailWriter passes writes on to an optional writer and keeps the last bytes
// written, for error messages.
type tailWriter struct {
	mu   sync.Mutex
	next io.Writer
	buf  []byte
	max  int
}

// newTailWriter returns a tailWriter keeping max bytes.
func newTailWriter(next io.Writer, max int) *tailWriter {
	return &tailWriter{next: next, max: max}
}

// Write implements io.Writer; it never fails, so that a failing Log does
// not break the emulator's output pipe.
func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > w.max {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-w.max:]...)
	}
	if w.next != nil {
		_, _ = w.next.Write(p)
	}
	return len(p), nil
}

// tail returns the last lines kept.
func (w *tailWriter) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := string(w.buf)
	if len(w.buf) == w.max {
		// Drop the partial first line.
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
	}
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "(no output)"
	}
	return s
}

// LineWriter returns an io.Writer for Config.Log that calls fn once per line
// of output (without the newline), e.g. func(l string) { t.Log("postgres: " + l) }.
// A line is passed on once its newline arrives; a last line without one is
// not. It is safe for concurrent use. With t.Log, close the Function in
// t.Cleanup: once its Close returns, the function writes nothing more.
func LineWriter(fn func(line string)) io.Writer {
	return &lineWriter{fn: fn}
}

// lineWriter implements LineWriter.
type lineWriter struct {
	mu      sync.Mutex
	fn      func(string)
	partial []byte
}

// Write implements io.Writer.
func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.fn(strings.TrimSuffix(string(w.partial[:i]), "\r"))
		w.partial = w.partial[i+1:]
	}
	if len(w.partial) == 0 {
		w.partial = nil
	}
	return len(p), nil
}
