package rotationtest

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// TestLeaksFindsEscapedForms: a password with a quote and a backslash,
// logged by slog's JSON handler, is found (it never appears raw there).
func TestLeaksFindsEscapedForms(t *testing.T) {
	pw := `initial-Passw0rd!'"\<&>`
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("x", "error", "login failed for "+pw+" (wrong)")
	if strings.Contains(b.String(), pw) {
		t.Fatal("the test is void: the raw password appears in the JSON line")
	}
	if !Leaks(b.String(), pw) {
		t.Fatal("Leaks missed a password slog escaped")
	}
	twice, _ := json.Marshal(b.String())
	if !Leaks(string(twice), pw) {
		t.Fatal("Leaks missed a password escaped twice")
	}
	if Leaks(b.String(), "some-other-password") {
		t.Fatal("Leaks found a value that is not there")
	}
}
