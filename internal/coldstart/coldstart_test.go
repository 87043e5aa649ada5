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
	srv, err := smlocal.New(smlocal.Options{
		Retry: smlocal.RetryPolicy{Attempts: 1},
		Invoker: smlocal.InvokerFunc(func(ctx context.Context, _ string, ev smlocal.Event) error {
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
		}),
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
	i := 0
	for b.Loop() {
		i++
		out, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(fmt.Sprintf("peak/%s-%d-%d", name, time.Now().UnixNano(), i)), SecretString: aws.String(newValue(b, client))})
		if err != nil {
			b.Fatal(err)
		}
		var log bytes.Buffer
		p, err := Start(ctx, bootstrap, e, &log)
		if err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		cur = p
		mu.Unlock()
		start := time.Now()
		if _, err := client.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: out.ARN, RotationLambdaARN: aws.String("arn:aws:lambda:us-east-1:123456789012:function:" + name)}); err != nil {
			b.Fatal(err)
		}
		r, err := srv.WaitRotation(ctx, aws.ToString(out.ARN))
		if err != nil || r.State != smlocal.RotationSucceeded {
			b.Fatalf("rotation: %v %s; function output: %s", err, r.Err, log.String())
		}
		took = append(took, ms(time.Since(start)))
		h, err := p.PeakRSS()
		if err != nil {
			b.Fatal(err)
		}
		hwm = append(hwm, float64(h)/(1<<20))
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

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
