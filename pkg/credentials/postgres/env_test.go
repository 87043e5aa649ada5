package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
)

// newEnv starts a local Secrets Manager whose rotations run cred in process.
func newEnv(t *testing.T, f *fixture, cred rotation.Credential) *rotationtest.Env {
	t.Helper()
	return rotationtest.NewEnv(t, rotationtest.Subject{
		Credential: cred,
		NewSecret:  func(t *testing.T, _ *secretsmanager.Client) string { t.Fatal("unused"); return "" },
		Check:      f.login,
		Corrupt:    func(v string) string { return v + "x" },
	})
}

// createSecret stores value as a new secret and returns its ARN.
func createSecret(t *testing.T, e *rotationtest.Env, value string) string {
	t.Helper()
	out, err := e.Client.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String(uniqueName("secret")), SecretString: aws.String(value),
	})
	if err != nil {
		t.Fatalf("create secret: %v", err)
	}
	return aws.ToString(out.ARN)
}

func newToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// rotateTo runs setSecret, testSecret and finishSecret with a pending value
// the test chose (as if createSecret had made it) and returns the first error.
func rotateTo(t *testing.T, e *rotationtest.Env, arn, pending string) error {
	t.Helper()
	token := newToken(t)
	_, err := e.Client.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(arn), ClientRequestToken: aws.String(token), SecretString: aws.String(pending),
		VersionStages: []string{rotation.LabelPending},
	})
	if err != nil {
		t.Fatalf("put pending value: %v", err)
	}
	for _, step := range []string{rotation.StepSet, rotation.StepTest, rotation.StepFinish} {
		if err := e.Step(arn, step, token); err != nil {
			return err
		}
	}
	return nil
}

// current returns the AWSCURRENT value.
func current(t *testing.T, e *rotationtest.Env, arn string) string {
	t.Helper()
	_, v, ok := e.Value(t, arn, rotation.LabelCurrent)
	if !ok {
		t.Fatal("secret has no AWSCURRENT value")
	}
	return v
}
