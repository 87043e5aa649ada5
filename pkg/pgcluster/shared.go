package pgcluster

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

// Shared is one cluster shared by every test of a test binary: started on
// first use, stopped by TestMain. Use it as
//
//	var cluster = pgcluster.NewShared(pgcluster.Options{TLS: true})
//
//	func TestMain(m *testing.M) { code := m.Run(); cluster.Stop(); os.Exit(code) }
//
//	func TestX(t *testing.T) { c := cluster.Get(t); ... }
type Shared struct {
	opts Options
	once sync.Once
	c    *Cluster
	err  error
}

// NewShared returns a Shared cluster that starts with opts on first use.
func NewShared(opts Options) *Shared { return &Shared{opts: opts} }

// Get returns the running cluster, starting it on first use. When it cannot
// start, the test fails if the environment has CI=true and is skipped otherwise.
func (s *Shared) Get(t testing.TB) *Cluster {
	t.Helper()
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		s.c, s.err = Start(ctx, s.opts)
	})
	if s.err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("throwaway PostgreSQL cluster is required with CI=true: %v", s.err)
		}
		t.Skipf("skipping: no throwaway PostgreSQL cluster (set CI=true to make this a failure): %v", s.err)
	}
	return s.c
}

// Stop stops the cluster if it was started.
func (s *Shared) Stop() error { return s.c.Stop() }
