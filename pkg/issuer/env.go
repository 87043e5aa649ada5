package issuer

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/rotary-secrets/rotary/pkg/credentials/mysql"
	"github.com/rotary-secrets/rotary/pkg/credentials/postgres"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/envflag"
	"github.com/rotary-secrets/rotary/pkg/password"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// NewFromEnv builds the function's issuer: the roles (ROTARY_ISSUER_ROLES),
// the database settings of the credential types (ROTARY_CA_BUNDLE, the
// timeouts, USERNAME_CHARACTER_LIMIT), the password policy (PASSWORD_LENGTH
// and the other GetRandomPassword settings), ROTARY_REAP_KEEP_SESSIONS,
// and the Secrets Manager client (SECRETS_MANAGER_ENDPOINT). A bad setting
// fails here, at start-up.
func NewFromEnv(ctx context.Context, getenv func(string) string, log *slog.Logger) (*Issuer, error) {
	cfg, err := ConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	pg, err := postgres.ConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	my, err := mysql.ConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	policy, err := password.FromEnv(getenv)
	if err != nil {
		return nil, err
	}
	keep := false
	if v := strings.TrimSpace(getenv(dbsecret.EnvReapKeepSessions)); v != "" {
		if keep, err = envflag.ParseBool(v); err != nil {
			return nil, fmt.Errorf("%s: %w", dbsecret.EnvReapKeepSessions, err)
		}
	}
	sm, err := rotation.NewSecretsManagerClient(ctx, getenv)
	if err != nil {
		return nil, err
	}
	name := getenv("AWS_LAMBDA_FUNCTION_NAME")
	if name == "" {
		name = "local"
	}
	return &Issuer{
		Config: cfg, Backends: Backends(pg, my), Secrets: sm, Passwords: policy, Log: log,
		FunctionName: name, KeepSessionsOnReap: keep,
	}, nil
}
