package rotation

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// secretForms are the forms a secret value takes in messages, the ones the
// scrubber claims to hide (add's doc comment and docs/operations.md): as is,
// JSON-escaped (by encoding/json, and by an encoder with HTML escaping off,
// as the engine and log/slog write JSON), Go-quoted (%q), URL-escaped
// (query escaping, path escaping, and the user-info escaping of a DSN such
// as postgres://user:password@host, as net/url writes it), and escaped
// twice, as a secret's JSON value holds it once quoted again.
func secretForms(v string) []string {
	inner := func(q string) string { return q[1 : len(q)-1] }
	b, _ := json.Marshal(v)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	userinfo := url.UserPassword("u", v).String()
	j := inner(string(b))
	jj, _ := json.Marshal(j)
	return []string{
		v,
		j,
		inner(strings.TrimSuffix(buf.String(), "\n")),
		inner(strconv.Quote(v)),
		url.QueryEscape(v),
		url.PathEscape(v),
		strings.TrimPrefix(userinfo, "u:"),
		inner(strconv.Quote(j)),
		inner(string(jj)),
	}
}

var formNames = []string{"raw", "JSON", "JSON without HTML escaping", "Go-quoted", "query-escaped", "path-escaped", "user-info-escaped",
	"Go-quoted JSON (%q of a secret value)", "JSON-escaped JSON (a secret value in a JSON log attribute)"}

// fp names a value in a failure message without showing it.
func fp(s string) string {
	h := sha256.Sum256([]byte(s))
	return fmt.Sprintf("%d bytes, sha256:%s", len(s), hex.EncodeToString(h[:6]))
}

// shown returns the name of the first form of the secret that text shows
// outside the [REDACTED] markers, or "".
func shown(text string, forms []string) string {
	for _, piece := range strings.Split(text, Redacted) {
		for i, f := range forms {
			if strings.Contains(piece, f) {
				return formNames[i]
			}
		}
	}
	return ""
}

// FuzzScrub registers a random secret (4 bytes or more) with a scrubber, the
// two ways the engine does (as the password field of a JSON secret, and as
// a whole value that is not a JSON object), and scrubs texts that hold it
// in every form secretForms lists. The seeds are in testdata/fuzz/FuzzScrub.
//
// Properties:
//   - no form of the secret survives scrubbing, anywhere outside the
//     [REDACTED] markers (a secret such as "DACT" is inside every marker);
//   - a text that holds no form of the secret is returned unchanged, in
//     particular the non-secret fields (username, host) of the JSON secret;
//   - a log line written through NewScrubHandler with the rotation's context
//     shows no form of the secret in any key or value, whether the secret is
//     in the message, a string, an error, a group, a map, a bound attribute,
//     an attribute's key or a group's name.
func FuzzScrub(f *testing.F) {
	f.Add("hunter2-very-secret", "login failed: ", " (retry)", "app_user")
	f.Add(`p@ss"w\rd/with spaces&more;`, "postgres://app:", "@db:5432/x", "db.example.com")
	f.Fuzz(func(t *testing.T, secret, before, after, user string) {
		if len(secret) < minScrubLen {
			return // documented: shorter strings are not scrubbed
		}
		forms := secretForms(secret)
		type registered struct {
			s     *scrubber
			value string // as the engine reads it from Secrets Manager
		}
		var cases []registered
		if utf8.ValidString(secret) {
			// Secrets Manager's values are JSON text, so valid UTF-8.
			b, err := json.Marshal(map[string]string{"password": secret, "username": user, "host": before})
			if err != nil {
				t.Fatal(err)
			}
			cases = append(cases, registered{newScrubber(testPublic...), string(b)})
		}
		var obj map[string]any
		if json.Unmarshal([]byte(secret), &obj) != nil || obj == nil {
			cases = append(cases, registered{newScrubber(testPublic...), secret})
		}
		for ci, c := range cases {
			c.s.addSecret(c.value)
			// Everything the scrubber may hide: every form of every secret
			// string of the value (for a JSON object, the password).
			var hideable []string
			for _, v := range SecretStrings(c.value, testPublic...) {
				hideable = append(hideable, secretForms(v)...)
			}
			var all []string
			for i, form := range forms {
				text := before + form + after
				all = append(all, text)
				if got := shown(c.s.scrub(text), forms); got != "" {
					t.Fatalf("case %d: the secret (%s) placed in its %s form survives as %s", ci, fp(secret), formNames[i], got)
				}
			}
			if got := shown(c.s.scrub(strings.Join(all, user)), forms); got != "" {
				t.Fatalf("case %d: the %s form of the secret (%s) survives in a text holding every form", ci, got, fp(secret))
			}
			for _, text := range []string{before + after, user, before + user + after} {
				if !containsAny(text, hideable) {
					if out := c.s.scrub(text); out != text {
						t.Fatalf("case %d: a text without the secret (%s) changed: %d bytes in, %d out", ci, fp(secret), len(text), len(out))
					}
				}
			}
			checkLogLine(t, c.s, secret, forms, strings.ToValidUTF8(before, "\uFFFD"), strings.ToValidUTF8(after, "\uFFFD"))
		}
	})
}

func containsAny(text string, subs []string) bool {
	for _, s := range subs {
		if strings.Contains(text, s) {
			return true
		}
	}
	return false
}

// checkLogLine writes one record holding the secret in every place a log
// call can put a string and checks that the JSON line shows it nowhere.
func checkLogLine(t *testing.T, s *scrubber, secret string, forms []string, before, after string) {
	t.Helper()
	if !utf8.ValidString(secret) {
		return // a JSON log line cannot hold invalid UTF-8 as it is
	}
	var buf bytes.Buffer
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	log := slog.New(NewScrubHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: noTime})))
	text := before + secret + after
	log = log.With("bound", text, text, "bound key").WithGroup(text).With("in group", text)
	args := []any{
		"plain", text,
		"err", errors.New(text),
		slog.Group("g", "inner", text),
		"any", map[string]string{"k": text, text: "v"},
		text, "value under a secret key",
	}
	for i, form := range forms {
		args = append(args, "form"+strconv.Itoa(i), before+form+after)
	}
	log.InfoContext(withScrubber(context.Background(), s), text, args...)
	var line any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("the log line is not JSON: %v", err)
	}
	// The line's fixed text (the test's keys, the level) may hold the
	// secret by chance ("INFO", "plain"): only what comes from text counts.
	fixed := map[string]bool{"level": true, "INFO": true, "msg": true, "plain": true, "err": true, "g": true, "inner": true,
		"any": true, "k": true, "v": true, "bound": true, "bound key": true, "in group": true, "value under a secret key": true}
	for i := range forms {
		fixed["form"+strconv.Itoa(i)] = true
	}
	var walk func(v any) string
	walk = func(v any) string {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if got := shown(k, forms); got != "" && !fixed[k] {
					return got + " (in a key)"
				}
				if got := walk(e); got != "" {
					return got
				}
			}
		case []any:
			for _, e := range x {
				if got := walk(e); got != "" {
					return got
				}
			}
		case string:
			if !fixed[x] {
				return shown(x, forms)
			}
		}
		return ""
	}
	if got := walk(line); got != "" {
		t.Fatalf("the log line shows the %s form of the secret (%s)", got, fp(secret))
	}
}
