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
	// Concurrency is how many instances of each function run, each its own
	// emulator and function process, as Lambda runs several execution
	// environments of a function at once: up to that many invocations of a
	// function run in parallel, the rest wait for a free instance. 0 means
	// 1. FunctionConcurrency sets it per function (by name).
	Concurrency         int
	FunctionConcurrency map[string]int
	// Log receives the functions' and emulators' output; nil discards.
	Log io.Writer
	// Clock is the local Secrets Manager's clock; nil means time.Now.
	Clock func() time.Time
	// Principals are local access keys and who they stand for (`rotary
	// local --principal`), besides the operator's (smlocal.LocalAccessKeyID)
	// and each function's (principals.go): the audit trail records them,
	// and a function URL (functionurl.go) accepts requests signed with
	// their secrets.
	Principals []localauth.Principal

	// Services are more AWS APIs served at Endpoint, by the signing name
	// of their requests (the service in the SigV4 credential scope), such
	// as "rds" and "elasticache" (internal/rdslocal,
	// internal/elasticachelocal). Every function gets
	// AWS_ENDPOINT_URL_<NAME> (the name in upper case) set to Endpoint for
	// each, so its SDK clients reach them as they reach Secrets Manager.
	Services map[string]http.Handler
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
	services   map[string]http.Handler
	principals *localauth.Directory

	mu        sync.Mutex
	functions map[string]*lambdaemu.Function // by ARN: the first instance
	pools     map[string]*pool               // by ARN: every instance
	urls      map[string]*functionURL        // by ARN: the function URLs served (functionurl.go)
}

// pool is the running instances of one function. An emulator runs one
// invocation at a time and refuses a second with HTTP 400, as one Lambda
// execution environment would; Lambda would run the invocation in another
// environment, and the pool does: each invocation takes an idle instance,
// and waits for one when every instance is busy.
type pool struct {
	instances []*lambdaemu.Function
	idle      chan *lambdaemu.Function
}

// acquire waits for an idle instance of the function, or for ctx to end;
// the caller must call release when its invocation is over.
func (s *Stack) acquire(ctx context.Context, arn string) (fn *lambdaemu.Function, release func(), err error) {
	s.mu.Lock()
	p, ok := s.pools[arn]
	s.mu.Unlock()
	if !ok {
		_, err := s.resolve(arn)
		return nil, nil, err
	}
	select {
	case fn := <-p.idle:
		return fn, func() { p.idle <- fn }, nil
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("wait for one of the %d instances of function %s to finish its invocation: %w", len(p.instances), arn, ctx.Err())
	}
}

// concurrency is how many instances of the function cfg runs.
func (cfg Config) concurrency(name string) int {
	if n := cfg.FunctionConcurrency[name]; n > 0 {
		return n
	}
	return max(cfg.Concurrency, 1)
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
	s := &Stack{functions: map[string]*lambdaemu.Function{}, pools: map[string]*pool{}, SNS: snslocal.New(Region, AccountID), services: cfg.Services,
		principals: directory(cfg.Functions, cfg.Principals)}
	if _, err := s.SNS.CreateTopic(WatchTopicName); err != nil {
		return nil, err
	}
	client := &http.Client{}
	// Each invocation runs on an idle instance of the function (see pool).
	var invoker smlocal.Invoker = smlocal.InvokerFunc(func(ctx context.Context, arn string, ev smlocal.Event) error {
		fn, release, err := s.acquire(ctx, arn)
		if err != nil {
			return fmt.Errorf("resolve endpoint of %s: %w", arn, err)
		}
		defer release()
		return (&smlocal.HTTPInvoker{Resolve: smlocal.StaticEndpoint(fn.Endpoint()), Client: client}).Invoke(ctx, arn, ev)
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
		env = append(env, s.servicesEnv()...)
		env = append(env, cfg.Env...)
		env = append(env, cfg.FunctionEnv[name]...)
		n := cfg.concurrency(name)
		p := &pool{idle: make(chan *lambdaemu.Function, n)}
		for i := 0; i < n; i++ {
			fn, err := lambdaemu.Start(ctx, lambdaemu.Config{
				Name: "rotary-" + name, Bootstrap: bootstrap, Emulator: rie, Env: env, Log: cfg.Log,
			})
			if err != nil {
				for _, started := range p.instances {
					_ = started.Close()
				}
				return nil, fmt.Errorf("start function %s (instance %d of %d): %w", name, i+1, n, err)
			}
			p.instances = append(p.instances, fn)
			p.idle <- fn
		}
		s.mu.Lock()
		s.functions[FunctionARN(name)] = p.instances[0]
		s.pools[FunctionARN(name)] = p
		s.mu.Unlock()
		if hasURL(name) {
			if err := s.startFunctionURL(name, s.principals, cfg.Log); err != nil {
				return nil, err
			}
		}
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

// Instances returns every running instance of a function, by its directory
// name (Config.Concurrency of them).
func (s *Stack) Instances(name string) []*lambdaemu.Function {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.pools[FunctionARN(name)]; ok {
		return append([]*lambdaemu.Function(nil), p.instances...)
	}
	return nil
}

// Function returns a running function by its directory name (its first
// instance).
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
	s.closeFunctionURLs()
	s.mu.Lock()
	pools := s.pools
	s.functions, s.pools = map[string]*lambdaemu.Function{}, map[string]*pool{}
	s.mu.Unlock()
	for _, p := range pools {
		for _, fn := range p.instances {
			errs = append(errs, fn.Close())
		}
	}
	return errors.Join(errs...)
}
