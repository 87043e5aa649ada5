package scram

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
)

var verifierFormat = regexp.MustCompile(`^SCRAM-SHA-256\$4096:([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$`)

func TestVerifierFormat(t *testing.T) {
	a, err := Verifier("pencil")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Verifier("pencil")
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
// (password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations); the
// postgres package proves the server accepts "pencil" for a role stored with
// exactly it.
func TestVerifierKnownAnswer(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	got, err := verifier("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	// StoredKey and ServerKey of RFC 7677's example (user "user", password
	// "pencil"), derived from its SaltedPassword.
	const want = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
	if got != want {
		t.Fatalf("verifier = %s, want %s", got, want)
	}
}

func TestVerifierRefusesWhatItCannotNormalize(t *testing.T) {
	for _, pw := range []string{"", "caf\u00e9", "tab\there", "nul\x00"} {
		if _, err := Verifier(pw); err == nil {
			t.Fatalf("Verifier(%q) succeeded, want an error", pw)
		}
	}
}
