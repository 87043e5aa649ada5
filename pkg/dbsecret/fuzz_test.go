package dbsecret

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// FuzzParse feeds arbitrary text to Parse. The seeds are in
// testdata/fuzz/FuzzParse; go test runs them, make fuzz explores further.
//
// Properties:
//   - Parse never panics, and every error wraps ErrInvalidSecret;
//   - an error never shows the input's password (raw or Go-quoted, when it is
//     4 characters or more), whichever field holds it, nor the whole input,
//     except where Parse's own fixed wording happens to contain it;
//   - a parsed secret is consistent: a known engine and its family, a port
//     from 1 to 65535 (the family's default when absent), non-blank host,
//     username and password without the characters Parse refuses, exactly
//     the input's strings;
//   - a parsed secret written back as RDS JSON (port as a number or a
//     string) parses to the same secret, and passes CheckPending against itself;
//   - printing a parsed secret (%v, %+v, %#v, %s) does not depend on its password.
func FuzzParse(f *testing.F) {
	f.Add(`{"engine":"postgres","host":"db.example.com","port":5432,"username":"app","password":"fz-Secret-0001","dbname":"orders"}`)
	f.Add(`{"engine":"mysql","host":"h","port":"3306","username":"u","password":"x","ssl":"FALSE"}`)
	f.Fuzz(func(t *testing.T, value string) {
		pw, hasPW := inputPassword(value)
		s, err := Parse(value)
		if err != nil {
			if s != nil {
				t.Fatalf("Parse returned a secret and an error")
			}
			if !errors.Is(err, ErrInvalidSecret) {
				t.Fatalf("error does not wrap ErrInvalidSecret: %v", redactIn(err.Error(), pw))
			}
			msg := err.Error()
			if hasPW && len(pw) >= 4 && leaks(msg, pw) {
				t.Fatalf("error shows the password (%s): %s", fingerprint(pw), redactIn(msg, pw))
			}
			if len(value) >= 4 && leaks(msg, value) {
				t.Fatalf("error shows the whole input (%s): %s", fingerprint(value), redactIn(msg, pw))
			}
			return
		}
		if s == nil {
			t.Fatal("Parse returned neither a secret nor an error")
		}
		checkConsistent(t, value, s)
		checkRoundTrip(t, s)
		checkPrinting(t, s)
	})
}

// inputPassword decodes the input's "password" the way Parse reads the
// object (the last of duplicate keys wins).
func inputPassword(value string) (string, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(value), &m) != nil {
		return "", false
	}
	var pw string
	if raw, ok := m["password"]; !ok || json.Unmarshal(raw, &pw) != nil {
		return "", false
	}
	return pw, true
}

// goLiteral matches a Go-quoted string, as %q writes it.
var goLiteral = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// fixedLiterals are the quoted words of Parse's own messages.
var fixedLiterals = map[string]bool{}

func init() {
	for _, w := range []string{"engine", "host", "port", "username", "password", "dbname", "ssl", "masterarn",
		"dbInstanceIdentifier", "dbClusterIdentifier", "true", "false"} {
		fixedLiterals[strconv.Quote(w)] = true
	}
}

// fixedText is msg with every quoted value removed, leaving only what Parse
// writes whatever the input: its wording and the quoted field names.
func fixedText(msg string) string {
	return goLiteral.ReplaceAllStringFunc(msg, func(lit string) string {
		if fixedLiterals[lit] {
			return lit
		}
		return "\x00"
	})
}

// leaks reports whether msg shows secret, raw or Go-quoted, other than
// where Parse's fixed wording happens to contain it (a password such as
// "secret" or "field" is in every message).
func leaks(msg, secret string) bool {
	fixed := fixedText(msg)
	q := strconv.Quote(secret)
	for _, form := range []string{secret, q[1 : len(q)-1]} {
		if strings.Contains(msg, form) && !strings.Contains(fixed, form) {
			return true
		}
	}
	return false
}

// fingerprint names a secret in a failure message without showing it.
func fingerprint(s string) string {
	h := sha256.Sum256([]byte(s))
	return fmt.Sprintf("%d bytes, sha256:%s", len(s), hex.EncodeToString(h[:6]))
}

// redactIn hides secret (when long enough to be one) in a failure message.
func redactIn(msg, secret string) string {
	if len(secret) < 4 {
		return msg
	}
	q := strconv.Quote(secret)
	msg = strings.ReplaceAll(msg, secret, "<PASSWORD>")
	return strings.ReplaceAll(msg, q[1:len(q)-1], "<PASSWORD>")
}

func checkConsistent(t *testing.T, value string, s *Secret) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(value), &m); err != nil {
		t.Fatalf("Parse accepted input that is not a JSON object")
	}
	str := func(field string) string {
		var v string
		if raw, ok := m[field]; ok {
			_ = json.Unmarshal(raw, &v)
		}
		return v
	}
	fam, ok := engines[s.Engine]
	switch {
	case !ok:
		t.Fatalf("engine %q is not a known engine", s.Engine)
	case s.Family() != fam || (fam != FamilyPostgres && fam != FamilyMySQL):
		t.Fatalf("engine %q has family %q", s.Engine, s.Family())
	case s.Port < 1 || s.Port > 65535:
		t.Fatalf("port %d is out of range", s.Port)
	case strings.TrimSpace(s.Host) == "" || strings.TrimSpace(s.Username) == "" || strings.TrimSpace(s.Password) == "":
		t.Fatalf("a required field is blank (host %d, username %d, password %d bytes)", len(s.Host), len(s.Username), len(s.Password))
	case strings.IndexFunc(s.Host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' }) >= 0:
		t.Fatalf("host %q has a space, control character or slash", s.Host)
	case strings.IndexFunc(s.Username, unicode.IsControl) >= 0:
		t.Fatalf("username %q has a control character", s.Username)
	case strings.ContainsRune(s.Password, 0) || strings.ContainsRune(s.DBName, 0):
		t.Fatal("password or dbname has a NUL byte")
	case s.Engine != str("engine") || s.Host != str("host") || s.Username != str("username") || s.Password != str("password"),
		s.DBName != str("dbname") || s.MasterARN != str("masterarn"),
		s.DBInstanceIdentifier != str("dbInstanceIdentifier") || s.DBClusterIdentifier != str("dbClusterIdentifier"):
		t.Fatal("a parsed string field differs from the input's")
	case fam == FamilyPostgres && s.Database() == "":
		t.Fatal("a PostgreSQL secret has no database")
	}
	if raw, ok := m["port"]; !ok || isNull(raw) {
		if s.Port != DefaultPort(fam) {
			t.Fatalf("port absent, got %d, want the %s default %d", s.Port, fam, DefaultPort(fam))
		}
	} else {
		var n int
		if json.Unmarshal(raw, &n) == nil && n != s.Port {
			t.Fatalf("port %d parsed as %d", n, s.Port)
		}
	}
	if raw, ok := m["ssl"]; ok && !isNull(raw) && s.SSL == nil {
		t.Fatal("ssl given but parsed as unset")
	}
}

// rdsJSON writes s back in the RDS secret format.
func rdsJSON(s *Secret, portAsString bool) string {
	m := map[string]any{"engine": s.Engine, "host": s.Host, "username": s.Username, "password": s.Password, "port": s.Port}
	if portAsString {
		m["port"] = strconv.Itoa(s.Port)
	}
	for k, v := range map[string]string{"dbname": s.DBName, "masterarn": s.MasterARN,
		"dbInstanceIdentifier": s.DBInstanceIdentifier, "dbClusterIdentifier": s.DBClusterIdentifier} {
		if v != "" {
			m[k] = v
		}
	}
	if s.SSL != nil {
		m["ssl"] = *s.SSL
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func sameSecret(a, b *Secret) bool {
	x, y := *a, *b
	if (x.SSL == nil) != (y.SSL == nil) || x.SSL != nil && *x.SSL != *y.SSL {
		return false
	}
	x.SSL, y.SSL = nil, nil
	return x == y
}

func checkRoundTrip(t *testing.T, s *Secret) {
	t.Helper()
	for _, asString := range []bool{false, true} {
		again, err := Parse(rdsJSON(s, asString))
		if err != nil {
			t.Fatalf("the parsed secret written back (port as string: %v) does not parse: %s", asString, redactIn(err.Error(), s.Password))
		}
		if !sameSecret(s, again) {
			t.Fatalf("round trip (port as string: %v) changed the secret: %v became %v", asString, s, again)
		}
	}
	if err := CheckPending(s, s); err != nil {
		t.Fatalf("CheckPending refuses a secret against itself: %s", redactIn(err.Error(), s.Password))
	}
}

func checkPrinting(t *testing.T, s *Secret) {
	t.Helper()
	other := *s
	other.Password = "another-password-" + strconv.Itoa(len(s.Password))
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if a, b := fmt.Sprintf(verb, s), fmt.Sprintf(verb, &other); a != b {
			t.Fatalf("Sprintf(%q) depends on the password: %s", verb, redactIn(a, s.Password))
		}
		if a, b := fmt.Sprintf(verb, *s), fmt.Sprintf(verb, other); a != b {
			t.Fatalf("Sprintf(%q) of the value depends on the password: %s", verb, redactIn(a, s.Password))
		}
	}
}
