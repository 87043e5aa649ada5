package postgres

import (
	"context"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
	"time"
)

var verifierFormat = regexp.MustCompile(`^SCRAM-SHA-256\$4096:([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$`)

func TestScramVerifierFormat(t *testing.T) {
	a, err := ScramVerifier("pencil")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ScramVerifier("pencil")
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("two verifiers of the same password are equal: the salt is not random")
	}
	m := verifierFormat.FindStringSubmatch(a)
	if m == nil {
		t.Fatalf("verifier %q does not match SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>", a)
	}
	for i, want := range []int{16, 32, 32} {
		raw, err := base64.StdEncoding.DecodeString(m[i+1])
		if err != nil || len(raw) != want {
			t.Fatalf("part %d decodes to %d bytes (err %v), want %d", i+1, len(raw), err, want)
		}
	}
	if strings.Contains(a, "pencil") {
		t.Fatal("verifier contains the password")
	}
}

// TestScramVerifierKnownAnswer checks the verifier of RFC 7677's example
// (password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations) and
// that the server accepts "pencil" for a role stored with exactly it.
func TestScramVerifierKnownAnswer(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	got, err := scramVerifier("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	// StoredKey and ServerKey of RFC 7677's example (user "user", password
	// "pencil"), derived from its SaltedPassword.
	const want = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
	if got != want {
		t.Fatalf("verifier = %s, want %s", got, want)
	}
	f := setup(t)
	user := uniqueName("rotary_rfc7677")
	f.exec(t, "CREATE ROLE "+QuoteIdentifier(user)+" LOGIN PASSWORD "+quoteLiteral(want))
	t.Cleanup(func() { f.dropRoles(t, user) })
	f.mustLogin(t, "RFC 7677's password", f.secret(t, user, "pencil", nil))
	f.mustNotLogin(t, "another password", f.secret(t, user, "pencil2", nil))
}

func TestScramVerifierRefusesWhatItCannotNormalize(t *testing.T) {
	for _, pw := range []string{"", "caf\u00e9", "tab\there", "nul\x00"} {
		if _, err := ScramVerifier(pw); err == nil {
			t.Fatalf("ScramVerifier(%q) succeeded, want an error", pw)
		}
	}
}

// TestScramVerifierLogsIn proves the server accepts the verifier: a role
// whose password is set as a verifier logs in with the plaintext, and every
// punctuation character works.
func TestScramVerifierLogsIn(t *testing.T) {
	f := setup(t)
	tests := []struct{ name, password string }{
		{"letters", "pencil"},
		{"every punctuation character", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"},
		{"space", "with a space"},
		{"long", strings.Repeat("Ab1!", 256)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user := uniqueName("rotary_scram")
			f.createRole(t, user, tt.password, "")
			f.mustLogin(t, "the password set as a verifier", f.secret(t, user, tt.password, nil))
			f.mustNotLogin(t, "a wrong password", f.secret(t, user, tt.password+"!", nil))
		})
	}
}

func TestQuoteIdentifier(t *testing.T) {
	tests := []struct{ in, want string }{
		{"app", `"app"`},
		{"App", `"App"`},
		{`a"b`, `"a""b"`},
		{`"; DROP ROLE x; --`, `"""; DROP ROLE x; --"`},
		{`back\slash`, `"back\slash"`},
		{"with space", `"with space"`},
		{"ünïcødé", `"ünïcødé"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := QuoteIdentifier(tt.in); got != tt.want {
				t.Fatalf("QuoteIdentifier(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
	// The server reads each quoted name back as the same name.
	f := setup(t)
	conn := f.adminConn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tt := range tests {
		var back string
		if err := conn.QueryRow(ctx, "SELECT "+quoteLiteral(tt.in)+"::text AS "+QuoteIdentifier(tt.in)).Scan(&back); err != nil || back != tt.in {
			t.Fatalf("%q used as a quoted column alias: %v", tt.in, err)
		}
	}
}
