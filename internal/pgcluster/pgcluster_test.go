package pgcluster

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// requireBinaries skips the test when PostgreSQL 15's binaries are
// missing, or fails it under CI=true.
func requireBinaries(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(DefaultBinDir + "/initdb"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL's binaries are required with CI=true: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
}

// start starts a cluster with opts, stopped in t.Cleanup.
func start(t *testing.T, ctx context.Context, opts Options) *Cluster {
	t.Helper()
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestStopRemovesEverything(t *testing.T) {
	requireBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := c.dir
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("cluster directory still exists after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close() = %v, want nil", err)
	}
}

// TestSweepRemovesOrphans: a cluster whose owner process died is stopped
// and removed by the next Start; one whose owner lives is left alone.
func TestSweepRemovesOrphans(t *testing.T) {
	requireBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	living := start(t, ctx, Options{})
	orphan := start(t, ctx, Options{})
	// Pretend its owner died: a PID that cannot exist.
	if err := os.WriteFile(filepath.Join(orphan.dir, ownerFile), []byte("2147483647"), 0o644); err != nil {
		t.Fatal(err)
	}
	start(t, ctx, Options{})
	if _, err := os.Stat(orphan.dir); !os.IsNotExist(err) {
		t.Fatalf("the orphaned cluster's directory is still there: %v", err)
	}
	if err := orphan.ping(ctx); err == nil {
		t.Fatal("the orphaned cluster still accepts connections")
	}
	if err := living.ping(ctx); err != nil {
		t.Fatalf("the cluster of this (living) process was swept: %v", err)
	}
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
	requireBinaries(t)
	bin, err := BinDirFor(18)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL 18 is required with CI=true: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	orphan := start(t, ctx, Options{BinDir: bin})
	if err := os.WriteFile(filepath.Join(orphan.dir, ownerFile), []byte("2147483647"), 0o644); err != nil {
		t.Fatal(err)
	}
	start(t, ctx, Options{})
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
