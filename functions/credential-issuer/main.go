// Command credential-issuer hands each IAM caller its own short-lived
// PostgreSQL or MySQL/MariaDB user on demand, like `vault read
// database/creds/<role>`, through a Lambda function URL with AWS_IAM auth:
// POST {"role":"NAME","ttl":"1h"} answers {username, password, host, port,
// dbname, expiresAt} once. Its direct invocations {"rotary":"leases" |
// "revoke-leases" | "reap"} are for operators (docs/issued-credentials.md).
// It rotates nothing; its log keeps an audit line per credential, never
// the password.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/rotary-secrets/rotary/pkg/issuer"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

func main() {
	// The system roots from the CA bundle alone, as rotation.Start loads
	// them for the rotation functions (see rotation.UseCertBundleOnly).
	rotation.UseCertBundleOnly(os.Getenv, os.Setenv)
	// JSON lines to standard output through the scrubbing handler: every
	// password the issuer reads or makes is registered with it.
	log := slog.New(rotation.NewScrubHandler(slog.NewJSONHandler(os.Stdout, nil)))
	slog.SetDefault(log)
	is, err := issuer.NewFromEnv(context.Background(), os.Getenv, log)
	if err != nil {
		rotation.Fatal(err)
	}
	lambda.Start(is.Handle)
}
