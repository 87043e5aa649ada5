package redis

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/internal/redisserver"
	"github.com/rotary-secrets/rotary/internal/redisserver/redistest"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
)

const leak = "Hunter2-hunter2-pw"

func mustNotLeak(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), leak) {
		t.Fatalf("the error quotes the password: %s", rotationtest.Fingerprint(err.Error()))
	}
}

// TestValidateHostile: each malformed secret is refused, naming the field
// and the fix, never quoting the password (which is pasted into fields).
func TestValidateHostile(t *testing.T) {
	base := `{"host":"h","port":6379,"username":"u","password":"` + leak + `"}`
	for _, tc := range []struct{ name, value, field string }{
		{"not JSON", `{"host":`, "JSON object"},
		{"array", `[1]`, "JSON object"},
		{"missing host", withField(t, base, "host", nil), `"host" is missing`},
		{"empty host", withField(t, base, "host", " "), `"host" is empty`},
		{"host with a slash", withField(t, base, "host", "h/"+leak), `"host" is not a host`},
		{"missing username", withField(t, base, "username", nil), `"username" is missing`},
		{"username with a space", withField(t, base, "username", "a "+leak), `"username" contains a space`},
		{"username a number", withField(t, base, "username", 7), `"username" must be a JSON string`},
		{"missing password", withField(t, base, "password", nil), `"password" is missing`},
		{"password a number", withField(t, base, "password", 12345678), `"password" must be a JSON string`},
		{"port text", withField(t, base, "port", leak), `"port" is not a port`},
		{"port too big", withField(t, base, "port", 70000), `"port" "70000" is not a port`},
		{"port an object", withField(t, base, "port", map[string]any{}), `"port" must be a number`},
		{"ssl maybe", withField(t, base, "ssl", "maybe"), `"ssl" must be true or false`},
		{"masterarn a number", withField(t, base, "masterarn", 1), `"masterarn" must be a JSON string`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := NewACLUser(Config{}).Validate(context.Background(), version("v1", tc.value))
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want one about %s", err, tc.field)
			}
			mustNotLeak(t, err)
		})
	}
}

// TestACLHostile: against a real server, hostile secrets are refused with
// a clear error and the user's passwords do not change.
func TestACLHostile(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redisserver.Options{})
	ctx := context.Background()
	e := aclEnv(t, s, func(*testing.T, *secretsmanager.Client) string { return "{}" })
	sm := e.Client
	a := NewACLUser(configFor(s))
	set := func(cur, pend string) error {
		return a.Set(ctx, rotation.SetRequest{Current: version("cur", cur), Pending: version("pend", pend), Secrets: store{sm},
			Previous: func(context.Context) (rotation.Version, bool, error) { return rotation.Version{}, false, nil }})
	}
	newPending := func(v string) string { return withField(t, v, "password", randomPassword(t)) }
	unchanged := func(t *testing.T, user string, want []string) {
		t.Helper()
		if got := hashes(t, s, user); !reflect.DeepEqual(got, want) {
			t.Fatal("the user's passwords changed")
		}
	}

	t.Run("UnknownUser", func(t *testing.T) {
		admin, pw := uniqueName("admin_"), randomPassword(t)
		redistest.CreateUser(t, s, admin, pw, selfRules...)
		arn := storeMaster(t, sm, jsonOf(map[string]any{"username": admin, "password": pw}))
		cur := secretFor(s, "nobody_here", leak, map[string]any{"masterarn": arn})
		err := set(cur, newPending(cur))
		if err == nil || !strings.Contains(err.Error(), `"nobody_here" does not exist`) {
			t.Fatalf("err = %v", err)
		}
		mustNotLeak(t, err)
	})
	t.Run("NoAclPermission", func(t *testing.T) {
		user, pw := uniqueName("app_"), randomPassword(t)
		redistest.CreateUser(t, s, user, pw, "+ping")
		before := hashes(t, s, user)
		cur := secretFor(s, user, pw, nil)
		err := set(cur, newPending(cur))
		if err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Fatalf("err = %v, want the server's NOPERM", err)
		}
		unchanged(t, user, before)
	})
	t.Run("NopassUser", func(t *testing.T) {
		user := uniqueName("app_")
		redistest.CreateUser(t, s, user, "x", selfRules...)
		if err := s.Admin.Do(ctx, "ACL", "SETUSER", user, "nopass").Err(); err != nil {
			t.Fatal(err)
		}
		cur := secretFor(s, user, leak, nil)
		err := set(cur, newPending(cur))
		if err == nil || !strings.Contains(err.Error(), "nopass") {
			t.Fatalf("err = %v", err)
		}
		mustNotLeak(t, err)
		if err := a.Probe(ctx, rotation.ProbeRequest{Version: version("v", cur), Current: version("v", cur)}); !errors.Is(err, rotation.ErrUnproven) {
			t.Fatalf("probe of a nopass user: %v, want ErrUnproven", err)
		}
	})
	t.Run("WrongPasswordProbe", func(t *testing.T) {
		user, pw := uniqueName("app_"), randomPassword(t)
		redistest.CreateUser(t, s, user, pw, selfRules...)
		cur := secretFor(s, user, pw, nil)
		if err := a.Probe(ctx, rotation.ProbeRequest{Version: version("v", cur), Current: version("v", cur)}); err != nil {
			t.Fatalf("probe of the right password: %v", err)
		}
		wrong := withField(t, cur, "password", leak)
		err := a.Probe(ctx, rotation.ProbeRequest{Version: version("w", wrong), Current: version("v", cur)})
		if !errors.Is(err, rotation.ErrRefused) {
			t.Fatalf("probe of a wrong password: %v, want ErrRefused", err)
		}
		mustNotLeak(t, err)
		other := withField(t, cur, "username", "default")
		if err := a.Probe(ctx, rotation.ProbeRequest{Version: version("o", other), Current: version("v", cur)}); !errors.Is(err, rotation.ErrOtherTarget) {
			t.Fatalf("probe of another user: %v, want ErrOtherTarget", err)
		}
	})
	t.Run("PendingForAnotherUser", func(t *testing.T) {
		user, pw := uniqueName("app_"), randomPassword(t)
		redistest.CreateUser(t, s, user, pw, selfRules...)
		before := hashes(t, s, user)
		cur := secretFor(s, user, pw, nil)
		err := set(cur, withField(t, newPending(cur), "username", "default"))
		if err == nil || !strings.Contains(err.Error(), `"username" differs`) {
			t.Fatalf("err = %v", err)
		}
		unchanged(t, user, before)
	})
	t.Run("MasterOfAnotherServer", func(t *testing.T) {
		user, pw := uniqueName("app_"), randomPassword(t)
		redistest.CreateUser(t, s, user, pw)
		before := hashes(t, s, user)
		arn := storeMaster(t, sm, jsonOf(map[string]any{"username": "default", "password": s.AdminPassword, "host": "10.0.0.1"}))
		cur := secretFor(s, user, pw, map[string]any{"masterarn": arn})
		err := set(cur, newPending(cur))
		if err == nil || !strings.Contains(err.Error(), "same server") {
			t.Fatalf("err = %v", err)
		}
		unchanged(t, user, before)
	})
	t.Run("MasterRefused", func(t *testing.T) {
		user, pw := uniqueName("app_"), randomPassword(t)
		redistest.CreateUser(t, s, user, pw)
		arn := storeMaster(t, sm, jsonOf(map[string]any{"username": "default", "password": leak}))
		cur := secretFor(s, user, pw, map[string]any{"masterarn": arn})
		err := set(cur, newPending(cur))
		if !errors.Is(err, ErrLogin) || !strings.Contains(err.Error(), "master secret") {
			t.Fatalf("err = %v", err)
		}
		mustNotLeak(t, err)
	})
	t.Run("RevokeWithRefusedCurrent", func(t *testing.T) {
		user, pw := uniqueName("app_"), randomPassword(t)
		redistest.CreateUser(t, s, user, pw, selfRules...)
		before := hashes(t, s, user)
		err := a.Revoke(ctx, rotation.RevokeRequest{Current: version("c", secretFor(s, user, leak, nil)), Secrets: store{sm}})
		if err == nil || !strings.Contains(err.Error(), "AWSCURRENT") {
			t.Fatalf("err = %v", err)
		}
		mustNotLeak(t, err)
		unchanged(t, user, before)
	})
}

// TestACLTLS: TLS is verified and never dropped: a secret that requires
// TLS fails against a plaintext server and against a server whose CA is
// not trusted, and "ssl": false fails against a TLS-only server; none is
// mistaken for a refused password.
func TestACLTLS(t *testing.T) {
	t.Parallel()
	plain := redistest.Start(t, redisserver.Options{})
	tlsSrv := redistest.Start(t, redisserver.Options{TLS: true})
	ctx := context.Background()
	user, pw := uniqueName("app_"), randomPassword(t)
	redistest.CreateUser(t, tlsSrv, user, pw)
	redistest.CreateUser(t, plain, user, pw)
	good := secretFor(tlsSrv, user, pw, nil)
	for _, tc := range []struct {
		name  string
		cfg   Config
		value string
	}{
		{"CA not trusted", Config{}, good},
		{"plaintext secret, TLS-only server", configFor(tlsSrv), withField(t, good, "ssl", false)},
		{"TLS secret, plaintext server", Config{DB: dbsecret.Config{CABundlePath: tlsSrv.CAFile, ConnectTimeout: time.Second}}, withField(t, secretFor(plain, user, pw, nil), "ssl", nil)},
		{"TLS secret, wrong host name", configFor(tlsSrv), withField(t, good, "host", "127.0.0.1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := NewACLUser(tc.cfg).Test(ctx, rotation.TestRequest{Pending: version("p", tc.value)})
			if err == nil || errors.Is(err, ErrLogin) {
				t.Fatalf("err = %v, want a connection error", err)
			}
		})
	}
	if err := NewACLUser(Config{DB: dbsecret.Config{CABundlePath: tlsSrv.CAFile}}).Test(ctx, rotation.TestRequest{Pending: version("p", good)}); err != nil {
		t.Fatalf("verified TLS with the test CA: %v", err)
	}
}
