package mysql

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/internal/mysqlserver"
	"github.com/rotary-secrets/rotary/internal/mysqlserver/mysqltest"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
)

var (
	// "<id> Connect\t<user>@<host> on <db> using TCP/IP", followed for a
	// refused login by "<id> Connect\tAccess denied for user '<user>'@...".
	connectLine = regexp.MustCompile(`\s(\d+) Connect\t(?:Access denied for user '([^']*)'|(\S+)@\S+ on )`)
)

// generalLogLogins counts, in the server's general log, the successful and
// refused logins of the users in names.
func generalLogLogins(s *mysqlserver.Server, mu *sync.Mutex, names map[string]bool) rotationtest.Logins {
	return func(t *testing.T) (ok, refused int) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(s.Dir, "data", "budget-general.log"))
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		users, denied := map[string]string{}, map[string]bool{}
		for _, line := range strings.Split(string(b), "\n") {
			switch m := connectLine.FindStringSubmatch(line); {
			case m == nil:
			case m[2] != "":
				denied[m[1]] = true
			default:
				users[m[1]] = m[3]
			}
		}
		for id, user := range users {
			switch {
			case !names[user]:
			case denied[id]:
				refused++
			default:
				ok++
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
	multiBudget = rotationtest.Budget{
		Calls:      map[string]int{rotation.StepCreate: 3, rotation.StepSet: 3, rotation.StepTest: 2, rotation.StepFinish: 2},
		Logins:     map[string]int{rotation.StepSet: 2, rotation.StepTest: 1},
		Refused:    map[string]int{rotation.StepSet: 1},
		TotalCalls: 10, TotalLogins: 3, TotalRefused: 1, MinLogins: 3, MinRefused: 1,
	}
)

// TestRotationBudget counts, in the general log of a MariaDB server that
// checks passwords, the logins of each step of real rotations (and the
// Secrets Manager calls on the local Secrets Manager), on one warm instance
// and on a new instance for every rotation, and fails when a step goes over
// its budget.
func TestRotationBudget(t *testing.T) {
	s := mysqltest.Start(t, mysqlserver.Options{Args: []string{"--general-log", "--general-log-file=budget-general.log", "--log-output=FILE"}})
	ts := &testServer{host: s.Host, port: s.Port, root: s.Root, extra: map[string]any{"ssl": false},
		adminUser: s.AdminUser, adminPassword: s.AdminPassword}
	var mu sync.Mutex
	names := map[string]bool{}
	add := func(n ...string) {
		mu.Lock()
		defer mu.Unlock()
		for _, x := range n {
			names[x] = true
		}
	}
	logins := generalLogLogins(s, &mu, names)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(s.Dir, "data", "budget-general.log"))
			// Only the connect lines: the general log records statements,
			// among them CREATE USER ... IDENTIFIED BY with a password.
			var lines []string
			for _, l := range strings.Split(string(b), "\n") {
				if connectLine.MatchString(l) {
					lines = append(lines, l)
				}
			}
			t.Logf("general log, connect lines: %.3000s", strings.Join(lines, "\n"))
		}
	})
	for _, cold := range []bool{false, true} {
		mode := map[bool]string{false: "warm", true: "cold"}[cold]
		t.Run("single/"+mode, func(t *testing.T) {
			subject := rotationtest.Subject{
				Credential: NewSingleUser(Config{}),
				NewSecret: func(t *testing.T, _ *secretsmanager.Client) string {
					user, pw := uniqueName("rt_budget_"), randomPassword(t)
					add(user)
					ts.createUser(t, user, "%", pw)
					return ts.secret(user, pw, nil)
				},
			}
			costs := rotationtest.Costs(t, subject, 3, logins, cold, func() rotation.Credential { return NewSingleUser(Config{}) })
			singleBudget.Check(t, "mysql-single-user "+mode, costs)
		})
		t.Run("multi/"+mode, func(t *testing.T) {
			subject := rotationtest.Subject{
				Credential: NewMultiUser(Config{}),
				NewSecret: func(t *testing.T, sm *secretsmanager.Client) string {
					user, pw, db := uniqueName("rt_budget_"), randomPassword(t), uniqueName("rt_db_")
					ts.createDatabase(t, db)
					ts.createUser(t, user, "%", pw, "GRANT SELECT ON "+quoteIdent(db)+".*")
					ts.dropLater(t, user+dbsecret.CloneSuffix, "%")
					mUser, mPW := leastPrivilegeMaster(t, ts, db)
					add(user, user+dbsecret.CloneSuffix, mUser)
					out, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
						Name: aws.String("master/" + user), SecretString: aws.String(ts.secret(mUser, mPW, nil)),
					})
					if err != nil {
						t.Fatal(err)
					}
					return ts.secret(user, pw, map[string]any{"masterarn": aws.ToString(out.ARN), "dbname": db})
				},
			}
			costs := rotationtest.Costs(t, subject, 3, logins, cold, func() rotation.Credential { return NewMultiUser(Config{}) })
			multiBudget.Check(t, "mysql-multi-user "+mode, costs)
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

// BenchmarkRotationSteps times each step of rotations against a throwaway
// MariaDB server that checks passwords, on a warm instance and on a new one
// per rotation, with each step's share and the logins' share
// (rotationtest.BenchSteps).
func BenchmarkRotationSteps(b *testing.B) {
	s := mysqltest.Start(b, mysqlserver.Options{})
	ctx := context.Background()
	const pw = "Bench-passw0rd-0000000000000000"
	value := func(user, pw string, extra map[string]any) string {
		m := map[string]any{"engine": "mariadb", "host": s.Host, "port": s.Port, "username": user, "password": pw, "ssl": false}
		for k, v := range extra {
			m[k] = v
		}
		bs, _ := json.Marshal(m)
		return string(bs)
	}
	for _, cold := range []bool{false, true} {
		mode := map[bool]string{false: "warm", true: "cold"}[cold]
		b.Run("mysql-single-user/"+mode, func(b *testing.B) {
			rotationtest.BenchSteps(b, func() rotation.Credential { return NewSingleUser(Config{}) }, cold, func(b testing.TB, _ *secretsmanager.Client) string {
				user := uniqueName("rt_bench_")
				mysqltest.CreateUser(b, s, user, "%", pw)
				return value(user, pw, nil)
			}, loginClock())
		})
		b.Run("mysql-multi-user/"+mode, func(b *testing.B) {
			rotationtest.BenchSteps(b, func() rotation.Credential { return NewMultiUser(Config{}) }, cold, func(b testing.TB, sm *secretsmanager.Client) string {
				user := uniqueName("rt_bench_")
				mysqltest.CreateUser(b, s, user, "%", pw)
				out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("master/" + user), SecretString: aws.String(value(s.AdminUser, s.AdminPassword, nil))})
				if err != nil {
					b.Fatal(err)
				}
				return value(user, pw, map[string]any{"masterarn": aws.ToString(out.ARN)})
			}, loginClock())
		})
	}
}
