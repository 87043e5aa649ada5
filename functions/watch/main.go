// Command watch checks the health of the suite's rotated secrets on a
// schedule (overdue, stuck, drifted, locked out), writes one metric line per
// secret and, when enabled, repairs stuck rotations through each secret's
// rotation function (docs/watch.md). It rotates nothing and never reads a
// secret value.
package main

import (
	"context"
	"log/slog"
	"os"
	"strings"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/watch"
)

func main() {
	rotation.UseCertBundleOnly(os.Getenv, os.Setenv)
	w, err := newWatcher(context.Background(), os.Getenv)
	if err != nil {
		rotation.Fatal(err)
	}
	lambda.Start(w.Run)
}

// newWatcher builds the watch from the environment: Secrets Manager as the
// rotation functions reach it (SECRETS_MANAGER_ENDPOINT), Lambda and SNS
// from the SDK's configuration (AWS_ENDPOINT_URL_LAMBDA, AWS_ENDPOINT_URL_SNS).
func newWatcher(ctx context.Context, getenv func(string) string) (*watch.Watcher, error) {
	cfg, err := watch.ConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	sm, err := rotation.NewSecretsManagerClient(ctx, getenv)
	if err != nil {
		return nil, err
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, err
	}
	// The engine's logging: JSON lines to standard output, through the
	// scrubbing handler (the watch reads no value, and the functions'
	// errors it logs come back scrubbed).
	log := slog.New(rotation.NewScrubHandler(slog.NewJSONHandler(os.Stdout, nil)))
	slog.SetDefault(log)
	w := &watch.Watcher{SM: sm, Lambda: awslambda.NewFromConfig(awsCfg), Config: cfg, Log: log}
	if topic := strings.TrimSpace(cfg.TopicARN); topic != "" {
		w.Notifier = &watch.SNSNotifier{Client: sns.NewFromConfig(awsCfg), TopicARN: topic}
	}
	return w, nil
}
