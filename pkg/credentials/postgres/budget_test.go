package postgres

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
)

// budgetUsers are the users of one budget test, whose logins its counter
// counts in the shared cluster's log.
type budgetUsers struct {
	mu    sync.Mutex
	names map[string]bool
}

func (u *budgetUsers) add(names ...string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.names == nil {
		u.names = map[string]bool{}
	}
	for _, n := range names {
		u.names[n] = true
	}
}

var (
	loginLine   = regexp.MustCompile(`connection authorized: user=(\S+)`)
	refusedLine = regexp.MustCompile(`FATAL: .*(?:authentication failed|rejects connection|not permitted to log in|does not exist).* user "([^"]+)"`)
)

// logins counts, in the server's connection log (log_connections), the
// successful and refused logins of the test's users.
func (u *budgetUsers) logins(f *fixture) rotationtest.Logins {
	return func(t *testing.T) (ok, refused int) {
		t.Helper()
		log, err := f.c.ServerLog()
		if err != nil {
			t.Fatal(err)
		}
		u.mu.Lock()
		defer u.mu.Unlock()
		for _, line := range strings.Split(log, "\n") {
			if m := loginLine.FindStringSubmatch(line); m != nil && u.names[m[1]] {
				ok++
			} else if m := refusedLine.FindStringSubmatch(line); m != nil && u.names[m[1]] {
				refused++
			}
		}
		return ok, refused
	}
}

// Budgets of a rotation on the common path (docs/protocol.md#budgets).
var (
	singleBudget = rotationtest.Budget{
		Calls:      map[string]int{rotation.StepCreate: 3, rotation.StepSet: 3, rotation.StepTest: 2, rotation.StepFinish: 2},
		Logins:     map[string]int{rotation.StepSet: 1, rotation.StepTest: 1},
		Refused:    map[string]int{rotation.StepSet: 1},
		TotalCalls: 10, TotalLogins: 2, TotalRefused: 1, MinLogins: 2,
	}
	// A new instance proves that AWSCURRENT logs in before the master acts.
	multiColdBudget = rotationtest.Budget{
		Calls:      map[string]int{rotation.StepCreate: 3, rotation.StepSet: 4, rotation.StepTest: 2, rotation.StepFinish: 2},
		Logins:     map[string]int{rotation.StepSet: 2, rotation.StepTest: 1},
		Refused:    map[string]int{rotation.StepSet: 1},
		TotalCalls: 11, TotalLogins: 3, TotalRefused: 1, MinLogins: 2,
	}
	// A warm instance whose testSecret proved AWSCURRENT in the previous rotation.
	multiWarmBudget = rotationtest.Budget{
		Calls:      map[string]int{rotation.StepCreate: 3, rotation.StepSet: 4, rotation.StepTest: 2, rotation.StepFinish: 2},
		Logins:     map[string]int{rotation.StepSet: 1, rotation.StepTest: 1},
		Refused:    map[string]int{rotation.StepSet: 1},
		TotalCalls: 11, TotalLogins: 2, TotalRefused: 1, MinLogins: 2,
	}
)

// TestRotationBudget counts, on the password-checking cluster, the logins
// of each step of real rotations (and the Secrets Manager calls on the
// local Secrets Manager), on one warm instance and on a new instance for
// every rotation, and fails when a step goes over its budget.
func TestRotationBudget(t *testing.T) {
	f := setup(t)
	for _, cold := range []bool{false, true} {
		mode := map[bool]string{false: "warm", true: "cold"}[cold]
		t.Run("single/"+mode, func(t *testing.T) {
			t.Parallel()
			users := &budgetUsers{}
			s := rotationtest.Subject{
				Credential: NewSingleUser(f.cfg),
				NewSecret: func(t *testing.T, _ *secretsmanager.Client) string {
					user, pw := uniqueName("rotary_budget"), newPassword(t)
					users.add(user)
					f.createRole(t, user, pw, "")
					return f.secret(t, user, pw, nil)
				},
			}
			costs := rotationtest.Costs(t, s, 3, users.logins(f), cold, func() rotation.Credential { return NewSingleUser(f.cfg) })
			singleBudget.Check(t, "postgres-single-user "+mode, costs)
		})
		t.Run("multi/"+mode, func(t *testing.T) {
			t.Parallel()
			users := &budgetUsers{}
			s := rotationtest.Subject{
				Credential: NewMultiUser(f.cfg),
				NewSecret: func(t *testing.T, sm *secretsmanager.Client) string {
					user, pw := uniqueName("rotary_budget"), newPassword(t)
					f.createRole(t, user, pw, "")
					mu, mpw := f.masterUser(t, user)
					users.add(user, user+"_clone", mu)
					out, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
						Name: aws.String("master/" + user), SecretString: aws.String(f.secret(t, mu, mpw, nil)),
					})
					if err != nil {
						t.Fatal(err)
					}
					return f.secret(t, user, pw, map[string]any{"masterarn": aws.ToString(out.ARN)})
				},
			}
			costs := rotationtest.Costs(t, s, 3, users.logins(f), cold, func() rotation.Credential { return NewMultiUser(f.cfg) })
			multiColdBudget.Check(t, "postgres-multi-user "+mode+" (first rotation of an instance)", costs[:1])
			if cold {
				multiColdBudget.Check(t, "postgres-multi-user "+mode, costs[1:])
			} else {
				multiWarmBudget.Check(t, "postgres-multi-user "+mode, costs[1:])
			}
		})
	}
}
