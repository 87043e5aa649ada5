package postgres

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

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
		TotalCalls: 10, TotalLogins: 2, TotalRefused: 1, MinLogins: 2, MinRefused: 1,
	}
	// setSecret proves that AWSCURRENT logs in before the master acts.
	// testSecret proves, after the master's grants, that the server refuses
	// a wrong password for the clone (pg_hba.conf can match on membership).
	multiBudget = rotationtest.Budget{
		Calls:      map[string]int{rotation.StepCreate: 3, rotation.StepSet: 3, rotation.StepTest: 2, rotation.StepFinish: 2},
		Logins:     map[string]int{rotation.StepSet: 2, rotation.StepTest: 1},
		Refused:    map[string]int{rotation.StepSet: 1, rotation.StepTest: 1},
		TotalCalls: 10, TotalLogins: 3, TotalRefused: 2, MinLogins: 3, MinRefused: 2,
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
			multiBudget.Check(t, "postgres-multi-user "+mode, costs)
		})
	}
}

// benchLogins counts the logins of the benchmarks and times them.
var benchLogins struct {
	once sync.Once
	mu   sync.Mutex
	n    int
	took time.Duration
}

func loginClock() rotationtest.LoginClock {
	benchLogins.once.Do(func() {
		loginObserver = func(d time.Duration) {
			benchLogins.mu.Lock()
			benchLogins.n++
			benchLogins.took += d
			benchLogins.mu.Unlock()
		}
	})
	return func() (int, time.Duration) {
		benchLogins.mu.Lock()
		defer benchLogins.mu.Unlock()
		return benchLogins.n, benchLogins.took
	}
}

// BenchmarkRotationSteps times each step of rotations against the
// throwaway PostgreSQL cluster (verified TLS, scram-sha-256), on a warm
// instance and on a new one per rotation, with each step's share and the
// logins' share (rotationtest.BenchSteps).
func BenchmarkRotationSteps(b *testing.B) {
	c := clusters.Default(b)
	f := newFixture(c)
	ctx := context.Background()
	role := func(b testing.TB, attrs string) (string, string) {
		user, pw := uniqueName("rotary_bench"), "Bench-passw0rd-0000000000000000"
		if err := c.CreateRole(ctx, user, pw, attrs); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.DropRoles(context.Background(), user, user+"_clone") })
		return user, pw
	}
	value := func(user, pw string, extra map[string]any) string {
		m := map[string]any{"engine": "postgres", "host": c.Host, "port": c.Port, "username": user, "password": pw, "dbname": "postgres"}
		for k, v := range extra {
			m[k] = v
		}
		bs, _ := json.Marshal(m)
		return string(bs)
	}
	for _, cold := range []bool{false, true} {
		mode := map[bool]string{false: "warm", true: "cold"}[cold]
		b.Run("postgres-single-user/"+mode, func(b *testing.B) {
			rotationtest.BenchSteps(b, func() rotation.Credential { return NewSingleUser(f.cfg) }, cold, func(b testing.TB, _ *secretsmanager.Client) string {
				user, pw := role(b, "")
				return value(user, pw, nil)
			}, loginClock())
		})
		b.Run("postgres-multi-user/"+mode, func(b *testing.B) {
			rotationtest.BenchSteps(b, func() rotation.Credential { return NewMultiUser(f.cfg) }, cold, func(b testing.TB, sm *secretsmanager.Client) string {
				user, pw := role(b, "")
				mUser, mPW := role(b, "CREATEROLE")
				conn, err := c.ConnectAdmin(ctx, "")
				if err != nil {
					b.Fatal(err)
				}
				for _, q := range masterGrants(c.Major, QuoteIdentifier(mUser), QuoteIdentifier(user)) {
					if _, err := conn.Exec(ctx, q); err != nil {
						b.Fatal(err)
					}
				}
				_ = conn.Close(ctx)
				out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("master/" + user), SecretString: aws.String(value(mUser, mPW, nil))})
				if err != nil {
					b.Fatal(err)
				}
				return value(user, pw, map[string]any{"masterarn": aws.ToString(out.ARN)})
			}, loginClock())
		})
	}
}

// TestProofDoesNotOutliveTrust: a warm instance that proved the server
// checks a user's password (and so skips testSecret's random-password
// login) still catches a server that stops checking it: the next
// rotation's pending password logs in before it was set, and setSecret
// proves with a random password whatever the instance remembers.
func TestProofDoesNotOutliveTrust(t *testing.T) {
	f := setup(t)
	for _, multi := range []bool{false, true} {
		t.Run(map[bool]string{false: "single", true: "multi"}[multi], func(t *testing.T) {
			user, pw := uniqueName("rotary_prooftrust"), newPassword(t)
			f.createRole(t, user, pw, "")
			extra := map[string]any(nil)
			e := newEnv(t, f, NewSingleUser(f.cfg))
			if multi {
				e = newEnv(t, f, NewMultiUser(f.cfg))
				mu, mpw := f.masterUser(t, user)
				out, err := e.Client.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
					Name: aws.String(uniqueName("master")), SecretString: aws.String(f.secret(t, mu, mpw, nil)),
				})
				if err != nil {
					t.Fatal(err)
				}
				extra = map[string]any{"masterarn": aws.ToString(out.ARN)}
			}
			arn := createSecret(t, e, f.secret(t, user, pw, extra))
			for i := 0; i < 2; i++ { // for multi: to the clone and back to the base user
				mustRotate(t, e, arn)
			}
			f.trustUsers(t, uniqueName("rotary_trust_probe"), user, user+"_clone")
			before := current(t, e, arn)
			_, err := e.Rotate(t, arn)
			if err == nil || !strings.Contains(err.Error(), "logs in with a random password") {
				t.Fatalf("rotation after the server stopped checking passwords: err = %v, want a refusal saying the server accepts a random password", err)
			}
			if current(t, e, arn) != before {
				t.Fatal("AWSCURRENT moved although the rotation could not be proven")
			}
		})
	}
}
