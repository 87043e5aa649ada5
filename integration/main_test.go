// Package integration holds Rotary's end-to-end tests: the real function
// binaries run under the AWS Lambda Runtime Interface Emulator, invoked over
// HTTP by the local Secrets Manager's RotateSecret, checked with the real SDK
// client and by logging in to real PostgreSQL and MariaDB servers.
package integration

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// The functions the stack runs, by directory name under functions/.
const (
	fnRandom         = "random-secret"
	fnPostgresSingle = "postgres-single-user"
	fnPostgresMulti  = "postgres-multi-user"
	fnMySQLSingle    = "mysql-single-user"
	fnMySQLMulti     = "mysql-multi-user"
	fnPGExpiring     = "postgres-expiring-user"
	fnMySQLExpiring  = "mysql-expiring-user"
	fnRedisACL       = "redis-acl"
	fnElastiCache    = "elasticache-user"
	fnRDSMaster      = "rds-master"
)

// expiringEnv is the expiring-user functions' lifetime: longer than any
// test, with the minimum lowered as rotary local does.
var expiringEnv = []string{"ROTARY_CREDENTIAL_TTL=24h", "ROTARY_CREDENTIAL_MIN_TTL=1s"}

// stack is shared by the tests of this binary, with the database fixtures
// (fixture_test.go): building and starting everything once keeps the suite
// fast.
var (
	stack   *localstack.Stack
	inject  injector
	fnLogs  syncBuffer
	started time.Duration
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

// run starts the database fixtures, then one stack running every function
// (each database function trusts its own server's test CA through
// ROTARY_CA_BUNDLE, read at start-up), runs the tests and stops everything
// it started, whatever the tests did.
func run(m *testing.M) int {
	raiseParallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	stopFixtures := sync.OnceFunc(startFixtures())
	defer stopFixtures()
	stopOnSignal(stopFixtures)
	binDir := mustTemp()
	defer os.RemoveAll(binDir)
	var err error
	stack, err = localstack.Start(ctx, localstack.Config{
		Functions:   []string{fnRandom, fnPostgresSingle, fnPostgresMulti, fnMySQLSingle, fnMySQLMulti, fnPGExpiring, fnMySQLExpiring, fnRedisACL, fnElastiCache, fnRDSMaster},
		BinDir:      binDir,
		Retry:       smlocal.RetryPolicy{Attempts: 3},
		WrapInvoker: inject.wrap,
		Log:         &fnLogs,
		FunctionEnv: map[string][]string{
			fnRandom:         {"ROTATE_FIELDS=apiKey:40:alnum,password"},
			fnPostgresSingle: caBundleEnv(pgCAFile),
			fnPostgresMulti:  append(caBundleEnv(pgCAFile), "AWS_ENDPOINT_URL_RDS="+rds.URL),
			fnMySQLSingle:    caBundleEnv(maria.caFile),
			fnMySQLMulti:     caBundleEnv(maria.caFile),
			fnPGExpiring:     append(caBundleEnv(pgCAFile), expiringEnv...),
			fnMySQLExpiring:  append(caBundleEnv(maria.caFile), expiringEnv...),
			fnRedisACL:       caBundleEnv(redisFix.caFile()),
			fnElastiCache:    caBundleEnv(redisFix.caFile()),
			// Without a login (the default): the function trusts RDS's
			// Describe calls, which the local RDS lags (fixture_test.go).
			fnRDSMaster: {"ROTARY_RDS_POLL_INTERVAL=100ms", "ROTARY_RDS_SETTLE=3s", "ROTARY_RDS_WAIT_TIMEOUT=30s"},
		},
		// The functions reach the local RDS and ElastiCache APIs at the
		// stack's endpoint (AWS_ENDPOINT_URL_RDS, _ELASTICACHE).
		Services: map[string]http.Handler{"rds": rdsAPI, "elasticache": ecAPI},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: cannot start the local stack: %v\n", err)
		return 1
	}
	started = time.Since(t0)
	code := m.Run()
	if err := stack.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: stop the local stack: %v\n", err)
	}
	return code
}

// stopOnSignal runs stop and exits when the binary is interrupted (Ctrl-C,
// a CI runner's SIGTERM): the database servers run as other OS users and
// would outlive it. The functions' processes die with it on their own.
func stopOnSignal(stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "integration: %v: stopping the database servers\n", s)
		stop()
		os.Exit(1)
	}()
}

// caBundleEnv is ROTARY_CA_BUNDLE for a server's test CA; none when the
// server did not start (its tests fail or skip on their own).
func caBundleEnv(caFile string) []string {
	if caFile == "" {
		return nil
	}
	return []string{dbsecret.EnvCABundle + "=" + caFile}
}

func mustTemp() string {
	d, err := os.MkdirTemp("", "rotary-integration-")
	if err != nil {
		panic(err)
	}
	return d
}

// injector fails chosen invocations at the boundary between Secrets Manager
// and Lambda, before or after the function ran, as a timeout or a lost
// response would.
type injector struct {
	mu sync.Mutex
	f  func(ctx context.Context, ev smlocal.Event, run func() error) error
}

func (in *injector) set(f func(ctx context.Context, ev smlocal.Event, run func() error) error) {
	in.mu.Lock()
	in.f = f
	in.mu.Unlock()
}

func (in *injector) wrap(next smlocal.Invoker) smlocal.Invoker {
	return smlocal.InvokerFunc(func(ctx context.Context, arn string, ev smlocal.Event) error {
		run := func() error { return next.Invoke(ctx, arn, ev) }
		in.mu.Lock()
		f := in.f
		in.mu.Unlock()
		if f != nil {
			return f(ctx, ev, run)
		}
		return run()
	})
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
