package rotation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestScrubberHidesEverySecretForm(t *testing.T) {
	const pw = `p@ss"w\rd/with spaces&more`
	s := newScrubber()
	s.addSecret(`{"username":"app_user","host":"db.example.com","password":"p@ss\"w\\rd/with spaces&more","apiKey":"k-123456"}`)
	msgs := []string{
		"login failed for " + pw,
		fmt.Sprintf("%q", pw),
		`{"password":"p@ss\"w\\rd/with spaces&more"}`,
		"postgres://app_user:p%40ss%22w%5Crd%2Fwith+spaces%26more@db",
		"key k-123456",
	}
	for _, m := range msgs {
		out := s.scrub(m)
		if strings.Contains(out, "ss") && strings.Contains(out, "more") || strings.Contains(out, "k-123456") {
			t.Errorf("scrub left a secret in %q", out)
		}
		if !strings.Contains(out, Redacted) {
			t.Errorf("scrub did not redact %q", out)
		}
	}
	if got := s.scrub("user app_user on db.example.com"); got != "user app_user on db.example.com" {
		t.Errorf("scrub hid non-secret fields: %q", got)
	}
}

func TestScrubHandlerCleansLogLines(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewScrubHandler(slog.NewJSONHandler(&buf, nil)))
	s := newScrubber()
	s.addSecret(`{"password":"hunter2-very-secret"}`)
	ctx := withScrubber(context.Background(), s)
	log.InfoContext(ctx, "message hunter2-very-secret",
		"plain", "x hunter2-very-secret",
		"err", errors.New("boom hunter2-very-secret"),
		slog.Group("g", "inner", "hunter2-very-secret"),
		"any", map[string]string{"k": "hunter2-very-secret"})
	if strings.Contains(buf.String(), "hunter2") {
		t.Fatalf("log line leaks the secret: %s", strings.ReplaceAll(buf.String(), "hunter2-very-secret", "<LEAKED>"))
	}
	if c := strings.Count(buf.String(), Redacted); c != 5 {
		t.Fatalf("want 5 redactions, got %d", c)
	}
}
