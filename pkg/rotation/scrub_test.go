package rotation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

// testPublic are a database secret's public fields, as the database types
// declare them (dbsecret.PublicFields, which this package cannot import).
var testPublic = []string{"engine", "host", "port", "username", "dbname", "masterarn", "ssl", "dbInstanceIdentifier", "dbClusterIdentifier", "proxyHost"}

func TestScrubberHidesEverySecretForm(t *testing.T) {
	const pw = `p@ss"w\rd/with spaces&more`
	s := newScrubber(testPublic...)
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
	s := newScrubber(testPublic...)
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

// TestScrubHandlerCleansBoundAttributes proves that attributes bound with
// Logger.With, before the secret was even registered, and groups opened
// with WithGroup are scrubbed like the record's own.
func TestScrubHandlerCleansBoundAttributes(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(NewScrubHandler(slog.NewJSONHandler(&buf, nil)))
	log := base.With("dsn", "postgres://app:hunter2-very-secret@db").WithGroup("db").With("password", "hunter2-very-secret")
	s := newScrubber(testPublic...)
	s.addSecret(`{"password":"hunter2-very-secret"}`)
	log.InfoContext(withScrubber(context.Background(), s), "connect", "attempt", 1)
	out := buf.String()
	if strings.Contains(out, "hunter2") {
		t.Fatalf("log line leaks the secret: %s", strings.ReplaceAll(out, "hunter2-very-secret", "<LEAKED>"))
	}
	if c := strings.Count(out, Redacted); c != 2 {
		t.Fatalf("want 2 redactions, got %d: %s", c, out)
	}
	if !strings.Contains(out, `"db":{"password":"[REDACTED]","attempt":1}`) {
		t.Fatalf("the group was not kept: %s", out)
	}
	buf.Reset()
	log.Info("no rotation context", "attempt", 2)
	if !strings.Contains(buf.String(), `"db":{"password":`) || !strings.Contains(buf.String(), `"attempt":2`) {
		t.Fatalf("a record without a rotation's context lost its bound attributes: %s", buf.String())
	}
}

// TestScrubberHidesPasswordInURL: net/url escapes a password in a URL's
// user info (postgres://user:password@host, as drivers print a DSN) unlike
// both query and path escaping: "@" and ";" give "%40" and ";", where query
// escaping gives "%40" and "%3B" and path escaping "@" and "%3B". Found by
// FuzzScrub.
func TestScrubberHidesPasswordInURL(t *testing.T) {
	const pw = "Zq8#kP!v@2,;=&+$"
	s := newScrubber(testPublic...)
	s.addSecret(`{"username":"app","password":"Zq8#kP!v@2,;=&+$"}`)
	dsn := (&url.URL{Scheme: "postgres", User: url.UserPassword("app", pw), Host: "db:5432", Path: "/orders"}).String()
	out := s.scrub("connect " + dsn + ": refused")
	if out != "connect postgres://app:"+Redacted+"@db:5432/orders: refused" {
		t.Fatalf("scrub left the password in a DSN (%d bytes of the password shown): %q", len(pw), strings.ReplaceAll(out, url.UserPassword("", pw).String(), ":<LEAKED>"))
	}
}

// TestScrubberHidesJSONWithoutHTMLEscaping: the engine writes the pending
// value with HTML escaping off, so a password holding '<' or '&' and a
// character that Go quoting escapes otherwise than JSON (a control
// character) appears in neither of the forms registered before. Found by
// FuzzScrub.
func TestScrubberHidesJSONWithoutHTMLEscaping(t *testing.T) {
	const pw = "Cur-P@ss;w0rd\"<\x01>&-7f3a"
	s := newScrubber(testPublic...)
	s.add(pw)
	value, err := mergeFields(Version{Value: `{"username":"app"}`}, map[string]any{"password": pw})
	if err != nil {
		t.Fatal(err)
	}
	out := s.scrub("stored " + value)
	if out != `stored {"password":"`+Redacted+`","username":"app"}` {
		t.Fatalf("scrub left the password (%d bytes) in the engine's JSON: %d bytes out, want the password redacted", len(pw), len(out))
	}
}

// TestScrubHandlerCleansKeysAndGroupNames: a secret can be an attribute's
// key (a map's fields logged one by one) or a group's name; the handler
// scrubbed only values. Found by FuzzScrub.
func TestScrubHandlerCleansKeysAndGroupNames(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(NewScrubHandler(slog.NewJSONHandler(&buf, nil)))
	log := base.WithGroup("g-hunter2-very-secret").With("bound-hunter2-very-secret", 1)
	s := newScrubber(testPublic...)
	s.addSecret(`{"password":"hunter2-very-secret"}`)
	log.InfoContext(withScrubber(context.Background(), s), "m", "hunter2-very-secret", "v", slog.Group("in-hunter2-very-secret", "k", 2))
	out := buf.String()
	if strings.Contains(out, "hunter2") {
		t.Fatalf("log line leaks the secret: %s", strings.ReplaceAll(out, "hunter2-very-secret", "<LEAKED>"))
	}
	if !strings.Contains(out, `"g-[REDACTED]":{"bound-[REDACTED]":1,"[REDACTED]":"v","in-[REDACTED]":{"k":2}}`) {
		t.Fatalf("keys and group names not redacted in place: %s", out)
	}
}

// TestScrubberHidesSecretsOfAQuotedValue: a secret value is JSON text, so a
// password with '"' or '\' is in it JSON-escaped; an error quoting the whole
// value (%q) or a log attribute holding it inside a JSON object escapes the
// password a second time, a form that was not registered. Found by FuzzEvent,
// whose credential type quotes the values it is given.
func TestScrubberHidesSecretsOfAQuotedValue(t *testing.T) {
	const value = `{"password":"pa\"ss\\word-1234","username":"app"}`
	var buf bytes.Buffer
	log := slog.New(NewScrubHandler(slog.NewJSONHandler(&buf, nil)))
	s := newScrubber(testPublic...)
	s.addSecret(value)
	ctx := withScrubber(context.Background(), s)
	log.InfoContext(ctx, s.scrub(fmt.Sprintf("bad value %q", value)), "input", map[string]string{"SecretString": value})
	out := buf.String()
	if strings.Contains(out, "word-1234") || strings.Count(out, Redacted) != 2 {
		t.Fatalf("the password is shown, escaped twice, or not redacted twice: %s", strings.ReplaceAll(out, "word-1234", "<LEAKED>"))
	}
}
