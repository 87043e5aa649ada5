package recovery_test

import (
	"testing"

	"github.com/rotary-secrets/rotary/pkg/recovery"
)

// TestDecide pins the one recovery decision: for each combination of
// outcomes, the state and the plan, and that a plan never takes a label off
// the version whose credential logs in.
func TestDecide(t *testing.T) {
	const cur, pend, prev, dep = "cur", "pend", "prev", "dep"
	v := func(id, outcome string, labels ...string) recovery.VersionProbe {
		if labels == nil {
			labels = []string{}
		}
		return recovery.VersionProbe{VersionID: id, Labels: labels, Outcome: outcome}
	}
	const (
		ok       = recovery.OutcomeLogsIn
		refused  = recovery.OutcomeRefused
		down     = recovery.OutcomeUnreachable
		disabled = recovery.OutcomeLoginDisabled
	)
	cases := []struct {
		name        string
		pending     bool
		single      bool
		versions    []recovery.VersionProbe
		state, plan string
		planVersion string
		stillValid  int
	}{
		{"healthy", false, true, []recovery.VersionProbe{v(cur, ok, "AWSCURRENT"), v(prev, refused, "AWSPREVIOUS")}, recovery.StateHealthy, recovery.PlanNone, "", 0},
		{"healthy but previous valid", false, true, []recovery.VersionProbe{v(cur, ok, "AWSCURRENT"), v(prev, ok, "AWSPREVIOUS")}, recovery.StateHealthy, recovery.PlanNone, "", 1},
		{"stuck", true, true, []recovery.VersionProbe{v(cur, ok, "AWSCURRENT"), v(pend, refused, "AWSPENDING")}, recovery.StateStuck, recovery.PlanClearPending, pend, 0},
		{"stuck, pending empty", true, true, []recovery.VersionProbe{v(cur, ok, "AWSCURRENT"), v(pend, recovery.OutcomeEmpty, "AWSPENDING")}, recovery.StateStuck, recovery.PlanClearPending, pend, 0},
		{"stuck, both work (alternating users)", true, false, []recovery.VersionProbe{v(cur, ok, "AWSCURRENT"), v(pend, ok, "AWSPENDING")}, recovery.StateStuck, recovery.PlanClearPending, pend, 0},
		{"single user, both work (a rotation setting the password now)", true, true, []recovery.VersionProbe{v(cur, ok, "AWSCURRENT"), v(pend, ok, "AWSPENDING")}, recovery.StateUnknown, recovery.PlanNone, "", 0},
		{"login disabled", true, true, []recovery.VersionProbe{v(cur, disabled, "AWSCURRENT"), v(pend, disabled, "AWSPENDING"), v(prev, disabled, "AWSPREVIOUS")}, recovery.StateLoginDisabled, recovery.PlanNone, "", 0},
		{"current user disabled, pending user works (alternating users)", true, false, []recovery.VersionProbe{v(cur, disabled, "AWSCURRENT"), v(pend, ok, "AWSPENDING")}, recovery.StateLockedOut, recovery.PlanComplete, pend, 0},
		{"locked out, pending works", true, true, []recovery.VersionProbe{v(cur, refused, "AWSCURRENT"), v(pend, ok, "AWSPENDING"), v(prev, refused, "AWSPREVIOUS")}, recovery.StateLockedOut, recovery.PlanComplete, pend, 0},
		{"locked out, previous works", true, true, []recovery.VersionProbe{v(cur, refused, "AWSCURRENT"), v(pend, refused, "AWSPENDING"), v(prev, ok, "AWSPREVIOUS")}, recovery.StateLockedOut, recovery.PlanRestore, prev, 1},
		{"locked out, deprecated works", false, true, []recovery.VersionProbe{v(cur, refused, "AWSCURRENT"), v(prev, refused, "AWSPREVIOUS"), v(dep, ok)}, recovery.StateLockedOut, recovery.PlanRestore, dep, 1},
		{"drifted", true, true, []recovery.VersionProbe{v(cur, refused, "AWSCURRENT"), v(pend, refused, "AWSPENDING"), v(prev, refused, "AWSPREVIOUS")}, recovery.StateDrifted, recovery.PlanNone, "", 0},
		{"refused, others unreachable", true, true, []recovery.VersionProbe{v(cur, refused, "AWSCURRENT"), v(pend, down, "AWSPENDING")}, recovery.StateUnknown, recovery.PlanNone, "", 0},
		{"unreachable", true, true, []recovery.VersionProbe{v(cur, down, "AWSCURRENT"), v(pend, down, "AWSPENDING")}, recovery.StateUnknown, recovery.PlanNone, "", 0},
		{"unproven", false, true, []recovery.VersionProbe{v(cur, recovery.OutcomeUnproven, "AWSCURRENT")}, recovery.StateUnknown, recovery.PlanNone, "", 0},
		{"current invalid", true, true, []recovery.VersionProbe{v(cur, recovery.OutcomeInvalid, "AWSCURRENT"), v(pend, ok, "AWSPENDING")}, recovery.StateUnknown, recovery.PlanNone, "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &recovery.Report{CurrentVersion: cur, SingleCredential: c.single, Versions: c.versions}
			if c.pending {
				r.PendingVersion = pend
			}
			recovery.Decide(r)
			if r.State != c.state || r.Plan != c.plan || r.PlanVersion != c.planVersion || len(r.StillValid) != c.stillValid {
				t.Fatalf("got state %s plan %s on %q, %d still valid; want %s %s on %q, %d", r.State, r.Plan, r.PlanVersion, len(r.StillValid), c.state, c.plan, c.planVersion, c.stillValid)
			}
			if r.Summary == "" {
				t.Fatal("no summary")
			}
			// Clearing AWSPENDING is planned only when AWSCURRENT logs in.
			if r.Plan == recovery.PlanClearPending {
				if got, _ := r.Version(cur); got.Outcome != ok {
					t.Fatal("plans to clear AWSPENDING although AWSCURRENT does not log in")
				}
			}
		})
	}
}
