package smlocal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rotary-secrets/rotary/pkg/jsontext"
	"github.com/rotary-secrets/rotary/pkg/localauth"
)

// Options configure a Server. The zero value is usable: region us-east-1,
// account 123456789012, the wall clock, no invoker (RotateSecret's steps then
// fail), DefaultRetryPolicy, no logging and no state file.
type Options struct {
	Region    string
	AccountID string
	// Clock returns the current time; tests inject a fake one.
	Clock func() time.Time
	// Invoker runs rotation functions; nil makes every step fail.
	Invoker Invoker
	// CanInvoke, when set, says whether Secrets Manager may invoke a
	// rotation function: an error means it may not (in AWS: the function
	// does not exist, or its policy does not grant the principal
	// secretsmanager.amazonaws.com access). RotateSecret then answers
	// AccessDeniedException and changes nothing, and Tick records a failed
	// rotation instead of starting one. Nil accepts every function ARN. It
	// is called with the server's lock held, so it must return quickly and
	// must not call the Server.
	CanInvoke func(functionARN string) error
	// Retry says how often a failed rotation is retried; the zero value
	// means DefaultRetryPolicy.
	Retry RetryPolicy
	// Logger receives one line per operation and per rotation step, never a
	// secret value. Nil discards.
	Logger *slog.Logger
	// StateFile, when set, is loaded by New and rewritten atomically after
	// every change, so a restarted server loses nothing.
	StateFile string
	// TrailFile keeps the audit trail (one CloudTrail record per line,
	// appended, never rewritten); empty means StateFile with the suffix
	// .trail.jsonl, or no file without a StateFile.
	TrailFile string
	// Principals says who each local access key is, for the userIdentity of
	// the recorded CloudTrail events; a key it does not know is recorded as
	// the IAM user UnknownPrincipalName. Nil knows no key.
	Principals *localauth.Directory
}

// Server is a local Secrets Manager. It is an http.Handler; it is safe for
// concurrent use. The caller must Close it to stop background rotations.
type Server struct {
	opts   Options
	log    *slog.Logger
	now    func() time.Time
	ctx    context.Context // canceled by Close; background rotations use it
	cancel context.CancelFunc
	wg     sync.WaitGroup

	started   time.Time // for the sessions of assumed roles in the trail
	trail     *trail    // has its own lock, never held while taking mu
	trailFile string

	mu        sync.Mutex
	st        *state
	calls     map[string]int
	rotations map[string][]*rotationRun // by secret ARN
	running   map[*rotationRun]struct{} // the runs still running, so that a change checks only those
	closed    bool

	httpMu  sync.Mutex
	httpSrv *http.Server
}

// New returns a Server configured by opts, loading opts.StateFile if it exists.
func New(opts Options) (*Server, error) {
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.AccountID == "" {
		opts.AccountID = "123456789012"
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Retry == (RetryPolicy{}) {
		opts.Retry = DefaultRetryPolicy()
	}
	if opts.Retry.Attempts < 1 {
		return nil, fmt.Errorf("smlocal: Options.Retry.Attempts is %d; set it to 1 or more", opts.Retry.Attempts)
	}
	if opts.Invoker == nil {
		opts.Invoker = noInvoker{}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:      opts,
		log:       logger,
		now:       func() time.Time { return opts.Clock().UTC() },
		ctx:       ctx,
		cancel:    cancel,
		st:        &state{Secrets: map[string]*storedSecret{}},
		calls:     map[string]int{},
		rotations: map[string][]*rotationRun{},
		running:   map[*rotationRun]struct{}{},
	}
	s.started = s.now()
	trailFile := opts.TrailFile
	if trailFile == "" && opts.StateFile != "" {
		trailFile = strings.TrimSuffix(opts.StateFile, ".json") + ".trail.jsonl"
	}
	tr, err := newTrail(trailFile, logger)
	if err != nil {
		cancel()
		return nil, err
	}
	s.trail, s.trailFile = tr, trailFile
	if opts.StateFile != "" {
		st, err := loadState(opts.StateFile)
		if err != nil {
			cancel()
			_ = tr.close()
			return nil, err
		}
		if st != nil {
			s.st = st
		}
	}
	return s, nil
}

// Region is the region in the server's ARNs.
func (s *Server) Region() string { return s.opts.Region }

// Calls returns how many times each operation was called, failed calls included.
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// ResetCalls sets every operation counter back to zero.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.calls)
}

// ListenAndServe serves on addr (a loopback address; ":0" means
// 127.0.0.1 on a free port) in the background and returns the base URL to
// use as the SDK's BaseEndpoint. Close stops it.
func (s *Server) ListenAndServe(addr string) (string, error) {
	ln, err := ListenLoopback(addr)
	if err != nil {
		return "", fmt.Errorf("smlocal: %w", err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.httpMu.Lock()
	if s.httpSrv != nil {
		s.httpMu.Unlock()
		ln.Close()
		return "", errors.New("smlocal: ListenAndServe called twice; use one Server per listener")
	}
	s.httpSrv = srv
	s.httpMu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("smlocal: serve", "err", err)
		}
	}()
	return "http://" + ln.Addr().String(), nil
}

// ListenLoopback listens on addr, which must be a loopback address
// (127.0.0.1, [::1] or localhost; an empty host means 127.0.0.1, port 0 a
// free port): what listens there checks no credentials.
func ListenLoopback(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w; use host:port such as 127.0.0.1:0", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); (ip == nil && host != "localhost") || (ip != nil && !ip.IsLoopback()) {
		return nil, fmt.Errorf("listen address %q is not a loopback address; nothing there checks credentials, so use 127.0.0.1, [::1] or localhost", addr)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// Close cancels background rotations, waits for them to end and stops the
// listener started by ListenAndServe. Connections still busy after a short
// grace period are closed forcibly. It is safe to call twice.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	if err := s.trail.close(); err != nil {
		s.log.Error("smlocal: close the audit trail", "err", err)
	}
	s.httpMu.Lock()
	defer s.httpMu.Unlock()
	if s.httpSrv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.httpSrv.Shutdown(ctx); err != nil {
		s.log.Warn("smlocal: connections still open at close; closing them", "err", err)
		if err := s.httpSrv.Close(); err != nil {
			return fmt.Errorf("smlocal: close listener: %w", err)
		}
	}
	return nil
}

const targetPrefix = "secretsmanager."

type handlerFunc func(s *Server, body []byte) (any, error)

var operations = map[string]handlerFunc{
	"CreateSecret":             (*Server).createSecret,
	"DescribeSecret":           (*Server).describeSecret,
	"GetSecretValue":           (*Server).getSecretValue,
	"BatchGetSecretValue":      (*Server).batchGetSecretValue,
	"PutSecretValue":           (*Server).putSecretValue,
	"UpdateSecret":             (*Server).updateSecret,
	"UpdateSecretVersionStage": (*Server).updateSecretVersionStage,
	"ListSecretVersionIds":     (*Server).listSecretVersionIds,
	"ListSecrets":              (*Server).listSecrets,
	"DeleteSecret":             (*Server).deleteSecret,
	"RestoreSecret":            (*Server).restoreSecret,
	"TagResource":              (*Server).tagResource,
	"UntagResource":            (*Server).untagResource,
	"RotateSecret":             (*Server).rotateSecret,
	"CancelRotateSecret":       (*Server).cancelRotateSecret,
	"GetRandomPassword":        (*Server).getRandomPassword,
	"GetResourcePolicy":        (*Server).getResourcePolicy,
	"PutResourcePolicy":        (*Server).putResourcePolicy,
	"DeleteResourcePolicy":     (*Server).deleteResourcePolicy,
}

// ServeHTTP handles one Secrets Manager API call: POST / with
// X-Amz-Target: secretsmanager.<Operation> and a JSON body; and CloudTrail's
// LookupEvents over the calls it recorded (X-Amz-Target:
// CloudTrailTargetPrefix + LookupEvents). Every Secrets Manager call is
// recorded as a CloudTrail event (trail.go).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, targetPrefix)
	ctOp, isCloudTrail := cloudTrailOperation(target)
	if r.Method != http.MethodPost || (!ok && !isCloudTrail) {
		writeError(w, errorf(excUnknownOperation, "expected POST / with header X-Amz-Target: secretsmanager.<Operation>, got %s %s with X-Amz-Target %q", r.Method, r.URL.Path, target))
		return
	}
	requestID := newToken()
	w.Header().Set("X-Amzn-RequestId", requestID)
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, errorf(excSerialization, "read request body: %v", err))
		return
	}
	if isCloudTrail {
		start := time.Now()
		resp, err := s.cloudTrailOp(ctOp, body)
		out, ae := s.encode("cloudtrail."+ctOp, start, resp, err)
		reply(w, out, ae)
		return
	}
	s.mu.Lock()
	s.calls[op]++
	s.mu.Unlock()
	h, ok := operations[op]
	if !ok {
		s.log.Warn("smlocal: unknown operation", "op", op)
		writeError(w, errorf(excUnknownOperation, "operation %s is not supported by the local Secrets Manager; supported operations are the rotation ones listed in pkg/smlocal", op))
		return
	}
	at, start := s.now(), time.Now()
	resp, err := h(s, body)
	out, ae := s.encode(op, start, resp, err)
	// Recorded before the caller has its answer, so that a LookupEvents
	// it sends next finds the call, as CloudTrail would soon after.
	s.recordCall(r, op, at, requestID, body, out, ae)
	reply(w, out, ae)
}

// encode turns a handler's response or error into what reply writes.
func (s *Server) encode(op string, start time.Time, resp any, err error) ([]byte, *apiError) {
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{Type: excInternal, Message: "internal error: " + err.Error()}
		}
		s.log.Info("smlocal: call", "op", op, "error", ae.Type, "duration", time.Since(start))
		return nil, ae
	}
	out, err := json.Marshal(resp)
	if err != nil {
		return nil, &apiError{Type: excInternal, Message: "encode response: " + err.Error()}
	}
	s.log.Debug("smlocal: call", "op", op, "duration", time.Since(start))
	return out, nil
}

// reply writes an encoded response or an error.
func reply(w http.ResponseWriter, out []byte, ae *apiError) {
	if ae != nil {
		writeError(w, ae)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_, _ = w.Write(out)
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", e.Type)
	w.WriteHeader(e.status())
	out, _ := json.Marshal(map[string]string{"__type": e.Type, "message": e.Message})
	_, _ = w.Write(out)
}

// decode unmarshals a request body into dst.
func decode(body []byte, dst any) error {
	if len(body) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return errorf(excSerialization, "request body is not valid JSON for this operation: %s", jsontext.ErrorText(err))
	}
	return nil
}

// epoch marshals a time as the wire protocol's epoch seconds.
type epoch time.Time

func (e epoch) MarshalJSON() ([]byte, error) {
	t := time.Time(e)
	return []byte(fmt.Sprintf("%.3f", float64(t.UnixMilli())/1000)), nil
}

func ts(t time.Time) *epoch {
	if t.IsZero() {
		return nil
	}
	e := epoch(t)
	return &e
}

// Now is the server's clock (Options.Clock, in UTC): the time its
// rotations, versions and schedules are stamped with.
func (s *Server) Now() time.Time { return s.now() }
