package pgtest_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotary-secrets/rotary/internal/pgcluster"
	"github.com/rotary-secrets/rotary/internal/pgcluster/pgtest"
)

var (
	cluster  = pgtest.NewShared(pgcluster.Options{TLS: true, TLSHosts: []string{"127.0.0.1"}})
	versions = pgtest.NewMatrix(pgcluster.Options{TLS: true, TLSHosts: []string{"127.0.0.1"}})
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := errors.Join(cluster.Close(), versions.Close()); err != nil {
		println(err.Error())
	}
	os.Exit(code)
}

func createUser(t *testing.T, c *pgcluster.Cluster, name, password string) {
	t.Helper()
	pgtest.CreateRole(t, c, name, password, "")
}

// login connects over TCP as user with password; serverName "" means no TLS.
func login(ctx context.Context, c *pgcluster.Cluster, user, password, serverName string) error {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database = c.Host, uint16(c.Port), user, password, "postgres"
	cfg.Fallbacks, cfg.TLSConfig = nil, nil
	if serverName != "" {
		cfg.TLSConfig = c.TLSConfig(serverName)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// TestPasswordsAreChecked proves the cluster refuses a wrong password, which
// the machine's own PostgreSQL (trust auth) would not.
func TestPasswordsAreChecked(t *testing.T) {
	c := cluster.Get(t)
	createUser(t, c, "pgcluster_login", "right-password")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tests := []struct {
		name, password, serverName string
		ok                         bool
	}{
		{"right password over TLS", "right-password", "127.0.0.1", true},
		{"right password in plaintext", "right-password", "", true},
		{"wrong password", "wrong-password", "127.0.0.1", false},
		{"empty password", "", "127.0.0.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := login(ctx, c, "pgcluster_login", tt.password, tt.serverName)
			if tt.ok && err != nil {
				t.Fatalf("login refused: %v", err)
			}
			if !tt.ok {
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
					t.Fatalf("login error = %v, want invalid_password (28P01)", err)
				}
			}
		})
	}
}

func TestTLSVerifiesHostName(t *testing.T) {
	c := cluster.Get(t)
	createUser(t, c, "pgcluster_tls", "pw")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := login(ctx, c, "pgcluster_tls", "pw", "db.wrong.test")
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("login with a wrong server name = %v, want a certificate error", err)
	}
}

// TestEveryVersion: each version the tests run on starts as the version it
// claims, demands scram-sha-256 and loads pg_stat_statements.
func TestEveryVersion(t *testing.T) {
	versions.Run(t, func(t *testing.T, c *pgcluster.Cluster) {
		createUser(t, c, "pgcluster_version", "right-password")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := login(ctx, c, "pgcluster_version", "right-password", "127.0.0.1"); err != nil {
			t.Fatalf("login refused: %v", err)
		}
		var pgErr *pgconn.PgError
		if err := login(ctx, c, "pgcluster_version", "wrong-password", "127.0.0.1"); !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
			t.Fatalf("login with a wrong password = %v, want invalid_password (28P01)", err)
		}
		admin, err := c.ConnectAdmin(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close(ctx)
		var num int
		var libs string
		if err := admin.QueryRow(ctx, "SELECT current_setting('server_version_num')::int, current_setting('shared_preload_libraries')").Scan(&num, &libs); err != nil {
			t.Fatal(err)
		}
		if num/10000 != c.Major || libs != "pg_stat_statements" {
			t.Fatalf("server_version_num %d, shared_preload_libraries %q; want major %d and pg_stat_statements", num, libs, c.Major)
		}
	})
}

// TestPrependHBARejectsAndRestores: a reject rule for one role refuses its
// next login at once (28000) and leaves other roles alone; no rules bring
// the login back; a line the server cannot parse changes nothing.
func TestPrependHBARejectsAndRestores(t *testing.T) {
	c := cluster.Get(t)
	createUser(t, c, "pgcluster_hba", "pw")
	createUser(t, c, "pgcluster_hba_other", "pw")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Cleanup(func() {
		if err := c.PrependHBA(context.Background()); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})

	if err := c.PrependHBA(ctx, `host all "pgcluster_hba" 127.0.0.1/32 reject`); err != nil {
		t.Fatal(err)
	}
	var pgErr *pgconn.PgError
	if err := login(ctx, c, "pgcluster_hba", "pw", "127.0.0.1"); !errors.As(err, &pgErr) || pgErr.Code != "28000" {
		t.Fatalf("login of the rejected role = %v, want invalid_authorization_specification (28000)", err)
	}
	if err := login(ctx, c, "pgcluster_hba_other", "pw", "127.0.0.1"); err != nil {
		t.Fatalf("another role is refused too: %v", err)
	}

	err := c.PrependHBA(ctx, "host all all 127.0.0.1/32 no-such-method")
	if err == nil || !strings.Contains(err.Error(), "nothing changed") {
		t.Fatalf("PrependHBA with a bad line = %v, want a refusal", err)
	}
	if err := login(ctx, c, "pgcluster_hba", "pw", "127.0.0.1"); !errors.As(err, &pgErr) || pgErr.Code != "28000" {
		t.Fatalf("after the refused change, the reject rule is gone: %v", err)
	}

	if err := c.PrependHBA(ctx); err != nil {
		t.Fatal(err)
	}
	if err := login(ctx, c, "pgcluster_hba", "pw", "127.0.0.1"); err != nil {
		t.Fatalf("login after the rules were removed: %v", err)
	}
}
