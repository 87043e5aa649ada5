package rotation

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
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

// certBundles are the CA bundles crypto/x509 reads on Linux, in its order:
// it reads the first that exists, then every file of /etc/ssl/certs and
// /etc/pki/tls/certs.
var certBundles = []string{
	"/etc/ssl/certs/ca-certificates.crt",
	"/etc/pki/tls/certs/ca-bundle.crt",
	"/etc/ssl/ca-bundle.pem",
	"/etc/pki/tls/cacert.pem",
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
	"/etc/ssl/cert.pem",
}

// UseCertBundleOnly makes crypto/x509 load the system's trusted roots from
// the distribution's CA bundle alone, without then reading the certificate
// directories too. Those hold the same certificates the bundle was built
// from (Debian's /etc/ssl/certs/*.pem, Amazon Linux's ca-bundle.crt
// reached again through /etc/ssl/certs): read both, every root is parsed
// twice, which costs about 3 MB of peak memory and a third of the load
// time in a function whose whole peak is under 20 MB. It applies only on
// Linux, only when SSL_CERT_FILE and SSL_CERT_DIR are both unset (set
// either, and Go's rules apply unchanged) and only when one of the bundles
// exists; it sets SSL_CERT_DIR to an empty list (":"). Extra roots for a
// database go in ROTARY_CA_BUNDLE. A function calls it before anything
// loads the roots (the first TLS connection does); Start does.
func UseCertBundleOnly(getenv func(string) string, setenv func(key, value string) error) {
	if runtime.GOOS != "linux" || getenv("SSL_CERT_FILE") != "" || getenv("SSL_CERT_DIR") != "" {
		return
	}
	for _, f := range certBundles {
		if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
			_ = setenv("SSL_CERT_DIR", ":")
			return
		}
	}
}

// GCPercent is the garbage collector's target that Start sets unless the
// operator set GOGC: a new collection when the heap has grown by half of
// what the last one left live, instead of Go's default of all of it.
// A rotation function's live heap is 1 to 3 MB, so with the default the
// heap grows to the runtime's 4 MB floor before the first collection;
// at 50 the floor is 2 MB. Measured (docs/performance.md): about 1 MB less
// peak resident memory after a rotation, for a few more collections of a
// small heap, each well under a millisecond, in a rotation of 15 to 150 ms.
const GCPercent = 50

// UseGCPercent sets the garbage collector's target to GCPercent unless
// GOGC is set (an operator's setting is never overridden). Start calls it.
func UseGCPercent(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
}

// Start runs the rotation function for a credential type: it is what a
// function's main calls. A configuration error ends the process with a
// clear message.
func Start(cred Credential) {
	UseGCPercent(os.Getenv)
	UseCertBundleOnly(os.Getenv, os.Setenv)
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
