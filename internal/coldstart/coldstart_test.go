package coldstart

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/lambdaemu"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// functions are the rotation functions measured, and baseline a function
// that only calls lambda.Start (pkg/lambdaemu/testdata/echofn): the floor
// any Go function on this machine starts in, measured in the same run.
var functions = []string{"random-secret", "postgres-single-user", "postgres-multi-user", "mysql-single-user", "mysql-multi-user", "watch"}

const baseline = "baseline-echofn"

var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]string{}
)

// bootstraps builds the named functions (all of them and the baseline when
// none is named) as the release does (static, stripped, -tags
// lambda.norpc), for the host, once per test binary.
func bootstraps(tb testing.TB, names ...string) map[string]string {
	tb.Helper()
	if len(names) == 0 {
		names = append([]string{baseline}, functions...)
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	root, err := lambdaemu.ModuleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	if r := os.Getenv("ROTARY_COLDSTART_ROOT"); r != "" {
		// The functions of another checkout of the module (the commit
		// before a change, say), measured by this benchmark code in the
		// same run as this one's.
		root = r
	}
	if buildDir == "" {
		if buildDir, err = os.MkdirTemp("", "rotary-coldstart-"); err != nil {
			tb.Fatal(err)
		}
	}
	for _, name := range names {
		if built[name] != "" {
			continue
		}
		pkg := "./functions/" + name
		if name == baseline {
			pkg = "./pkg/lambdaemu/testdata/echofn"
		}
		out := filepath.Join(buildDir, name)
		cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w -buildid=", "-o", out, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("build %s: %v: %s", pkg, err, b)
		}
		built[name] = out
	}
	return built
}

// env is what Lambda gives a function, with a Secrets Manager endpoint
// that nothing listens on unless a test passes one: the trivial event
// below makes no call.
func env(tb testing.TB, name, endpoint string) []string {
	home := tb.TempDir()
	return []string{
		"HOME=" + home, "PATH=/usr/bin:/bin", "TZ=UTC",
		"AWS_REGION=us-east-1", "AWS_DEFAULT_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIAEXAMPLEEXAMPLE", "AWS_SECRET_ACCESS_KEY=example", "AWS_SESSION_TOKEN=example",
		"AWS_LAMBDA_FUNCTION_NAME=" + name, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128", "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/" + name, "_HANDLER=bootstrap", "LAMBDA_TASK_ROOT=" + home,
		"AWS_EC2_METADATA_DISABLED=true",
		"SECRETS_MANAGER_ENDPOINT=" + endpoint,
		"ROTARY_WATCH_SECRETS_MANAGER_ENDPOINT=" + endpoint,
	}
}

// trivial is an event every function answers without a call: an unknown
// step (the watch answers its own way, also without a call).
var trivial = []byte(`{"Step":"coldstartProbe","SecretId":"arn:aws:secretsmanager:us-east-1:123456789012:secret:coldstart","ClientRequestToken":"00000000-0000-0000-0000-000000000000"}`)

func TestRuntimeAPIStartsAndInvokes(t *testing.T) {
	bins := bootstraps(t, baseline, "random-secret")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range []string{baseline, "random-secret"} {
		var out bytes.Buffer
		p, err := Start(ctx, bins[name], env(t, name, "http://127.0.0.1:1"), &out)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		payload := trivial
		if name == baseline {
			payload = []byte(`{"echo":"hi"}`)
		}
		res, took, err := p.Runtime.Invoke(ctx, payload)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		hwm, err := p.PeakRSS()
		if err != nil {
			t.Fatal(err)
		}
		_ = p.Close()
		if name == baseline && (res.Error || !strings.Contains(string(res.Body), "hi")) {
			t.Errorf("%s answered %s (error %v), want the echo", name, res.Body, res.Error)
		}
		if name != baseline && (!res.Error || !strings.Contains(string(res.Body), "unknown rotation step")) {
			t.Errorf("%s answered %s (error %v), want the unknown-step error; output: %s", name, res.Body, res.Error, out.String())
		}
		if p.ReadyIn() <= 0 || took <= 0 || hwm <= 0 {
			t.Errorf("%s: ready in %v, invoked in %v, VmHWM %d: want positive figures", name, p.ReadyIn(), took, hwm)
		}
	}
}

// BenchmarkColdStart execs each function binary against the minimal
// Runtime API: ready-ms is exec to its first GET /next, first-invoke-ms
// the first (trivial) invocation, hwm-MB the peak resident set after it.
// Each iteration is a new process. Read each against baseline-echofn.
func BenchmarkColdStart(b *testing.B) {
	bins := bootstraps(b)
	for _, name := range append([]string{baseline}, functions...) {
		b.Run(name, func(b *testing.B) {
			payload := trivial
			if name == baseline {
				payload = []byte(`{"echo":"hi"}`)
			}
			e := env(b, name, "http://127.0.0.1:1")
			var ready, invoke, hwm []float64
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				p, err := Start(ctx, bins[name], e, nil)
				if err != nil {
					cancel()
					b.Fatal(err)
				}
				_, took, err := p.Runtime.Invoke(ctx, payload)
				if err != nil {
					b.Fatal(err)
				}
				h, _ := p.PeakRSS()
				ready, invoke, hwm = append(ready, ms(p.ReadyIn())), append(invoke, ms(took)), append(hwm, float64(h)/(1<<20))
				_ = p.Close()
				cancel()
			}
			b.ReportMetric(median(ready), "ready-ms")
			b.ReportMetric(median(invoke), "first-invoke-ms")
			b.ReportMetric(median(hwm), "hwm-MB")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkPeakRSSRotation runs a whole rotation of random-secret through
// the local Secrets Manager on a fresh process and reports its VmHWM then
// (the database types: see BenchmarkPeakRSSDatabaseRotation).
func BenchmarkPeakRSSRotation(b *testing.B) {
	bins := bootstraps(b)
	rotatePeak(b, bins["random-secret"], "random-secret", func(*testing.B, *secretsmanager.Client) string {
		return `{"apiKey":"initial-value-000000000000000000000000"}`
	})
}

// rotatePeak rotates a fresh secret (value from newValue) once per
// iteration, each on a new process of bootstrap, and reports the
// rotation's time and the process's VmHWM after it.
func rotatePeak(b *testing.B, bootstrap, name string, newValue func(*testing.B, *secretsmanager.Client) string, extraEnv ...string) {
	b.Helper()
	var (
		mu  sync.Mutex
		cur *Process
	)
	peak(b, bootstrap, name, func(ctx context.Context, client *secretsmanager.Client, srv *smlocal.Server) func(*Process, *bytes.Buffer) {
		out, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(fmt.Sprintf("peak/%s-%d-%d", name, time.Now().UnixNano(), seq.Add(1))), SecretString: aws.String(newValue(b, client))})
		if err != nil {
			b.Fatal(err)
		}
		return func(p *Process, log *bytes.Buffer) {
			mu.Lock()
			cur = p
			mu.Unlock()
			if _, err := client.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: out.ARN, RotationLambdaARN: aws.String("arn:aws:lambda:us-east-1:123456789012:function:" + name)}); err != nil {
				b.Fatal(err)
			}
			r, err := srv.WaitRotation(ctx, aws.ToString(out.ARN))
			if err != nil || r.State != smlocal.RotationSucceeded {
				b.Fatalf("rotation: %v %s; function output: %s", err, r.Err, log.String())
			}
		}
	}, func(ctx context.Context, ev smlocal.Event) error {
		mu.Lock()
		p := cur
		mu.Unlock()
		body, _ := json.Marshal(ev)
		res, _, err := p.Runtime.Invoke(ctx, body)
		if err != nil {
			return err
		}
		if res.Error {
			return fmt.Errorf("%s", res.Body)
		}
		return nil
	}, extraEnv...)
}

// invokePeak invokes a new process of bootstrap once per iteration with
// the event prepare returns (which must succeed) and reports the
// invocation's time and the process's VmHWM after it: the functions that
// rotate nothing (the credential issuer, the watch).
func invokePeak(b *testing.B, bootstrap, name string, prepare func(*testing.B, *secretsmanager.Client) []byte, extraEnv ...string) {
	b.Helper()
	peak(b, bootstrap, name, func(ctx context.Context, client *secretsmanager.Client, _ *smlocal.Server) func(*Process, *bytes.Buffer) {
		event := prepare(b, client)
		return func(p *Process, log *bytes.Buffer) {
			res, _, err := p.Runtime.Invoke(ctx, event)
			if err != nil || res.Error {
				b.Fatalf("invoke: %v %s; function output: %s", err, res.Body, log.String())
			}
		}
	}, nil, extraEnv...)
}

// peak runs one fresh process of bootstrap per iteration against a local
// Secrets Manager (whose rotations invoke calls): next prepares the
// iteration (before the process starts) and returns what to run on it;
// peak reports that run's time and the process's VmHWM, RssAnon and
// RssFile after it.
func peak(b *testing.B, bootstrap, name string, next func(context.Context, *secretsmanager.Client, *smlocal.Server) func(*Process, *bytes.Buffer), invoke func(context.Context, smlocal.Event) error, extraEnv ...string) {
	b.Helper()
	if invoke == nil {
		invoke = func(context.Context, smlocal.Event) error { return fmt.Errorf("%s rotates nothing", name) }
	}
	srv, err := smlocal.New(smlocal.Options{
		Retry:   smlocal.RetryPolicy{Attempts: 1},
		Invoker: smlocal.InvokerFunc(func(ctx context.Context, _ string, ev smlocal.Event) error { return invoke(ctx, ev) }),
	})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Close()
	client := smlocal.NewClient(hs.URL)
	e := append(env(b, name, hs.URL), extraEnv...)
	ctx := context.Background()
	var hwm, took, anon, file []float64
	for b.Loop() {
		run := next(ctx, client, srv)
		var log bytes.Buffer
		p, err := Start(ctx, bootstrap, e, &log)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		run(p, &log)
		took = append(took, ms(time.Since(start)))
		h, err := p.PeakRSS()
		if err != nil {
			b.Fatal(err)
		}
		hwm = append(hwm, float64(h)/(1<<20))
		dump(b, p, &log)
		an, _ := p.Status("RssAnon")
		fi, _ := p.Status("RssFile")
		anon, file = append(anon, float64(an)/(1<<20)), append(file, float64(fi)/(1<<20))
		_ = p.Close()
	}
	b.ReportMetric(median(hwm), "hwm-MB")
	b.ReportMetric(median(anon), "anon-MB")
	b.ReportMetric(median(file), "file-MB")
	b.ReportMetric(median(took), "rotation-ms")
	b.ReportMetric(0, "ns/op")
}

// dump writes, when ROTARY_COLDSTART_DUMP names a directory, the
// function's output (with GODEBUG=inittrace=1,gctrace=1 in
// ROTARY_COLDSTART_ENV: each package init's allocations and each
// collection's heap sizes) and its /proc smaps after the run, to see
// where the peak goes.
func dump(b *testing.B, p *Process, log *bytes.Buffer) {
	dir := os.Getenv("ROTARY_COLDSTART_DUMP")
	if dir == "" {
		return
	}
	smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", p.Cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	base := filepath.Join(dir, fmt.Sprintf("%s-%d", strings.ReplaceAll(b.Name(), "/", "_"), seq.Add(1)))
	if err := os.WriteFile(base+".smaps", smaps, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(base+".log", log.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
