package dbsecret

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rotary-secrets/rotary/pkg/rotation"
)

func TestPreviousCredential(t *testing.T) {
	cur, err := Parse(`{"engine":"postgres","host":"db.test","port":5432,"username":"app_clone","password":"cur-pw","dbname":"orders"}`)
	if err != nil {
		t.Fatal(err)
	}
	errOutside := errors.New("outside the pair")
	pair := func(u string) error {
		if u != "app" && u != "app_clone" {
			return errOutside
		}
		return nil
	}
	previous := func(value string) func(context.Context) (rotation.Version, bool, error) {
		return func(context.Context) (rotation.Version, bool, error) {
			if value == "" {
				return rotation.Version{}, false, nil
			}
			return rotation.Version{ID: "prev-v", Value: value}, true, nil
		}
	}
	tests := []struct {
		name     string
		previous func(context.Context) (rotation.Version, bool, error)
		wantUser string // "" means no credential to probe
		wantErr  error
	}{
		{"no reader", nil, "", nil},
		{"no previous version", previous(""), "", nil},
		{"the current credential itself", previous(`{"engine":"postgres","host":"db.test","username":"app_clone","password":"cur-pw"}`), "", nil},
		{"the other user", previous(`{"engine":"aurora-postgresql","host":"DB.TEST","port":"5432","username":"app","password":"old-pw","dbname":"other","ssl":false}`), "app", nil},
		{"an older password of the same user", previous(`{"engine":"postgres","host":"db.test","username":"app_clone","password":"old-pw"}`), "app_clone", nil},
		{"another host", previous(`{"engine":"postgres","host":"elsewhere.test","username":"app","password":"old-pw"}`), "", ErrInvalidSecret},
		{"another port", previous(`{"engine":"postgres","host":"db.test","port":6432,"username":"app","password":"old-pw"}`), "", ErrInvalidSecret},
		{"another engine family", previous(`{"engine":"mysql","host":"db.test","port":5432,"username":"app","password":"old-pw"}`), "", ErrInvalidSecret},
		{"malformed", previous(`{"engine":"postgres","username":"app","password":"old-pw"}`), "", ErrInvalidSecret},
		{"a user the caller refuses", previous(`{"engine":"postgres","host":"db.test","username":"victim","password":"old-pw"}`), "", errOutside},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PreviousCredential(context.Background(), tt.previous, cur, pair)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "old-pw") || strings.Contains(err.Error(), "cur-pw") {
					t.Fatal("the error quotes a password")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantUser == "" {
				if got != nil {
					t.Fatalf("got a credential for %q, want none", got.Username)
				}
				return
			}
			if got == nil {
				t.Fatal("got no credential, want one")
			}
			// Aimed at AWSCURRENT's server, TLS settings and database, with
			// AWSPREVIOUS's user and password.
			if got.Username != tt.wantUser || got.Password != "old-pw" || got.Host != cur.Host || got.Port != cur.Port ||
				got.DBName != cur.DBName || got.PlaintextAllowed() != cur.PlaintextAllowed() || got.Engine != cur.Engine {
				t.Fatalf("got %s, want user %q with AWSPREVIOUS's password on %s", got, tt.wantUser, cur)
			}
		})
	}
}
