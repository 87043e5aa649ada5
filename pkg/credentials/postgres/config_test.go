package postgres

import (
	"errors"
	"testing"
	"time"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
)

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		connect time.Duration
		keep    bool
		wantErr bool
	}{
		{"defaults", nil, dbsecret.DefaultConnectTimeout, false, false},
		{"connect timeout", map[string]string{dbsecret.EnvConnectTimeout: "10s"}, 10 * time.Second, false, false},
		{"unbounded timeout refused", map[string]string{dbsecret.EnvStatementTimeout: "24h"}, 0, false, true},
		{"missing CA bundle refused", map[string]string{dbsecret.EnvCABundle: "/nonexistent/bundle.pem"}, 0, false, true},
		{"keep sessions on revoke", map[string]string{EnvRevokeKeepSessions: "Yes"}, dbsecret.DefaultConnectTimeout, true, false},
		{"end sessions on revoke", map[string]string{EnvRevokeKeepSessions: "false"}, dbsecret.DefaultConnectTimeout, false, false},
		{"keep sessions not a boolean", map[string]string{EnvRevokeKeepSessions: "sometimes"}, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ConfigFromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr {
				if !errors.Is(err, dbsecret.ErrConfig) {
					t.Fatalf("err = %v, want dbsecret.ErrConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// NewRDS stays nil: only the multi-user function links the RDS
			// client and sets it (internal/buildcheck checks both).
			if cfg.DB.Connect() != tt.connect || cfg.NewRDS != nil || cfg.KeepSessionsOnRevoke != tt.keep {
				t.Fatalf("connect timeout %s, NewRDS set %v, keep sessions %v; want %s, false, %v", cfg.DB.Connect(), cfg.NewRDS != nil, cfg.KeepSessionsOnRevoke, tt.connect, tt.keep)
			}
		})
	}
}
