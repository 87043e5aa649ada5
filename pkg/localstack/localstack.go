// Package localstack runs Rotary's local stack: the local Secrets Manager
// (pkg/smlocal) on loopback, and rotation function binaries under the Lambda
// Runtime Interface Emulator (pkg/lambdaemu), wired so that RotateSecret
// invokes the real functions over HTTP exactly as Secrets Manager invokes
// Lambda. The end-to-end tests, the demo and `rotary local` use it.
package localstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/lambdaemu"
	"github.com/rotary-secrets/rotary/pkg/localauth"
	"github.com/rotary-secrets/rotary/pkg/registry"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
	"github.com/rotary-secrets/rotary/pkg/snslocal"
)

// Where the local stack's ARNs say it runs.
const (
	Region    = "us-east-1"
	AccountID = "123456789012"
)

// Config says what the stack runs.
type Config struct {
	// ModuleRoot is the rotary module's directory; empty means found from
	// the working directory.
	ModuleRoot string
	// Functions are directory names under functions/ to build and run.
	Functions []string
	// BinDir is where the function binaries are built; empty means a
	// directory under the module's dist/local.
	BinDir string
	// Env is extra KEY=VALUE environment for every function; FunctionEnv
	// adds per function (by name).
	Env         []string
	FunctionEnv map[string][]string
	// Addr is the stack's listen address (Secrets Manager, Lambda Invoke
	// and the rotations feed share it); default 127.0.0.1:0 (a free port).
	// It must be a loopback address: nothing there checks credentials.
	Addr string
	// StateFile keeps the local Secrets Manager's state across restarts.
	StateFile string
	// Retry is the rotation retry policy; zero means one retry, no backoff.
	Retry smlocal.RetryPolicy
	// WrapInvoker, when set, wraps the HTTP invoker (tests inject failures).
	// It does not widen what may be invoked: RotateSecret naming a function
	// the stack does not run is refused with AccessDeniedException, as AWS
	// refuses a function it cannot invoke.
	WrapInvoker func(smlocal.Invoker) smlocal.Invoker
	// Log receives the functions' and emulators' output; nil discards.
	Log io.Writer
	// Clock is the local Secrets Manager's clock; nil means time.Now.
	Clock func() time.Time
	// Principals are local access keys and who they stand for in the
	// audit trail (`rotary local --principal`), besides the operator's
	// (smlocal.LocalAccessKeyID) and each function's (principals.go).
	Principals []localauth.Principal
}

// Stack is a running local stack. Close stops every process it started.
type Stack struct {
	// SM is the local Secrets Manager. Endpoint is the stack's one URL: it
	// serves the Secrets Manager API, the Lambda Invoke API for the stack's
	// functions (see ServeHTTP) and the rotations feed, so SDK clients of
	// both services can use it as their BaseEndpoint.
	SM       *smlocal.Server
	Endpoint string
	// Client is an SDK client for the local Secrets Manager.
	Client *secretsmanager.Client
	// SNS is the local SNS, served at Endpoint too (form-encoded POSTs),
	// with the watch's topic (WatchTopicARN) created.
	SNS *snslocal.Server

	httpSrv    *http.Server
	mux        *http.ServeMux
	principals *localauth.Directory

	mu        sync.Mutex
	functions map[string]*lambdaemu.Function
	busy      map[string]chan struct{} // one per function ARN: its invocation queue (holds one token)
}

// acquire waits for the function's turn, or for ctx to end; the caller must
// call release when its invocation is over.
func (s *Stack) acquire(ctx context.Context, arn string) (release func(), err error) {
	s.mu.Lock()
	q, ok := s.busy[arn]
	if !ok {
		q = make(chan struct{}, 1)
		s.busy[arn] = q
	}
	s.mu.Unlock()
	select {
	case q <- struct{}{}:
		return func() { <-q }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for function %s to finish its current invocation: %w", arn, ctx.Err())
	}
}

// FunctionARN is the ARN under which the stack serves a function.
func FunctionARN(name string) string {
	return fmt.Sprintf("arn:aws:lambda:%s:%s:function:rotary-%s", Region, AccountID, name)
}

// Start builds the functions, starts the local Secrets Manager and one
// emulator per function. On error it stops whatever it started.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	root := cfg.ModuleRoot
	if root == "" {
		if root, err = lambdaemu.ModuleRoot(); err != nil {
			return nil, err
		}
	}
	binDir := cfg.BinDir
	if binDir == "" {
		binDir = filepath.Join(root, "dist", "local")
	}
	retry := cfg.Retry
	if retry == (smlocal.RetryPolicy{}) {
		retry = smlocal.RetryPolicy{Attempts: 2}
	}
	s := &Stack{functions: map[string]*lambdaemu.Function{}, busy: map[string]chan struct{}{}, SNS: snslocal.New(Region, AccountID),
		principals: directory(cfg.Functions, cfg.Principals)}
	if _, err := s.SNS.CreateTopic(WatchTopicName); err != nil {
		return nil, err
	}
	httpInvoker := &smlocal.HTTPInvoker{Resolve: s.resolve, Client: &http.Client{}}
	// The emulator runs one invocation at a time and refuses a second with
	// HTTP 400, as one Lambda execution environment would; Lambda would run
	// another environment instead. Queue concurrent invocations per function.
	var invoker smlocal.Invoker = smlocal.InvokerFunc(func(ctx context.Context, arn string, ev smlocal.Event) error {
		release, err := s.acquire(ctx, arn)
		if err != nil {
			return err
		}
		defer release()
		return httpInvoker.Invoke(ctx, arn, ev)
	})
	if cfg.WrapInvoker != nil {
		invoker = cfg.WrapInvoker(invoker)
	}
	s.SM, err = smlocal.New(smlocal.Options{
		Region: Region, AccountID: AccountID, Invoker: invoker, Retry: retry,
		StateFile: cfg.StateFile, Clock: cfg.Clock, Principals: s.principals,
		// Secrets Manager can invoke only the functions the stack runs; the
		// check stays whatever WrapInvoker does with the invocations.
		CanInvoke: func(arn string) error { _, err := s.resolve(arn); return err },
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.listen(cfg.Addr); err != nil {
		return nil, err
	}
	s.Client = smlocal.NewClient(s.Endpoint, Region)
	if len(cfg.Functions) == 0 {
		return s, nil
	}
	rie, err := lambdaemu.EmulatorPath(ctx, root)
	if err != nil {
		return nil, err
	}
	for _, name := range cfg.Functions {
		bootstrap, err := lambdaemu.BuildFunction(ctx, root, name, filepath.Join(binDir, name))
		if err != nil {
			return nil, err
		}
		env := []string{
			"SECRETS_MANAGER_ENDPOINT=" + s.Endpoint,
			// Its own key, so that the audit trail names the function.
			"AWS_ACCESS_KEY_ID=" + FunctionAccessKeyID(name),
			"AWS_SECRET_ACCESS_KEY=" + functionSecretAccessKey(name),
			"AWS_REGION=" + Region,
			"AWS_EC2_METADATA_DISABLED=true",
		}
		if name == registry.Watch.Name {
			env = append(env, s.watchEnv()...)
		}
		env = append(env, cfg.Env...)
		env = append(env, cfg.FunctionEnv[name]...)
		fn, err := lambdaemu.Start(ctx, lambdaemu.Config{
			Name: "rotary-" + name, Bootstrap: bootstrap, Emulator: rie, Env: env, Log: cfg.Log,
		})
		if err != nil {
			return nil, fmt.Errorf("start function %s: %w", name, err)
		}
		s.mu.Lock()
		s.functions[FunctionARN(name)] = fn
		s.mu.Unlock()
	}
	return s, nil
}

func (s *Stack) resolve(functionARN string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn, ok := s.functions[functionARN]
	if !ok {
		known := make([]string, 0, len(s.functions))
		for arn := range s.functions {
			known = append(known, arn)
		}
		sort.Strings(known)
		return "", fmt.Errorf("no local function %s; this stack runs %s", functionARN, strings.Join(known, ", "))
	}
	return fn.Endpoint(), nil
}

// Function returns a running function by its directory name.
func (s *Stack) Function(name string) (*lambdaemu.Function, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn, ok := s.functions[FunctionARN(name)]
	return fn, ok
}

// Close stops the local Secrets Manager (waiting for running rotations to
// stop) and every function process. It is safe to call twice.
func (s *Stack) Close() error {
	var errs []error
	if s.SM != nil {
		errs = append(errs, s.SM.Close())
	}
	s.mu.Lock()
	srv := s.httpSrv
	s.httpSrv = nil
	s.mu.Unlock()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, srv.Close())
		}
		cancel()
	}
	s.mu.Lock()
	fns := s.functions
	s.functions = map[string]*lambdaemu.Function{}
	s.mu.Unlock()
	for _, fn := range fns {
		errs = append(errs, fn.Close())
	}
	return errors.Join(errs...)
}
