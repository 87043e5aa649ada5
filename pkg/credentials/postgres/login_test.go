package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/internal/pgcluster/pgtest"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
)

// TestSingleUserLoginOrder proves setSecret falls back from the current to
// the previous password, and fails cleanly when none works.
func TestSingleUserLoginOrder(t *testing.T) {
	f := setup(t)
	t.Run("only the previous password works", func(t *testing.T) {
		e := newEnv(t, f, NewSingleUser(f.cfg))
		user, pw1 := uniqueName("rotary_order"), newPassword(t)
		f.createRole(t, user, pw1, "")
		arn := createSecret(t, e, f.secret(t, user, pw1, nil))
		// Someone stored a new password without setting it on the server:
		// AWSCURRENT is wrong, AWSPREVIOUS is right.
		broken := f.secret(t, user, newPassword(t), nil)
		if _, err := e.Client.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(arn), SecretString: aws.String(broken)}); err != nil {
			t.Fatal(err)
		}
		f.mustNotLogin(t, "the broken AWSCURRENT", broken)
		if _, err := e.Rotate(t, arn); err != nil {
			t.Fatalf("rotation with only AWSPREVIOUS valid: %v", err)
		}
		f.mustLogin(t, "AWSCURRENT after the rotation", current(t, e, arn))
		f.mustNotLogin(t, "the password before the rotation", f.secret(t, user, pw1, nil))
	})
	t.Run("no password works", func(t *testing.T) {
		e := newEnv(t, f, NewSingleUser(f.cfg))
		user, pw1 := uniqueName("rotary_order"), newPassword(t)
		f.createRole(t, user, pw1, "")
		arn := createSecret(t, e, f.secret(t, user, newPassword(t), nil))
		_, err := e.Rotate(t, arn)
		if err == nil || !strings.Contains(err.Error(), "cannot log in to PostgreSQL") || !strings.Contains(err.Error(), "no previous version") {
			t.Fatalf("rotation with no valid password: err = %v, want a login error naming the versions tried", err)
		}
		f.mustLogin(t, "the server's password, untouched", f.secret(t, user, pw1, nil))
	})
}

// TestTLS proves full verification with the CA bundle, refusal on a wrong
// host name or an unknown CA, plaintext only with "ssl": false, and no
// silent fallback from TLS to plaintext.
func TestTLS(t *testing.T) {
	f := setup(t)
	plain := plainCluster.Get(t)
	user, pw := uniqueName("rotary_tls"), newPassword(t)
	f.createRole(t, user, pw, "")
	// The same role on the cluster without TLS.
	pgtest.CreateRole(t, plain, user, pw, "")

	withBundle := f.cfg
	noBundle := Config{DB: dbsecret.DefaultConfig()}
	secret := func(host string, port int, ssl any) *dbsecret.Secret {
		extra := map[string]any{"host": host, "port": port}
		if ssl != nil {
			extra["ssl"] = ssl
		}
		s, err := dbsecret.Parse(f.secret(t, user, pw, extra))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name    string
		cfg     Config
		s       *dbsecret.Secret
		wantTLS bool
		wantErr string // empty: login succeeds
	}{
		{"CA bundle, right host", withBundle, secret("127.0.0.1", f.c.Port, nil), true, ""},
		{"ssl true is the default", withBundle, secret("127.0.0.1", f.c.Port, true), true, ""},
		{"CA bundle, wrong host name", withBundle, secret("localhost", f.c.Port, nil), false, "certificate"},
		{"no CA bundle", noBundle, secret("127.0.0.1", f.c.Port, nil), false, "certificate"},
		{"ssl false allows plaintext", withBundle, secret("127.0.0.1", f.c.Port, false), false, ""},
		{"server without TLS is refused", withBundle, secret("127.0.0.1", plain.Port, nil), false, "TLS"},
		{"server without TLS and ssl \"false\"", withBundle, secret("127.0.0.1", plain.Port, "false"), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn, err := tt.cfg.connect(ctx, tt.s)
			if tt.wantErr != "" {
				if err == nil {
					conn.Close(ctx)
					t.Fatalf("login succeeded, want an error about %s (no fallback to plaintext)", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("login error = %v, want one about %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			defer conn.Close(ctx)
			var ssl bool
			if err := conn.QueryRow(ctx, "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)").Scan(&ssl); err != nil {
				t.Fatal(err)
			}
			if ssl != tt.wantTLS {
				t.Fatalf("connection uses TLS = %v, want %v", ssl, tt.wantTLS)
			}
		})
	}

	t.Run("rotation with a wrong host name changes nothing", func(t *testing.T) {
		e := newEnv(t, f, NewSingleUser(f.cfg))
		old := f.secret(t, user, pw, map[string]any{"host": "localhost"})
		arn := createSecret(t, e, old)
		if _, err := e.Rotate(t, arn); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("rotation err = %v, want a certificate error", err)
		}
		if current(t, e, arn) != old {
			t.Fatal("AWSCURRENT changed after a failed rotation")
		}
		f.mustLogin(t, "the old credential", f.secret(t, user, pw, nil))
	})
}
