package rdsmaster

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// describeLag is how long the local RDS's Describe calls keep showing a
// database as it was after a ModifyDB* in these tests.
const describeLag = 600 * time.Millisecond

// TestDescribeLagDoesNotPassForApplied: RDS's Describe calls are eventually
// consistent. With the local RDS lagging, setSecret then testSecret
// without a login must not end before the pending password logs in; the
// same steps that trust the first "available, nothing pending" (no
// settle, what the type did before) end before RDS applied it, which
// proves the stand-in reproduces the lag.
func TestDescribeLagDoesNotPassForApplied(t *testing.T) {
	for name, newStack := range map[string]func(*testing.T) *stack{"Postgres": pgStack, "MariaDB": myStack} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t)
			s.rds.SetDescribeLag(describeLag)
			ctx := context.Background()
			steps := func(t *testing.T, cfg Config) (cur, pend string) {
				t.Helper()
				cur = s.database(t, false, nil)
				pend = withField(t, cur, "password", newPassword(t))
				m := New(cfg)
				if err := m.Set(ctx, rotation.SetRequest{Current: version("c", cur), Pending: version("p", pend)}); err != nil {
					t.Fatalf("setSecret: %v", err)
				}
				if err := m.Test(ctx, rotation.TestRequest{Pending: version("p", pend)}); err != nil {
					t.Fatalf("testSecret: %v", err)
				}
				return cur, pend
			}

			t.Run("Settle", func(t *testing.T) {
				cfg := s.config(false)
				cfg.Settle = 5 * time.Second // longer than the lag, so seeing the change is what ends the wait
				start := time.Now()
				cur, pend := steps(t, cfg)
				if err := s.login(ctx, pend); err != nil {
					t.Fatalf("the pending password does not log in once testSecret passed (after %s): %v", time.Since(start), err)
				}
				if err := s.login(ctx, cur); err == nil || !s.refused(err) {
					t.Fatalf("the replaced password: %v, want it refused", err)
				}
				if d := time.Since(start); d >= cfg.Settle {
					t.Fatalf("the steps took %s: the wait ended on the settle time, not on seeing the change", d)
				}
			})
			t.Run("NoSettleIsFooled", func(t *testing.T) {
				cfg := s.config(false)
				cfg.Settle = -1
				_, pend := steps(t, cfg)
				if err := s.login(ctx, pend); err == nil {
					t.Fatal("the test is void: without a settle time the steps still waited for RDS to apply the change")
				}
				s.rds.Wait()
			})
		})
	}
}

// TestSettleWhenTheChangeIsNeverSeen: when RDS applies the change between
// two polls (the Describe calls never show it), setSecret takes
// "available, nothing pending" for applied only once the settle time has
// passed since its ModifyDBInstance.
func TestSettleWhenTheChangeIsNeverSeen(t *testing.T) {
	f := &fakeRDS{lagAfter: 1 << 30}
	cfg := cfgFor(f, false)
	cfg.Settle = 300 * time.Millisecond
	start := time.Now()
	err := New(cfg).Set(context.Background(), rotation.SetRequest{Current: version("c", curV), Pending: version("p", pendV)})
	if err != nil || f.modifies != 1 {
		t.Fatalf("Set: %v, %d ModifyDBInstance; want one and success after the settle time", err, f.modifies)
	}
	if d := time.Since(start); d < cfg.Settle {
		t.Fatalf("Set ended after %s, before the settle time %s, on a Describe that never showed the change", d, cfg.Settle)
	}
	// With a wait bound shorter than the settle time, the step fails and
	// says why, rather than pass.
	f = &fakeRDS{lagAfter: 1 << 30}
	cfg = cfgFor(f, false)
	cfg.Settle, cfg.WaitTimeout = time.Minute, 200*time.Millisecond
	err = New(cfg).Set(context.Background(), rotation.SetRequest{Current: version("c", curV), Pending: version("p", pendV)})
	if err == nil || !strings.Contains(err.Error(), EnvSettle) {
		t.Fatalf("Set with the change never shown within the wait: %v, want ErrNotApplied naming %s", err, EnvSettle)
	}
}

func version(id, value string) rotation.Version { return rotation.Version{ID: id, Value: value} }
