package mysql

import (
	"context"
	"strings"
	"testing"

	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// setRequest builds the SetRequest of one rotation from current to pending,
// with an optional previous value.
func setRequest(cur, pend, prev string, st rotation.SecretStore) rotation.SetRequest {
	return rotation.SetRequest{
		SecretARN: "arn:aws:secretsmanager:us-east-1:123456789012:secret:test",
		Current:   version("v-current", cur),
		Pending:   version("v-pending", pend),
		Previous: func(context.Context) (rotation.Version, bool, error) {
			if prev == "" {
				return rotation.Version{}, false, nil
			}
			return version("v-previous", prev), true, nil
		},
		Secrets: st,
	}
}

// rotateSingle runs Set then Test from cur to a new password and returns the pending value.
func rotateSingle(t *testing.T, su *SingleUser, cur, prev, newPassword string) (string, error) {
	t.Helper()
	ctx := context.Background()
	pend := withField(t, cur, "password", newPassword)
	if err := su.Set(ctx, setRequest(cur, pend, prev, &store{})); err != nil {
		return pend, err
	}
	return pend, su.Test(ctx, rotation.TestRequest{Pending: version("v-pending", pend)})
}

func TestSingleUserRotates(t *testing.T) {
	ts := sharedServer(t)
	su := NewSingleUser(Config{})
	for _, host := range []string{"%", "127.0.0.1", "127.0.0.%"} {
		t.Run("host "+host, func(t *testing.T) {
			user, oldPW, newPW := uniqueName("rt_su_"), randomPassword(t), randomPassword(t)
			db := uniqueName("rt_db_")
			ts.createDatabase(t, db)
			ts.createUser(t, user, host, oldPW, "GRANT SELECT ON "+quoteIdent(db)+".*")
			cur := ts.secret(user, oldPW, map[string]any{"dbname": db, "note": "kept"})
			if _, err := rotateSingle(t, su, cur, "", newPW); err != nil {
				t.Fatalf("rotate: %v", err)
			}
			ts.mustLogin(t, Config{}, user, newPW)
			ts.mustNotLogin(t, Config{}, user, oldPW)
			// A retry of setSecret after success changes nothing and succeeds.
			if _, err := rotateSingle(t, su, cur, "", newPW); err != nil {
				t.Fatalf("retry: %v", err)
			}
			ts.mustLogin(t, Config{}, user, newPW)
		})
	}
}

// TestSingleUserLoginOrder: when the current password no longer logs in
// (a rotation that set the password but failed before finishSecret, then was
// rolled back), setSecret logs in with the previous password.
func TestSingleUserLoginOrder(t *testing.T) {
	ts := sharedServer(t)
	su := NewSingleUser(Config{})
	ctx := context.Background()
	tests := []struct {
		name        string
		serverHas   string // which password the server holds: prev, cur
		withPrev    bool
		wantErrText string
	}{
		{name: "current works", serverHas: "cur", withPrev: true},
		{name: "only previous works", serverHas: "prev", withPrev: true},
		{name: "nothing works", serverHas: "other", withPrev: true, wantErrText: "none of the passwords of AWSCURRENT, AWSPREVIOUS logs in"},
		{name: "nothing works, no previous", serverHas: "other", wantErrText: "no previous version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			user := uniqueName("rt_order_")
			pws := map[string]string{"prev": randomPassword(t), "cur": randomPassword(t), "other": randomPassword(t)}
			newPW := randomPassword(t)
			ts.createUser(t, user, "%", pws[tc.serverHas])
			cur := ts.secret(user, pws["cur"], nil)
			prev := ""
			if tc.withPrev {
				prev = ts.secret(user, pws["prev"], nil)
			}
			pend := withField(t, cur, "password", newPW)
			err := su.Set(ctx, setRequest(cur, pend, prev, &store{}))
			if tc.wantErrText != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrText) {
					t.Fatalf("Set: %v; want an error containing %q", err, tc.wantErrText)
				}
				for _, pw := range pws {
					if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), newPW) {
						t.Fatal("the error text holds a password")
					}
				}
				ts.mustLogin(t, Config{}, user, pws[tc.serverHas])
				return
			}
			if err != nil {
				t.Fatalf("Set: %v", err)
			}
			ts.mustLogin(t, Config{}, user, newPW)
		})
	}
}

// TestSingleUserRealHost: the same user name at two hosts with different
// passwords; only the account the secret logs in to changes.
func TestSingleUserRealHost(t *testing.T) {
	ts := sharedServer(t)
	su := NewSingleUser(Config{})
	user := uniqueName("rt_host_")
	pwLocal, pwAny, newPW := randomPassword(t), randomPassword(t), randomPassword(t)
	ts.createUser(t, user, "%", pwAny)
	ts.createUser(t, user, "127.0.0.1", pwLocal) // the more specific host wins for 127.0.0.1
	anyHash := ts.authString(t, user, "%")
	if _, err := rotateSingle(t, su, ts.secret(user, pwLocal, nil), "", newPW); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	ts.mustLogin(t, Config{}, user, newPW)
	if got := ts.authString(t, user, "%"); got != anyHash {
		t.Fatalf("the password of %s@%% changed; only %s@127.0.0.1 should have", user, user)
	}
}

// TestSingleUserPunctuation rotates to passwords holding every punctuation
// character, including sequences that break naive quoting.
func TestSingleUserPunctuation(t *testing.T) {
	ts := sharedServer(t)
	su := NewSingleUser(Config{})
	for i, pw := range []string{
		`!"#$%&'()*+,-./:;<=>?@[\]^_` + "`{|}~",
		`a\'b`, `endswith\`, `'; DROP USER root@'%'; --`, `\\''\\`, "space in it",
	} {
		t.Run(fingerprint(pw), func(t *testing.T) {
			user := uniqueName("rt_punct_")
			oldPW := randomPassword(t)
			ts.createUser(t, user, "%", oldPW)
			if _, err := rotateSingle(t, su, ts.secret(user, oldPW, nil), "", pw); err != nil {
				t.Fatalf("password %d: rotate: %v", i, err)
			}
			ts.mustLogin(t, Config{}, user, pw)
			ts.mustNotLogin(t, Config{}, user, oldPW)
		})
	}
}
