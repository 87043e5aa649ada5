package integration

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// A fleet is many secrets rotated at once through a stack that runs several
// instances of each function (localstack.Config.Concurrency), as Lambda
// runs several execution environments: TestFleet in every `make test`, and
// BenchmarkFleet at 1,000 and 10,000 secrets in `make bench`.

// fleetStack starts a stack of random-secret and postgres-single-user with
// instances of each, closed when tb ends.
func fleetStack(tb testing.TB, instances int) *localstack.Stack {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	startPostgres(tb)
	s, err := localstack.Start(ctx, localstack.Config{
		Functions:   []string{fnRandom, fnPostgresSingle},
		BinDir:      filepath.Join(tb.TempDir(), "bin"),
		Retry:       smlocal.RetryPolicy{Attempts: 1},
		Concurrency: instances,
		FunctionEnv: map[string][]string{fnPostgresSingle: caBundleEnv(pgCAFile)},
	})
	if err != nil {
		tb.Fatalf("start the fleet's stack: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	if got := len(s.Instances(fnRandom)); got != instances {
		tb.Fatalf("the stack runs %d instances of %s, want %d", got, fnRandom, instances)
	}
	return s
}

// fleet is the secrets of one run and, for PostgreSQL, their users.
type fleet struct {
	function string
	arns     []string
	users    []string
}

// newFleet creates n secrets for function (and, for postgres-single-user, n
// login roles on the shared cluster, dropped when tb ends).
func newFleet(tb testing.TB, s *localstack.Stack, function string, n int) *fleet {
	tb.Helper()
	f := &fleet{function: function, arns: make([]string, n)}
	values := make([]string, n)
	prefix := uniqueName("fleet")
	if function == fnPostgresSingle {
		db := postgresDB{pg.Get(tb)}
		f.users = make([]string, n)
		for i := range n {
			f.users[i] = fmt.Sprintf("%s_%d", prefix, i)
		}
		tb.Cleanup(func() {
			for chunk := range slices.Chunk(f.users, 500) {
				if err := db.c.DropRoles(context.Background(), chunk...); err != nil {
					tb.Errorf("drop the fleet's roles: %v", err)
				}
			}
		})
		for i := range n {
			values[i] = db.secretValue(tb, f.users[i], "Fleet-passw0rd-initial", nil)
		}
		if err := parallel(n, 2, func(i int) error {
			return db.c.CreateRole(context.Background(), f.users[i], "Fleet-passw0rd-initial", "")
		}); err != nil {
			tb.Fatalf("create the fleet's roles: %v", err)
		}
	} else {
		for i := range values {
			values[i] = initialRandom
		}
	}
	err := parallel(n, 4, func(i int) error {
		out, err := s.Client.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
			Name: aws.String(fmt.Sprintf("%s/%d", prefix, i)), SecretString: aws.String(values[i]),
		})
		if err != nil {
			return err
		}
		f.arns[i] = aws.ToString(out.ARN)
		return nil
	})
	if err != nil {
		tb.Fatalf("create the fleet's secrets: %v", err)
	}
	return f
}

// parallel runs do(0..n-1) on workers goroutines and returns the first error.
func parallel(n, workers int, do func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := do(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// fleetRun is what rotating a fleet measured.
type fleetRun struct {
	took      time.Duration
	latencies []time.Duration // per secret, RotateSecret to the rotation's end, sorted
	failures  []string        // "secret: error" of every rotation that did not succeed
}

func (r fleetRun) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[min(len(r.latencies)-1, int(p*float64(len(r.latencies))))]
}

// rotate rotates every secret of f with at most inflight rotations running
// at once: each worker starts one (RotateSecret) and waits for it to end.
func (f *fleet) rotate(s *localstack.Stack, inflight int) fleetRun {
	ctx := context.Background()
	lat := make([]time.Duration, len(f.arns))
	var mu sync.Mutex
	var run fleetRun
	fail := func(arn, msg string) {
		mu.Lock()
		run.failures = append(run.failures, arn+": "+msg)
		mu.Unlock()
	}
	t0 := time.Now()
	_ = parallel(len(f.arns), inflight, func(i int) error {
		start := time.Now()
		_, err := s.Client.RotateSecret(ctx, &secretsmanager.RotateSecretInput{
			SecretId: aws.String(f.arns[i]), RotationLambdaARN: aws.String(localstack.FunctionARN(f.function)),
		})
		if err != nil {
			fail(f.arns[i], err.Error())
			return nil
		}
		r, err := s.SM.WaitRotation(ctx, f.arns[i])
		lat[i] = time.Since(start)
		if err != nil {
			fail(f.arns[i], err.Error())
		} else if r.State != smlocal.RotationSucceeded {
			fail(f.arns[i], string(r.State)+": "+r.Err)
		}
		return nil
	})
	run.took = time.Since(t0)
	slices.Sort(lat)
	run.latencies = lat
	return run
}

// openConnections counts the sessions of the fleet's users on the cluster,
// waiting up to 2 seconds for backends that are still closing.
func (f *fleet) openConnections(tb testing.TB) int {
	tb.Helper()
	if len(f.users) == 0 {
		return 0
	}
	conn := postgresDB{pg.Get(tb)}.admin(tb)
	var n int
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE usename = ANY($1)", f.users).Scan(&n); err != nil {
			tb.Fatalf("count the fleet's sessions in pg_stat_activity: %v", err)
		}
		if n == 0 || time.Now().After(deadline) {
			return n
		}
	}
}

// stackPeakMB is the sum of the peak RSS (VmHWM) of the stack's processes:
// this process (the local Secrets Manager, and the benchmark's clients)
// and every emulator and function instance.
func stackPeakMB(s *localstack.Stack) float64 {
	kb := 0
	for _, pid := range stackPIDs(s) {
		kb += vmHWM(pid)
	}
	return float64(kb) / 1024
}

// resetStackPeak starts the stack's peak RSS afresh (Linux: writing 5 to
// /proc/PID/clear_refs resets VmHWM to the current RSS), so that each
// fleet reports its own peak, not the largest of every fleet before it.
func resetStackPeak(s *localstack.Stack) {
	for _, pid := range stackPIDs(s) {
		_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
	}
}

// stackPIDs is the processes of the benchmark's stack: this one (the local
// Secrets Manager and the fleet's driver) and every function instance's.
func stackPIDs(s *localstack.Stack) []int {
	pids := []int{os.Getpid()}
	for _, fn := range []string{fnRandom, fnPostgresSingle} {
		for _, inst := range s.Instances(fn) {
			pids = append(pids, inst.PIDs()...)
		}
	}
	return pids
}

func vmHWM(pid int) int {
	fh, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}

// TestFleet rotates 100 random-secret and 100 PostgreSQL single-user
// secrets at once through 4 instances of each function, 8 rotations in
// flight per function: every rotation succeeds, every new AWSCURRENT logs
// in and its old password is refused, and no session of the fleet's users
// is left open on the server.
func TestFleet(t *testing.T) {
	s := fleetStack(t, 4)
	var wg sync.WaitGroup
	fleets := []*fleet{newFleet(t, s, fnRandom, 100), newFleet(t, s, fnPostgresSingle, 100)}
	runs := make([]fleetRun, len(fleets))
	for i, f := range fleets {
		wg.Add(1)
		go func() { defer wg.Done(); runs[i] = f.rotate(s, 8) }()
	}
	wg.Wait()
	for i, f := range fleets {
		if len(runs[i].failures) > 0 {
			t.Errorf("%s: %d of %d rotations failed, first: %s", f.function, len(runs[i].failures), len(f.arns), runs[i].failures[0])
		}
		t.Logf("%s: %d secrets in %s, p50 %s, p99 %s", f.function, len(f.arns), runs[i].took.Round(time.Millisecond), runs[i].percentile(0.5), runs[i].percentile(0.99))
	}
	pgFleet := fleets[1]
	db := postgresDB{pg.Get(t)}
	for i, arn := range pgFleet.arns {
		out, err := s.Client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.login(context.Background(), aws.ToString(out.SecretString)); err != nil {
			t.Fatalf("%s: the new AWSCURRENT does not log in: %v", pgFleet.users[i], err)
		}
		if i%25 == 0 {
			old := db.secretValue(t, pgFleet.users[i], "Fleet-passw0rd-initial", nil)
			if err := db.login(context.Background(), old); err == nil {
				t.Fatalf("%s: the old password still logs in after the rotation", pgFleet.users[i])
			}
		}
	}
	if n := pgFleet.openConnections(t); n != 0 {
		t.Fatalf("%d sessions of the fleet's users are still open after every rotation ended", n)
	}
}

// fleetSizes are BenchmarkFleet's runs: random-secret at 1,000 and 10,000
// secrets, PostgreSQL single user at 1,000 (10,000 PostgreSQL rotations,
// three verified-TLS scram logins each, do not fit in make bench's 15
// minutes on 2 cores; ROTARY_FLEET_PG=10000 runs them).
func fleetSizes() map[string][]int {
	pgSizes := []int{1000}
	if v, err := strconv.Atoi(os.Getenv("ROTARY_FLEET_PG")); err == nil && v > 0 {
		pgSizes = []int{v}
	}
	return map[string][]int{fnRandom: {1000, 10000}, fnPostgresSingle: pgSizes}
}

// fleetInstances is the instances per function of the benchmark's stack,
// and fleetInflight the rotations in flight (twice as many, so an instance
// never waits for the local Secrets Manager between two steps).
const (
	fleetInstances = 4
	fleetInflight  = 8
)

// BenchmarkFleet rotates whole fleets at once (fleetSizes) through a stack
// of fleetInstances instances per function with fleetInflight rotations in
// flight, once per run (b.N is ignored: a fleet is the unit): throughput,
// latency percentiles per secret, failures (the benchmark fails on any),
// the stack's peak RSS, the sessions left open on PostgreSQL (it fails on
// any), and the time per secret, whose ratio between the 10,000 and the
// 1,000 fleet says whether a step grows with the number of secrets. After
// the 10,000 fleet it times `rotary status --all` over the stack's secrets.
//
// The fleets run once: five 10,000-secret fleets do not fit in `make
// bench`'s 15 minutes, so the Makefile runs this benchmark on its own with
// -count 1 (and the others BENCHCOUNT times), and the report's minimum,
// median and maximum are that one run.
func BenchmarkFleet(b *testing.B) {
	s := fleetStack(b, fleetInstances)
	sizes := fleetSizes()
	for _, function := range []string{fnRandom, fnPostgresSingle} {
		for _, n := range sizes[function] {
			b.Run(fmt.Sprintf("%s/%d", function, n), func(b *testing.B) {
				f := newFleet(b, s, function, n)
				runtime.GC()
				resetStackPeak(s)
				b.ResetTimer()
				run := f.rotate(s, fleetInflight)
				b.StopTimer()
				if len(run.failures) > 0 {
					b.Fatalf("%d of %d rotations failed, first: %s", len(run.failures), n, run.failures[0])
				}
				if open := f.openConnections(b); open != 0 {
					b.Fatalf("%d sessions of the fleet's users are still open after every rotation ended", open)
				}
				b.ReportMetric(float64(n)/run.took.Seconds(), "rotations/s")
				b.ReportMetric(float64(run.took.Microseconds())/1000/float64(n), "ms/secret")
				b.ReportMetric(float64(run.percentile(0.5).Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(run.percentile(0.9).Microseconds())/1000, "p90-ms")
				b.ReportMetric(float64(run.percentile(0.99).Microseconds())/1000, "p99-ms")
				b.ReportMetric(0, "failures")
				b.ReportMetric(0, "open-sessions")
				b.ReportMetric(stackPeakMB(s), "stack-hwm-MB")
				b.ReportMetric(0, "ns/op")
				if n >= 10000 {
					b.ReportMetric(statusAll(b, s).Seconds(), "status-all-s")
				}
			})
		}
	}
}

// statusAll runs `rotary status --all` against the stack, as an operator
// would, and returns how long it took; it fails unless every secret is listed.
func statusAll(b *testing.B, s *localstack.Stack) time.Duration {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "rotary")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/rotary").CombinedOutput(); err != nil {
		b.Fatalf("build rotary: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "status", "--all", "--json")
	cmd.Env = append(os.Environ(),
		"AWS_ENDPOINT_URL_SECRETS_MANAGER="+s.Endpoint, "AWS_ENDPOINT_URL_LAMBDA="+s.Endpoint,
		"AWS_ACCESS_KEY_ID="+smlocal.LocalAccessKeyID, "AWS_SECRET_ACCESS_KEY="+smlocal.LocalSecretAccessKey,
		"AWS_REGION="+localstack.Region)
	t0 := time.Now()
	out, err := cmd.Output()
	took := time.Since(t0)
	if err != nil {
		b.Fatalf("rotary status --all: %v", err)
	}
	if n := strings.Count(string(out), `"arn"`); n < 10000 {
		b.Fatalf("rotary status --all listed %d secrets, want at least 10,000", n)
	}
	return took
}
