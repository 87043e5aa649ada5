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
		wantErr bool
	}{
		{"defaults", nil, dbsecret.DefaultConnectTimeout, false},
		{"connect timeout", map[string]string{dbsecret.EnvConnectTimeout: "10s"}, 10 * time.Second, false},
		{"unbounded timeout refused", map[string]string{dbsecret.EnvStatementTimeout: "24h"}, 0, true},
		{"missing CA bundle refused", map[string]string{dbsecret.EnvCABundle: "/nonexistent/bundle.pem"}, 0, true},
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
			if cfg.DB.Connect() != tt.connect || cfg.NewRDS == nil {
				t.Fatalf("connect timeout %s, NewRDS set %v; want %s, true", cfg.DB.Connect(), cfg.NewRDS != nil, tt.connect)
			}
		})
	}
}
