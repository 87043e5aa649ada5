package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/internal/pgcluster"
	"github.com/rotary-secrets/rotary/internal/pgcluster/pgtest"
	"github.com/rotary-secrets/rotary/pkg/localauth"
	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// One local stack and one throwaway PostgreSQL cluster for the whole test
// binary, started on first use.
var (
	shared struct {
		once     sync.Once
		cluster  *pgcluster.Cluster
		pgErr    error
		stack    *localstack.Stack
		stackErr error
	}
	testFunctions = []string{"random-secret", "postgres-single-user", "postgres-multi-user"}
)

// Local principals of the shared stack: an application and someone who
// should not read its secrets (audit_test.go).
const (
	appKey      = "AKIAORDERSAPP0000001"
	appRole     = "arn:aws:iam::123456789012:role/orders-app"
	appSession  = "arn:aws:sts::123456789012:assumed-role/orders-app/orders-task"
	intruderKey = "AKIACONTRACTOR000001"
	intruderARN = "arn:aws:iam::123456789012:user/contractor"
)

var testPrincipals = []localauth.Principal{{AccessKeyID: appKey, ARN: appSession}, {AccessKeyID: intruderKey, ARN: intruderARN}}

func TestMain(m *testing.M) {
	// Tests answer prompts through the stdin seam, never the real terminal.
	stdinIsTerminal = func() bool { return false }
	code := m.Run()
	if shared.stack != nil {
		shared.stack.Close()
	}
	if shared.cluster != nil {
		shared.cluster.Close()
	}
	os.Exit(code)
}

func failOrSkip(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf("skipping (set CI=true to fail instead): "+format, args...)
}

func startShared() {
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		shared.cluster, shared.pgErr = pgcluster.Start(ctx, pgcluster.Options{TLS: true})
		var env []string
		if shared.cluster != nil {
			env = []string{"ROTARY_CA_BUNDLE=" + shared.cluster.CAFile}
		}
		shared.stack, shared.stackErr = localstack.Start(ctx, localstack.Config{
			WrapInvoker: holdInvoker,
			Functions:   testFunctions,
			Env:         env,
			Retry:       smlocal.RetryPolicy{Attempts: 2},
			FunctionEnv: map[string][]string{"random-secret": {"ROTATE_FIELDS=apiKey:32:alnum"}},
			Principals:  testPrincipals,
		})
	})
}

// stack returns the shared local stack running testFunctions.
func stack(t *testing.T) *localstack.Stack {
	t.Helper()
	startShared()
	if shared.stackErr != nil {
		failOrSkip(t, "start the local stack: %v", shared.stackErr)
	}
	return shared.stack
}

// cluster returns the shared PostgreSQL cluster (TLS, scram-sha-256).
func cluster(t *testing.T) *pgcluster.Cluster {
	t.Helper()
	startShared()
	if shared.pgErr != nil {
		failOrSkip(t, "start a throwaway PostgreSQL cluster: %v", shared.pgErr)
	}
	return shared.cluster
}

// result is what one rotary invocation did.
type result struct {
	code        int
	out, errOut string
}

// rotary runs the CLI against the shared stack.
func rotary(t *testing.T, args ...string) result {
	t.Helper()
	return rotaryAt(t, stack(t).Endpoint, args...)
}

// rotaryAt runs the CLI against endpoint.
func rotaryAt(t *testing.T, endpoint string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, append(args, "--endpoint", endpoint), &out, &errOut)
	return result{code: code, out: out.String(), errOut: errOut.String()}
}

// awsLike returns an endpoint that forwards to the shared stack but has no
// rotations feed, so the CLI behaves as it does against AWS.
func awsLike(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(stack(t).Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == localstack.RotationsPath {
			http.NotFound(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// holds are rotations held before their first step, by secret name;
// kills are steps that fail as if the function died before running them.
var holds, kills sync.Map // secret name -> chan struct{}; secret name -> step

// holdInvoker delays the steps of held secrets until they are released,
// and fails the killed steps without invoking the function.
func holdInvoker(next smlocal.Invoker) smlocal.Invoker {
	return smlocal.InvokerFunc(func(ctx context.Context, arn string, ev smlocal.Event) error {
		var wait []chan struct{}
		killed := false
		holds.Range(func(k, v any) bool {
			if strings.Contains(ev.SecretId, ":secret:"+k.(string)+"-") {
				wait = append(wait, v.(chan struct{}))
			}
			return true
		})
		kills.Range(func(k, v any) bool {
			if strings.Contains(ev.SecretId, ":secret:"+k.(string)+"-") && v.(string) == ev.Step {
				killed = true
			}
			return true
		})
		if killed {
			return fmt.Errorf("%s: the function was killed before it ran (injected by the test)", ev.Step)
		}
		for _, ch := range wait {
			select {
			case <-ch:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return next.Invoke(ctx, arn, ev)
	})
}

// hold makes the next rotations of the secret wait before each step until
// the returned release is called (at the latest at cleanup).
func hold(t *testing.T, name string) (release func()) {
	t.Helper()
	ch := make(chan struct{})
	holds.Store(name, ch)
	var once sync.Once
	release = func() { once.Do(func() { holds.Delete(name); close(ch) }) }
	t.Cleanup(release)
	return release
}

// kill makes every invocation of step for the secret fail without running,
// until the returned function (or cleanup) lifts it.
func kill(t *testing.T, name, step string) (lift func()) {
	t.Helper()
	kills.Store(name, step)
	lift = func() { kills.Delete(name) }
	t.Cleanup(lift)
	return lift
}

// mustRotary runs the CLI and fails the test unless it exits 0.
func mustRotary(t *testing.T, args ...string) result {
	t.Helper()
	r := rotary(t, args...)
	if r.code != 0 {
		t.Fatalf("rotary %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.out, r.errOut)
	}
	return r
}

func unique(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

// newSecret creates a secret on the shared stack and returns its name.
func newSecret(t *testing.T, value string) string {
	t.Helper()
	s := stack(t)
	name := unique("cli/test")
	if _, err := s.Client.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := s.Client.DeleteSecret(context.Background(), &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
			t.Logf("cleanup: delete %s: %v", name, err)
		}
	})
	return name
}

// initialKey is the apiKey of randomSecret's first version; it meets the
// function's policy (32 alphanumerics), so it can be rolled back to.
const initialKey = "initialinitialinitialinitial0000"

// randomSecret creates a random-secret secret that has rotated once, so it
// has a rotation function, AWSCURRENT and AWSPREVIOUS.
func randomSecret(t *testing.T) string {
	t.Helper()
	name := newSecret(t, `{"apiKey":"`+initialKey+`","client":"kept"}`)
	mustRotary(t, "rotate", name, "--wait", "--function", localstack.FunctionARN("random-secret"))
	return name
}

// currentOf returns the AWSCURRENT version id and value.
func currentOf(t *testing.T, name string) (string, string) {
	t.Helper()
	out, err := stack(t).Client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.VersionId), aws.ToString(out.SecretString)
}

// labels returns the secret's version ids by label.
func labels(t *testing.T, name string) map[string]string {
	t.Helper()
	d, err := stack(t).Client.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for id, ls := range d.VersionIdsToStages {
		for _, l := range ls {
			m[l] = id
		}
	}
	return m
}

// makePending leaves AWSPENDING on a new version, as a failed rotation does.
func makePending(t *testing.T, name string) string {
	t.Helper()
	token := newToken()
	if _, err := stack(t).Client.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(name), ClientRequestToken: aws.String(token), SecretString: aws.String(`{"apiKey":"pending"}`), VersionStages: []string{labelPending},
	}); err != nil {
		t.Fatal(err)
	}
	return token
}

// pgRole creates a login role with a password on the shared cluster and
// returns the secret value for it; masterARN makes it an alternating-users
// secret.
func pgRole(t *testing.T, c *pgcluster.Cluster, attrs, masterARN string) (user, value string) {
	t.Helper()
	user, pw := unique("rotary_cli"), "Initial-"+unique("pw")
	pgtest.CreateRole(t, c, user, pw, attrs, user+"_clone")
	m := map[string]any{"engine": "postgres", "host": c.Host, "port": c.Port, "username": user, "password": pw, "dbname": "postgres"}
	if masterARN != "" {
		m["masterarn"] = masterARN
	}
	b, _ := json.Marshal(m)
	return user, string(b)
}

// login connects with a secret value over verified TLS and runs a query.
func login(c *pgcluster.Cluster, value string) error {
	return pgLogin(context.Background(), c, value)
}

// noSecretIn fails the test if any password of values appears in text.
func noSecretIn(t *testing.T, text string, values ...string) {
	t.Helper()
	for _, v := range values {
		var s struct{ Password, APIKey string }
		_ = json.Unmarshal([]byte(v), &s)
		for _, p := range []string{s.Password, s.APIKey} {
			if len(p) > 8 && strings.Contains(text, p) {
				t.Fatalf("output contains a secret value (%s)", fingerprint(p))
			}
		}
	}
}

// grant runs one statement as the cluster's superuser.
func grant(t *testing.T, c *pgcluster.Cluster, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := c.ConnectAdmin(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
