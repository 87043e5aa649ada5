package rotationtest

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// Logins counts the logins a downstream server has seen so far for the
// users of one test: successful and refused. The database types count them
// on the server (its connection log), so a login the code makes in any way
// is counted.
type Logins func(t *testing.T) (ok, refused int)

// StepCost is what one step of a rotation cost: its Secrets Manager calls
// by operation and the logins downstream.
type StepCost struct {
	Step        string
	Calls       map[string]int
	OK, Refused int
}

// SMCalls is the number of Secrets Manager calls of the step.
func (c StepCost) SMCalls() int {
	n := 0
	for _, v := range c.Calls {
		n += v
	}
	return n
}

func (c StepCost) String() string {
	return fmt.Sprintf("%s: %d Secrets Manager calls %v, %d logins, %d refused", c.Step, c.SMCalls(), c.Calls, c.OK, c.Refused)
}

// Budget is the most a rotation may cost on the common path (no fault, no
// retry): per step, and in total.
type Budget struct {
	// Calls and Logins are the most Secrets Manager calls and successful
	// logins of each step; a step missing from a map may make none.
	Calls, Logins, Refused map[string]int
	// TotalCalls, TotalLogins and TotalRefused bound a whole rotation.
	TotalCalls, TotalLogins, TotalRefused int
	// MinLogins is the fewest successful logins a rotation can make (a
	// database type logs in to set and to prove the credential): fewer
	// means the counter does not see the logins, and the budget proves
	// nothing.
	MinLogins int
	// MinRefused is the fewest refused logins a rotation makes: the proof
	// that the server checks passwords (the pending password refused
	// before setSecret sets it; for PostgreSQL alternating users also a
	// random password after the master's grants). A budget that only caps
	// cannot fail when that proof is silently skipped; this can.
	MinRefused int
}

// Costs rotates one fresh secret of the subject rotations times, each
// rotation with RotateSecret through the local Secrets Manager, and returns
// what each step of each rotation cost. With cold false every rotation runs
// on the subject's handler, as one warm function instance does; with cold
// true each rotation runs on a new handler around newCredential(), as a new
// instance does. Every rotation must succeed.
func Costs(t *testing.T, s Subject, rotations int, logins Logins, cold bool, newCredential func() rotation.Credential) [][]StepCost {
	t.Helper()
	e := NewEnv(t, s)
	arn, _ := e.NewSecret(t)
	var (
		mu   sync.Mutex
		cost []StepCost
	)
	e.Inject(func(ev smlocal.Event, run func() error) error {
		before := e.Server.Calls()
		ok0, ref0 := logins(t)
		err := run()
		made := e.Server.Calls()
		for op, n := range before {
			made[op] -= n
			if made[op] == 0 {
				delete(made, op)
			}
		}
		ok1, ref1 := logins(t)
		mu.Lock()
		cost = append(cost, StepCost{Step: ev.Step, Calls: made, OK: ok1 - ok0, Refused: ref1 - ref0})
		mu.Unlock()
		return err
	})
	var all [][]StepCost
	for i := 0; i < rotations; i++ {
		if cold {
			h, err := rotation.NewHandler(newCredential(), rotation.Options{Client: e.Client, Passwords: s.Passwords, Logger: slog.New(slog.NewJSONHandler(e.logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			e.useHandler(h)
		}
		mu.Lock()
		cost = nil
		mu.Unlock()
		if _, err := e.Rotate(t, arn); err != nil {
			t.Fatalf("rotation %d: %v", i+1, err)
		}
		mu.Lock()
		got := append([]StepCost(nil), cost...)
		mu.Unlock()
		if len(got) != len(steps) {
			t.Fatalf("rotation %d ran %d steps, want the 4 steps once each (a retry?): %v", i+1, len(got), got)
		}
		all = append(all, got)
	}
	return all
}

// Check fails t for every step or rotation of costs over budget b, naming
// the rotation and the step.
func (b Budget) Check(t *testing.T, what string, costs [][]StepCost) {
	t.Helper()
	for i, rot := range costs {
		var calls, ok, refused int
		var lines []string
		for _, c := range rot {
			lines = append(lines, c.String())
			calls, ok, refused = calls+c.SMCalls(), ok+c.OK, refused+c.Refused
			if c.SMCalls() > b.Calls[c.Step] {
				t.Errorf("%s, rotation %d: %s made %d Secrets Manager calls %v, over its budget of %d", what, i+1, c.Step, c.SMCalls(), c.Calls, b.Calls[c.Step])
			}
			if c.OK > b.Logins[c.Step] {
				t.Errorf("%s, rotation %d: %s made %d successful logins, over its budget of %d", what, i+1, c.Step, c.OK, b.Logins[c.Step])
			}
			if c.Refused > b.Refused[c.Step] {
				t.Errorf("%s, rotation %d: %s made %d refused logins, over its budget of %d", what, i+1, c.Step, c.Refused, b.Refused[c.Step])
			}
		}
		if ok < b.MinLogins {
			t.Errorf("%s, rotation %d: the counter saw %d successful logins, fewer than the %d a rotation makes; it does not see them", what, i+1, ok, b.MinLogins)
		}
		if refused < b.MinRefused {
			t.Errorf("%s, rotation %d: %d refused logins, fewer than the %d that prove the server checks passwords; a proof was skipped (or the counter does not see refusals)", what, i+1, refused, b.MinRefused)
		}
		if calls > b.TotalCalls || ok > b.TotalLogins || refused > b.TotalRefused {
			t.Errorf("%s, rotation %d: %d Secrets Manager calls, %d logins, %d refused; budget %d, %d, %d", what, i+1, calls, ok, refused, b.TotalCalls, b.TotalLogins, b.TotalRefused)
		}
		t.Logf("%s, rotation %d: %d Secrets Manager calls, %d logins, %d refused\n\t%s", what, i+1, calls, ok, refused, strings.Join(lines, "\n\t"))
	}
}
