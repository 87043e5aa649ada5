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

	var none *Proofs
	none.SetPasswordsChecked(s)
	if none.PasswordsChecked(s) {
		t.Fatal("a nil Proofs remembered something")
	}
}
