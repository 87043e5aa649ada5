package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// expiringEnv is a base role that may read its table, a master with what
// docs/expiring-users.md lists (pg_signal_backend included), the type with
// TTL ttl, and a secret holding the base user's credentials.
type expiringEnv struct {
	f      *fixture
	e      *rotationtest.Env
	x      *ExpiringUsers
	arn    string
	base   string
	master *dbsecret.Secret
}

func newExpiringEnv(t *testing.T, f *fixture, ttl time.Duration) *expiringEnv {
	t.Helper()
	x, err := NewExpiringUsers(f.cfg, dbsecret.ExpiringConfig{TTL: ttl, MinTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	env := &expiringEnv{f: f, x: x, e: newEnv(t, f, x)}
	var pw string
	env.base, pw, env.master = f.expiringBase(t)
	out, err := env.e.Client.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String("master/" + env.master.Username), SecretString: aws.String(f.secret(t, env.master.Username, env.master.Password, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	env.arn = createSecret(t, env.e, f.secret(t, env.base, pw, map[string]any{"masterarn": aws.ToString(out.ARN)}))
	return env
}

func (env *expiringEnv) rotate(t *testing.T) string {
	t.Helper()
	if _, err := env.e.Rotate(t, env.arn); err != nil {
		t.Fatalf("rotation: %v\nlogs: %s", err, env.e.Logs())
	}
	cur := current(t, env.e, env.arn)
	env.f.mustLogin(t, "AWSCURRENT after a rotation", cur)
	return cur
}

func (env *expiringEnv) admin(t *testing.T) *Admin { t.Helper(); return env.f.openAdmin(t, env.master) }

func (env *expiringEnv) users(t *testing.T, origin string) []string {
	t.Helper()
	users, err := env.admin(t).ListExpiringUsers(context.Background(), env.base)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, u := range users {
		if origin == "" || u.Origin == origin {
			out = append(out, u.Name)
		}
	}
	return out
}

// reapStep invokes reapSecret with the AWSCURRENT token, as the watch does.
func (env *expiringEnv) reapStep(t *testing.T) []string {
	t.Helper()
	id, _, _ := env.e.Value(t, env.arn, rotation.LabelCurrent)
	r, err := env.e.Handler.Invoke(context.Background(), rotation.Event{Step: rotation.StepReap, SecretID: env.arn, ClientRequestToken: id})
	if err != nil {
		t.Fatalf("reapSecret: %v", err)
	}
	if r == nil || r.Action != rotation.ActionReap {
		t.Fatalf("reapSecret answered %+v, want a reap report", r)
	}
	return r.Reaped
}

// TestExpiringUsersSeries: a series of rotations, each to a new user that
// logs in and acts as the base role (it may read the base's table, not
// another; it cannot create roles); AWSCURRENT always logs in; a user past
// its expiresAt is refused by PostgreSQL itself (by the server's clock,
// before any reaper ran), then the reaper after the next rotation drops it
// and keeps every live one, the base user and a foreign role of the same
// name pattern.
func TestExpiringUsersSeries(t *testing.T) {
	f := setup(t)
	env := newExpiringEnv(t, f, time.Hour)
	other := QuoteIdentifier("other_" + env.base)
	f.exec(t, "CREATE TABLE "+other+" (x int)")
	t.Cleanup(func() { f.exec(t, "DROP TABLE IF EXISTS "+other) })

	first := env.rotate(t)
	if u := field(t, first, "username"); !dbsecret.IsExpiringUserOf(env.base, u) {
		t.Fatalf("AWSCURRENT's user %q is not an expiring user of %q", u, env.base)
	}
	f.canSelect(t, first, "t_"+env.base, true)
	f.canSelect(t, first, "other_"+env.base, false)
	f.mustNotCreateRole(t, first)
	var validUntil time.Time
	if err := f.adminConn(t).QueryRow(context.Background(), "SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1", field(t, first, "username")).Scan(&validUntil); err != nil {
		t.Fatal(err)
	}
	want, err := time.Parse(time.RFC3339, field(t, first, "expiresAt"))
	if err != nil || !validUntil.Equal(want) {
		t.Fatalf("VALID UNTIL %s, want expiresAt %s (%v)", validUntil, field(t, first, "expiresAt"), err)
	}

	// A short-lived user becomes AWSPREVIOUS.
	env.x.exp.TTL = 3 * time.Second
	short := env.rotate(t)
	env.x.exp.TTL = time.Hour
	third := env.rotate(t)
	expires, _ := time.Parse(time.RFC3339, field(t, short, "expiresAt"))
	foreign := env.base + "_250101120000_abcd"
	f.createRole(t, foreign, newPassword(t), "VALID UNTIL '2025-01-01'")
	f.exec(t, "GRANT "+QuoteIdentifier(env.base)+" TO "+QuoteIdentifier(foreign))

	waitServerPast(t, env.admin(t), expires)
	f.mustNotLogin(t, "the user past its expiresAt (before any reaper)", short)
	f.mustLogin(t, "the older, live user", first)
	f.mustLogin(t, "AWSCURRENT", third)
	if !slices.Contains(env.users(t, ""), field(t, short, "username")) {
		t.Fatal("the expired user was dropped before any reaper ran; the server alone must have refused it")
	}

	fourth := env.rotate(t)
	if !strings.Contains(env.e.Logs(), `"reap":"dropped 1 expired, kept 3: `+field(t, short, "username")) {
		t.Fatalf("the finishSecret line does not report the reap: %s", env.e.Logs())
	}
	got := env.users(t, "")
	for _, v := range []string{first, third, fourth} {
		if !slices.Contains(got, field(t, v, "username")) {
			t.Fatalf("the live user %s was dropped (left: %v)", field(t, v, "username"), got)
		}
	}
	if slices.Contains(got, field(t, short, "username")) {
		t.Fatalf("the expired user is still there: %v", got)
	}
	var left int
	if err := f.adminConn(t).QueryRow(context.Background(), "SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)", []string{foreign, env.base}).Scan(&left); err != nil || left != 2 {
		t.Fatalf("the reaper touched the base user or the foreign role (%d of 2 left, %v)", left, err)
	}
	if reaped := env.reapStep(t); len(reaped) != 0 {
		t.Fatalf("reapSecret dropped %v with nothing expired", reaped)
	}
}

func (f *fixture) mustNotCreateRole(t *testing.T, value string) {
	t.Helper()
	conn := f.session(t, value)
	if _, err := conn.Exec(context.Background(), "CREATE ROLE "+QuoteIdentifier(uniqueName("nope"))); err == nil || !isInsufficientPrivilege(err) {
		t.Fatalf("CREATE ROLE as the expiring user: %v, want insufficient privilege", err)
	}
}

// TestExpiringUsersRevoke: revoke leaves only AWSCURRENT's user of the
// secret (ending the others' sessions) and retires the base user's
// password, and leaves users of other origins alone; AWSCURRENT keeps
// working and a session of it stays open.
func TestExpiringUsersRevoke(t *testing.T) {
	f := setup(t)
	env := newExpiringEnv(t, f, time.Hour)
	initial := current(t, env.e, env.arn)
	env.rotate(t)
	// Right after the first rotation AWSPREVIOUS holds the base user: the
	// revoke retires its password, and the log says so.
	mustRevoke(t, env.e, env.arn)
	f.mustNotLogin(t, "the base user's initial password after the first revoke", initial)
	if !strings.Contains(env.e.Logs(), "password was retired") {
		t.Fatalf("the revoke's log does not say that the base user's password was retired:\n%s", env.e.Logs())
	}
	prev := env.rotate(t)
	cur := env.rotate(t)
	a := env.admin(t)
	issued, _ := ExpiringUserName(env.base, time.Now())
	issuedPW := newPassword(t)
	if err := a.CreateExpiringUser(context.Background(), ExpiringUserSpec{Name: issued, Base: env.base, Origin: dbsecret.OriginIssued("reader"), Password: issuedPW, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	prevSession, curSession := f.session(t, prev), f.session(t, cur)
	for i := 0; i < 2; i++ {
		mustRevoke(t, env.e, env.arn)
	}
	if got := env.users(t, dbsecret.OriginRotation(env.arn)); strings.Join(got, ",") != field(t, cur, "username") {
		t.Fatalf("after revoke the secret's users are %v, want only AWSCURRENT's %s", got, field(t, cur, "username"))
	}
	f.mustLogin(t, "AWSCURRENT after revoke", cur)
	f.mustNotLogin(t, "the base user's initial password after revoke", initial)
	f.mustLogin(t, "the issued user after revoke", f.secret(t, issued, issuedPW, nil))
	if alive(prevSession) {
		t.Fatal("a session of AWSPREVIOUS's user is still open after revoke")
	}
	if !alive(curSession) {
		t.Fatal("revoke ended a session of AWSCURRENT's user")
	}
	env.rotate(t) // rotation goes on from the revoked state
}

// TestExpiringUsersFailedRotation: a rotation that fails after setSecret
// created its user leaves AWSCURRENT working; the unused user is kept while
// it is AWSPENDING, and reaped once it is not and has expired.
func TestExpiringUsersFailedRotation(t *testing.T) {
	f := setup(t)
	env := newExpiringEnv(t, f, time.Hour)
	cur := env.rotate(t)
	env.x.exp.TTL = 2 * time.Second
	env.e.Inject(func(ev smlocal.Event, run func() error) error {
		if ev.Step == rotation.StepTest {
			return errors.New("injected testSecret failure")
		}
		return run()
	})
	token, err := env.e.Rotate(t, env.arn)
	env.e.Inject(nil)
	env.x.exp.TTL = time.Hour
	if err == nil {
		t.Fatal("the rotation succeeded despite the failing testSecret")
	}
	f.mustLogin(t, "AWSCURRENT after the failed rotation", cur)
	out, gerr := env.e.Client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(env.arn), VersionId: aws.String(token)})
	if gerr != nil {
		t.Fatal(gerr)
	}
	unused := field(t, aws.ToString(out.SecretString), "username")
	expires, _ := time.Parse(time.RFC3339, field(t, aws.ToString(out.SecretString), "expiresAt"))
	waitServerPast(t, env.admin(t), expires)
	if reaped := env.reapStep(t); len(reaped) != 0 {
		t.Fatalf("reapSecret dropped %v, although the user is AWSPENDING's", reaped)
	}
	if _, err := env.e.Client.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(env.arn), VersionStage: aws.String(rotation.LabelPending), RemoveFromVersionId: aws.String(token)}); err != nil {
		t.Fatal(err)
	}
	if reaped := env.reapStep(t); strings.Join(reaped, ",") != unused {
		t.Fatalf("reapSecret dropped %v, want the unused expired user %s", reaped, unused)
	}
	f.mustLogin(t, "AWSCURRENT after the reap", cur)
	env.rotate(t)
}

// TestExpiringUsersHostile: bad configuration and input get a clear error
// and change nothing.
func TestExpiringUsersHostile(t *testing.T) {
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "ROTARY_CREDENTIAL_TTL is not set"},
		{map[string]string{"ROTARY_CREDENTIAL_TTL": "a week"}, "not a positive Go duration"},
		{map[string]string{"ROTARY_CREDENTIAL_TTL": "-1h"}, "not a positive Go duration"},
		{map[string]string{"ROTARY_CREDENTIAL_TTL": "1h"}, "shorter than the minimum of 5h0m0s"},
		{map[string]string{"ROTARY_CREDENTIAL_TTL": "10s", "ROTARY_CREDENTIAL_MIN_TTL": "1m"}, "shorter than the minimum of 1m0s"},
		{map[string]string{"ROTARY_CREDENTIAL_TTL": "10s", "ROTARY_CREDENTIAL_MIN_TTL": "1ms"}, "below the lowest accepted 1s"},
	} {
		_, err := dbsecret.ExpiringConfigFromEnv(func(k string) string { return tt.env[k] })
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("env %v: err %v, want %q", tt.env, err, tt.want)
		}
	}
	if _, err := NewExpiringUsers(Config{}, dbsecret.ExpiringConfig{TTL: time.Minute}); err == nil {
		t.Error("NewExpiringUsers accepted a TTL under the default minimum")
	}

	f := setup(t)
	t.Run("base user missing", func(t *testing.T) {
		env := newExpiringEnv(t, f, time.Hour)
		ghost := uniqueName("ghost")
		putValue(t, env.e, env.arn, withField(t, current(t, env.e, env.arn), "username", ghost))
		if _, err := env.e.Rotate(t, env.arn); err == nil || !strings.Contains(err.Error(), "AWSCURRENT does not log in") {
			t.Fatalf("rotation with a missing base user: %v", err)
		}
		var n int
		if err := f.adminConn(t).QueryRow(context.Background(), "SELECT count(*) FROM pg_roles WHERE starts_with(rolname, $1)", ghost).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d roles of the missing base were created (%v)", n, err)
		}
		// Through the primitive, too: the base must exist.
		name, _ := ExpiringUserName(ghost, time.Now())
		if err := env.admin(t).CreateExpiringUser(context.Background(), ExpiringUserSpec{Name: name, Base: ghost, Password: newPassword(t), ExpiresAt: time.Now().Add(time.Hour)}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("create for a missing base: %v", err)
		}
	})
	t.Run("base name at and over the limit", func(t *testing.T) {
		maxBase := MaxNameBytes - dbsecret.ExpiringSuffixLen
		if n, err := ExpiringUserName(strings.Repeat("a", maxBase), time.Now()); err != nil || len(n) != MaxNameBytes {
			t.Fatalf("a %d-byte base: name %q, %v", maxBase, n, err)
		}
		env := newExpiringEnv(t, f, time.Hour)
		long := strings.Repeat("b", maxBase+1)
		putValue(t, env.e, env.arn, withField(t, current(t, env.e, env.arn), "username", long))
		before := env.e.Versions(t, env.arn)
		_, err := env.e.Rotate(t, env.arn)
		if err == nil || !strings.Contains(err.Error(), "use a base user name of at most 45") {
			t.Fatalf("rotation with a %d-byte base: %v", maxBase+1, err)
		}
		after := env.e.Versions(t, env.arn)
		for id, labels := range after {
			if slices.Contains(labels, rotation.LabelCurrent) && !slices.Contains(before[id], rotation.LabelCurrent) {
				t.Fatal("AWSCURRENT moved")
			}
		}
	})
}

// TestExpiringUsersRevokeSharedBase: another secret B on the same base
// whose rotation is unfinished (its user exists, its AWSCURRENT is still
// the base user's password) is not locked out by the revoke of secret A:
// A's revoke leaves the base's password and its log says why. Once B's
// users are gone, A's revoke retires it.
func TestExpiringUsersRevokeSharedBase(t *testing.T) {
	f := setup(t)
	env := newExpiringEnv(t, f, time.Hour)
	ctx := context.Background()
	initial := current(t, env.e, env.arn)
	bARN := createSecret(t, env.e, initial)
	a := env.admin(t)
	bUser, _ := ExpiringUserName(env.base, time.Now())
	if err := a.CreateExpiringUser(ctx, ExpiringUserSpec{Name: bUser, Base: env.base, Origin: dbsecret.OriginRotation(bARN), Password: newPassword(t), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	env.rotate(t)
	baseSession := f.session(t, initial)
	mustRevoke(t, env.e, env.arn)
	f.mustLogin(t, "secret B's AWSCURRENT (the base user's password) after secret A's revoke", current(t, env.e, bARN))
	if !alive(baseSession) {
		t.Fatal("secret A's revoke ended a session of the base user, which secret B still uses")
	}
	if logs := env.e.Logs(); !strings.Contains(logs, "password was left as it is") || !strings.Contains(logs, bARN) {
		t.Fatalf("the revoke's log does not say that the base user's password was left for secret B:\n%s", logs)
	}
	if err := a.DropExpiringUser(ctx, env.base, bUser, false); err != nil {
		t.Fatal(err)
	}
	mustRevoke(t, env.e, env.arn)
	f.mustNotLogin(t, "the base user's initial password once no other secret's users are left", initial)
	f.mustLogin(t, "AWSCURRENT after the revoke", current(t, env.e, env.arn))
}
