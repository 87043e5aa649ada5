package dbsecret_test

import (
	"errors"
	"testing"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

func TestParseVersionOncePerVersion(t *testing.T) {
	v := rotation.NewVersion("v1", `{"engine":"postgres","host":"db.example","username":"app","password":"placeholder-pw"}`)
	a, err := dbsecret.ParseVersion(v)
	if err != nil {
		t.Fatal(err)
	}
	b, err := dbsecret.ParseVersion(v)
	if err != nil {
		t.Fatal(err)
	}
	if a == b || *a != *b {
		t.Error("a second ParseVersion of the same version did not return an equal copy")
	}
	a.Username = "changed"
	if c, _ := dbsecret.ParseVersion(v); c.Username != "app" {
		t.Error("changing one ParseVersion result changed what the next call returns")
	}
	w := v
	w.Value = `{"engine":"postgres","host":"other.example","username":"other","password":"placeholder-pw"}`
	if c, err := dbsecret.ParseVersion(w); err != nil || c.Host != "other.example" {
		t.Errorf("a copy of the version with another value parsed as the original (host %v, err %v)", c, err)
	}
	if c, _ := dbsecret.ParseVersion(rotation.Version{ID: v.ID, Value: v.Value}); c == a {
		t.Error("a hand-built copy shared the engine version's result")
	}
	bad := rotation.NewVersion("v2", `{"engine":"postgres"}`)
	if _, err := dbsecret.ParseVersion(bad); !errors.Is(err, dbsecret.ErrInvalidSecret) {
		t.Errorf("ParseVersion of a secret without host: %v, want ErrInvalidSecret", err)
	}
	if _, err := dbsecret.ParseVersion(bad); !errors.Is(err, dbsecret.ErrInvalidSecret) {
		t.Errorf("second ParseVersion of a bad secret: %v, want the same error", err)
	}
}
