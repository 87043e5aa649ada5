// Package coldstart measures a function binary's start on its own: a
// minimal Lambda Runtime API (the endpoints a Go function calls: next,
// response, error, init error) that the benchmarks run a built bootstrap
// against, with no emulator in between, so the times are the binary's.
package coldstart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Result is the answer of one invocation.
type Result struct {
	Body  []byte
	Error bool // posted to /error rather than /response
}

type invocation struct {
	id      string
	payload []byte
	sent    chan time.Time // when the event was written to the function
	done    chan Result
}

// Runtime is a minimal Runtime API serving one function process.
type Runtime struct {
	srv   *http.Server
	ln    net.Listener
	queue chan *invocation

	mu      sync.Mutex
	pending map[string]*invocation
	ready   chan time.Time // the first GET /next
	once    sync.Once
	seq     int
	initErr chan string
}

// NewRuntime starts a Runtime API on a loopback port.
func NewRuntime() (*Runtime, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Runtime{ln: ln, queue: make(chan *invocation), pending: map[string]*invocation{}, ready: make(chan time.Time, 1), initErr: make(chan string, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", r.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, req *http.Request) { r.answer(w, req, false) })
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", func(w http.ResponseWriter, req *http.Request) { r.answer(w, req, true) })
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		select {
		case r.initErr <- string(b):
		default:
		}
		w.WriteHeader(http.StatusAccepted)
	})
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// Addr is host:port, the value of AWS_LAMBDA_RUNTIME_API.
func (r *Runtime) Addr() string { return r.ln.Addr().String() }

// Close stops the server.
func (r *Runtime) Close() error { return r.srv.Close() }

func (r *Runtime) next(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	r.once.Do(func() { r.ready <- now })
	var inv *invocation
	select {
	case inv = <-r.queue:
	case <-req.Context().Done():
		return
	}
	h := w.Header()
	h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(5*time.Minute).UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:coldstart")
	h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
	h.Set("Content-Type", "application/json")
	_, _ = w.Write(inv.payload)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	inv.sent <- time.Now()
}

func (r *Runtime) answer(w http.ResponseWriter, req *http.Request, isErr bool) {
	id := req.PathValue("id")
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	inv := r.pending[id]
	delete(r.pending, id)
	r.mu.Unlock()
	if inv == nil {
		http.Error(w, "unknown request id", http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	inv.done <- Result{Body: b, Error: isErr}
}

// WaitReady returns when the function first asked for an event.
func (r *Runtime) WaitReady(ctx context.Context) (time.Time, error) {
	select {
	case t := <-r.ready:
		return t, nil
	case msg := <-r.initErr:
		return time.Time{}, fmt.Errorf("the function failed to start: %s", msg)
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

// Invoke hands payload to the function and waits for its answer; took is
// from the moment the event was written to the moment the answer arrived.
func (r *Runtime) Invoke(ctx context.Context, payload []byte) (res Result, took time.Duration, err error) {
	r.mu.Lock()
	r.seq++
	inv := &invocation{id: "req-" + strconv.Itoa(r.seq), payload: payload, sent: make(chan time.Time, 1), done: make(chan Result, 1)}
	r.pending[inv.id] = inv
	r.mu.Unlock()
	select {
	case r.queue <- inv:
	case <-ctx.Done():
		return Result{}, 0, fmt.Errorf("the function never asked for the event: %w", ctx.Err())
	}
	sent := <-inv.sent
	select {
	case res = <-inv.done:
		return res, time.Since(sent), nil
	case <-ctx.Done():
		return Result{}, 0, fmt.Errorf("no answer: %w", ctx.Err())
	}
}

// Process is a function binary running against a Runtime.
type Process struct {
	Runtime *Runtime
	Cmd     *exec.Cmd
	Started time.Time // just before exec
	Ready   time.Time // its first GET /next
}

// Start execs bootstrap with env (plus AWS_LAMBDA_RUNTIME_API) and waits
// until it asks for its first event. Output goes to out (nil discards it).
func Start(ctx context.Context, bootstrap string, env []string, out io.Writer) (*Process, error) {
	rt, err := NewRuntime()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bootstrap)
	cmd.Env = append(append([]string{}, env...), "AWS_LAMBDA_RUNTIME_API="+rt.Addr())
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout, cmd.Stderr = out, out
	p := &Process{Runtime: rt, Cmd: cmd}
	p.Started = time.Now()
	if err := cmd.Start(); err != nil {
		_ = rt.Close()
		return nil, err
	}
	if p.Ready, err = rt.WaitReady(ctx); err != nil {
		_ = p.Close()
		return nil, err
	}
	return p, nil
}

// ReadyIn is the time from exec to the first request for an event.
func (p *Process) ReadyIn() time.Duration { return p.Ready.Sub(p.Started) }

// PeakRSS returns the process's VmHWM (peak resident set) in bytes.
func (p *Process) PeakRSS() (int64, error) { return p.Status("VmHWM") }

// Status returns a size field of /proc/<pid>/status (VmHWM, RssAnon,
// RssFile, ...) in bytes.
func (p *Process) Status(field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no " + field + " in /proc status")
}

// Close kills the process and stops its Runtime API.
func (p *Process) Close() error {
	_ = p.Cmd.Process.Kill()
	_ = p.Cmd.Wait()
	return p.Runtime.Close()
}
