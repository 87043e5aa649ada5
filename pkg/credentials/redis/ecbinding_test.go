package redis

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rotary-secrets/rotary/internal/elasticachelocal"
	"github.com/rotary-secrets/rotary/internal/redisserver"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

const ecSecretARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-app-AbCdEf"

// TestElastiCacheBindingsRefuseAnotherUser: one elasticache-user function
// may modify the users of all its secrets. Someone who may write the
// secret bound to user A, and sets its fields to user B (same replication
// group, every field matching B, so that every check against ElastiCache
// passes), must not get B's passwords replaced: with
// ROTARY_ELASTICACHE_BINDINGS setSecret and revoke refuse before any
// ElastiCache call, and B still logs in with its password. The secret
// bound to its own user rotates; without the bindings the rewritten
// secret replaces B's passwords, which is what the bindings close.
func TestElastiCacheBindingsRefuseAnotherUser(t *testing.T) {
	t.Parallel()
	f := newECFixture(t)
	ctx := context.Background()
	idA, valueA := f.user(t, "orders-users")
	idB, valueB := f.user(t, "orders-users")
	hostile := withField(t, valueB, "password", leak+"-not-Bs-password")
	pending := withField(t, hostile, "password", leak+"-pending-123456")
	calls := func() int { return len(f.api.Calls()) }
	bound := f.cfg
	bound.Bindings = dbsecret.Bindings{ecSecretARN: elasticachelocal.UserARN(idA)}
	unbound := f.cfg
	unbound.Bindings = dbsecret.Bindings{}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"bound to another user", bound, `field "user_arn" is "` + elasticachelocal.UserARN(idB) + `", but this secret is bound to the ElastiCache user ` + elasticachelocal.UserARN(idA)},
		{"not bound", unbound, "is bound to no ElastiCache user in " + EnvElastiCacheBindings},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ec := NewElastiCacheUser(tc.cfg)
			before := calls()
			err := ec.Set(ctx, rotation.SetRequest{SecretARN: ecSecretARN, Current: version("cur", hostile), Pending: version("pend", pending)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("setSecret: %v, want an error saying %q", err, tc.want)
			}
			mustNotLeak(t, err)
			err = ec.Revoke(ctx, rotation.RevokeRequest{SecretARN: ecSecretARN, Current: version("cur", hostile)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("revoke: %v, want an error saying %q", err, tc.want)
			}
			mustNotLeak(t, err)
			if calls() != before {
				t.Fatal("the function called ElastiCache for a secret bound to another user")
			}
			if err := redisserver.Login(ctx, valueB, f.redis.CAFile); err != nil {
				t.Fatalf("B no longer logs in with its password: %v", err)
			}
		})
	}
	t.Run("bound to its user", func(t *testing.T) {
		for _, key := range []string{ecSecretARN, ecSecretARN[:len(ecSecretARN)-7]} {
			cfg := f.cfg
			cfg.Bindings = dbsecret.Bindings{key: elasticachelocal.UserARN(idA)}
			pend := withField(t, valueA, "password", randomPassword(t))
			if err := NewElastiCacheUser(cfg).Set(ctx, rotation.SetRequest{SecretARN: ecSecretARN, Current: version("cur", valueA), Pending: version("pend", pend)}); err != nil {
				t.Fatalf("setSecret of a secret bound (as %s) to its user: %v", key, err)
			}
			if err := redisserver.Login(ctx, pend, f.redis.CAFile); err != nil {
				t.Fatalf("the pending password does not log in: %v", err)
			}
			valueA = pend
		}
	})
	t.Run("unset binds nothing", func(t *testing.T) {
		if err := NewElastiCacheUser(f.cfg).Set(ctx, rotation.SetRequest{SecretARN: ecSecretARN, Current: version("cur", hostile), Pending: version("pend", pending)}); err != nil {
			t.Fatalf("without bindings the rewritten secret is served as before, got: %v", err)
		}
		if err := redisserver.Login(ctx, valueB, f.redis.CAFile); !errors.Is(err, redisserver.ErrRefused) {
			t.Fatalf("the test is void: without bindings B's password still logs in (%v)", err)
		}
	})
}

// TestElastiCacheDescribeLag: DescribeUsers is eventually consistent. With
// the local ElastiCache showing the user active for a while after each
// ModifyUser, setSecret must not end before the pending password logs in,
// and revoke not before the password it removes is refused; the same
// steps that take the first "active" for applied (no settle, what the type
// did before) end too early, which proves the stand-in reproduces the lag.
func TestElastiCacheDescribeLag(t *testing.T) {
	t.Parallel()
	f := newECFixture(t)
	f.api.Delay = 800 * time.Millisecond
	f.api.DescribeLag = 300 * time.Millisecond
	ctx := context.Background()
	login := func(value string) error { return redisserver.Login(ctx, value, f.redis.CAFile) }
	// steps runs setSecret then revoke, and returns what logs in right
	// after each: the pending password after setSecret, AWSCURRENT's
	// replaced one after revoke.
	steps := func(t *testing.T, cfg Config) (pendAfterSet, oldAfterRevoke error) {
		t.Helper()
		id, cur := f.user(t, "orders-users")
		pend := withField(t, cur, "password", randomPassword(t))
		ec := NewElastiCacheUser(cfg)
		if err := ec.Set(ctx, rotation.SetRequest{Current: version("cur", cur), Pending: version("pend", pend)}); err != nil {
			t.Fatalf("setSecret: %v", err)
		}
		pendAfterSet = login(pend)
		f.settled(t, id)
		if err := ec.Revoke(ctx, rotation.RevokeRequest{Current: version("pend", pend)}); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		oldAfterRevoke = login(cur)
		f.settled(t, id)
		return pendAfterSet, oldAfterRevoke
	}
	t.Run("Settle", func(t *testing.T) {
		cfg := f.cfg
		cfg.Settle = 8 * time.Second // longer than the lag and the delay: seeing the change ends the waits
		start := time.Now()
		pend, old := steps(t, cfg)
		if pend != nil {
			t.Fatalf("the pending password does not log in once setSecret returned: %v", pend)
		}
		if !errors.Is(old, redisserver.ErrRefused) {
			t.Fatalf("the password revoke removed: %v, want it refused once revoke returned", old)
		}
		if d := time.Since(start); d >= cfg.Settle {
			t.Fatalf("the steps took %s: the waits ended on the settle time, not on seeing the change", d)
		}
	})
	t.Run("NoSettleIsFooled", func(t *testing.T) {
		cfg := f.cfg
		cfg.Settle = -1
		pend, old := steps(t, cfg)
		if !errors.Is(pend, redisserver.ErrRefused) {
			t.Fatalf("the test is void: without a settle time setSecret still waited for the change (the pending password: %v)", pend)
		}
		if old != nil {
			t.Fatalf("the test is void: without a settle time revoke still waited for the change (the removed password: %v)", old)
		}
	})
}

// settled waits until the user is really active and DescribeUsers shows
// it so, as between two steps of a rotation.
func (f *ecFixture) settled(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f.api.Status(id) != "active" || f.api.Lagging(id) {
		if time.Now().After(deadline) {
			t.Fatalf("the ElastiCache user %s is still %q", id, f.api.Status(id))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestElastiCacheConfigFromEnv: ROTARY_ELASTICACHE_BINDINGS must be the
// object the CDK app writes, ROTARY_ELASTICACHE_SETTLE a bounded duration.
func TestElastiCacheConfigFromEnv(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, tc := range []struct{ name, value, want string }{
		{EnvElastiCacheBindings, `{"` + ecSecretARN + `": "svc-a"}`, `"svc-a" is not the ARN of an ElastiCache user`},
		{EnvElastiCacheBindings, `{"svc-a": "` + elasticachelocal.UserARN("svc-a") + `"}`, `key "svc-a" is not a Secrets Manager secret ARN`},
		{EnvElastiCacheBindings, `"x"`, "not a JSON object"},
		{EnvElastiCacheSettle, "6m", "from 0s to 5m0s"},
		{EnvElastiCacheSettle, "soon", "not a duration"},
	} {
		if _, err := ConfigFromEnv(env(tc.name, tc.value)); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s=%s: %v, want an error naming it and saying %q", tc.name, tc.value, err, tc.want)
		}
	}
	c, err := ConfigFromEnv(env(EnvElastiCacheBindings, `{"`+ecSecretARN+`": "`+elasticachelocal.UserARN("svc-a")+`"}`, EnvElastiCacheSettle, "0s"))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := c.Bindings.Lookup(ecSecretARN); !ok || got != elasticachelocal.UserARN("svc-a") || c.settle() != 0 {
		t.Fatalf("bindings %v, settle %s; want the user bound and no settle", c.Bindings, c.settle())
	}
	if c, err := ConfigFromEnv(env()); err != nil || c.Bindings != nil || c.settle() != DefaultSettle {
		t.Fatalf("unset: %v, %v, %s; want nothing bound and the default settle", err, c.Bindings, c.settle())
	}
}
