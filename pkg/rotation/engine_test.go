package rotation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/credentials/random"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

const leaky = "super-secret-value-that-must-not-leak"

// fakeType is a credential type whose behaviour each test sets.
type fakeType struct {
	set  func(ctx context.Context, req rotation.SetRequest) error
	test func(ctx context.Context, req rotation.TestRequest) error
}

func (f *fakeType) Validate(_ context.Context, v rotation.Version) error {
	_, err := v.Fields()
	return err
}

func (f *fakeType) Generate(_ context.Context, req rotation.GenerateRequest) (rotation.GenerateResponse, error) {
	pw, err := req.Passwords.Generate()
	return rotation.GenerateResponse{Changes: map[string]any{"password": pw}}, err
}

func (f *fakeType) Set(ctx context.Context, req rotation.SetRequest) error {
	if f.set != nil {
		return f.set(ctx, req)
	}
	return nil
}

func (f *fakeType) Test(ctx context.Context, req rotation.TestRequest) error {
	if f.test != nil {
		return f.test(ctx, req)
	}
	return nil
}

type harness struct {
	srv     *smlocal.Server
	client  *secretsmanager.Client
	handler *rotation.Handler
	logs    *bytes.Buffer
	logMu   *sync.Mutex
	events  []rotation.Event
	calls   []map[string]int // Secrets Manager calls of each event, by operation
	evMu    sync.Mutex
	puts    *recordingClient
}

// recordingClient is the real SDK client with PutSecretValue's rotation
// tokens recorded, to prove the engine passes the event's token on.
type recordingClient struct {
	*secretsmanager.Client
	mu  sync.Mutex
	rts []string
}

func (c *recordingClient) PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	c.mu.Lock()
	c.rts = append(c.rts, aws.ToString(in.RotationToken))
	c.mu.Unlock()
	return c.Client.PutSecretValue(ctx, in, opts...)
}

func (c *recordingClient) tokens() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.rts...)
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func newHarness(t testing.TB, cred rotation.Credential) *harness {
	t.Helper()
	h := &harness{logs: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	srv, err := smlocal.New(smlocal.Options{
		Retry: smlocal.RetryPolicy{Attempts: 1},
		Invoker: smlocal.InvokerFunc(func(ctx context.Context, _ string, ev smlocal.Event) error {
			e := rotation.Event{Step: ev.Step, SecretID: ev.SecretId, ClientRequestToken: ev.ClientRequestToken, RotationToken: ev.RotationToken}
			before := h.srv.Calls()
			err := h.handler.Handle(ctx, e)
			made := h.srv.Calls()
			for op, n := range before {
				made[op] -= n
				if made[op] == 0 {
					delete(made, op)
				}
			}
			h.evMu.Lock()
			h.events = append(h.events, e)
			h.calls = append(h.calls, made)
			h.evMu.Unlock()
			return err
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); hs.Close() })
	h.srv = srv
	h.client = smlocal.NewClient(hs.URL)
	h.puts = &recordingClient{Client: h.client}
	h.handler, err = rotation.NewHandler(cred, rotation.Options{
		Client: h.puts,
		Logger: slog.New(slog.NewJSONHandler(lockedWriter{h.logMu, h.logs}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) logText() string {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	return h.logs.String()
}

func (h *harness) create(t testing.TB, name, value string) string {
	t.Helper()
	out, err := h.client.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.ARN)
}

func (h *harness) rotate(t *testing.T, arn string) smlocal.Rotation {
	t.Helper()
	_, err := h.client.RotateSecret(context.Background(), &secretsmanager.RotateSecretInput{
		SecretId: aws.String(arn), RotationLambdaARN: aws.String(rotationtest.FunctionARN),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := h.srv.WaitRotation(ctx, arn)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSecretsManagerCallsPerStep pins how many Secrets Manager calls each
// step makes, counted at the local Secrets Manager while the step runs;
// docs/protocol.md states these numbers.
func TestSecretsManagerCallsPerStep(t *testing.T) {
	cfg, _ := random.ConfigFromEnv(func(string) string { return "" })
	cred, _ := random.New(cfg)
	h := newHarness(t, cred)
	arn := h.create(t, "calls", `{"password":"initial-password"}`)
	// The first rotation has no AWSPREVIOUS yet; count the second.
	for i := 1; i <= 2; i++ {
		if r := h.rotate(t, arn); r.State != smlocal.RotationSucceeded {
			t.Fatalf("rotation %d: %s %s", i, r.State, r.Err)
		}
	}
	h.evMu.Lock()
	events := append([]rotation.Event(nil), h.events[len(h.events)-4:]...)
	calls := append([]map[string]int(nil), h.calls[len(h.calls)-4:]...)
	h.evMu.Unlock()
	want := map[string]map[string]int{
		rotation.StepCreate: {"DescribeSecret": 1, "GetSecretValue": 1, "PutSecretValue": 1},
		rotation.StepSet:    {"DescribeSecret": 1, "GetSecretValue": 2},
		rotation.StepTest:   {"DescribeSecret": 1, "GetSecretValue": 1},
		rotation.StepFinish: {"DescribeSecret": 1, "UpdateSecretVersionStage": 1},
	}
	sum := 0
	for i, ev := range events {
		if fmt.Sprint(calls[i]) != fmt.Sprint(want[ev.Step]) {
			t.Errorf("%s made %v, want %v", ev.Step, calls[i], want[ev.Step])
		}
		sum += total(calls[i])
	}
	if sum != 10 {
		t.Errorf("a rotation made %d Secrets Manager calls, want 10", sum)
	}
	// Replayed now that the version is AWSCURRENT (a retry after finish),
	// each step makes one DescribeSecret and nothing else.
	h.srv.ResetCalls()
	for _, ev := range events {
		if err := h.handler.Handle(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.srv.Calls(); fmt.Sprint(got) != fmt.Sprint(map[string]int{"DescribeSecret": 4}) {
		t.Fatalf("steps for a version already AWSCURRENT made %v, want 4 DescribeSecret calls", got)
	}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func TestCreateSecretKeepsEveryFieldAndPassesRotationToken(t *testing.T) {
	h := newHarness(t, &fakeType{})
	initial := `{"engine":"postgres","host":"db.internal","port":5432,"username":"app","password":"old-password-1","extra":{"a":[1,2,"x<y&z"]},"flag":true,"nothing":null}`
	arn := h.create(t, "fields", initial)
	r := h.rotate(t, arn)
	if r.State != smlocal.RotationSucceeded {
		t.Fatalf("rotation %s: %s", r.State, r.Err)
	}
	out, err := h.client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	var old, cur map[string]any
	if err := json.Unmarshal([]byte(initial), &old); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(aws.ToString(out.SecretString)), &cur); err != nil {
		t.Fatal("AWSCURRENT is not JSON")
	}
	for k, v := range old {
		if k == "password" {
			if cur[k] == v {
				t.Error("password did not change")
			}
			continue
		}
		a, _ := json.Marshal(v)
		b, _ := json.Marshal(cur[k])
		if string(a) != string(b) {
			t.Errorf("field %q changed from %s to %s", k, a, b)
		}
	}
	if len(cur) != len(old) {
		t.Errorf("new value has %d fields, want %d", len(cur), len(old))
	}
	if r.RotationToken == "" || !strings.Contains(h.logText(), `"step":"createSecret"`) {
		t.Fatal("no rotation token or no createSecret log line")
	}
	if got := h.puts.tokens(); len(got) != 1 || got[0] != r.RotationToken {
		t.Errorf("PutSecretValue got rotation tokens %v, want [%s]", got, r.RotationToken)
	}
}

func TestFailuresAreScrubbedAndNamed(t *testing.T) {
	cases := []struct {
		name string
		set  func(ctx context.Context, req rotation.SetRequest) error
		want error
	}{
		{"error quoting the password", func(_ context.Context, req rotation.SetRequest) error {
			var v struct{ Password string }
			if err := req.Pending.Decode(&v); err != nil {
				return err
			}
			return errors.New("login failed with password " + v.Password + " and old " + leaky)
		}, nil},
		{"panic quoting the password", func(_ context.Context, req rotation.SetRequest) error {
			panic("cannot use " + leaky)
		}, rotation.ErrPanic},
		{"master secret read through the store", func(ctx context.Context, req rotation.SetRequest) error {
			m, err := req.Secrets.Current(ctx, "master")
			if err != nil {
				return err
			}
			return errors.New("master is " + m.Value)
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, &fakeType{set: c.set})
			h.create(t, "master", `{"username":"admin","password":"master-password-never-shown"}`)
			arn := h.create(t, "s", `{"username":"app","password":"`+leaky+`"}`)
			r := h.rotate(t, arn)
			if r.State != smlocal.RotationFailed {
				t.Fatalf("rotation %s, want failed", r.State)
			}
			all := r.Err + h.logText()
			for _, a := range r.Attempts {
				for _, s := range a.Steps {
					all += s.Err
				}
			}
			for _, secret := range []string{leaky, "master-password-never-shown"} {
				if strings.Contains(all, secret) {
					t.Fatalf("a secret value reached the error or the logs")
				}
			}
			_, pend, _ := func() (string, string, bool) {
				out, err := h.client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionStage: aws.String("AWSPENDING")})
				if err != nil {
					return "", "", false
				}
				return "", aws.ToString(out.SecretString), true
			}()
			var pv struct{ Password string }
			if err := json.Unmarshal([]byte(pend), &pv); err != nil {
				t.Fatal("AWSPENDING is not JSON")
			}
			if pv.Password == "" || strings.Contains(all, pv.Password) {
				t.Fatal("the pending password reached the error or the logs")
			}
			if !strings.Contains(all, rotation.Redacted) || !strings.Contains(all, "setSecret of secret "+arn) {
				t.Fatalf("failure text does not name the step and secret, or redacts nothing: %q", r.Err)
			}
			if c.want != nil && !strings.Contains(all, "panicked") {
				t.Fatal("a panic was not reported as such")
			}
		})
	}
}

func TestEndpointFromEnvironment(t *testing.T) {
	srv, err := smlocal.New(smlocal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); hs.Close() })
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDLOCAL")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "local")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	// elsewhere is an endpoint that must not be used: nothing listens there.
	elsewhere := httptest.NewServer(nil)
	elsewhere.Close()
	for _, c := range []struct {
		name string
		env  map[string]string
	}{
		{"SECRETS_MANAGER_ENDPOINT", map[string]string{"SECRETS_MANAGER_ENDPOINT": hs.URL}},
		{"AWS_ENDPOINT_URL_SECRETS_MANAGER", map[string]string{"AWS_ENDPOINT_URL_SECRETS_MANAGER": hs.URL}},
		{"SECRETS_MANAGER_ENDPOINT wins over AWS_ENDPOINT_URL_SECRETS_MANAGER", map[string]string{"SECRETS_MANAGER_ENDPOINT": hs.URL, "AWS_ENDPOINT_URL_SECRETS_MANAGER": elsewhere.URL}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v) // the SDK reads AWS_ENDPOINT_URL_* itself
			}
			srv.ResetCalls()
			client, err := rotation.NewSecretsManagerClient(context.Background(), func(k string) string { return c.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := client.ListSecrets(ctx, &secretsmanager.ListSecretsInput{}); err != nil {
				t.Fatalf("client did not reach the endpoint: %v", err)
			}
			if srv.Calls()["ListSecrets"] != 1 {
				t.Fatalf("the local Secrets Manager saw no call")
			}
		})
	}
}

// TestStepLogLineIsAnEMFRecord checks that each step's log line is a valid
// CloudWatch embedded-metric-format record: the directive names metrics and
// dimensions that are present at the root of the same JSON object.
func TestStepLogLineIsAnEMFRecord(t *testing.T) {
	h := newHarness(t, &fakeType{set: func(context.Context, rotation.SetRequest) error { return errors.New("db down") }})
	arn := h.create(t, "emf", `{"password":"initial-password"}`)
	h.rotate(t, arn)
	steps := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(h.logText()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %v", err)
		}
		var dir struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		}
		raw, _ := json.Marshal(rec["_aws"])
		if err := json.Unmarshal(raw, &dir); err != nil || dir.Timestamp == 0 || len(dir.CloudWatchMetrics) != 1 {
			t.Fatalf("no valid _aws directive in %s", line)
		}
		m := dir.CloudWatchMetrics[0]
		if m.Namespace != rotation.MetricNamespace {
			t.Fatalf("namespace %q", m.Namespace)
		}
		for _, dims := range m.Dimensions {
			for _, d := range dims {
				if _, ok := rec[d].(string); !ok {
					t.Fatalf("dimension %q is not a string at the root of %s", d, line)
				}
			}
		}
		for _, metric := range m.Metrics {
			if _, ok := rec[metric.Name].(float64); !ok {
				t.Fatalf("metric %q is not a number at the root of %s", metric.Name, line)
			}
		}
		for _, k := range []string{"secretArn", "step", "token", "outcome"} {
			if rec[k] == nil {
				t.Fatalf("log line lacks %q", k)
			}
		}
		steps[rec["step"].(string)+"/"+rec["outcome"].(string)] = rec[rotation.MetricStepFailed].(float64)
	}
	if steps["createSecret/succeeded"] != 0 || steps["setSecret/failed"] != 1 {
		t.Fatalf("StepFailed per step/outcome = %v, want createSecret 0 and setSecret 1", steps)
	}
}
