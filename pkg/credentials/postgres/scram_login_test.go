package postgres

import (
	"context"
	"strings"
	"testing"
	"time"
)

// rfc7677Verifier is RFC 7677's example verifier (password "pencil").
const rfc7677Verifier = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

// TestServerAcceptsRFC7677Verifier: a role stored with RFC 7677's verifier
// logs in with "pencil" and not with another password.
func TestServerAcceptsRFC7677Verifier(t *testing.T) {
	f := setup(t)
	user := uniqueName("rotary_rfc7677")
	f.exec(t, "CREATE ROLE "+QuoteIdentifier(user)+" LOGIN PASSWORD "+quoteLiteral(rfc7677Verifier))
	t.Cleanup(func() { f.dropRoles(t, user) })
	f.mustLogin(t, "RFC 7677's password", f.secret(t, user, "pencil", nil))
	f.mustNotLogin(t, "another password", f.secret(t, user, "pencil2", nil))
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
