package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/rotary-secrets/rotary/internal/elasticachelocal"
	"github.com/rotary-secrets/rotary/internal/mysqlserver"
	"github.com/rotary-secrets/rotary/internal/mysqlserver/mysqltest"
	"github.com/rotary-secrets/rotary/internal/pgcluster"
	"github.com/rotary-secrets/rotary/internal/pgcluster/pgtest"
	"github.com/rotary-secrets/rotary/internal/rdslocal"
	"github.com/rotary-secrets/rotary/internal/redisserver"
)

// The database fixtures of this test binary, started once by TestMain before
// the stack (whose functions read their CA bundle at start-up):
//   - pg, a throwaway PostgreSQL cluster with TLS (pgCAFile is its test CA);
//   - maria, a throwaway MariaDB with TLS, with a database "orders" holding
//     one table, for the alternating users' grants;
//   - rdsAPI, the local RDS API (served at rds.URL, and at the stack's
//     endpoint) that postgres-multi-user asks for the host of an
//     RDS-managed master secret, and through which rds-master changes
//     master passwords; its Describe calls lag its Modify calls;
//   - redisFix, a throwaway redis-server with TLS and an ACL file, behind
//     ecAPI, the local ElastiCache API (served at the stack's endpoint),
//     as replication group "orders" (user group "orders-users").
//
// A test reaches a server through pg.Get(t) or maria.get(t), which fail the
// test under CI=true when the server could not start, and skip it otherwise.
var (
	pg       = pgtest.NewShared(pgcluster.Options{TLS: true})
	pgCAFile string
	maria    mariaFixture
	rdsAPI   = rdslocal.New()
	rds      *httptest.Server
	redisFix redisFixture
	ecAPI    = elasticachelocal.New()
)

// rdsDescribeLag is how long the local RDS's Describe calls keep showing a
// database as it was after a ModifyDB*, as RDS's eventually consistent API
// may.
const rdsDescribeLag = 300 * time.Millisecond

// redisFixture is the shared redis-server, or why it did not start.
type redisFixture struct {
	srv *redisserver.Server
	err error
}

func (r *redisFixture) caFile() string {
	if r.srv == nil {
		return ""
	}
	return r.srv.CAFile
}

// get returns the server; under CI=true a server that did not start fails
// the test, else it skips.
func (r *redisFixture) get(t testing.TB) *redisserver.Server {
	t.Helper()
	if r.err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("throwaway redis-server is required with CI=true: %v", r.err)
		}
		t.Skipf("skipping: no throwaway redis-server (set CI=true to make this a failure): %v", r.err)
	}
	return r.srv
}

// startRedis starts the redis-server and puts it behind the local
// ElastiCache API.
func startRedis() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := redisserver.Start(ctx, redisserver.Options{TLS: true, ACLFile: true})
	if err != nil {
		redisFix.err = err
		return
	}
	redisFix.srv = srv
	ecAPI.Delay = 100 * time.Millisecond
	ecAPI.AddReplicationGroup(elasticachelocal.ReplicationGroup{ID: "orders", Host: srv.Host, Port: srv.Port, UserGroupIDs: []string{"orders-users"}, Redis: srv.Admin})
	// Another group, on a server of its own: its users are not the
	// orders group's.
	ecAPI.AddReplicationGroup(elasticachelocal.ReplicationGroup{ID: "billing", Host: "billing.cache.test", Port: 6379, UserGroupIDs: []string{"billing-users"}})
}

// mariaFixture is the shared MariaDB server, or why it did not start.
type mariaFixture struct {
	srv    *mysqlserver.Server
	caFile string
	err    error
}

// get returns the server and the CA file that verifies it.
func (m *mariaFixture) get(t testing.TB) (*mysqlserver.Server, string) {
	t.Helper()
	if m.err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("throwaway MariaDB server is required with CI=true: %v", m.err)
		}
		t.Skipf("skipping: no throwaway MariaDB server (set CI=true to make this a failure): %v", m.err)
	}
	return m.srv, m.caFile
}

// startFixtures starts the database servers side by side and the local RDS
// API. The returned function stops all of them; call it even when a start
// failed.
func startFixtures() (stop func()) {
	rdsAPI.SetDescribeLag(rdsDescribeLag)
	rds = httptest.NewServer(rdsAPI)
	var (
		wg            sync.WaitGroup
		pgTB, mariaTB *fixtureTB
	)
	wg.Add(3)
	go func() { defer wg.Done(); startRedis() }()
	go func() { defer wg.Done(); pgTB = startFixture("postgres", startPostgres) }()
	go func() { defer wg.Done(); mariaTB = startFixture("mariadb", startMariaDB) }()
	wg.Wait()
	if mariaTB.err != nil {
		maria = mariaFixture{err: mariaTB.err}
	}
	return func() {
		mariaTB.close()
		pgTB.close()
		if err := pg.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "integration: stop the PostgreSQL cluster: %v\n", err)
		}
		rdsAPI.Wait()
		rds.Close()
		if redisFix.srv != nil {
			_ = redisFix.srv.Close()
		}
	}
}

func startPostgres(tb testing.TB) { pgCAFile = pg.Get(tb).CAFile }

func startMariaDB(tb testing.TB) {
	srv := mysqltest.Start(tb, mysqlserver.Options{TestCA: true})
	caFile := srv.CAFile
	for _, q := range []string{"CREATE DATABASE orders", "CREATE TABLE orders.t (id INT)", "INSERT INTO orders.t VALUES (1)"} {
		if _, err := srv.Root.Exec(q); err != nil {
			tb.Fatalf("set up database orders: %v", err)
		}
	}
	maria.srv, maria.caFile = srv, caFile
}

// fixtureTB lets a helper written for tests (one that takes a testing.TB)
// start a fixture once in TestMain. Fatal and Skip end the starting
// goroutine, as they would end a test, and record why; Cleanup functions run
// when the fixture closes. The embedded interface is nil: a method the
// helpers do not call panics rather than pretending to work.
type fixtureTB struct {
	testing.TB
	name string

	mu       sync.Mutex
	cleanups []func()
	err      error
}

// startFixture runs start with a fixtureTB and waits for it to return or
// give up.
func startFixture(name string, start func(testing.TB)) *fixtureTB {
	f := &fixtureTB{name: name}
	done := make(chan struct{})
	go func() {
		defer close(done)
		start(f)
	}()
	<-done
	return f
}

func (f *fixtureTB) Name() string { return "fixture/" + f.name }
func (f *fixtureTB) Helper()      {}

func (f *fixtureTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

func (f *fixtureTB) Log(args ...any)                 {}
func (f *fixtureTB) Logf(format string, args ...any) {}
func (f *fixtureTB) Error(args ...any)               { f.fail(fmt.Sprint(args...)) }
func (f *fixtureTB) Errorf(format string, args ...any) {
	f.fail(fmt.Sprintf(format, args...))
}
func (f *fixtureTB) Fatal(args ...any)                 { f.fail(fmt.Sprint(args...)); runtime.Goexit() }
func (f *fixtureTB) Fatalf(format string, args ...any) { f.Errorf(format, args...); runtime.Goexit() }
func (f *fixtureTB) Skip(args ...any)                  { f.Fatal(args...) }
func (f *fixtureTB) Skipf(format string, args ...any)  { f.Fatalf(format, args...) }

func (f *fixtureTB) fail(msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = errors.New(msg)
	}
}

// close runs the Cleanup functions, last registered first.
func (f *fixtureTB) close() {
	f.mu.Lock()
	fns := f.cleanups
	f.cleanups = nil
	f.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}
