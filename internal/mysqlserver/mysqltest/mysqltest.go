// Package mysqltest is the testing side of internal/mysqlserver: throwaway
// MariaDB servers and users that a test starts and the test's cleanup
// removes. A server that cannot start fails the test under CI=true and
// skips it otherwise.
package mysqltest

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/rotary-secrets/rotary/internal/mysqlserver"
)

// Start starts a server with opts, closed in t.Cleanup.
func Start(t testing.TB, opts mysqlserver.Options) *mysqlserver.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := mysqlserver.Start(ctx, opts)
	must(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// CreateUser creates user@host with password and grants (see
// Server.CreateUser), dropped in t.Cleanup.
func CreateUser(t testing.TB, s *mysqlserver.Server, user, host, password string, grants ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Cleanup(func() {
		if err := s.DropUser(context.Background(), user, host); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	if err := s.CreateUser(ctx, user, host, password, grants...); err != nil {
		t.Fatal(err)
	}
}

// must fails the test on err, but skips it when the server binaries are
// missing and CI is not "true".
func must(t testing.TB, err error) {
	t.Helper()
	switch {
	case err == nil:
	case errors.Is(err, mysqlserver.ErrNoBinaries) && os.Getenv("CI") != "true":
		t.Skipf("skipping: no throwaway MariaDB server (set CI=true to make this a failure): %v", err)
	default:
		t.Fatalf("start a throwaway MariaDB server: %v", err)
	}
}
