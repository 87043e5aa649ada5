package integration

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/recovery"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// The fault matrix: every credential type x every rotation step x every
// fault x {lifted within the retries, outlasting them}, each case a real
// rotation through the real function binaries under the emulator, with the
// fault injected where it happens in production:
//
//   - killed-before, killed-after: the invocation fails at the boundary
//     between Secrets Manager and Lambda, before the function ran or after
//     it ran to its end (so its effect, say a changed password or a moved
//     label, stays).
//   - db-unreachable: the case's TCP proxy between the function and the
//     database resets every new connection.
//   - db-refuses-*: the server refuses the secret's users (both users of an
//     alternating pair; never the master): a pg_hba.conf reject rule,
//     ALTER ROLE ... NOLOGIN, or MariaDB's ACCOUNT LOCK.
//   - sm-500-*, sm-throttling-*: the proxy between the functions and
//     Secrets Manager answers the step's call on the secret (createSecret:
//     PutSecretValue, setSecret and testSecret: GetSecretValue,
//     finishSecret: UpdateSecretVersionStage) with HTTP 500
//     InternalServiceError or 400 ThrottlingException, without forwarding
//     it (before) or after forwarding it, so that it took effect (after).
//     The functions keep the SDK's standard retryer (3 attempts, jittered
//     backoff: about a second per retry of a throttled call): these are
//     the retries a Secrets Manager fault is lifted within, so
//     "lifted-within" fails only the step's first such call (the SDK
//     retries it, after it took effect for "after"), and "outlasting"
//     fails every one, on every attempt of the rotation.
//   - timeout: the step's database connections (setSecret and testSecret
//     of a database type) or its Secrets Manager call stall until the
//     function's timeout (AWS_LAMBDA_FUNCTION_TIMEOUT, faultTimeoutSeconds)
//     ends the invocation.
//
// A fault holds during the faulted step's invocations only: "lifted-within"
// during the first attempt's (for a Secrets Manager error, its first call),
// "outlasting" during every attempt's, until the rotation has ended (the
// rotation retry policy is two attempts). Then, with every fault lifted,
// the invariants
// (checkInvariants): AWSCURRENT logs in, by a real login over verified TLS
// (random-secret: its fields are well formed); a rotation whose fault was
// lifted within the retries finished; a finished rotation made its version
// current, with a new value, and AWSPENDING is gone; an unfinished one is
// healed by the function's own recoverSecret, invoked through the Lambda
// Invoke API as `rotary unstick` does, after which AWSCURRENT logs in and a
// new rotation completes; for a single user every replaced password is
// refused; types that keep the old credential (alternating users, random)
// never lock AWSCURRENT out even before recovery; no version is lost; no
// secret value reaches the functions' logs.
//
// The matrix runs on stacks of its own (matrixStack): every case has its
// own secret and database users, so cases run in parallel; an emulator runs
// one invocation at a time, so cases of different functions overlap.

// Faults, as named in the cases.
const (
	faultKilledBefore    = "killed-before"
	faultKilledAfter     = "killed-after"
	faultDBUnreachable   = "db-unreachable"
	faultHBAReject       = "db-refuses-hba-reject"
	faultNoLogin         = "db-refuses-nologin"
	faultAccountLock     = "db-refuses-account-lock"
	faultSM500Before     = "sm-500-before"
	faultSM500After      = "sm-500-after"
	faultThrottledBefore = "sm-throttling-before"
	faultThrottledAfter  = "sm-throttling-after"
	faultTimeout         = "timeout"
)

// Liftings, as named in the cases.
const (
	liftedWithin = "lifted-within"
	outlasting   = "outlasting"
)

// faultTimeoutSeconds is the function timeout of the stack that runs the
// timeout cases; every other case runs with the suite's default, 2 minutes.
// It must leave the invocations that do not stall (recoverSecret's probes
// too) ample time on a loaded machine; each timeout case costs one or two
// of it. That stack's ROTARY_CONNECT_TIMEOUT (faultConnectTimeout) is
// longer, so that a stalled connection ends by the function's timeout, not
// its own.
const (
	faultTimeoutSeconds = 8
	faultConnectTimeout = "20s"
)

// matrixType is a credential type of the matrix.
type matrixType struct {
	function string
	db       func(*testing.T) database // nil: no downstream system
	// single is a type with one valid credential (a Restorer); multi
	// alternates two users with a master secret.
	single, multi bool
	// refusals are the ways its server refuses a user.
	refusals []string
}

var matrixTypes = []matrixType{
	{function: fnRandom},
	{function: fnPostgresSingle, db: postgresServer, single: true, refusals: []string{faultHBAReject, faultNoLogin}},
	{function: fnPostgresMulti, db: postgresServer, multi: true, refusals: []string{faultHBAReject, faultNoLogin}},
	{function: fnMySQLSingle, db: mariaDBServer, single: true, refusals: []string{faultAccountLock}},
	{function: fnMySQLMulti, db: mariaDBServer, multi: true, refusals: []string{faultAccountLock}},
}

var matrixSteps = []string{rotation.StepCreate, rotation.StepSet, rotation.StepTest, rotation.StepFinish}

// faultCase is one case of the matrix.
type faultCase struct {
	typ        matrixType
	step       string
	fault      string
	outlasting bool
}

func (c faultCase) name() string {
	lift := liftedWithin
	if c.outlasting {
		lift = outlasting
	}
	return c.typ.function + "/" + c.step + "/" + c.fault + "/" + lift
}

// mustRestore says whether the engine's restore must have kept a single
// user's AWSCURRENT working through the case's fault: finishSecret's move
// failed before it took effect while the database and every other call
// worked.
func (c faultCase) mustRestore() bool {
	return c.typ.single && c.step == rotation.StepFinish && (c.fault == faultSM500Before || c.fault == faultThrottledBefore)
}

func isRefusal(f string) bool {
	return f == faultHBAReject || f == faultNoLogin || f == faultAccountLock
}

func isDBFault(f string) bool { return f == faultDBUnreachable || isRefusal(f) }

// smOperation is the Secrets Manager call of a step that the SM faults hit.
func smOperation(step string) string {
	switch step {
	case rotation.StepCreate:
		return "PutSecretValue"
	case rotation.StepFinish:
		return "UpdateSecretVersionStage"
	}
	return "GetSecretValue"
}

// stallsDatabase says whether a timeout case stalls the database (the steps
// of a database type that connect to it) rather than Secrets Manager.
func (c faultCase) stallsDatabase() bool {
	return c.typ.db != nil && (c.step == rotation.StepSet || c.step == rotation.StepTest)
}

// Combinations left out of the matrix because they cannot apply, with why.
const (
	skipNoDatabase = "database faults of random-secret: it has no database"
	skipNoDBStep   = "database faults in createSecret and finishSecret: those steps do not connect to the database (createSecret builds the pending value from AWSCURRENT, finishSecret moves a label; a single user's failed finishSecret connects only to restore, which takes a second fault)"
)

// faultMatrix generates the cases, slowest first and the types interleaved
// (so that the first cases to run keep every emulator busy), and counts
// the combinations left out by reason.
func faultMatrix() (cases []faultCase, skipped map[string]int) {
	skipped = map[string]int{}
	for _, step := range matrixSteps {
		for _, fault := range []string{faultKilledBefore, faultKilledAfter, faultDBUnreachable, faultHBAReject, faultNoLogin, faultAccountLock,
			faultSM500Before, faultSM500After, faultThrottledBefore, faultThrottledAfter, faultTimeout} {
			for _, out := range []bool{false, true} {
				for _, typ := range matrixTypes {
					if isRefusal(fault) && typ.db != nil && !slices.Contains(typ.refusals, fault) {
						continue // another engine's way of refusing a user
					}
					if isDBFault(fault) && typ.db == nil {
						skipped[skipNoDatabase]++
						continue
					}
					if isDBFault(fault) && (step == rotation.StepCreate || step == rotation.StepFinish) {
						skipped[skipNoDBStep]++
						continue
					}
					cases = append(cases, faultCase{typ: typ, step: step, fault: fault, outlasting: out})
				}
			}
		}
	}
	sort.SliceStable(cases, func(i, j int) bool { return cases[i].cost() > cases[j].cost() })
	return cases, skipped
}

// cost ranks a case by how long its faulted invocations take.
func (c faultCase) cost() int {
	n := 1
	switch c.fault {
	case faultTimeout:
		n = 4
	case faultThrottledBefore, faultThrottledAfter:
		if c.outlasting {
			n = 3 // the SDK backs off about a second per retry of a throttled call
		}
	}
	if c.outlasting {
		n *= 2
	}
	return n
}

// faultMatrixSize is the number of cases faultMatrix generates, for the
// docs to cite (README.md and docs/reliability.md state it; so does
// TestFaultMatrixCount's log): change it, and them, with the table.
// minFaultCases is the least the matrix may have: the issue asks for 100.
const (
	faultMatrixSize = 320
	minFaultCases   = 100
)

// TestFaultMatrixCount states the matrix's size and breakdown (docs cite
// it), checks it is at least minFaultCases and faultMatrixSize, that every
// case has its own name, and that README.md and docs/reliability.md state
// the number.
func TestFaultMatrixCount(t *testing.T) {
	cases, skipped := faultMatrix()
	if len(cases) < minFaultCases {
		t.Fatalf("the fault matrix has %d cases, want at least %d", len(cases), minFaultCases)
	}
	if len(cases) != faultMatrixSize {
		t.Fatalf("the fault matrix has %d cases, but faultMatrixSize says %d: update it and the docs that state it (README.md, docs/reliability.md)", len(cases), faultMatrixSize)
	}
	names := map[string]bool{}
	byType, byFault, byStep, byLift := map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	for _, c := range cases {
		if names[c.name()] {
			t.Fatalf("two cases are named %s", c.name())
		}
		names[c.name()] = true
		parts := strings.Split(c.name(), "/")
		byType[parts[0]]++
		byStep[parts[1]]++
		byFault[parts[2]]++
		byLift[parts[3]]++
	}
	t.Logf("fault matrix: %d cases", len(cases))
	for _, m := range []struct {
		what string
		n    map[string]int
	}{{"type", byType}, {"step", byStep}, {"fault", byFault}, {"lifting", byLift}, {"left out", skipped}} {
		keys := make([]string, 0, len(m.n))
		for k := range m.n {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			t.Logf("  by %s: %s: %d", m.what, k, m.n[k])
		}
	}
	states := regexp.MustCompile(`\b` + strconv.Itoa(len(cases)) + `\b[^.]{0,40}\bcases\b`)
	for _, doc := range []string{filepath.Join("..", "README.md"), filepath.Join("..", "docs", "reliability.md")} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		if !states.Match(b) {
			t.Errorf("%s does not state the fault matrix's size: it must say \"%d cases\" (see TestFaultMatrixCount's log for the breakdown)", doc, len(cases))
		}
		if !strings.HasSuffix(doc, "reliability.md") {
			continue
		}
		for typ, n := range byType {
			if row := fmt.Sprintf("| `%s` | %d |", typ, n); !strings.Contains(string(b), row) {
				t.Errorf("%s does not state how many cases %s has: it must have the table row %q", doc, typ, row)
			}
		}
	}
}

// faultMatrixParallel is -test.parallel unless the command line sets it:
// the matrix's cases mostly wait (for their function's turn in its
// emulator, on the SDK's backoff, for a timeout), so GOMAXPROCS cases at a
// time would leave most emulators idle. raiseParallel runs in TestMain.
const faultMatrixParallel = 24

func raiseParallel() {
	if !flag.Parsed() {
		flag.Parse()
	}
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", strconv.Itoa(faultMatrixParallel))
	}
}

// TestFaultMatrix runs every case of the matrix (see the top of this file).
func TestFaultMatrix(t *testing.T) {
	env := &matrixEnv{hba: map[string]bool{}}
	start := time.Now()
	var ran, recovered, lockedOut sync.Map
	t.Cleanup(func() {
		if err := env.close(); err != nil {
			t.Errorf("stop the fault matrix's stacks: %v", err)
		}
		count := func(m *sync.Map) int {
			n := 0
			m.Range(func(any, any) bool { n++; return true })
			return n
		}
		if count(&ran) == 0 {
			return
		}
		// Every function has exited: its output is all in the log.
		env.mustNotBeLogged(t)
		t.Logf("fault matrix: %d cases ran in %v; %d rotations did not finish and were healed by recoverSecret, %d of them with AWSCURRENT refused until then; the emulator lost %d invocations after a timeout (invoked again)",
			count(&ran), time.Since(start).Round(time.Second), count(&recovered), count(&lockedOut), env.emulatorRetries())
	})
	cases, _ := faultMatrix()
	for _, c := range cases {
		t.Run(c.name(), func(t *testing.T) {
			t.Parallel()
			ran.Store(c.name(), true)
			out := env.run(t, c)
			if out.recovered {
				recovered.Store(c.name(), true)
			}
			if out.lockedOut {
				lockedOut.Store(c.name(), true)
			}
		})
	}
}

// matrixEnv is what the matrix's cases share: two stacks, started on first
// use, and the state of the database faults that touch the whole server.
type matrixEnv struct {
	normal, timeouts lazyStack

	pgMasterOnce sync.Once
	pgMaster     string // a role with CREATEROLE, password passwordWithQuotes

	hbaMu sync.Mutex
	hba   map[string]bool // users the shared cluster rejects now

	valuesMu sync.Mutex
	values   []string // every secret value the cases saw
}

type lazyStack struct {
	once sync.Once
	st   *matrixStack
	err  error
}

func (env *matrixEnv) stackFor(t *testing.T, c faultCase) *matrixStack {
	t.Helper()
	l, name, timeout, extra := &env.normal, "normal", 120, []string(nil)
	if c.fault == faultTimeout {
		l, name, timeout = &env.timeouts, "timeouts", faultTimeoutSeconds
		extra = []string{dbsecret.EnvConnectTimeout + "=" + faultConnectTimeout}
	}
	l.once.Do(func() { l.st, l.err = startMatrixStack(name, timeout, extra...) })
	if l.err != nil {
		t.Fatalf("start the fault matrix's %s stack: %v", name, l.err)
	}
	return l.st
}

func (env *matrixEnv) emulatorRetries() int64 {
	var n int64
	for _, l := range []*lazyStack{&env.normal, &env.timeouts} {
		if l.st != nil {
			n += l.st.emulatorRetries.Load()
		}
	}
	return n
}

func (env *matrixEnv) close() error {
	var errs []error
	for _, l := range []*lazyStack{&env.normal, &env.timeouts} {
		if l.st != nil {
			errs = append(errs, l.st.close())
		}
	}
	return errors.Join(errs...)
}

func (env *matrixEnv) remember(values ...string) {
	env.valuesMu.Lock()
	env.values = append(env.values, values...)
	env.valuesMu.Unlock()
}

// mustNotBeLogged fails if a password or API key of any value the cases
// saw appears in the matrix functions' output.
func (env *matrixEnv) mustNotBeLogged(t *testing.T) {
	t.Helper()
	var logs strings.Builder
	for _, l := range []*lazyStack{&env.normal, &env.timeouts} {
		if l.st != nil {
			logs.WriteString(l.st.logs.String())
		}
	}
	all := logs.String()
	if !strings.Contains(all, `"step":"finishSecret"`) {
		t.Error("the fault matrix functions' log has no finishSecret line: the check below would prove nothing")
	}
	seen := map[string]bool{}
	env.valuesMu.Lock()
	defer env.valuesMu.Unlock()
	for _, v := range env.values {
		for _, secret := range secretsOf(v) {
			if seen[secret] {
				continue
			}
			seen[secret] = true
			if rotationtest.Leaks(all, secret) {
				t.Errorf("a secret value appears in the fault matrix functions' log")
				return
			}
		}
	}
	if len(seen) == 0 {
		t.Error("the fault matrix saw no secret values to look for in the log")
	}
}

// matrixStack is a local stack running all five functions behind a fault
// proxy for Secrets Manager, with a fault at the Lambda boundary
// (WrapInvoker), both consulting the faultRun of the invocation's secret.
type matrixStack struct {
	*localstack.Stack
	name   string
	sm     *smProxy
	lambda *lambda.Client
	logs   syncBuffer
	bin    string

	mu   sync.Mutex
	runs map[string]*faultRun // by secret ARN

	emulatorRetries atomic.Int64 // see emulatorLostInvocation
}

// emulatorLostInvocation recognises a failure of the emulator, not of the
// function: when a function's handler returns at the very moment its
// timeout fires (a Go handler's context ends at the invocation's deadline,
// so a step stalled until then does), the Runtime Interface Emulator
// resets the runtime and then fails the next invocation at once with
// Sandbox.Failure "ErrGateCanceled", before the function sees it. Lambda
// would run that invocation in a fresh execution environment; the matrix
// invokes it once more, and counts how often.
func emulatorLostInvocation(msg string) bool {
	return strings.Contains(msg, "Sandbox.Failure") && strings.Contains(msg, "ErrGateCanceled")
}

// startMatrixStack starts a stack whose functions time out after timeout
// seconds. Its retry policy is two attempts with no backoff: one to meet a
// fault lifted within the retries, one more that it outlasts.
func startMatrixStack(name string, timeout int, extraEnv ...string) (*matrixStack, error) {
	ms := &matrixStack{name: name, runs: map[string]*faultRun{}}
	var err error
	ms.sm, err = startSMProxy(func(op, id string) *smFault {
		if r := ms.run(id); r != nil {
			return r.smFault(op)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ms.bin, err = os.MkdirTemp("", "rotary-faults-"+name+"-")
	if err != nil {
		_ = ms.sm.Close() // the start failed with its own error
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ms.Stack, err = localstack.Start(ctx, localstack.Config{
		Functions: []string{fnRandom, fnPostgresSingle, fnPostgresMulti, fnMySQLSingle, fnMySQLMulti},
		BinDir:    ms.bin,
		Retry:     smlocal.RetryPolicy{Attempts: 2},
		WrapInvoker: func(next smlocal.Invoker) smlocal.Invoker {
			return smlocal.InvokerFunc(func(ctx context.Context, arn string, ev smlocal.Event) error {
				run := func() error {
					err := next.Invoke(ctx, arn, ev)
					if err != nil && emulatorLostInvocation(err.Error()) {
						ms.emulatorRetries.Add(1)
						err = next.Invoke(ctx, arn, ev)
					}
					return err
				}
				if r := ms.run(ev.SecretId); r != nil {
					return r.around(ctx, ev, run)
				}
				return run()
			})
		},
		Log: &ms.logs,
		// Later entries win: this one replaces the stack's own endpoint.
		Env: append([]string{"SECRETS_MANAGER_ENDPOINT=" + ms.sm.URL, "AWS_LAMBDA_FUNCTION_TIMEOUT=" + strconv.Itoa(timeout)}, extraEnv...),
		FunctionEnv: map[string][]string{
			fnRandom:         {"ROTATE_FIELDS=apiKey:40:alnum,password"},
			fnPostgresSingle: caBundleEnv(pgCAFile),
			fnPostgresMulti:  caBundleEnv(pgCAFile),
			fnMySQLSingle:    caBundleEnv(maria.caFile),
			fnMySQLMulti:     caBundleEnv(maria.caFile),
		},
	})
	if err != nil {
		_ = ms.sm.Close() // the start failed with its own error
		os.RemoveAll(ms.bin)
		return nil, err
	}
	ms.sm.setUpstream(ms.Endpoint)
	ms.lambda = ms.LambdaClient()
	return ms, nil
}

// EnvFaultMatrixLogDir names a directory where the matrix writes its
// stacks' output (faults-<stack>.log) when it ends, for debugging a case.
const EnvFaultMatrixLogDir = "ROTARY_FAULT_MATRIX_LOG_DIR"

func (ms *matrixStack) close() error {
	err := errors.Join(ms.Stack.Close(), ms.sm.Close())
	if dir := os.Getenv(EnvFaultMatrixLogDir); dir != "" {
		err = errors.Join(err, os.WriteFile(filepath.Join(dir, "faults-"+ms.name+".log"), []byte(ms.logs.String()), 0o600))
	}
	os.RemoveAll(ms.bin)
	return err
}

func (ms *matrixStack) run(secretID string) *faultRun {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.runs[secretID]
}

func (ms *matrixStack) register(t *testing.T, arn string, r *faultRun) {
	ms.mu.Lock()
	ms.runs[arn] = r
	ms.mu.Unlock()
	t.Cleanup(func() {
		ms.mu.Lock()
		delete(ms.runs, arn)
		ms.mu.Unlock()
	})
}

// newSecret creates a secret and returns its ARN.
func (ms *matrixStack) newSecret(t *testing.T, value string) string {
	t.Helper()
	out, err := ms.Client.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String(uniqueName("faults/" + strings.ReplaceAll(t.Name(), "/", "-"))), SecretString: aws.String(value),
	})
	if err != nil {
		t.Fatalf("create secret: %v", err)
	}
	return aws.ToString(out.ARN)
}

// rotate calls RotateSecret with function and waits for the rotation to
// end; it returns the rotation's token and record.
func (ms *matrixStack) rotate(t *testing.T, function, arn string) (string, smlocal.Rotation) {
	t.Helper()
	out, err := ms.Client.RotateSecret(context.Background(), &secretsmanager.RotateSecretInput{
		SecretId: aws.String(arn), RotationLambdaARN: aws.String(localstack.FunctionARN(function)),
	})
	if err != nil {
		t.Fatalf("RotateSecret: %v", err)
	}
	// Other cases' invocations of the same function go first.
	r, err := ms.SM.WaitRotation(within(t, 10*time.Minute), arn)
	if err != nil {
		t.Fatalf("wait for the rotation: %v", err)
	}
	return aws.ToString(out.VersionId), r
}

// labels returns the versions that hold AWSCURRENT and AWSPENDING.
func (ms *matrixStack) labels(t *testing.T, arn string) (current, pending string) {
	t.Helper()
	d, err := ms.Client.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	if err != nil {
		t.Fatalf("describe the secret: %v", err)
	}
	for id, labels := range d.VersionIdsToStages {
		if slices.Contains(labels, rotation.LabelCurrent) {
			current = id
		}
		if slices.Contains(labels, rotation.LabelPending) {
			pending = id
		}
	}
	return current, pending
}

// value reads a version's value; ok is false for one that has none (the
// placeholder RotateSecret creates).
func (ms *matrixStack) value(t *testing.T, arn, id string) (string, bool) {
	t.Helper()
	out, err := ms.Client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionId: aws.String(id)})
	if err != nil {
		if strings.Contains(err.Error(), "ResourceNotFoundException") {
			return "", false
		}
		t.Fatalf("read version %s: %v", id, err)
	}
	return aws.ToString(out.SecretString), true
}

// versions lists every version, deprecated ones included.
func (ms *matrixStack) versions(t *testing.T, arn string) []string {
	t.Helper()
	var ids []string
	in := &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(arn), IncludeDeprecated: aws.Bool(true)}
	for {
		out, err := ms.Client.ListSecretVersionIds(context.Background(), in)
		if err != nil {
			t.Fatalf("list the versions: %v", err)
		}
		for _, v := range out.Versions {
			ids = append(ids, aws.ToString(v.VersionId))
		}
		if aws.ToString(out.NextToken) == "" {
			return ids
		}
		in.NextToken = out.NextToken
	}
}

// recoverSecret does what `rotary unstick` does: it invokes the secret's
// rotation function through the Lambda Invoke API with Step recoverSecret
// and the token of the unfinished rotation's version (AWSPENDING, when it
// is on another version than AWSCURRENT, else AWSCURRENT), and decodes the
// function's report.
func (ms *matrixStack) recoverSecret(t *testing.T, arn string) (recovery.Report, string) {
	t.Helper()
	d, err := ms.Client.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	current, pending := ms.labels(t, arn)
	token := current
	if pending != "" && pending != current {
		token = pending
	}
	payload, _ := json.Marshal(rotation.Event{Step: rotation.StepRecover, SecretID: arn, ClientRequestToken: token})
	in := &lambda.InvokeInput{FunctionName: d.RotationLambdaARN, Payload: payload}
	out, err := ms.lambda.Invoke(within(t, 10*time.Minute), in)
	if err == nil && out.FunctionError != nil && emulatorLostInvocation(string(out.Payload)) {
		ms.emulatorRetries.Add(1)
		out, err = ms.lambda.Invoke(within(t, 10*time.Minute), in)
	}
	if err != nil {
		t.Fatalf("invoke recoverSecret: %v", err)
	}
	if out.FunctionError != nil {
		// The function's error is scrubbed, but a test message shows no
		// more of it than its size and fingerprint.
		t.Fatalf("recoverSecret failed (%s): %d bytes, fingerprint %s", aws.ToString(out.FunctionError), len(out.Payload), rotationtest.Fingerprint(string(out.Payload)))
	}
	var r recovery.Report
	if err := json.Unmarshal(out.Payload, &r); err != nil || r.State == "" {
		t.Fatalf("recoverSecret answered without a report: %d bytes, fingerprint %s", len(out.Payload), rotationtest.Fingerprint(string(out.Payload)))
	}
	return r, string(out.Payload)
}

// caseOutcome is what a case found, for the matrix's summary.
type caseOutcome struct {
	recovered bool // the rotation did not finish; recoverSecret healed it
	lockedOut bool // ... and AWSCURRENT was refused until then
}

// run runs one case: a fresh secret (and users, behind a proxy of their
// own), one rotation under the fault, then the invariants.
func (env *matrixEnv) run(t *testing.T, c faultCase) caseOutcome {
	ms := env.stackFor(t, c)
	r := &faultRun{c: c, env: env, ms: ms}
	initial := initialRandom
	if c.typ.db != nil {
		r.db = c.typ.db(t)
		r.proxy = startDBProxy(t, serverAddr(r.db))
		user := uniqueName("fm")
		matrixCreateUser(t, r.db, user, passwordWithQuotes)
		r.users = []string{user}
		extra := map[string]any{"port": r.proxy.Port()}
		if c.typ.multi {
			r.users = append(r.users, user+"_clone")
			extra["masterarn"] = ms.newSecret(t, env.masterValue(t, r.db, r.proxy.Port()))
		}
		initial = r.db.secretValue(t, user, passwordWithQuotes, extra)
	}
	r.arn = ms.newSecret(t, initial)
	ms.register(t, r.arn, r)
	before := ms.versions(t, r.arn)

	r.arm()
	token, rot := ms.rotate(t, c.typ.function, r.arn)
	r.disarm()
	r.mustHaveBitten(t)
	t.Logf("the rotation %s after %d attempt(s): %s", rot.State, len(rot.Attempts), rot.Err)
	for _, a := range rot.Attempts {
		var steps []string
		for _, st := range a.Steps {
			ok := "ok"
			if st.Err != "" {
				ok = "failed"
			}
			steps = append(steps, fmt.Sprintf("%s %s in %v", st.Step, ok, st.Duration.Round(time.Millisecond)))
		}
		t.Logf("  attempt %d (started %s): %s", a.Number, a.Started.Format("15:04:05.000"), strings.Join(steps, ", "))
	}
	// Recovery must not lose the versions the rotation made either.
	before = append(before, ms.versions(t, r.arn)...)
	return r.checkInvariants(t, initial, token, rot, before)
}

// checkInvariants checks, with the fault lifted, what the matrix promises
// (see the top of this file).
func (r *faultRun) checkInvariants(t *testing.T, initial, token string, rot smlocal.Rotation, before []string) caseOutcome {
	t.Helper()
	var out caseOutcome
	ms, c := r.ms, r.c
	if !c.outlasting && rot.State != smlocal.RotationSucceeded {
		t.Fatalf("the fault was lifted within the retries, but the rotation %s: %s", rot.State, rot.Err)
	}
	cur, _ := ms.labels(t, r.arn)
	value, _ := ms.value(t, r.arn, cur)
	if rot.State == smlocal.RotationSucceeded && cur != token {
		t.Fatalf("the rotation succeeded, but AWSCURRENT is on version %s, not on its version %s", cur, token)
	}
	if cur == token {
		if value == initial {
			t.Fatal("AWSCURRENT is on the rotation's version, but its value is the old one")
		}
		r.mustWork(t, value, "AWSCURRENT, the finished rotation's new value")
	}
	if rot.State != smlocal.RotationSucceeded {
		out.recovered = true
		if err := r.works(t, value); err != nil {
			if !c.typ.single {
				t.Fatalf("after the failed rotation, AWSCURRENT does not work before any recovery, though %s keeps the old credential valid: %v", c.typ.function, err)
			}
			if c.mustRestore() {
				t.Fatalf("after finishSecret failed to move the label (%s), the engine must have restored AWSCURRENT's password, with the database and the other Secrets Manager calls working; AWSCURRENT is refused: %v", c.fault, err)
			}
			out.lockedOut = true
			t.Logf("AWSCURRENT is refused until recovery: %v", err)
		}
		rep, raw := ms.recoverSecret(t, r.arn)
		t.Logf("recoverSecret: state %s, plan %s, action %s: %s", rep.State, rep.Plan, rep.Action, rep.Summary)
		for _, v := range rep.Versions {
			t.Logf("  probed version %s %v: %s %s", v.VersionID, v.Labels, v.Outcome, v.Error)
		}
		var pending string
		cur, pending = ms.labels(t, r.arn)
		value, _ = ms.value(t, r.arn, cur)
		r.mustWork(t, value, fmt.Sprintf("AWSCURRENT after recoverSecret (state %s, plan %s)", rep.State, rep.Plan))
		if pending != "" && pending != cur {
			t.Fatalf("after recoverSecret (state %s, plan %s) AWSPENDING is still on version %s", rep.State, rep.Plan, pending)
		}
		if rep.Action != rep.Plan || rep.Changed != (rep.Plan != recovery.PlanNone) || rep.CurrentVersion != cur {
			t.Fatalf("recoverSecret's report says plan %s, action %s, changed %v, AWSCURRENT on %s; the secret has it on %s", rep.Plan, rep.Action, rep.Changed, rep.CurrentVersion, cur)
		}
		for _, id := range ms.versions(t, r.arn) {
			v, ok := ms.value(t, r.arn, id)
			for _, secret := range secretsOf(v) {
				if ok && rotationtest.Leaks(raw, secret) {
					t.Fatalf("recoverSecret's report holds a secret of version %s", id)
				}
			}
		}
		token2, rot2 := ms.rotate(t, c.typ.function, r.arn)
		if rot2.State != smlocal.RotationSucceeded {
			t.Fatalf("after recoverSecret, a new rotation %s: %s", rot2.State, rot2.Err)
		}
		if cur, _ = ms.labels(t, r.arn); cur != token2 {
			t.Fatalf("the new rotation succeeded, but AWSCURRENT is on version %s, not on its version %s", cur, token2)
		}
		value, _ = ms.value(t, r.arn, cur)
		r.mustWork(t, value, "AWSCURRENT after the new rotation")
	}
	if _, pending := ms.labels(t, r.arn); pending != "" {
		t.Fatalf("AWSPENDING is still on version %s after the rotation finished", pending)
	}
	after := ms.versions(t, r.arn)
	for _, id := range before {
		if !slices.Contains(after, id) {
			t.Fatalf("version %s, which existed before the rotation, is gone", id)
		}
	}
	var values []string
	for _, id := range after {
		v, ok := ms.value(t, r.arn, id)
		if !ok {
			continue
		}
		values = append(values, v)
		if c.typ.single && id != cur && password(v) != password(value) {
			mustBeRefused(t, r.db, r.direct(v), fmt.Sprintf("the replaced password of version %s", id))
		}
	}
	r.env.remember(values...)
	return out
}

func password(value string) string {
	var s struct{ Password string }
	_ = json.Unmarshal([]byte(value), &s)
	return s.Password
}

// secretsOf returns the secret fields of a value: its password and, for
// random-secret, its API key.
func secretsOf(value string) []string {
	var s struct{ Password, APIKey string }
	_ = json.Unmarshal([]byte(value), &s)
	var out []string
	for _, v := range []string{s.Password, s.APIKey} {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// works checks that a value is a working credential: for a database, a
// real login over verified TLS, straight to the server; for random-secret,
// well-formed fields.
func (r *faultRun) works(t *testing.T, value string) error {
	t.Helper()
	if r.db == nil {
		var v map[string]any
		if err := json.Unmarshal([]byte(value), &v); err != nil {
			return fmt.Errorf("not JSON")
		}
		key, _ := v["apiKey"].(string)
		pw, _ := v["password"].(string)
		if len(key) != 40 || strings.Trim(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" || pw == "" || v["clientId"] != "client-123" {
			return errors.New("its fields are not those of random-secret's secret (apiKey of 40 alphanumerics, a password, clientId kept)")
		}
		return nil
	}
	return r.db.login(within(t, loginTimeout), r.direct(value))
}

func (r *faultRun) mustWork(t *testing.T, value, what string) {
	t.Helper()
	if err := r.works(t, value); err != nil {
		t.Fatalf("%s does not work: %v", what, err)
	}
}

// direct is a value with the server's own port, for the test's logins.
func (r *faultRun) direct(value string) string {
	m, ok := r.db.(mariaDB)
	if !ok {
		return value // postgresDB logs in to the cluster whatever the port
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(value), &v); err != nil {
		return value
	}
	v["port"] = m.s.Port
	b, _ := json.Marshal(v)
	return string(b)
}

// faultRun is the fault of one case: it decides, for each invocation of the
// case's secret and each of its Secrets Manager calls, whether the fault
// holds, and applies and lifts it.
type faultRun struct {
	c     faultCase
	env   *matrixEnv
	ms    *matrixStack
	arn   string
	db    database // nil for random-secret
	proxy *dbProxy
	users []string // the secret's users: both of an alternating pair

	mu      sync.Mutex
	armed   bool
	attempt int           // of the rotation, counted by createSecret invocations
	smOn    bool          // a Secrets Manager fault holds now
	lifted  chan struct{} // closed when it is lifted
	hits    int           // invocations or calls the fault hit
	errs    []string      // what went wrong applying or lifting it
}

func (r *faultRun) arm() {
	r.mu.Lock()
	r.armed = true
	r.mu.Unlock()
}

// disarm lifts the fault for good: the rotation has ended.
func (r *faultRun) disarm() {
	r.mu.Lock()
	r.armed = false
	r.mu.Unlock()
}

func (r *faultRun) fail(format string, args ...any) {
	r.mu.Lock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// mustHaveBitten fails the case if the fault could not be applied or
// lifted, or never hit anything: a case that tested nothing.
func (r *faultRun) mustHaveBitten(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	hits, errs := r.hits, r.errs
	r.mu.Unlock()
	if r.proxy != nil {
		hits += r.proxy.faults()
	}
	if len(errs) > 0 {
		t.Fatalf("the fault could not be applied or lifted: %s", strings.Join(errs, "; "))
	}
	if hits == 0 {
		t.Fatal("the fault never hit: the case tested nothing")
	}
}

// around runs one invocation of the case's secret under the fault, if it
// holds for this step and attempt.
func (r *faultRun) around(ctx context.Context, ev smlocal.Event, run func() error) error {
	r.mu.Lock()
	if r.armed && ev.Step == rotation.StepCreate {
		r.attempt++
	}
	holds := r.armed && ev.Step == r.c.step && (r.c.outlasting || r.attempt == 1)
	r.mu.Unlock()
	if !holds {
		return run()
	}
	switch r.c.fault {
	case faultKilledBefore:
		r.hit()
		return fmt.Errorf("fault matrix: the %s invocation was lost before the function ran", ev.Step)
	case faultKilledAfter:
		err := run()
		r.hit()
		return fmt.Errorf("fault matrix: the function was killed after its %s ran to its end (it returned %v)", ev.Step, err)
	}
	r.apply(ctx)
	defer r.lift()
	return run()
}

func (r *faultRun) hit() {
	r.mu.Lock()
	r.hits++
	r.mu.Unlock()
}

// apply puts the fault in place for one invocation.
func (r *faultRun) apply(ctx context.Context) {
	switch {
	case r.c.fault == faultDBUnreachable:
		r.proxy.set(dbRefuse)
	case r.c.fault == faultTimeout && r.c.stallsDatabase():
		r.proxy.set(dbStall)
	case isRefusal(r.c.fault):
		r.refuse(ctx, true)
	default:
		r.mu.Lock()
		r.smOn, r.lifted = true, make(chan struct{})
		r.mu.Unlock()
	}
}

// lift takes the fault away after the invocation.
func (r *faultRun) lift() {
	switch {
	case r.c.fault == faultDBUnreachable || (r.c.fault == faultTimeout && r.c.stallsDatabase()):
		r.proxy.set(dbPass)
	case isRefusal(r.c.fault):
		r.refuse(context.Background(), false)
	default:
		r.mu.Lock()
		if r.smOn {
			r.smOn = false
			close(r.lifted)
		}
		r.mu.Unlock()
	}
}

// smFault is the fault a Secrets Manager call on the case's secret meets.
func (r *faultRun) smFault(op string) *smFault {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.smOn || op != smOperation(r.c.step) {
		return nil
	}
	f := &smFault{Lifted: r.lifted}
	switch r.c.fault {
	case faultSM500Before, faultSM500After:
		f.Kind = smInternalError
	case faultThrottledBefore, faultThrottledAfter:
		f.Kind = smThrottling
	default:
		f.Kind = smStall
	}
	if f.Kind != smStall && !r.c.outlasting && r.hits > 0 {
		return nil // lifted within the SDK's retries: the first call only
	}
	r.hits++
	f.After = r.c.fault == faultSM500After || r.c.fault == faultThrottledAfter
	return f
}

// refuse makes the server refuse the secret's users (on) or accept them
// again. On, it proves the refusal with a login of AWSCURRENT.
func (r *faultRun) refuse(ctx context.Context, on bool) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var err error
	switch r.c.fault {
	case faultHBAReject:
		err = r.env.rejectInHBA(ctx, r.db.(postgresDB), r.users, on)
	case faultNoLogin:
		err = r.db.(postgresDB).setLogin(ctx, r.users, !on)
	case faultAccountLock:
		err = r.db.(mariaDB).setLocked(ctx, r.users, on)
	}
	if err != nil {
		r.fail("%s (on=%v): %v", r.c.fault, on, err)
		return
	}
	if !on {
		return
	}
	out, gerr := r.ms.Client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(r.arn)})
	if gerr != nil {
		r.fail("read AWSCURRENT to prove the refusal: %v", gerr)
		return
	}
	lerr := r.db.login(ctx, r.direct(aws.ToString(out.SecretString)))
	if !serverRefused(lerr) {
		r.fail("%s: AWSCURRENT's login = %v, want the server to refuse it", r.c.fault, lerr)
		return
	}
	r.hit()
}

// rejectInHBA adds reject rules for users to the shared cluster's
// pg_hba.conf, or removes them, keeping every other case's.
func (env *matrixEnv) rejectInHBA(ctx context.Context, db postgresDB, users []string, on bool) error {
	env.hbaMu.Lock()
	defer env.hbaMu.Unlock()
	for _, u := range users {
		if on {
			env.hba[u] = true
		} else {
			delete(env.hba, u)
		}
	}
	var lines []string
	for u := range env.hba {
		lines = append(lines, fmt.Sprintf("host all %q 127.0.0.1/32 reject", u))
	}
	sort.Strings(lines)
	return db.c.PrependHBA(ctx, lines...)
}

// masterValue is an alternating pair's master secret, reached through the
// case's proxy (the master must name the users' server and port).
func (env *matrixEnv) masterValue(t *testing.T, db database, port int) string {
	t.Helper()
	extra := map[string]any{"port": port}
	switch d := db.(type) {
	case postgresDB:
		env.pgMasterOnce.Do(func() {
			name := uniqueName("fm_master")
			if err := d.createRoleNow(context.Background(), name, passwordWithQuotes, "CREATEROLE"); err != nil {
				t.Errorf("create the matrix's PostgreSQL master: %v", err)
				return
			}
			env.pgMaster = name
		})
		if env.pgMaster == "" {
			t.Fatal("no PostgreSQL master role")
		}
		return db.secretValue(t, env.pgMaster, passwordWithQuotes, extra)
	case mariaDB:
		return db.secretValue(t, d.s.AdminUser, d.s.AdminPassword, extra)
	}
	t.Fatalf("no master for %T", db)
	return ""
}

// serverAddr is where a database server listens.
func serverAddr(db database) string {
	switch d := db.(type) {
	case postgresDB:
		return fmt.Sprintf("%s:%d", d.c.Host, d.c.Port)
	case mariaDB:
		return d.s.Addr()
	}
	panic(fmt.Sprintf("no address for %T", db))
}

// matrixCreateUser creates a login user without holding a superuser
// session for the rest of the test (the matrix runs many cases at once,
// and the shared cluster allows 60 connections).
func matrixCreateUser(t *testing.T, db database, user, password string) {
	t.Helper()
	if p, ok := db.(postgresDB); ok {
		if err := p.createRoleNow(context.Background(), user, password, ""); err != nil {
			t.Fatalf("create role %s: %v", user, err)
		}
		return
	}
	db.createUser(t, user, password)
}
