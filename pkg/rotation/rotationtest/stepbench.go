package rotationtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// LoginClock reads how many downstream logins a credential type has made
// so far and how long they took in all (the types' test hooks count them).
type LoginClock func() (n int, took time.Duration)

// BenchSteps times whole rotations of a fresh secret (from newSecret)
// through the engine and the local Secrets Manager, one rotation per
// iteration, and reports each step's mean time (<step>-ms) and share of the
// rotation (<step>-%), and the share of the rotation spent logging in
// (login-%, with logins/op and login-ms, the mean login). With cold false
// one credential (newCredential's first) serves every rotation, as a warm
// function instance does; with cold true each rotation gets a new one.
func BenchSteps(b *testing.B, newCredential func() rotation.Credential, cold bool, newSecret func(tb testing.TB, sm *secretsmanager.Client) string, logins LoginClock) {
	b.Helper()
	var (
		mu      sync.Mutex
		h       *rotation.Handler
		stepDur = map[string]time.Duration{}
	)
	srv, err := smlocal.New(smlocal.Options{
		Retry: smlocal.RetryPolicy{Attempts: 1},
		Invoker: smlocal.InvokerFunc(func(ctx context.Context, _ string, ev smlocal.Event) error {
			mu.Lock()
			hh := h
			mu.Unlock()
			start := time.Now()
			err := hh.Handle(ctx, toEvent(ev))
			d := time.Since(start)
			mu.Lock()
			stepDur[ev.Step] += d
			mu.Unlock()
			return err
		}),
	})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	b.Cleanup(func() { srv.Close(); hs.Close() })
	client := smlocal.NewClient(hs.URL)
	newHandler := func() *rotation.Handler {
		hh, err := rotation.NewHandler(newCredential(), rotation.Options{Client: client, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		return hh
	}
	h = newHandler()
	ctx := context.Background()
	out, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String(fmt.Sprintf("bench/%d", time.Now().UnixNano())), SecretString: aws.String(newSecret(b, client)),
	})
	if err != nil {
		b.Fatal(err)
	}
	arn := aws.ToString(out.ARN)
	rotate := func() {
		if _, err := client.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String(arn), RotationLambdaARN: aws.String(FunctionARN)}); err != nil {
			b.Fatal(err)
		}
		r, err := srv.WaitRotation(ctx, arn)
		if err != nil || r.State != smlocal.RotationSucceeded {
			b.Fatalf("rotation: %v %s", err, r.Err)
		}
	}
	rotate() // the first rotation creates what later ones reuse (a clone), not measured
	mu.Lock()
	clear(stepDur)
	mu.Unlock()
	n0, l0 := logins()
	var total time.Duration
	rotations := 0
	for b.Loop() {
		if cold {
			hh := newHandler()
			mu.Lock()
			h = hh
			mu.Unlock()
		}
		start := time.Now()
		rotate()
		total += time.Since(start)
		rotations++
	}
	n1, l1 := logins()
	if rotations == 0 || total == 0 {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	var steps time.Duration
	for _, s := range []string{rotation.StepCreate, rotation.StepSet, rotation.StepTest, rotation.StepFinish} {
		d := stepDur[s]
		steps += d
		b.ReportMetric(float64(d)/float64(rotations)/1e6, s+"-ms")
		b.ReportMetric(100*float64(d)/float64(total), s+"-%")
	}
	b.ReportMetric(float64(total)/float64(rotations)/1e6, "rotation-ms")
	b.ReportMetric(float64(n1-n0)/float64(rotations), "logins/op")
	if n1 > n0 {
		b.ReportMetric(float64(l1-l0)/float64(n1-n0)/1e6, "login-ms")
	}
	b.ReportMetric(100*float64(l1-l0)/float64(total), "login-%")
}
