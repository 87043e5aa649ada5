package postgres

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
)

func TestConformanceSingleUser(t *testing.T) { eachVersion(t, testConformanceSingleUser) }

func testConformanceSingleUser(t *testing.T, f *fixture) {
	rotationtest.Run(t, rotationtest.Subject{
		Credential: NewSingleUser(f.cfg),
		NewSecret: func(t *testing.T, _ *secretsmanager.Client) string {
			user, pw := uniqueName("rotary_single"), newPassword(t)
			f.createRole(t, user, pw, "")
			return f.secret(t, user, pw, map[string]any{"unknownField": map[string]any{"kept": true}})
		},
		Check:   f.login,
		Corrupt: func(v string) string { return withField(t, v, "password", field(t, v, "password")+"x") },
	})
}

func TestConformanceMultiUser(t *testing.T) { eachVersion(t, testConformanceMultiUser) }

func testConformanceMultiUser(t *testing.T, f *fixture) {
	rotationtest.Run(t, rotationtest.Subject{
		Credential: NewMultiUser(f.cfg),
		NewSecret: func(t *testing.T, sm *secretsmanager.Client) string {
			user, pw := uniqueName("rotary_multi"), newPassword(t)
			f.createRole(t, user, pw, "")
			masterARN := f.master(t, sm, func(u, p string) string { return f.secret(t, u, p, nil) }, nil, user)
			return f.secret(t, user, pw, map[string]any{"masterarn": masterARN, "unknownField": "kept"})
		},
		Check:   f.login,
		Corrupt: func(v string) string { return withField(t, v, "password", field(t, v, "password")+"x") },
	})
}
