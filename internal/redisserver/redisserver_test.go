package redisserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/rotary-secrets/rotary/internal/redisserver"
	"github.com/rotary-secrets/rotary/internal/redisserver/redistest"
)

func value(s *redisserver.Server, user, pw string, ssl bool) string {
	b, _ := json.Marshal(map[string]any{"host": s.Host, "port": s.Port, "username": user, "password": pw, "ssl": ssl})
	return string(b)
}

// TestServerChecksPasswords: the throwaway server logs a user in with its
// password and refuses a wrong one, with and without TLS, and refuses a
// client that does not trust its CA.
func TestServerChecksPasswords(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts redisserver.Options
	}{{"plain", redisserver.Options{}}, {"tls", redisserver.Options{TLS: true, ACLFile: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := redistest.Start(t, tc.opts)
			ctx := context.Background()
			redistest.CreateUser(t, s, "app", "right-password-1234")
			if err := redisserver.Login(ctx, value(s, "app", "right-password-1234", tc.opts.TLS), s.CAFile); err != nil {
				t.Fatalf("the right password: %v", err)
			}
			err := redisserver.Login(ctx, value(s, "app", "wrong-password-1234", tc.opts.TLS), s.CAFile)
			if !errors.Is(err, redisserver.ErrRefused) {
				t.Fatalf("a wrong password: got %v, want a refusal", err)
			}
			if err := redisserver.Login(ctx, value(s, "default", "", tc.opts.TLS), s.CAFile); err == nil {
				t.Fatal("the default user logs in without its password")
			}
			if tc.opts.TLS {
				if err := redisserver.Login(ctx, value(s, "app", "right-password-1234", false), ""); err == nil || strings.Contains(err.Error(), "WRONGPASS") {
					t.Fatalf("a plaintext client of a TLS-only server: got %v", err)
				}
			}
			h, err := s.PasswordHashes(ctx, "app")
			if err != nil || len(h) != 1 || strings.Contains(h[0], "right") {
				t.Fatalf("PasswordHashes = %v, %v; want one hash", h, err)
			}
		})
	}
}
