package postgres

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
)

func TestSplitQuotedList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`"$user", public`, []string{"$user", "public"}},
		{`"My Schema", "a""b", x`, []string{"My Schema", `a"b`, "x"}},
		{`""`, []string{""}},
		{`one`, []string{"one"}},
		{``, nil},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := splitQuotedList(tt.in); !slices.Equal(got, tt.want) {
				t.Fatalf("splitQuotedList(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestMultiUserCopiesRoleSettings: the clone's sessions get the base user's
// role-level settings (PostgreSQL applies those of the login role only),
// later changes reach the clone at the next rotation to it, and settings a
// CREATEROLE master may not set do not fail the rotation.
func TestMultiUserCopiesRoleSettings(t *testing.T) { eachVersion(t, testMultiUserCopiesRoleSettings) }

func testMultiUserCopiesRoleSettings(t *testing.T, f *fixture) {
	e := newEnv(t, f, NewMultiUser(f.cfg))
	base, pw := uniqueName("rotary_settings"), newPassword(t)
	f.createRole(t, base, pw, "")
	qb := QuoteIdentifier(base)
	f.exec(t, `ALTER ROLE `+qb+` SET search_path = "$user", "My ""Schema""", public;
		ALTER ROLE `+qb+` SET work_mem = '7MB';
		ALTER ROLE `+qb+` IN DATABASE postgres SET lock_timeout = '3s';
		ALTER ROLE `+qb+` SET log_min_duration_statement = '1s';
		ALTER ROLE `+qb+` SET app.tenant = 'acme'`) // the last two need a superuser: a CREATEROLE master skips them
	masterARN := f.master(t, e.Client, func(u, p string) string { return f.secret(t, u, p, nil) }, nil, base)
	arn := createSecret(t, e, f.secret(t, base, pw, map[string]any{"masterarn": masterARN}))

	settings := func(value string) (searchPath, workMem, tenant, currentUser string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := dbsecret.Parse(value)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := f.cfg.connect(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if err := conn.QueryRow(ctx, "SELECT current_setting('search_path'), current_setting('work_mem'), current_setting('lock_timeout'), current_user::text").
			Scan(&searchPath, &workMem, &tenant, &currentUser); err != nil {
			t.Fatal(err)
		}
		return
	}
	if _, err := e.Rotate(t, arn); err != nil {
		t.Fatalf("first rotation: %v", err)
	}
	clone := current(t, e, arn)
	wantPath, wantMem, wantLock, _ := settings(f.secret(t, base, pw, nil))
	sp, mem, lock, user := settings(clone)
	if sp != wantPath || sp != `"$user", "My ""Schema""", public` || mem != wantMem || mem != "7MB" || lock != wantLock || lock != "3s" || user != base {
		t.Fatalf("clone session: search_path %q, work_mem %q, lock_timeout %q, current_user %q; want the base user's and current_user %q", sp, mem, lock, user, base)
	}

	// Settings changed on the base user reach the clone at its next rotation.
	f.exec(t, `ALTER ROLE `+qb+` SET work_mem = '9MB'; ALTER ROLE `+qb+` IN DATABASE postgres RESET lock_timeout`)
	for i := 0; i < 2; i++ {
		if _, err := e.Rotate(t, arn); err != nil {
			t.Fatalf("rotation %d: %v", i+2, err)
		}
	}
	sp, mem, lock, user = settings(current(t, e, arn))
	if mem != "9MB" || lock != "0" || user != base || sp != wantPath {
		t.Fatalf("clone session after the base user's settings changed: search_path %q, work_mem %q, lock_timeout %q, current_user %q", sp, mem, lock, user)
	}
}
