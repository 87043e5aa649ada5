package rdsmaster

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
)

// dbARN is the ARN the deployment binds a secret to, for a secret value
// of the local RDS.
func dbARN(t *testing.T, value string) string {
	t.Helper()
	if id := field(t, value, "dbClusterIdentifier"); id != "" {
		return "arn:aws:rds:us-east-1:123456789012:cluster:" + id
	}
	return "arn:aws:rds:us-east-1:123456789012:db:" + field(t, value, "dbInstanceIdentifier")
}

// TestBindingsRefuseAnotherDatabase: one function serves several secrets
// and may modify each of their databases. Someone who may write the
// secret bound to database A, and sets its fields to database B (also
// served by the function, every field matching B, so that every check
// against RDS passes), must not get B's master password reset: with
// ROTARY_RDS_BINDINGS the rotation is refused before any RDS call, B's
// master password is unchanged and still logs in. The secret bound to its
// own database (by complete or partial ARN) rotates; without the bindings
// (a function deployed by hand) the rewritten secret rotates as before,
// which is what the bindings close.
func TestBindingsRefuseAnotherDatabase(t *testing.T) {
	s := pgStack(t)
	valueA, valueB := s.database(t, false, nil), s.database(t, true, nil)
	idB := field(t, valueB, "dbClusterIdentifier")
	bindings := dbsecret.Bindings{}
	cfg := s.config(false)
	cfg.Bindings = bindings // filled as the secrets are made, as the deployment would
	var value string
	newEnv := func(cfg Config) *rotationtest.Env {
		return rotationtest.NewEnv(t, rotationtest.Subject{
			Credential: New(cfg),
			NewSecret:  func(t *testing.T, _ *secretsmanager.Client) string { return value },
			Check:      s.login, Refused: s.refused,
			Corrupt: func(v string) string { return v },
		})
	}
	e := newEnv(cfg)
	// The hostile version: every field B's, the password not B's (the
	// writer does not know it, and needs not: RDS sets it without).
	hostile := withField(t, valueB, "password", newPassword(t))

	refused := func(t *testing.T, e *rotationtest.Env, arn, old, want string) {
		t.Helper()
		msg := rotateExpectingFailure(t, e, arn)
		if !strings.Contains(msg, want) {
			t.Fatalf("the rotation's error does not say %q: %s", want, msg)
		}
		if rotationtest.Leaks(msg, field(t, old, "password")) || rotationtest.Leaks(e.Logs(), field(t, old, "password")) {
			t.Fatal("the error or the logs quote AWSCURRENT's password")
		}
		if _, cur, _ := e.Value(t, arn, rotation.LabelCurrent); cur != old {
			t.Fatal("AWSCURRENT changed")
		}
		if n := s.rds.Applied(idB); n != 0 {
			t.Fatalf("RDS applied %d master password changes to %s; want none", n, idB)
		}
		if err := s.login(context.Background(), valueB); err != nil {
			t.Fatalf("B's master no longer logs in with its password: %v", err)
		}
	}

	t.Run("BoundToAnotherDatabase", func(t *testing.T) {
		value = hostile
		arn, old := e.NewSecret(t)
		bindings[arn] = dbARN(t, valueA)
		refused(t, e, arn, old, `field "dbClusterIdentifier" is "`+idB+`", but this secret is bound to `+dbARN(t, valueA))
	})
	t.Run("NotBound", func(t *testing.T) {
		value = hostile
		arn, old := e.NewSecret(t)
		refused(t, e, arn, old, "is bound to no database in "+EnvBindings)
	})
	t.Run("BoundToItsDatabase", func(t *testing.T) {
		for _, partial := range []bool{false, true} {
			value = valueA
			arn, old := e.NewSecret(t)
			key := arn
			if partial {
				key = arn[:len(arn)-7]
			}
			bindings[key] = dbARN(t, valueA)
			if _, err := e.Rotate(t, arn); err != nil {
				t.Fatalf("the rotation of a secret bound to its database (partial ARN %v): %v", partial, err)
			}
			_, cur, _ := e.Value(t, arn, rotation.LabelCurrent)
			if err := s.login(context.Background(), cur); err != nil {
				t.Fatalf("the new AWSCURRENT does not log in: %v", err)
			}
			if err := s.login(context.Background(), old); !s.refused(err) {
				t.Fatalf("the replaced password: %v, want it refused", err)
			}
			valueA = cur
		}
	})
	t.Run("UnsetBindsNothing", func(t *testing.T) {
		cfg := s.config(false)
		e := newEnv(cfg)
		value = hostile
		arn, _ := e.NewSecret(t)
		if _, err := e.Rotate(t, arn); err != nil {
			t.Fatalf("without bindings the rewritten secret is rotated as before, got: %v", err)
		}
		if n := s.rds.Applied(idB); n == 0 {
			t.Fatal("the test is void: without bindings the function did not reset B's master password either")
		}
	})
}

// TestParseBindings: ROTARY_RDS_BINDINGS must be the object the CDK app
// writes; each mistake is named.
func TestParseBindings(t *testing.T) {
	const secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf"
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == EnvBindings {
				return v
			}
			return ""
		}
	}
	for _, tc := range []struct{ value, want string }{
		{`[]`, "not a JSON object"},
		{`{"` + secret + `": 1}`, "not a JSON object"},
		{`{"app": "arn:aws:rds:us-east-1:123456789012:db:one"}`, `key "app" is not a Secrets Manager secret ARN`},
		{`{"` + secret + `": "one"}`, `"one" is not the ARN of an RDS DB instance`},
		{`{"` + secret + `": "arn:aws:rds:us-east-1:123456789012:snapshot:one"}`, "is not the ARN of an RDS DB instance"},
	} {
		if _, err := ConfigFromEnv(env(tc.value)); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), EnvBindings) {
			t.Errorf("%s: %v, want an error naming %s and saying %q", tc.value, err, EnvBindings, tc.want)
		}
	}
	c, err := ConfigFromEnv(env(`{"` + secret + `": "arn:aws:rds:us-east-1:123456789012:cluster:two"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := c.Bindings.Lookup(secret); !ok || got != "arn:aws:rds:us-east-1:123456789012:cluster:two" {
		t.Fatalf("Lookup = %q, %v", got, ok)
	}
	if c, err := ConfigFromEnv(env("")); err != nil || c.Bindings != nil {
		t.Fatalf("unset: %v, %v; want no bindings", c.Bindings, err)
	}
	// A binding for the cluster refuses the instance of the same name.
	s := &dbsecret.Secret{DBInstanceIdentifier: "two"}
	if err := c.checkBinding(secret, s); err == nil || !strings.Contains(err.Error(), `field "dbInstanceIdentifier" is "two"`) {
		t.Fatalf("an instance named as the bound cluster: %v", err)
	}
	if err := c.checkBinding(secret, &dbsecret.Secret{DBClusterIdentifier: "TWO"}); err != nil {
		t.Fatalf("RDS identifiers are case-insensitive: %v", err)
	}
}
