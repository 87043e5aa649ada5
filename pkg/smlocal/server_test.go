package smlocal

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

func TestStateFileSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	srv1, err := New(Options{StateFile: path})
	if err != nil {
		t.Fatal(err)
	}
	url, err := srv1.ListenAndServe("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(url)
	ctx := context.Background()
	arn := createSecret(t, c, "persist", "v1")
	put(t, c, "persist", token(2), "v2")
	if _, err := c.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("persist"), Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("bin"), SecretBinary: []byte{0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := srv1.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v, mode %v; want 0600", err, fi.Mode())
	}
	if m, _ := filepath.Glob(path + ".tmp*"); len(m) != 0 {
		t.Fatalf("temporary files left behind: %v", m)
	}

	srv2, c2 := newServer(t, Options{StateFile: path})
	_ = srv2
	v, ver := current(t, c2, arn)
	if v != "v2" || ver != token(2) {
		t.Fatalf("after restart AWSCURRENT = %s (%s), want v2", ver, fp(v))
	}
	d, err := c2.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("persist")})
	if err != nil || len(d.Tags) != 1 || len(d.VersionIdsToStages) != 2 {
		t.Fatalf("after restart: %+v, %v", d, err)
	}
	b, err := c2.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("bin")})
	if err != nil || len(b.SecretBinary) != 2 {
		t.Fatalf("binary secret after restart: %v", err)
	}
}

func TestCorruptStateFileIsAClearError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{StateFile: path})
	if err == nil || !strings.Contains(err.Error(), "remove it to start empty") {
		t.Fatalf("New with a corrupt state file: %v", err)
	}
}

func TestCallsCountsOperations(t *testing.T) {
	srv, c := newServer(t, Options{})
	createSecret(t, c, "calls", "v")
	current(t, c, "calls")
	current(t, c, "calls")
	_, _ = c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("missing")})
	got := srv.Calls()
	if got["CreateSecret"] != 1 || got["GetSecretValue"] != 3 {
		t.Fatalf("Calls = %v, want CreateSecret 1 and GetSecretValue 3 (failures count)", got)
	}
	srv.ResetCalls()
	if n := len(srv.Calls()); n != 0 {
		t.Fatalf("after ResetCalls: %v", srv.Calls())
	}
}

func TestNonAPIRequestIsRejected(t *testing.T) {
	srv, _ := newServer(t, Options{})
	url, err := srv.ListenAndServe(":0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("ListenAndServe(:0) = %s, want a loopback URL", url)
	}
	resp, err := http.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("X-Amzn-ErrorType") != excUnknownOperation {
		t.Fatalf("GET / = %d %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"))
	}
}

func TestConcurrentCallsOnOneSecret(t *testing.T) {
	srv, c := newServer(t, Options{})
	createSecret(t, c, "busy", "v0")
	ctx := context.Background()
	const workers, perWorker = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				tok := fmt.Sprintf("w%02d-%029d", w, i)
				var err error
				switch i % 4 {
				case 0:
					_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("busy"), ClientRequestToken: aws.String(tok), SecretString: aws.String(tok)})
				case 1:
					_, err = c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("busy")})
				case 2:
					_, err = c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("busy")})
				case 3:
					_, err = c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("busy"), IncludeDeprecated: aws.Bool(true)})
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every put became AWSCURRENT at some point; exactly one holds it now,
	// and AWSPREVIOUS is on another version.
	st := stagesOf(t, c, "busy")
	cur, prev := 0, 0
	for id, ls := range st {
		for _, l := range ls {
			switch l {
			case "AWSCURRENT":
				cur++
				if v, _ := current(t, c, "busy"); v != id {
					t.Fatalf("AWSCURRENT version %s holds another version's value", id)
				}
			case "AWSPREVIOUS":
				prev++
			}
		}
	}
	if cur != 1 || prev != 1 {
		t.Fatalf("labels after concurrent puts: %v", st)
	}
	if n := srv.Calls()["PutSecretValue"]; n != countPuts(workers, perWorker) {
		t.Fatalf("PutSecretValue calls = %d", n)
	}
}

func countPuts(workers, perWorker int) int {
	n := 0
	for i := range perWorker {
		if i%4 == 0 {
			n++
		}
	}
	return n * workers
}

func BenchmarkGetSecretValue(b *testing.B) {
	_, c := newServer(b, Options{})
	createSecret(b, c, "bench", `{"password":"x"}`)
	ctx := context.Background()
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String("bench")}
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.GetSecretValue(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRotation(b *testing.B) {
	fn := &protocolFunction{}
	srv, c := newServer(b, Options{Invoker: fn})
	fn.c = c
	createSecret(b, c, "bench", "pw")
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String("bench"), RotationLambdaARN: aws.String(fnARN)}); err != nil {
			b.Fatal(err)
		}
		if r, err := srv.WaitRotation(ctx, "bench"); err != nil || r.State != RotationSucceeded {
			b.Fatalf("rotation %s: %v", r.State, err)
		}
	}
}

func TestListenAndServeRefusesNonLoopbackAddress(t *testing.T) {
	srv, _ := newServer(t, Options{})
	if _, err := srv.ListenAndServe("0.0.0.0:0"); err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Fatalf("ListenAndServe(0.0.0.0:0) = %v, want a loopback error", err)
	}
}

func TestLogsNeverContainSecretValues(t *testing.T) {
	var buf syncBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fn := &protocolFunction{}
	srv, c := newServer(t, Options{Logger: logger, Invoker: fn, Retry: RetryPolicy{Attempts: 2}})
	fn.c = c
	const value = "hunter2-very-secret-value"
	createSecret(t, c, "logged", value)
	current(t, c, "logged")
	_, _ = c.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{SecretId: aws.String("logged"), ClientRequestToken: aws.String(token(1)), SecretString: aws.String(value + "x")})
	_, _ = c.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{SecretId: aws.String("logged"), ClientRequestToken: aws.String(token(1)), SecretString: aws.String(value + "y")})
	rotateByName(t, c, "logged")
	if r := waitRotation(t, srv, "logged"); r.State != RotationSucceeded {
		t.Fatalf("rotation %s", r.State)
	}
	out := buf.String()
	if !strings.Contains(out, "RotationSucceeded") {
		t.Fatalf("log lacks the rotation's outcome")
	}
	if strings.Contains(out, "hunter2") {
		t.Fatalf("a secret value (%s) appears in the log", fp(value))
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestCloseReturnsDespiteAHangingConnection(t *testing.T) {
	srv, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	url, err := srv.ListenAndServe("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\n")); err != nil { // headers never finish
		t.Fatal(err)
	}
	start := time.Now()
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("Close took %v", d)
	}
}
