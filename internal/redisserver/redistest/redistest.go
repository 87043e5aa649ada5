// Package redistest is the testing side of internal/redisserver: throwaway
// redis-server processes and users that a test starts and the test's
// cleanup removes. A server that cannot start fails the test under CI=true
// and skips it otherwise.
package redistest

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/rotary-secrets/rotary/internal/redisserver"
)

// Start starts a server with opts, closed in t.Cleanup.
func Start(t testing.TB, opts redisserver.Options) *redisserver.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := redisserver.Start(ctx, opts)
	switch {
	case err == nil:
	case errors.Is(err, redisserver.ErrNoBinary) && os.Getenv("CI") != "true":
		t.Skipf("skipping: no redis-server (set CI=true to make this a failure): %v", err)
	default:
		t.Fatalf("start a throwaway redis-server: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// CreateUser creates user with password and rules (see
// Server.CreateUser), deleted in t.Cleanup.
func CreateUser(t testing.TB, s *redisserver.Server, user, password string, rules ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.CreateUser(ctx, user, password, rules...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.Admin == nil {
			return
		}
		if err := s.DeleteUser(context.Background(), user); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
}
