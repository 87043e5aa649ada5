package pgcluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

var (
	cluster  = NewShared(Options{TLS: true, TLSHosts: []string{"127.0.0.1"}})
	versions = NewMatrix(Options{TLS: true, TLSHosts: []string{"127.0.0.1"}})
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := errors.Join(cluster.Stop(), versions.Stop()); err != nil {
		println(err.Error())
	}
	os.Exit(code)
}

// login connects over TCP as user with password; serverName "" means no TLS.
func login(ctx context.Context, c *Cluster, user, password, serverName string) error {
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

func createUser(t *testing.T, c *Cluster, name, password string) {
	t.Helper()
	ctx := context.Background()
	admin, err := c.ConnectAdmin(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `CREATE ROLE `+name+` LOGIN PASSWORD '`+password+`'`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin, err := c.ConnectAdmin(ctx, "")
		if err != nil {
			t.Error(err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, `DROP ROLE `+name); err != nil {
			t.Error(err)
		}
	})
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

func TestStopRemovesEverything(t *testing.T) {
	if cluster.Get(t) == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := c.dir
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("cluster directory still exists after Stop: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop() = %v, want nil", err)
	}
}

// TestSweepRemovesOrphans: a cluster whose owner process died is stopped
// and removed by the next Start; one whose owner lives is left alone.
func TestSweepRemovesOrphans(t *testing.T) {
	if cluster.Get(t) == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	orphan, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { orphan.Stop() })
	// Pretend its owner died: a PID that cannot exist.
	if err := os.WriteFile(filepath.Join(orphan.dir, ownerFile), []byte("2147483647"), 0o644); err != nil {
		t.Fatal(err)
	}
	next, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { next.Stop() })
	if _, err := os.Stat(orphan.dir); !os.IsNotExist(err) {
		t.Fatalf("the orphaned cluster's directory is still there: %v", err)
	}
	if err := orphan.ping(ctx); err == nil {
		t.Fatal("the orphaned cluster still accepts connections")
	}
	if err := cluster.Get(t).ping(ctx); err != nil {
		t.Fatalf("the shared cluster of this (living) process was swept: %v", err)
	}
}

// TestEveryVersion: each version the tests run on starts as the version it
// claims, demands scram-sha-256 and loads pg_stat_statements.
func TestEveryVersion(t *testing.T) {
	versions.Run(t, func(t *testing.T, c *Cluster) {
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

// TestBinDirForMissingVersion: a version that is not installed is an error
// naming where it was looked for and the command that installs it.
func TestBinDirForMissingVersion(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvCacheDir, dir)
	t.Setenv(EnvBinDirFor(16), "")
	_, err := BinDirFor(16)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "16", "bin")) || !strings.Contains(err.Error(), InstallScript) {
		t.Fatalf("BinDirFor(16) with an empty cache = %v, want an error naming %s and %s", err, filepath.Join(dir, "16", "bin"), InstallScript)
	}
	if _, err := Versions(); err == nil || !strings.Contains(err.Error(), InstallScript) {
		t.Fatalf("Versions() with an empty cache = %v, want an error naming %s", err, InstallScript)
	}
}

// TestSweepStopsOtherVersions: an orphaned cluster of another version is
// stopped with its own pg_ctl.
func TestSweepStopsOtherVersions(t *testing.T) {
	if cluster.Get(t) == nil {
		return
	}
	other := versions.Get(t, 18)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	orphan, err := Start(ctx, Options{BinDir: other.bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { orphan.Stop() })
	if err := os.WriteFile(filepath.Join(orphan.dir, ownerFile), []byte("2147483647"), 0o644); err != nil {
		t.Fatal(err)
	}
	next, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { next.Stop() })
	if _, err := os.Stat(orphan.dir); !os.IsNotExist(err) {
		t.Fatalf("the orphaned PostgreSQL 18 cluster's directory is still there: %v", err)
	}
	if err := orphan.ping(ctx); err == nil {
		t.Fatal("the orphaned PostgreSQL 18 cluster still accepts connections")
	}
}

func TestSelected(t *testing.T) {
	tests := []struct {
		env     string
		want    []int
		wantErr bool
	}{
		{"", Majors, false},
		{"16", []int{16}, false},
		{" 13, 18 ", []int{13, 18}, false},
		{"16,12", nil, true},
		{"sixteen", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv(EnvMajors, tt.env)
			var got []int
			for _, m := range Majors {
				ok, err := Selected(m)
				if tt.wantErr {
					if err == nil || !strings.Contains(err.Error(), EnvMajors) {
						t.Fatalf("Selected(%d) error = %v, want one naming %s", m, err, EnvMajors)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					got = append(got, m)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("selected %v, want %v", got, tt.want)
			}
		})
	}
}
