package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/registry"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
	"github.com/rotary-secrets/rotary/pkg/watch"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var exportRE = regexp.MustCompile(`export AWS_ENDPOINT_URL_SECRETS_MANAGER=(\S+)`)

// startLocal runs `rotary local` until the returned stop is called, and
// returns the endpoint it printed.
func startLocal(t *testing.T, state string, extra ...string) (endpoint string, stop localRun) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	args := append([]string{"local", "--state", state, "--addr", "127.0.0.1:0", "--functions", "random-secret"}, extra...)
	go func() {
		done <- run(ctx, args, &out, &errOut)
	}()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if m := exportRE.FindStringSubmatch(out.String()); m != nil && strings.Contains(out.String(), "Press Ctrl-C") {
			endpoint = m[1]
			break
		}
		select {
		case code := <-done:
			failOrSkip(t, "rotary local exited %d before it was ready: %s", code, errOut.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("rotary local not ready after 3m:\n%s\n%s", out.String(), errOut.String())
		}
	}
	var once sync.Once
	stop.output = out.String
	stop.stop = func() string {
		once.Do(func() {
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("rotary local exited %d: %s", code, errOut.String())
				}
			case <-time.After(30 * time.Second):
				t.Errorf("rotary local did not stop within 30s of the interrupt")
			}
		})
		return out.String()
	}
	t.Cleanup(func() { stop.stop() })
	return endpoint, stop
}

// localRun controls a running `rotary local`.
type localRun struct {
	output func() string // what it printed so far
	stop   func() string // interrupt it, wait, return everything it printed
}

// descendants returns the process IDs below this process.
func descendants(t *testing.T) map[int]string {
	t.Helper()
	parent := map[int]int{}
	cmd := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		parent[pid] = ppid
		cmd[pid] = s[:strings.LastIndexByte(s, ')')+1]
	}
	me := os.Getpid()
	out := map[int]string{}
	for pid := range parent {
		for p := parent[pid]; p > 1; p = parent[p] {
			if p == me {
				out[pid] = cmd[pid]
				break
			}
		}
	}
	return out
}

// TestLocal runs `rotary local`, rotates a secret through its exports,
// stops it as Ctrl-C does and checks that no process is left; a restart on
// the same state file still has the secret and its versions.
func TestLocal(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc to check for leftover processes")
	}
	before := descendants(t)
	state := filepath.Join(t.TempDir(), "state.json")
	const appKey, appARN = "AKIALOCALTESTAPP0001", "arn:aws:iam::123456789012:role/local-test-app"
	endpoint, stop := startLocal(t, state, "--principal", appKey+":app-secret="+appARN)
	if !strings.HasPrefix(endpoint, "http://127.0.0.1:") {
		t.Fatalf("endpoint %q is not on loopback", endpoint)
	}
	sm := smlocal.NewClient(endpoint)
	ctx := context.Background()
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("local/test"), SecretString: aws.String(`{"apiKey":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	r := rotaryAt(t, endpoint, "rotate", "local/test", "--wait", "--function", localstack.FunctionARN("random-secret"))
	if r.code != 0 {
		t.Fatalf("rotate on rotary local: exit %d: %s", r.code, r.errOut)
	}
	// With the printed exports and no flag, the CLI reaches the local stack.
	for _, m := range regexp.MustCompile(`export (\w+)=(\S+)`).FindAllStringSubmatch(stop.output(), -1) {
		t.Setenv(m[1], m[2])
	}
	t.Setenv("AWS_PROFILE", "")
	var cliOut, cliErr bytes.Buffer
	if code := run(ctx, []string{"revoke", "local/test", "--yes"}, &cliOut, &cliErr); code != 0 {
		t.Fatalf("revoke (Secrets Manager and Lambda) through the exports: exit %d: %s", code, cliErr.String())
	}
	// The application's read is in the audit trail under its principal
	// (a role's key is recorded as a session of the role), found through
	// the exported CloudTrail endpoint, and flagged when it is no reader.
	app := secretsmanager.New(secretsmanager.Options{Region: localstack.Region, BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(appKey, "app-secret", "")})
	if _, err := app.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("local/test")}); err != nil {
		t.Fatal(err)
	}
	cliOut.Reset()
	if code := run(ctx, []string{"audit", "local/test", "--readers", localstack.OperatorPrincipalARN()}, &cliOut, &cliErr); code != 1 ||
		!strings.Contains(cliOut.String(), "assumed-role/local-test-app/"+appKey) || strings.Count(cliOut.String(), "FLAGGED: read by") != 1 {
		t.Fatalf("audit through the exports: exit %d, want 1 with the application's read flagged:\n%s\n%s", code, cliOut.String(), cliErr.String())
	}
	// What a restart must keep: every version and label, after the revoke.
	cur, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("local/test")})
	if err != nil {
		t.Fatal(err)
	}
	out := stop.stop()
	for _, want := range []string{"AWS_ENDPOINT_URL_LAMBDA=" + endpoint, "AWS_ACCESS_KEY_ID=" + smlocal.LocalAccessKeyID, "AWS_REGION=" + localstack.Region, "Stopped; state kept in " + state} {
		if !strings.Contains(out, want) {
			t.Errorf("rotary local output lacks %q:\n%s", want, out)
		}
	}
	after := descendants(t)
	for pid, cmd := range after {
		if _, ok := before[pid]; !ok {
			t.Errorf("process %d %s is left after rotary local stopped", pid, cmd)
		}
	}

	endpoint2, _ := startLocal(t, state)
	again, err := smlocal.NewClient(endpoint2).DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("local/test")})
	if err != nil {
		t.Fatalf("after a restart on the same state file: %v", err)
	}
	if !reflect.DeepEqual(again.VersionIdsToStages, cur.VersionIdsToStages) || !aws.ToBool(again.RotationEnabled) {
		t.Fatalf("after a restart: versions %v, want %v with rotation on", again.VersionIdsToStages, cur.VersionIdsToStages)
	}
	// ... and the audit trail.
	if r := rotaryAt(t, endpoint2, "audit", "local/test", "--readers", localstack.OperatorPrincipalARN()+","+appARN); r.code != 0 ||
		!strings.Contains(r.out, "assumed-role/local-test-app/"+appKey) || !strings.Contains(r.out, "started a rotation") {
		t.Fatalf("audit after a restart: exit %d:\n%s\n%s", r.code, r.out, r.errOut)
	}
}

// TestLocalRunsTheWatchOnItsTick: rotary local runs the watch at every
// tick, at the local Secrets Manager's time, over the secrets its functions
// rotate; its lines go to the log file.
func TestLocalRunsTheWatchOnItsTick(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "local.log")
	endpoint, stop := startLocal(t, filepath.Join(dir, "state.json"), "--functions", "random-secret,watch", "--tick", "1s", "--log", logPath)
	defer stop.stop()
	if !strings.Contains(stop.output(), "the watch checks every secret") {
		t.Fatalf("rotary local does not say it runs the watch:\n%s", stop.output())
	}
	sm := smlocal.NewClient(endpoint)
	if _, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String("local/watched"), SecretString: aws.String(`{"apiKey":"watched-initial-key"}`)}); err != nil {
		t.Fatal(err)
	}
	if r := rotaryAt(t, endpoint, "rotate", "local/watched", "--wait", "--function", localstack.FunctionARN("random-secret")); r.code != 0 {
		t.Fatalf("rotate on rotary local: exit %d: %s", r.code, r.errOut)
	}
	check := regexp.MustCompile(`"msg":"` + watch.MsgCheck + `".*"SecretName":"local/watched"`)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, _ := os.ReadFile(logPath)
		if line := check.Find(b); line != nil {
			if !strings.Contains(string(b), `"msg":"`+watch.MsgSummary+`"`) {
				t.Fatal("a check line without the run's summary line")
			}
			if strings.Contains(string(b), "watched-initial-key") {
				t.Fatal("the log holds the secret's initial value")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no watch check of local/watched in the log after 2 minutes of 1s ticks:\n%s", b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestLocalServesTheIssuerURL: rotary local serves the credential issuer's
// function URL, prints it, and accepts requests signed with a --principal
// key, which reach the function as that principal; a malformed --principal
// is a usage error.
func TestLocalServesTheIssuerURL(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "local.log")
	const bob = "arn:aws:iam::123456789012:user/bob"
	endpoint, stop := startLocal(t, filepath.Join(dir, "state.json"), "--functions", registry.Issuer.Name, "--log", logPath,
		"--principal", "AKIABOBEXAMPLE000001:bob-secret="+bob,
		"--env", `ROTARY_ISSUER_ROLES={"dev":{"engine":"postgres","masterarn":"dev/master","baseUser":"app"}}`)
	if !regexp.MustCompile(`(?m)^  url +http://127\.0\.0\.1:\d+/ \(credential-issuer`).MatchString(stop.output()) {
		t.Fatalf("rotary local does not print the issuer's function URL:\n%s", stop.output())
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIABOBEXAMPLE000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "bob-secret")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv(envIssuerURL, "")
	r := rotaryAt(t, endpoint, "issue", "nope")
	if r.code != 1 || !strings.Contains(r.errOut, "HTTP 404") || !strings.Contains(r.errOut, `no role "nope"`) {
		t.Fatalf("rotary issue through rotary local: exit %d: %s%s", r.code, r.out, r.errOut)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-bobs")
	if r := rotaryAt(t, endpoint, "issue", "dev"); r.code != 1 || !strings.Contains(r.errOut, "HTTP 403") {
		t.Fatalf("rotary issue with a wrong secret: exit %d: %s", r.code, r.errOut)
	}
	stop.stop()
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"msg":"credential refused"`) || !strings.Contains(string(b), `"caller":"`+bob+`"`) {
		t.Errorf("the issuer's log has no refusal naming the caller %s:\n%s", bob, b)
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"local", "--principal", "short=arn:aws:iam::123456789012:user/x"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "--principal") {
		t.Errorf("a malformed --principal: exit %d: %s", code, errOut.String())
	}
}
