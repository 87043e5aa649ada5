package rotation

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/password"
)

// NewSecretsManagerClient returns a client built from the default AWS
// configuration chain. SECRETS_MANAGER_ENDPOINT, which AWS's rotation
// templates read, sets the endpoint (a VPC endpoint, say); without it the
// SDK's own AWS_ENDPOINT_URL_SECRETS_MANAGER and AWS_ENDPOINT_URL apply.
func NewSecretsManagerClient(ctx context.Context, getenv func(string) string) (*secretsmanager.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	endpoint := strings.TrimSpace(getenv("SECRETS_MANAGER_ENDPOINT"))
	return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		if endpoint != "" {
			o.BaseEndpoint = &endpoint
		}
	}), nil
}

// NewHandlerFromEnv builds the handler a Lambda function runs: the Secrets
// Manager client and the password policy come from the environment.
func NewHandlerFromEnv(ctx context.Context, cred Credential, getenv func(string) string) (*Handler, error) {
	policy, err := password.FromEnv(getenv)
	if err != nil {
		return nil, err
	}
	client, err := NewSecretsManagerClient(ctx, getenv)
	if err != nil {
		return nil, err
	}
	return NewHandler(cred, Options{Client: client, Passwords: policy, FunctionName: getenv("AWS_LAMBDA_FUNCTION_NAME")})
}

// Start runs the rotation function for a credential type: it is what a
// function's main calls. A configuration error ends the process with a
// clear message.
func Start(cred Credential) {
	h, err := NewHandlerFromEnv(context.Background(), cred, os.Getenv)
	if err != nil {
		Fatal(err)
	}
	slog.SetDefault(slog.New(NewScrubHandler(slog.NewJSONHandler(os.Stdout, nil))))
	lambda.Start(h.Invoke)
}

// Fatal reports a configuration error as one JSON log line and exits.
func Fatal(err error) {
	slog.New(slog.NewJSONHandler(os.Stdout, nil)).Error("configuration error: the function cannot start", "error", err.Error())
	os.Exit(1)
}
