package rdsmaster

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rotary-secrets/rotary/pkg/password"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

func TestConfigFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := ConfigFromEnv(env(nil))
	if err != nil || c.Login || c.WaitTimeout != DefaultWaitTimeout || c.NewRDS == nil {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	c, err = ConfigFromEnv(env(map[string]string{EnvLogin: "yes", EnvWaitTimeout: "90s"}))
	if err != nil || !c.Login || c.WaitTimeout != 90*time.Second {
		t.Fatalf("login and wait: %+v %v", c, err)
	}
	c, err = ConfigFromEnv(env(map[string]string{EnvSettle: "0s", EnvPollInterval: "250ms"}))
	if err != nil || c.settle() != 0 || c.pollInterval() != 250*time.Millisecond {
		t.Fatalf("settle and poll: %+v %v", c, err)
	}
	if c, _ := ConfigFromEnv(env(nil)); c.settle() != DefaultSettle || c.pollInterval() != DefaultPollInterval {
		t.Fatalf("default settle and poll: %+v", c)
	}
	for _, m := range []map[string]string{{EnvSettle: "later"}, {EnvSettle: "6m"}, {EnvSettle: "-1s"}, {EnvPollInterval: "1ms"}, {EnvPollInterval: "2m"}} {
		for k := range m {
			if _, err := ConfigFromEnv(env(m)); err == nil || !strings.Contains(err.Error(), k) {
				t.Errorf("%v: error %v, want one naming %s", m, err, k)
			}
		}
	}
	for name, m := range map[string]map[string]string{
		EnvLogin:       {EnvLogin: "maybe"},
		EnvWaitTimeout: {EnvWaitTimeout: "soon"},
		"too short":    {EnvWaitTimeout: "1s"},
		"too long":     {EnvWaitTimeout: "20m"},
	} {
		_, err := ConfigFromEnv(env(m))
		want := EnvWaitTimeout
		if name == EnvLogin {
			want = EnvLogin
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one naming %s", name, err, want)
		}
	}
}

func TestGenerateFollowsRDSRules(t *testing.T) {
	m := New(Config{})
	cur := func(v string) rotation.Version { return rotation.Version{ID: "v1", Value: v} }
	mysqlInstance := `{"engine":"mysql","host":"h","username":"admin","password":"Abcdefgh12","dbInstanceIdentifier":"db"}`
	pgInstance := `{"engine":"postgres","host":"h","username":"admin","password":"Abcdefgh12","dbInstanceIdentifier":"db"}`
	for i := 0; i < 200; i++ {
		out, err := m.Generate(context.Background(), rotation.GenerateRequest{Current: cur(pgInstance), Passwords: password.DefaultPolicy()})
		if err != nil {
			t.Fatal(err)
		}
		if pw := out.Changes["password"].(string); strings.ContainsAny(pw, rdsExcluded) || len(pw) != 32 {
			t.Fatalf("generated a password RDS refuses (%d characters, or one of %q)", len(pw), rdsExcluded)
		}
	}
	long := password.DefaultPolicy()
	long.Length = 64
	if _, err := m.Generate(context.Background(), rotation.GenerateRequest{Current: cur(mysqlInstance), Passwords: long}); err == nil || !strings.Contains(err.Error(), "PASSWORD_LENGTH") {
		t.Fatalf("a 64-character password for MySQL: %v, want PASSWORD_LENGTH refused (RDS takes 8 to 41)", err)
	}
	if _, err := m.Generate(context.Background(), rotation.GenerateRequest{Current: cur(pgInstance), Passwords: long}); err != nil {
		t.Fatalf("a 64-character password for PostgreSQL (RDS takes up to 128): %v", err)
	}
}
