package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
)

// TestPasswordNeverInSQLText rotates both types on a cluster that logs every
// statement (log_statement = all) and tracks them in pg_stat_statements, and
// proves that neither holds the new password, only its SCRAM verifier.
func TestPasswordNeverInSQLText(t *testing.T) { eachVersion(t, testPasswordNeverInSQLText) }

func testPasswordNeverInSQLText(t *testing.T, f *fixture) {
	f.exec(t, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
	tests := []struct {
		name  string
		cred  rotation.Credential
		multi bool
	}{
		{"single user", NewSingleUser(f.cfg), false},
		{"alternating users", NewMultiUser(f.cfg), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, f, tt.cred)
			user, pw := uniqueName("rotary_sqltext"), newPassword(t)
			f.createRole(t, user, pw, "")
			extra := map[string]any{}
			if tt.multi {
				extra["masterarn"] = f.master(t, e.Client, func(u, p string) string { return f.secret(t, u, p, nil) }, nil, user)
			}
			arn := createSecret(t, e, f.secret(t, user, pw, extra))
			var newPasswords []string
			for i := 0; i < 2; i++ {
				if _, err := e.Rotate(t, arn); err != nil {
					t.Fatalf("rotation %d: %v", i+1, err)
				}
				cur := current(t, e, arn)
				f.mustLogin(t, "AWSCURRENT", cur)
				newPasswords = append(newPasswords, field(t, cur, "password"))
			}
			serverLog, err := f.c.ServerLog()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(serverLog, "ALTER ROLE") || !strings.Contains(serverLog, "SCRAM-SHA-256$4096:") {
				t.Fatal("the server log has no ALTER ROLE with a verifier: statement logging is off and this test proves nothing")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var statements string
			if err := f.adminConn(t).QueryRow(ctx, "SELECT coalesce(string_agg(query, E'\\n'), '') FROM pg_stat_statements").Scan(&statements); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(statements, "ALTER ROLE") {
				t.Fatal("pg_stat_statements recorded no ALTER ROLE: this test proves nothing")
			}
			for i, p := range newPasswords {
				if strings.Contains(serverLog, p) {
					t.Fatalf("the password of rotation %d (%s) appears in the server log", i+1, rotationtest.Fingerprint(p))
				}
				if strings.Contains(statements, p) {
					t.Fatalf("the password of rotation %d (%s) appears in pg_stat_statements", i+1, rotationtest.Fingerprint(p))
				}
			}
		})
	}
}
