package mysql

import (
	"errors"
	"testing"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
)

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		wantLimit int
		wantKeep  bool
		wantErr   bool
	}{
		{name: "defaults", env: map[string]string{}, wantLimit: 0},
		{name: "limit", env: map[string]string{EnvUsernameLimit: " 32 "}, wantLimit: 32},
		{name: "limit not a number", env: map[string]string{EnvUsernameLimit: "thirty"}, wantErr: true},
		{name: "limit zero", env: map[string]string{EnvUsernameLimit: "0"}, wantErr: true},
		{name: "bad timeout", env: map[string]string{dbsecret.EnvConnectTimeout: "forever"}, wantErr: true},
		{name: "keep sessions on revoke", env: map[string]string{EnvRevokeKeepSessions: "Yes"}, wantKeep: true},
		{name: "end sessions on revoke", env: map[string]string{EnvRevokeKeepSessions: "false"}},
		{name: "keep sessions not a boolean", env: map[string]string{EnvRevokeKeepSessions: "sometimes"}, wantErr: true},
		{name: "missing CA bundle", env: map[string]string{dbsecret.EnvCABundle: "/nonexistent/ca.pem"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ConfigFromEnv(func(k string) string { return tc.env[k] })
			if tc.wantErr {
				if !errors.Is(err, dbsecret.ErrConfig) {
					t.Fatalf("err = %v, want one wrapping dbsecret.ErrConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.UsernameLimit != tc.wantLimit {
				t.Fatalf("UsernameLimit = %d, want %d", cfg.UsernameLimit, tc.wantLimit)
			}
			if cfg.KeepSessionsOnRevoke != tc.wantKeep {
				t.Fatalf("KeepSessionsOnRevoke = %v, want %v", cfg.KeepSessionsOnRevoke, tc.wantKeep)
			}
			// Only the multi-user function links the RDS client and sets
			// NewRDS (internal/buildcheck checks both).
			if cfg.NewRDS != nil {
				t.Fatal("ConfigFromEnv set NewRDS, which links the RDS client into the single-user function")
			}
		})
	}
}
