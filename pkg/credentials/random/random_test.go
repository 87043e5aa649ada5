package random

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/password"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConformance(t *testing.T) {
	cfg, err := ConfigFromEnv(env(map[string]string{"ROTATE_FIELDS": "apiKey:40:alnum,signingKey:64:hex,password:48"}))
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rotationtest.Run(t, rotationtest.Subject{
		Credential: r,
		NewSecret: func(t *testing.T, _ *secretsmanager.Client) string {
			return `{"apiKey":"` + strings.Repeat("a", 40) + `","signingKey":"` + strings.Repeat("0", 64) + `","password":"` + strings.Repeat("p", 48) + `","clientId":"kept-as-is","nested":{"x":1}}`
		},
		Check: func(ctx context.Context, value string) error {
			var m map[string]any
			if err := json.Unmarshal([]byte(value), &m); err != nil {
				return err
			}
			if m["clientId"] != "kept-as-is" {
				return errors.New("clientId was not kept")
			}
			if _, ok := m["nested"].(map[string]any); !ok {
				return errors.New("nested object was not kept")
			}
			return r.checkFields(m)
		},
		Corrupt: func(value string) string {
			return strings.Replace(value, `"apiKey":"`, `"apiKey":"!`, 1)
		},
		// Only consumers hold the values: no system can refuse an old one.
		NoDownstream: true,
	})
}

func TestConfigFromEnv(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		want    []Field
		wantErr string
	}{
		{"default", nil, []Field{{"password", 32, "password"}}, ""},
		{"default follows PASSWORD_LENGTH", map[string]string{"PASSWORD_LENGTH": "20"}, []Field{{"password", 20, "password"}}, ""},
		{"bad password policy", map[string]string{"PASSWORD_LENGTH": "x"}, nil, "PASSWORD_LENGTH"},
		{"password alphabet with a length", map[string]string{"ROTATE_FIELDS": "password:64,pin:6:numeric"},
			[]Field{{"password", 64, "password"}, {"pin", 6, "numeric"}}, ""},
		{"password length the policy cannot make", map[string]string{"ROTATE_FIELDS": "password:3"}, nil, `ROTATE_FIELDS entry "password:3"`},
		{"list", map[string]string{"ROTATE_FIELDS": "apiKey, token:16:hex", "RANDOM_LENGTH": "50", "RANDOM_ALPHABET": "base64url"},
			[]Field{{"apiKey", 50, "base64url"}, {"token", 16, "hex"}}, ""},
		{"bad length", map[string]string{"ROTATE_FIELDS": "k:0"}, nil, "ROTATE_FIELDS entry"},
		{"bad alphabet", map[string]string{"ROTATE_FIELDS": "k:10:emoji"}, nil, "unknown alphabet"},
		{"duplicate", map[string]string{"ROTATE_FIELDS": "k,k"}, nil, "twice"},
		{"bad default length", map[string]string{"RANDOM_LENGTH": "x"}, nil, "RANDOM_LENGTH"},
		{"too many parts", map[string]string{"ROTATE_FIELDS": "a:1:hex:z"}, nil, "name[:length[:alphabet]]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := ConfigFromEnv(env(c.env))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Fields) != len(c.want) {
				t.Fatalf("fields = %v, want %v", cfg.Fields, c.want)
			}
			for i := range c.want {
				if cfg.Fields[i] != c.want[i] {
					t.Fatalf("field %d = %v, want %v", i, cfg.Fields[i], c.want[i])
				}
			}
		})
	}
}

// TestPasswordFieldLength proves that a password-alphabet field gets its
// entry's length, else RANDOM_LENGTH, else the policy's (PASSWORD_LENGTH).
func TestPasswordFieldLength(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want int
	}{
		{"policy length", map[string]string{"PASSWORD_LENGTH": "20"}, 20},
		{"entry length", map[string]string{"PASSWORD_LENGTH": "20", "ROTATE_FIELDS": "password:64"}, 64},
		{"entry length, default policy", map[string]string{"ROTATE_FIELDS": "password:10"}, 10},
		{"RANDOM_LENGTH", map[string]string{"PASSWORD_LENGTH": "20", "RANDOM_LENGTH": "40"}, 40},
		{"entry length over RANDOM_LENGTH", map[string]string{"RANDOM_LENGTH": "40", "ROTATE_FIELDS": "password:12"}, 12},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := ConfigFromEnv(env(c.env))
			if err != nil {
				t.Fatal(err)
			}
			r, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			policy, err := password.FromEnv(env(c.env))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := r.Generate(context.Background(), rotation.GenerateRequest{Passwords: policy})
			if err != nil {
				t.Fatal(err)
			}
			pw, _ := resp.Changes["password"].(string)
			if len(pw) != c.want {
				t.Fatalf("password has %d characters, want %d", len(pw), c.want)
			}
			if err := r.checkFields(map[string]any{"password": pw}); err != nil {
				t.Fatalf("Test refuses the generated value: %v", err)
			}
		})
	}
}
