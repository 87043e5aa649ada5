package pgcluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestPrependHBARejectsAndRestores: a reject rule for one role refuses its
// next login at once (28000) and leaves other roles alone; no rules bring
// the login back; a line the server cannot parse changes nothing.
func TestPrependHBARejectsAndRestores(t *testing.T) {
	c := cluster.Get(t)
	createUser(t, c, "pgcluster_hba", "pw")
	createUser(t, c, "pgcluster_hba_other", "pw")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Cleanup(func() { c.PrependHBA(context.Background()) })

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
