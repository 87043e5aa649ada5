package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/jackc/pgx/v5"

	"github.com/rotary-secrets/rotary/pkg/credentials/postgres/scram"
	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/registry"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
	"github.com/rotary-secrets/rotary/pkg/watch"
)

// The watch's tests run on a stack of their own (random-secret,
// postgres-single-user and the watch, the real binaries), because they move
// its clock; it shares the PostgreSQL fixture with the other tests.
var watchEnv struct {
	once  sync.Once
	stack *localstack.Stack
	err   error
	logs  syncBuffer
	mu    sync.Mutex
	skew  time.Duration // added to the wall clock
}

func watchClock() time.Time {
	watchEnv.mu.Lock()
	defer watchEnv.mu.Unlock()
	return time.Now().Add(watchEnv.skew)
}

func moveWatchClock(d time.Duration) {
	watchEnv.mu.Lock()
	watchEnv.skew += d
	watchEnv.mu.Unlock()
}

func watchStack(t *testing.T) *localstack.Stack {
	t.Helper()
	c := pg.Get(t) // fails under CI=true when PostgreSQL did not start
	watchEnv.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		dir, err := os.MkdirTemp("", "rotary-watch-")
		if err != nil {
			watchEnv.err = err
			return
		}
		watchEnv.stack, watchEnv.err = localstack.Start(ctx, localstack.Config{
			Functions: []string{fnRandom, fnPostgresSingle, registry.Watch.Name},
			BinDir:    dir,
			Retry:     smlocal.RetryPolicy{Attempts: 1},
			Log:       &watchEnv.logs,
			Clock:     watchClock,
			FunctionEnv: map[string][]string{
				fnRandom:            {"ROTATE_FIELDS=apiKey:40:alnum,password"},
				fnPostgresSingle:    caBundleEnv(c.CAFile),
				registry.Watch.Name: {watch.EnvRepairAfter + "=5m", watch.EnvConcurrency + "=8"},
			},
		})
	})
	if watchEnv.err != nil {
		t.Fatalf("start the watch's local stack: %v", watchEnv.err)
	}
	return watchEnv.stack
}

// watchSecret is one secret of these tests.
type watchSecret struct {
	arn, name, fn string
}

// newWatchSecret creates a secret and turns rotation on with a rotation
// (so AWSPREVIOUS exists); days is its schedule.
func newWatchSecret(t *testing.T, s *localstack.Stack, fn, value string, days int64) watchSecret {
	t.Helper()
	ctx := within(t, 2*time.Minute)
	name := fmt.Sprintf("watch/%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), names.Add(1))
	out, err := s.Client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: &name, SecretString: &value})
	if err != nil {
		t.Fatalf("create secret: %v", err)
	}
	ws := watchSecret{arn: aws.ToString(out.ARN), name: name, fn: localstack.FunctionARN(fn)}
	if _, err := s.Client.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: out.ARN, RotationLambdaARN: &ws.fn,
		RotationRules: &smtypes.RotationRulesType{AutomaticallyAfterDays: aws.Int64(days), Duration: aws.String("2h")}}); err != nil {
		t.Fatalf("RotateSecret: %v", err)
	}
	if r, err := s.SM.WaitRotation(ctx, ws.arn); err != nil || r.State != smlocal.RotationSucceeded {
		t.Fatalf("first rotation of %s: %v %s %s", name, err, r.State, r.Err)
	}
	return ws
}

func (w watchSecret) target(repair *bool) watch.Target {
	return watch.Target{ARN: w.arn, Function: w.fn, Repair: repair}
}

// runWatch invokes the watch function with the stack's time (plus ahead).
func runWatch(t *testing.T, s *localstack.Stack, ahead time.Duration, targets ...watch.Target) *watch.Result {
	t.Helper()
	ev := watch.Event{Time: s.SM.Now().Add(ahead).Format(time.RFC3339Nano), Secrets: targets}
	summary := `"msg":"` + watch.MsgSummary + `"`
	before := strings.Count(watchEnv.logs.String(), summary)
	res, err := s.RunWatch(within(t, 3*time.Minute), ev)
	if err != nil {
		t.Fatalf("run the watch: %v", err)
	}
	// The function's output reaches the log after its answer: wait for the
	// run's summary, its last line.
	for deadline := time.Now().Add(10 * time.Second); strings.Count(watchEnv.logs.String(), summary) == before; {
		if time.Now().After(deadline) {
			t.Fatal("the watch's summary line never reached the log")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(res.Secrets) != len(targets) {
		t.Fatalf("the watch answered for %d secrets, want %d", len(res.Secrets), len(targets))
	}
	return res
}

// watchLines are the watch's check lines for a secret, in order.
func watchLines(t *testing.T, arn string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(watchEnv.logs.String(), "\n") {
		if !strings.Contains(l, `"msg":"`+watch.MsgCheck+`"`) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("a watch line is not JSON: %v", err)
		}
		if m["secretArn"] == arn {
			out = append(out, m)
		}
	}
	return out
}

// lastMetric is a metric of the secret's newest check line; ok is false
// when the line omits it.
func lastMetric(t *testing.T, arn, name string) (float64, bool) {
	t.Helper()
	ls := watchLines(t, arn)
	if len(ls) == 0 {
		t.Fatalf("no watch line for %s", arn)
	}
	v, ok := ls[len(ls)-1][name].(float64)
	return v, ok
}

func mustMetric(t *testing.T, arn, name string, want float64) {
	t.Helper()
	if v, ok := lastMetric(t, arn, name); !ok || v != want {
		t.Errorf("%s: metric %s = %v (present %v), want %v", arn, name, v, ok, want)
	}
}

func notificationsFor(s *localstack.Stack, ws watchSecret) []string {
	var out []string
	for _, m := range s.SNS.Messages() {
		if m.TopicARN == localstack.WatchTopicARN() && strings.Contains(m.Message, ws.arn) {
			out = append(out, m.Subject)
		}
	}
	return out
}

// pgValue is a postgres-single-user secret for user and password.
func pgValue(t *testing.T, user, password string) string {
	t.Helper()
	c := pg.Get(t)
	b, err := json.Marshal(map[string]any{"engine": "postgres", "host": c.Host, "port": c.Port, "username": user, "password": password, "dbname": "postgres"})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// setPassword changes a role's password behind the secret's back, as a
// SCRAM verifier.
func setPassword(t *testing.T, user, password string) {
	t.Helper()
	v, err := scram.Verifier(password)
	if err != nil {
		t.Fatal(err)
	}
	postgresDB{pg.Get(t)}.exec(t, "ALTER ROLE "+pgx.Identifier{user}.Sanitize()+" PASSWORD '"+v+"'")
}

func TestWatch(t *testing.T) {
	s := watchStack(t)
	db := postgresDB{pg.Get(t)}
	var all []watchSecret
	on, off := true, false

	t.Run("HealthyFleet", func(t *testing.T) {
		var fleet []watchSecret
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var ws watchSecret
				if i%4 == 0 {
					user := uniqueName("watch_fleet")
					db.createUser(t, user, "fleet-Passw0rd-"+strconv.Itoa(i))
					ws = newWatchSecret(t, s, fnPostgresSingle, pgValue(t, user, "fleet-Passw0rd-"+strconv.Itoa(i)), 1000)
				} else {
					ws = newWatchSecret(t, s, fnRandom, fmt.Sprintf(`{"apiKey":"initial-key-%d-abcdef","password":"initial-pw-%d-ghijkl","team":"kept-field"}`, i, i), 1000)
				}
				mu.Lock()
				fleet = append(fleet, ws)
				mu.Unlock()
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		all = append(all, fleet...)
		var targets []watch.Target
		for _, ws := range fleet {
			targets = append(targets, ws.target(nil))
		}
		t0 := time.Now()
		res := runWatch(t, s, 0, targets...)
		t.Logf("the watch checked %d secrets (8 postgres-single-user, 24 random-secret) in %s", len(targets), time.Since(t0).Round(time.Millisecond))
		if res.Checked != len(fleet) || res.Unhealthy != 0 {
			t.Errorf("checked %d, unhealthy %d; want %d and 0", res.Checked, res.Unhealthy, len(fleet))
		}
		for i, c := range res.Secrets {
			if c.State != watch.StateOK {
				t.Errorf("%s: %s: %v", c.SecretName, c.State, c.Problems)
			}
			for _, m := range []string{watch.MetricOverdue, watch.MetricStuck, watch.MetricRepaired} {
				mustMetric(t, c.SecretARN, m, 0)
			}
			mustMetric(t, c.SecretARN, watch.MetricCurrentLogsIn, 1)
			if fleet[i].fn == localstack.FunctionARN(fnPostgresSingle) {
				mustMetric(t, c.SecretARN, watch.MetricPreviousRefused, 1)
			} else if _, ok := lastMetric(t, c.SecretARN, watch.MetricPreviousRefused); ok {
				t.Errorf("%s: PreviousRefused on a random secret", c.SecretName)
			}
		}
	})

	t.Run("Drifted", func(t *testing.T) {
		user := uniqueName("watch_drift")
		db.createUser(t, user, "drift-Passw0rd-1")
		ws := newWatchSecret(t, s, fnPostgresSingle, pgValue(t, user, "drift-Passw0rd-1"), 1000)
		all = append(all, ws)
		_, curValue := watchLabel(t, s, ws.arn, "AWSCURRENT")
		mustLogIn(t, db, curValue, "AWSCURRENT before the drift")
		setPassword(t, user, "changed-by-hand-Passw0rd")
		// The fixture must refuse the old password, or "drifted" proves nothing.
		mustBeRefused(t, db, curValue, "AWSCURRENT after the password was changed by hand")
		res := runWatch(t, s, 0, ws.target(&on))
		if c := res.Secrets[0]; c.State != watch.StateDrifted || c.Repaired || !strings.Contains(c.Advice, "put-secret-value") {
			t.Fatalf("state %s, repaired %v, advice %q; want drifted, not repaired", c.State, c.Repaired, c.Advice)
		}
		mustMetric(t, ws.arn, watch.MetricCurrentLogsIn, 0)
		mustMetric(t, ws.arn, watch.MetricStuck, 0)
		if n := notificationsFor(s, ws); len(n) != 0 {
			t.Errorf("notifications for a drifted secret with nothing to repair: %v", n)
		}
	})

	t.Run("LockedOut", func(t *testing.T) {
		user := uniqueName("watch_lock")
		db.createUser(t, user, "lock-Passw0rd-1")
		ws := newWatchSecret(t, s, fnPostgresSingle, pgValue(t, user, "lock-Passw0rd-1"), 1000)
		all = append(all, ws)
		curID, curValue := watchLabel(t, s, ws.arn, "AWSCURRENT")
		// A rotation that failed after setSecret: the server has the
		// pending password, AWSPENDING is left on its version.
		pendingPassword := "pending-Passw0rd-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		token := fmt.Sprintf("watch-lockout-%032d", names.Add(1))
		if _, err := s.Client.PutSecretValue(within(t, time.Minute), &secretsmanager.PutSecretValueInput{SecretId: &ws.arn, ClientRequestToken: &token,
			SecretString: aws.String(pgValue(t, user, pendingPassword)), VersionStages: []string{"AWSPENDING"}}); err != nil {
			t.Fatal(err)
		}
		setPassword(t, user, pendingPassword)
		mustBeRefused(t, db, curValue, "AWSCURRENT after setSecret")
		unchanged := func(what string) {
			t.Helper()
			if id, _ := watchLabel(t, s, ws.arn, "AWSCURRENT"); id != curID {
				t.Fatalf("%s: AWSCURRENT moved to %s", what, id)
			}
			if id, _ := watchLabel(t, s, ws.arn, "AWSPENDING"); id != token {
				t.Fatalf("%s: AWSPENDING moved to %s", what, id)
			}
			// Downstream too: the server still has the pending password.
			mustLogIn(t, db, pgValue(t, user, pendingPassword), what+": the pending password")
			mustBeRefused(t, db, curValue, what+": AWSCURRENT")
		}

		// Repair off (the event's repair overrides the function's default):
		// reported, one refusal notified, nothing changed.
		res := runWatch(t, s, 10*time.Minute, ws.target(&off))
		if c := res.Secrets[0]; c.State != watch.StateLockedOut || c.Repaired || c.Repair != watch.RepairDisabled {
			t.Fatalf("repair off: state %s, repair %q", c.State, c.Repair)
		}
		mustMetric(t, ws.arn, watch.MetricCurrentLogsIn, 0)
		mustMetric(t, ws.arn, watch.MetricStuck, 1)
		unchanged("repair off")
		if n := notificationsFor(s, ws); len(n) != 1 || !strings.Contains(n[0], "did not repair") {
			t.Fatalf("repair off: notifications %q, want one refusal", n)
		}
		// A run an interval (15m) later refuses again, but notifies once
		// only: the Stuck alarm follows the state from then on.
		if c := runWatch(t, s, 25*time.Minute, ws.target(&off)).Secrets[0]; c.Repair != watch.RepairDisabled {
			t.Fatalf("repair off, later: repair %q", c.Repair)
		}
		if n := notificationsFor(s, ws); len(n) != 1 {
			t.Fatalf("repair off, later: notifications %q, want still the one refusal", n)
		}

		// Repair on, but AWSPENDING is younger than ROTARY_WATCH_REPAIR_AFTER.
		res = runWatch(t, s, time.Minute, ws.target(&on))
		if c := res.Secrets[0]; c.Repaired || c.Repair != watch.RepairTooYoung {
			t.Fatalf("too young: repaired %v, repair %q", c.Repaired, c.Repair)
		}
		unchanged("too young")
		if n := notificationsFor(s, ws); len(n) != 1 {
			t.Fatalf("too young: notifications %q, want none new (a rotation this young may be running)", n)
		}

		// Repair on, and old enough: the watch completes the rotation.
		res = runWatch(t, s, 10*time.Minute, ws.target(&on))
		c := res.Secrets[0]
		if !c.Repaired || c.State != watch.StateOK || c.StateBefore != watch.StateLockedOut {
			t.Fatalf("repair: repaired %v, state %s (before %s): %s %v", c.Repaired, c.State, c.StateBefore, c.RepairDetail, c.Problems)
		}
		id, value := watchLabel(t, s, ws.arn, "AWSCURRENT")
		if id != token {
			t.Fatalf("after the repair AWSCURRENT is on %s, want the pending version %s", id, token)
		}
		mustLogIn(t, db, value, "AWSCURRENT after the watch's repair")
		mustMetric(t, ws.arn, watch.MetricRepaired, 1)
		mustMetric(t, ws.arn, watch.MetricCurrentLogsIn, 1)
		mustMetric(t, ws.arn, watch.MetricStuck, 0)
		n := notificationsFor(s, ws)
		if len(n) != 2 || !strings.HasPrefix(n[1], "Rotary repaired") {
			t.Fatalf("notifications %q, want a second one saying it was repaired", n)
		}
	})

	// Last: it moves the stack's clock for good.
	t.Run("Overdue", func(t *testing.T) {
		due := newWatchSecret(t, s, fnRandom, `{"apiKey":"overdue-key-abcdef","password":"overdue-pw-ghijkl"}`, 1)
		later := newWatchSecret(t, s, fnRandom, `{"apiKey":"later-key-abcdef","password":"later-pw-ghijkl"}`, 30)
		all = append(all, due, later)
		d, err := s.Client.DescribeSecret(within(t, time.Minute), &secretsmanager.DescribeSecretInput{SecretId: &due.arn})
		if err != nil {
			t.Fatal(err)
		}
		// Just before NextRotationDate (the end of the window, as AWS
		// reports it) + the 1h grace: not yet.
		moveWatchClock(aws.ToTime(d.NextRotationDate).Sub(s.SM.Now()) + time.Hour - time.Minute)
		if c := runWatch(t, s, 0, due.target(nil)).Secrets[0]; c.Overdue || c.State != watch.StateOK {
			t.Fatalf("before the grace ended: overdue %v, state %s", c.Overdue, c.State)
		}
		moveWatchClock(2 * time.Minute)
		res := runWatch(t, s, 0, due.target(nil), later.target(nil))
		if c := res.Secrets[0]; !c.Overdue || c.State != watch.StateOverdue {
			t.Fatalf("after the grace: overdue %v, state %s", c.Overdue, c.State)
		}
		if c := res.Secrets[1]; c.Overdue || c.State != watch.StateOK {
			t.Fatalf("a secret due in 30 days: overdue %v, state %s %v", c.Overdue, c.State, c.Problems)
		}
		mustMetric(t, due.arn, watch.MetricOverdue, 1)
		mustMetric(t, later.arn, watch.MetricOverdue, 0)
		mustMetric(t, due.arn, watch.MetricCurrentLogsIn, 1)
	})

	t.Run("NoSecretValue", func(t *testing.T) {
		if len(all) < 30 {
			t.Fatalf("only %d secrets to search", len(all))
		}
		out := watchEnv.logs.String()
		var notes strings.Builder
		for _, m := range s.SNS.Messages() {
			notes.WriteString(m.Subject + "\n" + m.Message + "\n")
		}
		if !strings.Contains(out, `"msg":"`+watch.MsgCheck+`"`) || notes.Len() == 0 {
			t.Fatal("no watch line or no notification to search: the check would prove nothing")
		}
		searched := 0
		for _, ws := range all {
			for _, v := range everyValue(t, s, ws.arn) {
				for _, secret := range secretStrings(v) {
					for _, form := range forms(secret) {
						searched++
						if strings.Contains(out, form) {
							t.Errorf("a value of %s (%s) appears in the stack's logs", ws.name, rotationtest.Fingerprint(secret))
						}
						if strings.Contains(notes.String(), form) {
							t.Errorf("a value of %s (%s) appears in a notification", ws.name, rotationtest.Fingerprint(secret))
						}
					}
				}
			}
		}
		t.Logf("searched %d forms of the values of %d secrets in %d bytes of logs and %d of notifications", searched, len(all), len(out), notes.Len())
	})
}

// watchLabel reads a label's version of a secret on the watch's stack.
func watchLabel(t *testing.T, s *localstack.Stack, arn, stage string) (string, string) {
	t.Helper()
	out, err := s.Client.GetSecretValue(within(t, time.Minute), &secretsmanager.GetSecretValueInput{SecretId: &arn, VersionStage: &stage})
	if err != nil {
		t.Fatalf("read %s: %v", stage, err)
	}
	return aws.ToString(out.VersionId), aws.ToString(out.SecretString)
}

// everyValue reads every version's value of a secret, deprecated ones too.
func everyValue(t *testing.T, s *localstack.Stack, arn string) []string {
	t.Helper()
	ctx := within(t, time.Minute)
	l, err := s.Client.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: &arn, IncludeDeprecated: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range l.Versions {
		g, err := s.Client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &arn, VersionId: v.VersionId})
		if err != nil {
			continue // a rotation's placeholder has no value
		}
		out = append(out, aws.ToString(g.SecretString))
	}
	if len(out) < 2 {
		t.Fatalf("%s has %d versions with a value, want the initial one and a rotated one", arn, len(out))
	}
	return out
}

// secretStrings are the secret parts of a value: the whole value, and every
// string field but the public ones of the database secret.
func secretStrings(value string) []string {
	out := []string{value}
	var m map[string]any
	if json.Unmarshal([]byte(value), &m) != nil {
		return out
	}
	for k, v := range m {
		switch k {
		case "engine", "host", "username", "dbname", "team":
			continue
		}
		if s, ok := v.(string); ok && len(s) >= 4 {
			out = append(out, s)
		}
	}
	return out
}

// forms are the ways a value can appear in a log line or a message.
func forms(s string) []string { return rotationtest.Forms(s) }
