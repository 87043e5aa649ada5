package dbsecret_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

var errRefused = errors.New("password refused")

func TestLoginLadder(t *testing.T) {
	ctx := context.Background()
	cur := &dbsecret.Secret{Engine: "postgres", Host: "db", Port: 5432, Username: "app", Password: "current-pw"}
	prevValue := `{"engine":"postgres","host":"db","username":"app","password":"previous-pw","ssl":false}`
	parse := func(v rotation.Version) (*dbsecret.Secret, error) { return dbsecret.Parse(v.Value) }
	same := func(s *dbsecret.Secret) error { return dbsecret.CheckSameTarget(cur, s) }
	reads := 0
	prev := dbsecret.Previous(func(context.Context) (rotation.Version, bool, error) {
		reads++
		return rotation.Version{ID: "v0", Value: prevValue}, true, nil
	}, parse, same)
	refused := func(err error) bool { return errors.Is(err, errRefused) }

	// serverHas is the password the server accepts; tried records what
	// each login was given.
	login := func(serverHas string, tried *[]*dbsecret.Secret) func(context.Context, *dbsecret.Secret) (string, error) {
		return func(_ context.Context, s *dbsecret.Secret) (string, error) {
			*tried = append(*tried, s)
			if s.Password == serverHas {
				return "session-" + s.Password, nil
			}
			if serverHas == "down" {
				return "", errors.New("connection refused")
			}
			return "", errRefused
		}
	}

	t.Run("current works: AWSPREVIOUS is not read", func(t *testing.T) {
		reads = 0
		var tried []*dbsecret.Secret
		sess, used, err := dbsecret.Login(ctx, cur, []dbsecret.Try{dbsecret.Known("AWSCURRENT", cur), prev}, login("current-pw", &tried), refused)
		if err != nil || sess != "session-current-pw" || used != cur || reads != 0 {
			t.Fatalf("got %q, %v, err %v, %d reads of AWSPREVIOUS", sess, used, err, reads)
		}
	})
	t.Run("previous logs in with AWSCURRENT's TLS setting", func(t *testing.T) {
		var tried []*dbsecret.Secret
		_, used, err := dbsecret.Login(ctx, cur, []dbsecret.Try{dbsecret.Known("AWSCURRENT", cur), prev}, login("previous-pw", &tried), refused)
		if err != nil || used.Password != "previous-pw" {
			t.Fatalf("login with AWSPREVIOUS: %v", err)
		}
		if !used.PlaintextAllowed() {
			t.Fatal("the test is void: AWSPREVIOUS does not say ssl false")
		}
		if last := tried[len(tried)-1]; last.PlaintextAllowed() {
			t.Fatal("AWSPREVIOUS's \"ssl\": false turned TLS off for its login; every login must use AWSCURRENT's setting")
		}
	})
	t.Run("a network failure ends the ladder", func(t *testing.T) {
		reads = 0
		var tried []*dbsecret.Secret
		_, _, err := dbsecret.Login(ctx, cur, []dbsecret.Try{dbsecret.Known("AWSCURRENT", cur), prev}, login("down", &tried), refused)
		if err == nil || len(tried) != 1 || reads != 0 {
			t.Fatalf("after a network failure the ladder went on (%d logins, %d reads): %v", len(tried), reads, err)
		}
	})
	t.Run("nothing works: the error names every credential and no password", func(t *testing.T) {
		var tried []*dbsecret.Secret
		_, _, err := dbsecret.Login(ctx, cur, []dbsecret.Try{dbsecret.Known("AWSPENDING", cur), prev}, login("other", &tried), refused)
		if err == nil || !strings.Contains(err.Error(), "AWSPENDING, AWSPREVIOUS") || !errors.Is(err, errRefused) {
			t.Fatalf("err = %v", err)
		}
		for _, pw := range []string{"current-pw", "previous-pw"} {
			if strings.Contains(err.Error(), pw) {
				t.Fatal("the error holds a password")
			}
		}
	})
	t.Run("no previous version is said so", func(t *testing.T) {
		none := dbsecret.Previous(func(context.Context) (rotation.Version, bool, error) { return rotation.Version{}, false, nil }, parse, same)
		var tried []*dbsecret.Secret
		_, _, err := dbsecret.Login(ctx, cur, []dbsecret.Try{dbsecret.Known("AWSCURRENT", cur), none}, login("other", &tried), refused)
		if err == nil || !strings.Contains(err.Error(), "no previous version") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a failed read of AWSPREVIOUS is not a refused login", func(t *testing.T) {
		broken := dbsecret.Previous(func(context.Context) (rotation.Version, bool, error) {
			return rotation.Version{}, false, errors.New("ThrottlingException: rate exceeded")
		}, parse, same)
		var tried []*dbsecret.Secret
		_, _, err := dbsecret.Login(ctx, cur, []dbsecret.Try{dbsecret.Known("AWSCURRENT", cur), broken}, login("other", &tried), refused)
		if err == nil || errors.Is(err, errRefused) || !strings.Contains(err.Error(), "ThrottlingException") {
			t.Fatalf("err = %v; want the read error, not wrapping the earlier refusal", err)
		}
	})
	t.Run("a previous version for another server is not tried", func(t *testing.T) {
		other := dbsecret.Previous(func(context.Context) (rotation.Version, bool, error) {
			return rotation.Version{ID: "v0", Value: `{"engine":"postgres","host":"elsewhere","username":"app","password":"previous-pw"}`}, true, nil
		}, parse, same)
		var tried []*dbsecret.Secret
		_, _, err := dbsecret.Login(ctx, cur, []dbsecret.Try{dbsecret.Known("AWSCURRENT", cur), other}, login("previous-pw", &tried), refused)
		if err == nil || len(tried) != 1 {
			t.Fatalf("AWSPREVIOUS for another host was tried (%d logins): %v", len(tried), err)
		}
	})
}
