package rotation_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/credentials/random"
	"github.com/rotary-secrets/rotary/pkg/password"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// BenchmarkRotation measures one whole rotation (RotateSecret, four steps
// through the engine, all over HTTP to the local Secrets Manager). Compare it
// with BenchmarkBaselineGetSecretValue from the same run: the ratio is the
// cost of a rotation in Secrets Manager round trips plus engine work.
func BenchmarkRotation(b *testing.B) {
	cfg, _ := random.ConfigFromEnv(func(string) string { return "" })
	cred, _ := random.New(cfg)
	h := newHarness(b, cred)
	arn := h.create(b, "bench", `{"password":"initial-password"}`)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, err := h.client.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String(arn), RotationLambdaARN: aws.String("arn:aws:lambda:us-east-1:123456789012:function:bench")})
		if err != nil {
			b.Fatal(err)
		}
		r, err := h.srv.WaitRotation(ctx, arn)
		if err != nil || r.State != smlocal.RotationSucceeded {
			b.Fatalf("rotation: %v %s", err, r.Err)
		}
	}
}

// BenchmarkBaselineGetSecretValue is one Secrets Manager round trip to the
// local server: the unit BenchmarkRotation is read against.
func BenchmarkBaselineGetSecretValue(b *testing.B) {
	h := newHarness(b, &fakeType{})
	arn := h.create(b, "baseline", `{"password":"initial-password"}`)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := h.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPasswordGenerate measures local password generation at the
// default policy; its baseline is reading the same number of random bytes.
func BenchmarkPasswordGenerate(b *testing.B) {
	for _, n := range []int{32, 128} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			p := &password.Policy{Length: n, RequireEachIncludedType: true}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := p.Generate(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
