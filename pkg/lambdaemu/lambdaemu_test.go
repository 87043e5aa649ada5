package lambdaemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Built once by TestMain for every test.
var (
	emulator string // the aws-lambda-rie binary
	echoBoot string // testdata/echofn built as a bootstrap
	testRoot string // the module root
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		runHelper()
		return
	}
	os.Exit(runTests(m))
}

// runTests builds the emulator and the echo function, then runs the tests.
func runTests(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var err error
	if testRoot, err = ModuleRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "lambdaemu tests:", err)
		return 1
	}
	if emulator, err = EmulatorPath(ctx, testRoot); err != nil {
		fmt.Fprintln(os.Stderr, "lambdaemu tests:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "lambdaemu-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "lambdaemu tests:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if echoBoot, err = buildBootstrap(ctx, testRoot, "./pkg/lambdaemu/testdata/echofn", dir); err != nil {
		fmt.Fprintln(os.Stderr, "lambdaemu tests:", err)
		return 1
	}
	return m.Run()
}

// startEcho starts the echo function with extra environment and closes it
// when the test ends.
func startEcho(t testing.TB, env ...string) *Function {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var log io.Writer
	if testing.Verbose() {
		log = LineWriter(func(l string) { t.Log("echo: " + l) })
	}
	f, err := Start(ctx, Config{Name: "echo", Bootstrap: echoBoot, Emulator: emulator, Env: env, Log: log})
	if err != nil {
		t.Fatalf("start echo function: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("close echo function: %v", err)
		}
	})
	return f
}

// echoResponse is what testdata/echofn answers.
type echoResponse struct {
	Echo string            `json:"echo"`
	Env  map[string]string `json:"env"`
	PID  int               `json:"pid"`
}

// invokeEcho invokes f with req (marshalled to JSON) and decodes the answer.
func invokeEcho(t testing.TB, f *Function, req map[string]any) (echoResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// No t.Fatal here: tests call this from several goroutines.
	payload, err := json.Marshal(req)
	if err != nil {
		return echoResponse{}, fmt.Errorf("marshal request: %w", err)
	}
	out, err := f.Invoke(ctx, payload)
	if err != nil {
		return echoResponse{}, err
	}
	var resp echoResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return echoResponse{}, fmt.Errorf("decode echo response %.100q: %w", out, err)
	}
	return resp, nil
}

func TestInvokeEchoes(t *testing.T) {
	t.Parallel()
	f := startEcho(t)
	tests := []struct {
		name string
		echo string
	}{
		{"word", "hello"},
		{"empty", ""},
		{"unicode and quotes", `zażółć "gęślą" jaźń`},
		{"long", strings.Repeat("x", 64<<10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := invokeEcho(t, f, map[string]any{"echo": tt.echo})
			if err != nil {
				t.Fatalf("invoke: %v", err)
			}
			if resp.Echo != tt.echo {
				t.Errorf("echo = %.40q (%d bytes), want %.40q (%d bytes)", resp.Echo, len(resp.Echo), tt.echo, len(tt.echo))
			}
		})
	}
}

func TestInvokeFailures(t *testing.T) {
	t.Parallel()
	f := startEcho(t)
	tests := []struct {
		name        string
		req         map[string]any
		wantType    string
		wantMessage string
		wantStatus  int
		wantStack   bool
	}{
		{"handler error", map[string]any{"fail": "boom: field password is empty"}, "echoError", "boom: field password is empty", 200, false},
		{"panic", map[string]any{"panic": "kaboom"}, "string", "kaboom", 502, true},
		{"handler error after a panic", map[string]any{"fail": "again"}, "echoError", "again", 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := invokeEcho(t, f, tt.req)
			var fe *FunctionError
			if !errors.As(err, &fe) {
				t.Fatalf("invoke error = %v, want a *FunctionError", err)
			}
			if fe.Type != tt.wantType || fe.Message != tt.wantMessage || fe.StatusCode != tt.wantStatus {
				t.Errorf("FunctionError = {Type:%q Message:%q StatusCode:%d}, want {%q %q %d}",
					fe.Type, fe.Message, fe.StatusCode, tt.wantType, tt.wantMessage, tt.wantStatus)
			}
			if got := len(fe.StackTrace) > 0; got != tt.wantStack {
				t.Errorf("has stack trace = %v, want %v", got, tt.wantStack)
			}
			if fe.Function != "echo" || !strings.Contains(fe.Error(), tt.wantMessage) {
				t.Errorf("Error() = %q, want it to name function echo and the message", fe.Error())
			}
		})
	}
}

func TestPanicRestartsBootstrap(t *testing.T) {
	t.Parallel()
	f := startEcho(t)
	before, err := invokeEcho(t, f, map[string]any{"echo": "one"})
	if err != nil {
		t.Fatalf("first invoke: %v", err)
	}
	if _, err := invokeEcho(t, f, map[string]any{"panic": "down"}); err == nil {
		t.Fatal("panicking invoke succeeded, want an error")
	}
	after, err := invokeEcho(t, f, map[string]any{"echo": "two"})
	if err != nil {
		t.Fatalf("invoke after the panic: %v", err)
	}
	if after.Echo != "two" {
		t.Errorf("echo after the panic = %q, want %q", after.Echo, "two")
	}
	if after.PID == before.PID {
		t.Errorf("bootstrap PID after the panic = %d, same as before; want a fresh process", after.PID)
	}
	if procAlive(before.PID) {
		t.Errorf("the bootstrap that panicked (PID %d) still runs", before.PID)
	}
}

func TestManyInvocations(t *testing.T) {
	t.Parallel()
	f := startEcho(t)
	// A rotation makes four invocations per attempt; callers may also
	// invoke from several goroutines, which Invoke serializes.
	const goroutines, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	pids := make(chan int, goroutines*each)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				want := fmt.Sprintf("g%d-%d", g, i)
				resp, err := invokeEcho(t, f, map[string]any{"echo": want})
				if err != nil {
					errs <- err
					continue
				}
				if resp.Echo != want {
					errs <- fmt.Errorf("echo = %q, want %q", resp.Echo, want)
				}
				pids <- resp.PID
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(pids)
	for err := range errs {
		t.Error(err)
	}
	seen := map[int]bool{}
	for p := range pids {
		seen[p] = true
	}
	if len(seen) != 1 {
		t.Errorf("invocations ran in %d bootstrap processes, want 1 (a warm function)", len(seen))
	}
}

func TestEnvironmentReachesHandler(t *testing.T) {
	t.Setenv("LAMBDAEMU_TEST_PARENT_ONLY", "from-the-test-process")
	f := startEcho(t, "SECRETS_MANAGER_ENDPOINT=http://127.0.0.1:1/", "AWS_REGION=eu-west-1", "WITH_EQUALS=a=b=c")
	resp, err := invokeEcho(t, f, map[string]any{"env": []string{
		"SECRETS_MANAGER_ENDPOINT", "AWS_REGION", "AWS_DEFAULT_REGION", "WITH_EQUALS",
		"AWS_LAMBDA_FUNCTION_NAME", "LAMBDAEMU_TEST_PARENT_ONLY", "TZ",
	}})
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	want := map[string]string{
		"SECRETS_MANAGER_ENDPOINT":   "http://127.0.0.1:1/",
		"AWS_REGION":                 "eu-west-1", // Env wins over the default
		"AWS_DEFAULT_REGION":         "us-east-1",
		"WITH_EQUALS":                "a=b=c",
		"AWS_LAMBDA_FUNCTION_NAME":   "echo",
		"LAMBDAEMU_TEST_PARENT_ONLY": "", // not inherited
		"TZ":                         "UTC",
	}
	for k, v := range want {
		t.Run(k, func(t *testing.T) {
			if got := resp.Env[k]; got != v {
				t.Errorf("%s = %q in the handler, want %q", k, got, v)
			}
		})
	}
}

func TestCloseLeavesNoProcess(t *testing.T) {
	t.Parallel()
	f := startEcho(t)
	resp, err := invokeEcho(t, f, map[string]any{"echo": "x"})
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	emulatorPID := f.cmd.Process.Pid
	for _, pid := range []int{emulatorPID, resp.PID} {
		if !procAlive(pid) {
			t.Fatalf("process %d is not running before Close", pid)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for name, pid := range map[string]int{"emulator": emulatorPID, "bootstrap": resp.PID} {
		waitGone(t, name, pid)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if _, err := f.Invoke(context.Background(), []byte(`{}`)); !errors.Is(err, ErrClosed) {
		t.Errorf("Invoke after Close = %v, want ErrClosed", err)
	}
}

func TestCloseWhileInvoking(t *testing.T) {
	t.Parallel()
	f := startEcho(t)
	done := make(chan error, 1)
	go func() {
		_, err := invokeEcho(t, f, map[string]any{"sleepMillis": 10000})
		done <- err
	}()
	// Wait until the bootstrap runs (the emulator has a child).
	var kids []proc
	for deadline := time.Now().Add(10 * time.Second); len(kids) == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		kids = descendants(f.cmd.Process.Pid)
	}
	if len(kids) == 0 {
		t.Fatal("the emulator started no bootstrap within 10s")
	}
	begin := time.Now()
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-done; err == nil {
		t.Error("invoke interrupted by Close succeeded, want an error")
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("Close took %v while a handler was busy, want it prompt", d)
	}
	for _, k := range kids {
		waitGone(t, "bootstrap", k.pid)
	}
}

func TestInvokeTimeout(t *testing.T) {
	t.Parallel()
	f := startEcho(t, "AWS_LAMBDA_FUNCTION_TIMEOUT=1")
	before, err := invokeEcho(t, f, map[string]any{"echo": "before timeout"})
	if err != nil {
		t.Fatalf("invoke before the timeout: %v", err)
	}
	// The handler ignores its deadline, so only the emulator's timeout can
	// end the invocation.
	_, err = invokeEcho(t, f, map[string]any{"hangMillis": 3000})
	var fe *FunctionError
	if !errors.As(err, &fe) || fe.Type != "Sandbox.Timedout" {
		t.Fatalf("invoke past the timeout = %v, want a *FunctionError of type Sandbox.Timedout", err)
	}
	resp, err := invokeEcho(t, f, map[string]any{"echo": "after timeout"})
	if err != nil || resp.Echo != "after timeout" {
		t.Errorf("invoke after a timeout = (%q, %v), want the echo", resp.Echo, err)
	}
	if resp.PID == before.PID || procAlive(before.PID) {
		t.Errorf("after a timeout the bootstrap is PID %d, before it was %d (alive: %v); want a fresh one and the old one gone",
			resp.PID, before.PID, procAlive(before.PID))
	}
}

func TestBootstrapThatCrashesAtInit(t *testing.T) {
	t.Parallel()
	// A function whose main fails before lambda.Start (say, a missing
	// setting) must come back as an error naming the crash, every time.
	boot := t.TempDir() + "/bootstrap"
	script := "#!/bin/sh\necho 'config: PASSWORD_LENGTH must be a number' >&2\nexit 2\n"
	if err := os.WriteFile(boot, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := Start(context.Background(), Config{Name: "crasher", Bootstrap: boot, Emulator: emulator})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	for i := range 2 {
		_, err := f.Invoke(context.Background(), []byte(`{}`))
		var fe *FunctionError
		if !errors.As(err, &fe) {
			t.Fatalf("invoke %d = %v, want a *FunctionError", i, err)
		}
		if fe.Type != "Runtime.ExitError" || !strings.Contains(fe.Message, "PASSWORD_LENGTH must be a number") {
			t.Errorf("invoke %d error = %v, want type Runtime.ExitError and the bootstrap's last words", i, fe)
		}
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	notExec := t.TempDir() + "/bootstrap"
	if err := os.WriteFile(notExec, []byte("not a program"), 0o644); err != nil {
		t.Fatal(err)
	}
	exitsAtOnce := t.TempDir() + "/rie"
	if err := os.WriteFile(exitsAtOnce, []byte("#!/bin/sh\necho 'fatal: cannot listen' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no name", Config{Bootstrap: echoBoot, Emulator: emulator}, "Config.Name is empty"},
		{"no emulator", Config{Name: "x", Bootstrap: echoBoot}, "Config.Emulator is empty"},
		{"missing bootstrap", Config{Name: "x", Bootstrap: "/nonexistent/bootstrap", Emulator: emulator}, "Config.Bootstrap"},
		{"bootstrap not executable", Config{Name: "x", Bootstrap: notExec, Emulator: emulator}, "not an executable file"},
		{"bad env entry", Config{Name: "x", Bootstrap: echoBoot, Emulator: emulator, Env: []string{"NOEQUALS"}}, "not KEY=VALUE"},
		{"bad timeout", Config{Name: "x", Bootstrap: echoBoot, Emulator: emulator, Env: []string{"AWS_LAMBDA_FUNCTION_TIMEOUT=1.5"}}, "whole number of seconds"},
		{"emulator exits", Config{Name: "x", Bootstrap: echoBoot, Emulator: exitsAtOnce}, "fatal: cannot listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Start(context.Background(), tt.cfg)
			if err == nil {
				f.Close()
				t.Fatalf("Start succeeded, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Start error = %q, want it to contain %q", err, tt.want)
			}
			t.Logf("Start error: %v", err)
		})
	}
}

func TestParseFunctionError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want bool
	}{
		{"handler error", `{"errorMessage":"boom","errorType":"echoError"}`, true},
		{"panic with stack", `{"errorMessage":"x","errorType":"string","stackTrace":[]}`, true},
		{"ordinary object", `{"echo":"x"}`, false},
		{"error fields among others", `{"errorMessage":"m","errorType":"t","result":1}`, false},
		{"null", `null`, false},
		{"not json", `Task timed out after 1.00 seconds`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, got := parseFunctionError([]byte(tt.body)); got != tt.want {
				t.Errorf("parseFunctionError(%s) = %v, want %v", tt.body, got, tt.want)
			}
		})
	}
}

func TestModuleRoot(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(testRoot + "/pkg/lambdaemu/lambdaemu.go"); err != nil {
		t.Errorf("ModuleRoot() = %s, which does not hold pkg/lambdaemu: %v", testRoot, err)
	}
}

func TestBuildFunctionRejectsBadNames(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"", ".", "..", "../pkg/rotation", "a/b"} {
		t.Run(strconv.Quote(name), func(t *testing.T) {
			if _, err := BuildFunction(context.Background(), testRoot, name, t.TempDir()); err == nil || !strings.Contains(err.Error(), "functions/") {
				t.Errorf("BuildFunction(%q) error = %v, want one naming functions/", name, err)
			}
		})
	}
}

func TestColdStartAndLatency(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	f := startEcho(t)
	started := time.Since(begin)
	begin = time.Now()
	if _, err := invokeEcho(t, f, map[string]any{"echo": "cold"}); err != nil {
		t.Fatalf("first invoke: %v", err)
	}
	first := time.Since(begin)
	const n = 20
	begin = time.Now()
	for range n {
		if _, err := invokeEcho(t, f, map[string]any{"echo": "warm"}); err != nil {
			t.Fatalf("warm invoke: %v", err)
		}
	}
	t.Logf("Start (emulator answering): %v; first invoke (bootstrap init + invoke): %v; warm invoke: %v each over %d",
		started, first, time.Since(begin)/n, n)
}

// helperEnv, when set, makes the test binary a helper process that starts a
// function, prints the emulator's and the bootstrap's PIDs, and waits to be
// killed (TestParentDeathKillsFunction).
const helperEnv = "LAMBDAEMU_TEST_HELPER"

func runHelper() {
	f, err := Start(context.Background(), Config{Name: "echo", Bootstrap: os.Getenv("LAMBDAEMU_TEST_BOOTSTRAP"), Emulator: os.Getenv("LAMBDAEMU_TEST_EMULATOR")})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	out, err := f.Invoke(context.Background(), []byte(`{"echo":"x"}`))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	var resp echoResponse
	_ = json.Unmarshal(out, &resp)
	fmt.Printf("pids %d %d\n", f.cmd.Process.Pid, resp.PID)
	time.Sleep(time.Minute)
	os.Exit(1)
}

func TestParentDeathKillsFunction(t *testing.T) {
	t.Parallel()
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"=1", "LAMBDAEMU_TEST_BOOTSTRAP="+echoBoot, "LAMBDAEMU_TEST_EMULATOR="+emulator)
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	t.Cleanup(func() { _ = helper.Process.Kill(); _ = helper.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("read helper's PIDs: %v", err)
	}
	var emuPID, bootPID int
	if _, err := fmt.Sscanf(line, "pids %d %d", &emuPID, &bootPID); err != nil {
		t.Fatalf("helper said %q: %v", line, err)
	}
	// Kill the helper as a crashed or timed-out test would die: no Close.
	if err := helper.Process.Kill(); err != nil {
		t.Fatalf("kill helper: %v", err)
	}
	_ = helper.Wait()
	waitGone(t, "emulator", emuPID)
	waitGone(t, "bootstrap", bootPID)
}

// procAlive reports whether pid runs (a zombie does not count).
func procAlive(pid int) bool {
	p, ok := procOf(pid)
	return ok && p.alive()
}

// waitGone fails the test unless pid stops running within 5 seconds.
func waitGone(t *testing.T, name string, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); procAlive(pid); {
		if time.Now().After(deadline) {
			t.Errorf("%s process %d still runs", name, pid)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func BenchmarkInvoke(b *testing.B) {
	f := startEcho(b)
	payload := []byte(`{"echo":"bench"}`)
	ctx := context.Background()
	if _, err := f.Invoke(ctx, payload); err != nil { // cold start, not measured
		b.Fatalf("invoke: %v", err)
	}
	for b.Loop() {
		if _, err := f.Invoke(ctx, payload); err != nil {
			b.Fatalf("invoke: %v", err)
		}
	}
}

func BenchmarkColdStart(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		f, err := Start(ctx, Config{Name: "echo", Bootstrap: echoBoot, Emulator: emulator})
		if err != nil {
			b.Fatalf("start: %v", err)
		}
		if _, err := f.Invoke(ctx, []byte(`{"echo":"cold"}`)); err != nil {
			b.Fatalf("invoke: %v", err)
		}
		if err := f.Close(); err != nil {
			b.Fatalf("close: %v", err)
		}
	}
}

func TestLineWriter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		writes []string
		want   []string
	}{
		{"one line", []string{"a\n"}, []string{"a"}},
		{"two lines in one write", []string{"a\nb\n"}, []string{"a", "b"}},
		{"line split across writes", []string{"he", "llo\nwor", "ld\n"}, []string{"hello", "world"}},
		{"crlf", []string{"a\r\n"}, []string{"a"}},
		{"empty line kept", []string{"\n"}, []string{""}},
		{"unterminated tail held back", []string{"a\nb"}, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			w := LineWriter(func(l string) { got = append(got, l) })
			for _, s := range tt.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("lines = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestStartRetriesWhenPortTaken is not parallel: it replaces pickPorts.
func TestStartRetriesWhenPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	port := taken.Addr().(*net.TCPAddr).Port
	calls := 0
	pickPorts = func(n int) ([]int, error) {
		calls++
		if calls == 1 {
			ports, err := freePorts(n)
			if err != nil {
				return nil, err
			}
			ports[n-1] = port // the runtime API port clashes
			return ports, nil
		}
		return freePorts(n)
	}
	t.Cleanup(func() { pickPorts = freePorts })
	f := startEcho(t)
	if calls != 2 {
		t.Errorf("Start picked ports %d times, want 2 (one clash, one retry)", calls)
	}
	if resp, err := invokeEcho(t, f, map[string]any{"echo": "retried"}); err != nil || resp.Echo != "retried" {
		t.Errorf("invoke after a retried start = (%q, %v), want the echo", resp.Echo, err)
	}
}

func TestBuildFunction(t *testing.T) {
	t.Parallel()
	// A module of its own with functions/hello, whose output says whether
	// the lambda.norpc tag was set.
	root := t.TempDir()
	files := map[string]string{
		"go.mod":                   "module example.com/buildtest\n\ngo 1.24\n",
		"functions/hello/main.go":  "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(tag) }\n",
		"functions/hello/norpc.go": "//go:build lambda.norpc\n\npackage main\n\nconst tag = \"norpc\"\n",
		"functions/hello/rpc.go":   "//go:build !lambda.norpc\n\npackage main\n\nconst tag = \"rpc\"\n",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	outDir := filepath.Join(t.TempDir(), "out")
	bin, err := BuildFunction(ctx, root, "hello", outDir)
	if err != nil {
		t.Fatalf("BuildFunction: %v", err)
	}
	if bin != filepath.Join(outDir, "bootstrap") {
		t.Errorf("BuildFunction path = %s, want %s", bin, filepath.Join(outDir, "bootstrap"))
	}
	out, err := exec.CommandContext(ctx, bin).Output()
	if err != nil {
		t.Fatalf("run the built bootstrap on this host: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != "norpc" {
		t.Errorf("bootstrap says %q, want \"norpc\" (built with -tags lambda.norpc)", got)
	}
	info, err := runGo(ctx, root, nil, "version", "-m", bin)
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath=true", "-tags=lambda.norpc"} {
		if !strings.Contains(info, want) {
			t.Errorf("build settings lack %s:\n%s", want, info)
		}
	}
	if _, err := BuildFunction(ctx, root, "missing", outDir); err == nil || !strings.Contains(err.Error(), "functions/missing") {
		t.Errorf("BuildFunction(missing) error = %v, want one naming ./functions/missing", err)
	}
}
