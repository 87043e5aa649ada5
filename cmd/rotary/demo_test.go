package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rotary-secrets/rotary/internal/pgcluster"
)

// TestDemo runs `rotary demo` both ways: on a throwaway PostgreSQL cluster
// (each rotation proven by logins, then rollback and revoke) and on the
// random-secret type, as it runs when no PostgreSQL is there.
func TestDemo(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		proofs []string // each must appear; "checked: ..." lines
		count  string   // a proof that must appear once per rotation
	}{
		{"postgres", []string{"demo", "--type", "postgres"}, []string{
			"the earlier password logs in again and AWSCURRENT holds it",
			"none of the 4 passwords used before logs in; AWSCURRENT does",
			"after the incident none of the 5 passwords used before logs in; AWSCURRENT does",
		}, "checked: AWSCURRENT logs in, the replaced password is refused"},
		{"random", []string{"demo", "--type", "random"}, []string{
			"AWSCURRENT holds the earlier value again",
			"random-secret has nothing downstream",
			"the bundle names the stranger",
		}, "checked: apiKey and signingKey are new"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "postgres" {
				if _, err := os.Stat(pgcluster.DefaultBinDir); err != nil && os.Getenv(pgcluster.EnvBinDir) == "" {
					failOrSkip(t, "no PostgreSQL binaries: %v", err)
				}
			}
			start := time.Now()
			var out, errOut bytes.Buffer
			if code := run(context.Background(), tc.args, &out, &errOut); code != 0 {
				t.Fatalf("rotary %s exited %d: %s\n%s", strings.Join(tc.args, " "), code, errOut.String(), out.String())
			}
			if d := time.Since(start); d > time.Minute {
				t.Errorf("the demo took %s; it must stay under a minute", d)
			}
			text := out.String()
			want := append([]string{"Rotation 1 of 3", "Rotation 3 of 3", "finishSecret  ok", "AWSPREVIOUS", "(deprecated)",
				"$ rotary rollback", "Rolled back", "$ rotary revoke", "revokeSecret  ok", "$ rotary history",
				"$ rotary audit", "FLAGGED: read by a principal outside the secret's readers", "user/contractor-laptop", "rotary audit flagged the stranger's read",
				"$ rotary incident", "Evidence written before any change", "Incident bundle: "}, tc.proofs...)
			for _, w := range want {
				if !strings.Contains(text, w) {
					t.Errorf("demo output lacks %q", w)
				}
			}
			if n := strings.Count(text, tc.count); n != 3 {
				t.Errorf("demo proved %d rotations (%q), want 3", n, tc.count)
			}
			if strings.Contains(text, "Demo-") {
				t.Error("demo output contains the demo user's password")
			}
			// Only the stranger is flagged: one FLAGGED line in the timeline, one in the summary.
			if n := strings.Count(text, "FLAGGED: read by"); n != 1 {
				t.Errorf("the audit flagged %d reads in its timeline, want the stranger's only:\n%s", n, text)
			}
		})
	}
}

func TestUnknownCommandIsAUsageError(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"frobnicate"}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(errOut.String(), `unknown command "frobnicate"`) {
		t.Fatalf("stderr = %q", errOut.String())
	}
}
