// Package pgtest is the testing side of internal/pgcluster: throwaway
// PostgreSQL clusters shared by the tests of a test binary, one per
// version, and roles a test creates and its cleanup drops. A cluster that
// cannot start fails the test under CI=true and skips it otherwise.
package pgtest

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rotary-secrets/rotary/internal/pgcluster"
)

// Shared is one cluster shared by every test of a test binary: started on
// first use, stopped by TestMain. Use it as
//
//	var cluster = pgtest.NewShared(pgcluster.Options{TLS: true})
//
//	func TestMain(m *testing.M) { code := m.Run(); cluster.Close(); os.Exit(code) }
//
//	func TestX(t *testing.T) { c := cluster.Get(t); ... }
type Shared struct {
	opts pgcluster.Options
	once sync.Once
	c    *pgcluster.Cluster
	err  error
}

// NewShared returns a Shared cluster that starts with opts on first use.
func NewShared(opts pgcluster.Options) *Shared { return &Shared{opts: opts} }

// Get returns the running cluster, starting it on first use. When it cannot
// start, the test fails if the environment has CI=true and is skipped otherwise.
func (s *Shared) Get(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		s.c, s.err = pgcluster.Start(ctx, s.opts)
	})
	if s.err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("throwaway PostgreSQL cluster is required with CI=true: %v", s.err)
		}
		t.Skipf("skipping: no throwaway PostgreSQL cluster (set CI=true to make this a failure): %v", s.err)
	}
	return s.c
}

// Close stops the cluster if it was started.
func (s *Shared) Close() error {
	if s.c == nil {
		return nil
	}
	return s.c.Close()
}

// Matrix is one Shared cluster per PostgreSQL version, each started on
// first use and stopped by Close (in TestMain). Clusters with the same bin
// directory are one, so Default and Get(t, 15) share Debian's cluster.
type Matrix struct {
	opts   pgcluster.Options
	mu     sync.Mutex
	shared map[string]*Shared // by bin directory
}

// NewMatrix returns a Matrix whose clusters start with opts (BinDir aside).
func NewMatrix(opts pgcluster.Options) *Matrix {
	return &Matrix{opts: opts, shared: map[string]*Shared{}}
}

func (m *Matrix) get(bin string) *Shared {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.shared[bin]
	if !ok {
		opts := m.opts
		opts.BinDir = bin
		s = NewShared(opts)
		m.shared[bin] = s
	}
	return s
}

// Default returns the cluster of the default binaries ($ROTARY_PG_BIN or
// pgcluster.DefaultBinDir, PostgreSQL 15), like a Shared cluster. The test is skipped
// when $ROTARY_PG_MAJORS does not list that cluster's version.
func (m *Matrix) Default(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	bin := os.Getenv(pgcluster.EnvBinDir)
	if bin == "" {
		bin = pgcluster.DefaultBinDir
		skipUnselected(t, 15)
	}
	c := m.get(bin).Get(t)
	skipUnselected(t, c.Major)
	return c
}

// skipUnselected skips the test if $ROTARY_PG_MAJORS does not list major,
// and fails it if the list is wrong.
func skipUnselected(t testing.TB, major int) {
	t.Helper()
	ok, err := pgcluster.Selected(major)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Skipf("skipping PostgreSQL %d: %s=%s does not list it", major, pgcluster.EnvMajors, os.Getenv(pgcluster.EnvMajors))
	}
}

// Get returns the running cluster of PostgreSQL major, starting it on first
// use. When that version is not installed or cannot start, the test fails
// if the environment has CI=true and is skipped otherwise, naming the
// command that installs it. It is skipped when $ROTARY_PG_MAJORS does not
// list major.
func (m *Matrix) Get(t testing.TB, major int) *pgcluster.Cluster {
	t.Helper()
	skipUnselected(t, major)
	bin, err := pgcluster.BinDirFor(major)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL %d is required with CI=true: %v", major, err)
		}
		t.Skipf("skipping PostgreSQL %d (set CI=true to make this a failure): %v", major, err)
	}
	c := m.get(bin).Get(t)
	if c.Major != major {
		t.Fatalf("the binaries in %s are PostgreSQL %d, not %d: fix %s", bin, c.Major, major, pgcluster.EnvBinDirFor(major))
	}
	return c
}

// Run runs f once for each of pgcluster.Majors, as parallel subtests named pg13,
// pg14 and so on, each with the shared cluster of its version (see Get).
func (m *Matrix) Run(t *testing.T, f func(t *testing.T, c *pgcluster.Cluster)) {
	t.Helper()
	for _, major := range pgcluster.Majors {
		t.Run("pg"+strconv.Itoa(major), func(t *testing.T) {
			t.Parallel()
			f(t, m.Get(t, major))
		})
	}
}

// Close stops every cluster that was started.
func (m *Matrix) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, s := range m.shared {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// CreateRole creates a login role with password and attrs on c (see
// pgcluster.Cluster.CreateRole) and drops it, and then each of alsoDrop
// (its alternate user, say), in t.Cleanup.
func CreateRole(t testing.TB, c *pgcluster.Cluster, name, password, attrs string, alsoDrop ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.DropRoles(ctx, append(alsoDrop, name)...); err != nil {
			t.Errorf("drop roles: %v", err)
		}
	})
	if err := c.CreateRole(ctx, name, password, attrs); err != nil {
		t.Fatal(err)
	}
}
