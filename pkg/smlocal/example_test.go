package smlocal_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// The SDK talks to a Server exactly as to Secrets Manager; a rotation
// invokes the function once per step, in the background.
func Example() {
	srv, err := smlocal.New(smlocal.Options{
		Invoker: smlocal.InvokerFunc(func(ctx context.Context, functionARN string, ev smlocal.Event) error {
			fmt.Println("step", ev.Step)
			return nil // a real function would create, set, test and finish the secret
		}),
		Retry: smlocal.RetryPolicy{Attempts: 1},
	})
	if err != nil {
		panic(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Close()

	client := secretsmanager.New(secretsmanager.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(hs.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
	})
	ctx := context.Background()
	if _, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("demo"), SecretString: aws.String(`{"password":"x"}`)}); err != nil {
		panic(err)
	}
	if _, err := client.RotateSecret(ctx, &secretsmanager.RotateSecretInput{
		SecretId:          aws.String("demo"),
		RotationLambdaARN: aws.String("arn:aws:lambda:us-east-1:123456789012:function:rotate"),
	}); err != nil {
		panic(err)
	}
	r, err := srv.WaitRotation(ctx, "demo")
	if err != nil {
		panic(err)
	}
	fmt.Println(r.State)
	// Output:
	// step createSecret
	// step setSecret
	// step testSecret
	// step finishSecret
	// succeeded
}
