package postgres

import (
	"time"

	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/dbsecret/rdsendpoint"
	"github.com/rotary-secrets/rotary/pkg/rotation"
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
		Refused: isAuthFailure,
	})
}

func TestConformanceMultiUser(t *testing.T) { eachVersion(t, testConformanceMultiUser) }

// The master has only what rotation needs (f.master), and revoke leaves
// open sessions running, which then needs nothing more; revoke's ending of
// sessions, which needs pg_signal_backend, is in revoke_test.go.
func testConformanceMultiUser(t *testing.T, f *fixture) {
	cfg := f.cfg
	cfg.KeepSessionsOnRevoke = true
	newSecret := func(t *testing.T, store func(user, pw string) string) string {
		user, pw := uniqueName("rotary_multi"), newPassword(t)
		f.createRole(t, user, pw, "")
		masterARN := store(f.masterUser(t, user))
		return f.secret(t, user, pw, map[string]any{"masterarn": masterARN, "unknownField": "kept"})
	}
	rotationtest.Run(t, rotationtest.Subject{
		Credential: NewMultiUser(cfg),
		NewSecret: func(t *testing.T, sm *secretsmanager.Client) string {
			return newSecret(t, func(user, pw string) string {
				out, err := sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{
					Name: aws.String("master/" + user), SecretString: aws.String(f.secret(t, user, pw, nil)),
				})
				if err != nil {
					t.Fatalf("create master secret: %v", err)
				}
				return aws.ToString(out.ARN)
			})
		},
		Check:   f.login,
		Corrupt: func(v string) string { return withField(t, v, "password", field(t, v, "password")+"x") },
		Refused: isAuthFailure,
		Master: &rotationtest.Master{
			NewSecret: newSecret,
			Engine:    "postgres", ClusterEngine: "aurora-postgresql",
			Host: f.c.Host, Port: f.c.Port,
			WithRDS: func(client *rds.Client) rotation.Credential {
				c := cfg
				c.NewRDS = func(context.Context) (dbsecret.RDSAPI, error) { return rdsendpoint.Of(client), nil }
				return NewMultiUser(c)
			},
		},
	})
}

func TestConformanceExpiringUsers(t *testing.T) { eachVersion(t, testConformanceExpiringUsers) }

// The master has what docs/expiring-users.md lists (f.masterUser), and
// revoke leaves open sessions running, as for alternating users; ending
// them is in expiringusers_test.go.
func testConformanceExpiringUsers(t *testing.T, f *fixture) {
	cfg := f.cfg
	cfg.KeepSessionsOnRevoke = true
	exp := dbsecret.ExpiringConfig{TTL: time.Hour, MinTTL: time.Second}
	newCred := func(cfg Config) rotation.Credential {
		c, err := NewExpiringUsers(cfg, exp)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	newSecret := func(t *testing.T, store func(user, pw string) string) string {
		user, pw := uniqueName("rotary_exp"), newPassword(t)
		f.createRole(t, user, pw, "")
		t.Cleanup(func() { f.dropExpiring(t, user) })
		masterARN := store(f.masterUser(t, user))
		return f.secret(t, user, pw, map[string]any{"masterarn": masterARN, "unknownField": "kept"})
	}
	rotationtest.Run(t, rotationtest.Subject{
		Credential: newCred(cfg),
		NewSecret: func(t *testing.T, sm *secretsmanager.Client) string {
			return newSecret(t, func(user, pw string) string {
				out, err := sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{
					Name: aws.String("master/" + user), SecretString: aws.String(f.secret(t, user, pw, nil)),
				})
				if err != nil {
					t.Fatalf("create master secret: %v", err)
				}
				return aws.ToString(out.ARN)
			})
		},
		Check:   f.login,
		Corrupt: func(v string) string { return withField(t, v, "password", field(t, v, "password")+"x") },
		Refused: isAuthFailure,
		Master: &rotationtest.Master{
			NewSecret: newSecret,
			Engine:    "postgres", ClusterEngine: "aurora-postgresql",
			Host: f.c.Host, Port: f.c.Port,
			WithRDS: func(client *rds.Client) rotation.Credential {
				c := cfg
				c.NewRDS = func(context.Context) (dbsecret.RDSAPI, error) { return rdsendpoint.Of(client), nil }
				return newCred(c)
			},
		},
	})
}
