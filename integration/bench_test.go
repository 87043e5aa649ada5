package integration

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// The benchmarks below time whole rotations through the real function
// binaries under the emulator. Read each against its baseline from the same
// run: a rotation of random-secret against one invocation of the function,
// a PostgreSQL rotation against one verified-TLS login to the same cluster.

func benchSecret(b *testing.B, value string) string {
	b.Helper()
	out, err := stack.Client.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String(uniqueName("bench")), SecretString: aws.String(value),
	})
	if err != nil {
		b.Fatal(err)
	}
	return aws.ToString(out.ARN)
}

func benchRotations(b *testing.B, function, arn string) {
	b.Helper()
	ctx := context.Background()
	for b.Loop() {
		if _, err := stack.Client.RotateSecret(ctx, &secretsmanager.RotateSecretInput{
			SecretId: aws.String(arn), RotationLambdaARN: aws.String(localstack.FunctionARN(function)),
		}); err != nil {
			b.Fatal(err)
		}
		r, err := stack.SM.WaitRotation(ctx, arn)
		if err != nil || r.State != smlocal.RotationSucceeded {
			b.Fatalf("rotation: %v %s", err, r.Err)
		}
	}
}

func BenchmarkRandomSecretRotation(b *testing.B) {
	benchRotations(b, "random-secret", benchSecret(b, initialRandom))
}

// BenchmarkBaselineInvoke is one invocation of random-secret that does the
// least a step can do: its token is already AWSCURRENT, so the function
// makes one DescribeSecret and returns.
func BenchmarkBaselineInvoke(b *testing.B) {
	arn := benchSecret(b, initialRandom)
	out, err := stack.Client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		b.Fatal(err)
	}
	fn, _ := stack.Function("random-secret")
	ev, _ := json.Marshal(rotation.Event{Step: rotation.StepFinish, SecretID: arn, ClientRequestToken: aws.ToString(out.VersionId)})
	for b.Loop() {
		if _, err := fn.Invoke(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
	}
}

// benchPostgresUser creates a login role on the shared cluster and returns
// its secret value.
func benchPostgresUser(b *testing.B) (postgresDB, string) {
	b.Helper()
	db := postgresDB{pg.Get(b)}
	user, password := uniqueName("bench_pg"), "Bench-passw0rd-initial"
	db.createRole(b, user, password, "")
	return db, db.secretValue(b, user, password, nil)
}

func BenchmarkPostgresSingleUserRotation(b *testing.B) {
	_, value := benchPostgresUser(b)
	benchRotations(b, "postgres-single-user", benchSecret(b, value))
}

// BenchmarkBaselinePostgresLogin is one verified-TLS scram-sha-256 login
// and query, the unit a database rotation's cost is read in.
func BenchmarkBaselinePostgresLogin(b *testing.B) {
	db, value := benchPostgresUser(b)
	for b.Loop() {
		if err := db.login(context.Background(), value); err != nil {
			b.Fatal(err)
		}
	}
}
