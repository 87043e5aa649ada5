package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/internal/redisserver"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/password"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

func uniqueName(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func randomPassword(t testing.TB) string {
	t.Helper()
	pw, err := password.DefaultPolicy().Generate()
	if err != nil {
		t.Fatal(err)
	}
	return pw
}

func version(id, value string) rotation.Version { return rotation.Version{ID: id, Value: value} }

// secretFor is a redis-acl secret value for user on s, with extra fields.
func secretFor(s *redisserver.Server, user, pw string, extra map[string]any) string {
	m := map[string]any{"host": s.Host, "port": s.Port, "username": user, "password": pw}
	if s.CAFile == "" {
		m["ssl"] = false
	}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func withField(t testing.TB, value, field string, v any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(value), &m); err != nil {
		t.Fatal(err)
	}
	if v == nil {
		delete(m, field)
	} else {
		m[field] = v
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func passwordOf(t testing.TB, value string) string {
	t.Helper()
	var m struct{ Password string }
	if err := json.Unmarshal([]byte(value), &m); err != nil {
		t.Fatal(err)
	}
	return m.Password
}

func configFor(s *redisserver.Server) Config {
	return Config{DB: dbsecret.Config{CABundlePath: s.CAFile}}
}

// check is the conformance suite's judge: the server's own login, through
// redisserver.Login, which shares no code with the type.
func check(s *redisserver.Server) func(context.Context, string) error {
	return func(ctx context.Context, v string) error { return redisserver.Login(ctx, v, s.CAFile) }
}

func refused(err error) bool { return errors.Is(err, redisserver.ErrRefused) }

func corrupt(t testing.TB) func(string) string {
	return func(v string) string { return withField(t, v, "password", passwordOf(t, v)+"x") }
}

// storeMaster stores a master secret in the local Secrets Manager.
func storeMaster(t testing.TB, sm *secretsmanager.Client, value string) string {
	t.Helper()
	out, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String(uniqueName("master/")), SecretString: aws.String(value),
	})
	if err != nil {
		t.Fatalf("create the master secret: %v", err)
	}
	return aws.ToString(out.ARN)
}

// selfRules are what a user needs to change its own passwords (docs/redis.md).
var selfRules = []string{"+ping", "+acl|getuser", "+acl|setuser", "+acl|save"}

func itoa(n int) string { return strconv.Itoa(n) }

func jsonOf(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}
