package dbsecret

import (
	"testing"
	"time"
)

func TestProofs(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	p := &Proofs{Now: func() time.Time { return now }}
	s := &Secret{Engine: "postgres", Host: "db", Port: 5432, Username: "app"}
	other := *s
	other.Username = "app_clone"
	p.SetPasswordsChecked(s)
	if !p.PasswordsChecked(s) || p.PasswordsChecked(&other) {
		t.Fatal("a refusal proves the server checks passwords for that user only")
	}
	now = now.Add(CheckedTTL)
	if p.PasswordsChecked(s) {
		t.Fatalf("a refusal still counts after %s", CheckedTTL)
	}

	p.SetVersionLoggedIn("arn:a", "v1", "%")
	if note, ok := p.VersionLoggedIn("arn:a", "v1"); !ok || note != "%" {
		t.Fatalf("version proof: %q, %v", note, ok)
	}
	for _, k := range [][2]string{{"arn:a", "v2"}, {"arn:b", "v1"}, {"arn:a", ""}, {"", "v1"}} {
		if _, ok := p.VersionLoggedIn(k[0], k[1]); ok {
			t.Errorf("version %s of %s counts as proven; only v1 of arn:a was", k[1], k[0])
		}
	}
	now = now.Add(ProofTTL)
	if _, ok := p.VersionLoggedIn("arn:a", "v1"); ok {
		t.Fatalf("a version proof still counts after %s", ProofTTL)
	}
	var none *Proofs
	none.SetPasswordsChecked(s)
	none.SetVersionLoggedIn("arn:a", "v1", "")
	if none.PasswordsChecked(s) {
		t.Fatal("a nil Proofs remembered something")
	}
	if _, ok := none.VersionLoggedIn("arn:a", "v1"); ok {
		t.Fatal("a nil Proofs remembered a version")
	}
}
