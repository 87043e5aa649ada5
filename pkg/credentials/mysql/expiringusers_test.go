package mysql

import (
	"context"
	"encoding/json"
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

// expiringEnv is an expiringFixture, the type with a TTL, and a secret
// holding the base user's credentials.
type expiringEnv struct {
	*expiringFixture
	e   *rotationtest.Env
	x   *ExpiringUsers
	arn string
}

func newExpiringEnv(t *testing.T, ttl time.Duration) *expiringEnv {
	t.Helper()
	f := newExpiringFixture(t)
	x, err := NewExpiringUsers(f.cfg, dbsecret.ExpiringConfig{TTL: ttl, MinTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	env := &expiringEnv{expiringFixture: f, x: x}
	env.e, env.arn = revokeEnv(t, x, func(t *testing.T, sm *secretsmanager.Client) string {
		out, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
			Name: aws.String("master/" + f.master.Username), SecretString: aws.String(f.ts.secret(f.master.Username, f.masterPW, map[string]any{"engine": "mysql"})),
		})
		if err != nil {
			t.Fatal(err)
		}
		return f.ts.secret(f.base, f.basePW, map[string]any{"masterarn": aws.ToString(out.ARN), "dbname": f.db})
	})
	return env
}

func (env *expiringEnv) rotate(t *testing.T) string {
	t.Helper()
	if _, err := env.e.Rotate(t, env.arn); err != nil {
		t.Fatalf("rotation: %v", err)
	}
	cur := valueOf(t, env.e, env.arn, rotation.LabelCurrent)
	env.ts.loginValue(t, "AWSCURRENT after a rotation", cur)
	return cur
}

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

func userOf(t *testing.T, value string) string { t.Helper(); u, _ := creds(t, value); return u }

// TestExpiringUsersSeries: a series of rotations, each to a new account
// with the base user's grants (SELECT on its database, no INSERT);
// AWSCURRENT always logs in; an account past its expiresAt still logs in
// until the reaper runs (MariaDB has no expiry of its own), and the reaper
// after the next rotation drops it, ending its connection, and keeps every
// live account, the base user and a foreign account of the same name
// pattern.
func TestExpiringUsersSeries(t *testing.T) {
	env := newExpiringEnv(t, time.Hour)
	first := env.rotate(t)
	u, pw := creds(t, first)
	if !dbsecret.IsExpiringUserOf(env.base, u) {
		t.Fatalf("AWSCURRENT's user %q is not an expiring user of %q", u, env.base)
	}
	env.canSelect(t, u, pw, true)

	env.x.exp.TTL = 2 * time.Second
	short := env.rotate(t)
	env.x.exp.TTL = time.Hour
	third := env.rotate(t)
	foreign, foreignPW := env.base+"_250101120000_abcd", randomPassword(t)
	env.ts.createUser(t, foreign, "%", foreignPW)
	expires, _ := time.Parse(time.RFC3339, field(t, short, "expiresAt"))
	for {
		now, err := env.admin(t).Now(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if now.After(expires) {
			break
		}
		time.Sleep(expires.Sub(now) + 50*time.Millisecond)
	}
	env.ts.loginValue(t, "the expired account before the reaper (MariaDB cannot expire it)", short)
	shortConn := env.ts.openConn(t, short)

	fourth := env.rotate(t)
	if !strings.Contains(env.e.Logs(), `"reap":"dropped 1 expired, kept 3: `+userOf(t, short)) {
		t.Fatalf("the finishSecret line does not report the reap: %s", env.e.Logs())
	}
	env.ts.refusedValue(t, "the expired account after the reaper", short)
	if alive(shortConn) {
		t.Fatal("a connection of the reaped account is still open")
	}
	for _, v := range []string{first, third, fourth} {
		env.ts.loginValue(t, "a live account after the reaper", v)
	}
	env.ts.mustLogin(t, env.cfg, foreign, foreignPW)
	env.ts.mustLogin(t, env.cfg, env.base, env.basePW)
	if reaped := env.reapStep(t); len(reaped) != 0 {
		t.Fatalf("reapSecret dropped %v with nothing expired", reaped)
	}
}

func field(t *testing.T, value, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(value), &m); err != nil {
		t.Fatal(err)
	}
	s, _ := m[name].(string)
	return s
}

// TestExpiringUsersRevoke: revoke leaves only AWSCURRENT's account of the
// secret (killing the others' connections), retires the base user's
// password, and leaves accounts of other origins alone.
func TestExpiringUsersRevoke(t *testing.T) {
	env := newExpiringEnv(t, time.Hour)
	initial := valueOf(t, env.e, env.arn, rotation.LabelCurrent)
	env.rotate(t)
	// Right after the first rotation AWSPREVIOUS holds the base user: the
	// revoke retires its password, and the log says so.
	if err := revokeStep(t, env.e, env.arn); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	env.ts.refusedValue(t, "the base user's initial password after the first revoke", initial)
	if !strings.Contains(env.e.Logs(), "password was retired") {
		t.Fatalf("the revoke's log does not say that the base user's password was retired:\n%s", env.e.Logs())
	}
	prev := env.rotate(t)
	cur := env.rotate(t)
	issued, _ := ExpiringUserName(env.base, MySQLNameLimit, time.Now())
	issuedPW := randomPassword(t)
	if _, err := env.admin(t).CreateExpiringUser(context.Background(), ExpiringUserSpec{Name: issued, Base: env.base, Origin: dbsecret.OriginIssued("reader"), Password: issuedPW, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	prevConn, curConn := env.ts.openConn(t, prev), env.ts.openConn(t, cur)
	for i := 0; i < 2; i++ {
		if err := revokeStep(t, env.e, env.arn); err != nil {
			t.Fatalf("revoke: %v", err)
		}
	}
	if got := env.users(t, dbsecret.OriginRotation(env.arn)); strings.Join(got, ",") != userOf(t, cur) {
		t.Fatalf("after revoke the secret's accounts are %v, want only AWSCURRENT's %s", got, userOf(t, cur))
	}
	env.ts.loginValue(t, "AWSCURRENT after revoke", cur)
	env.ts.refusedValue(t, "AWSPREVIOUS after revoke", prev)
	env.ts.refusedValue(t, "the base user's initial password after revoke", initial)
	env.ts.mustLogin(t, env.cfg, issued, issuedPW)
	if alive(prevConn) {
		t.Fatal("a connection of AWSPREVIOUS's account is still open after revoke")
	}
	if !alive(curConn) {
		t.Fatal("revoke killed a connection of AWSCURRENT's account")
	}
	env.rotate(t)
}

// TestExpiringUsersFailedRotation: a rotation that fails after setSecret
// created its account leaves AWSCURRENT working; the unused account is
// kept while it is AWSPENDING, and reaped once it is not and has expired.
func TestExpiringUsersFailedRotation(t *testing.T) {
	env := newExpiringEnv(t, time.Hour)
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
	env.ts.loginValue(t, "AWSCURRENT after the failed rotation", cur)
	out, err := env.e.Client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(env.arn), VersionId: aws.String(token)})
	if err != nil {
		t.Fatal(err)
	}
	unused := userOf(t, aws.ToString(out.SecretString))
	if !slices.Contains(env.users(t, ""), unused) {
		t.Fatalf("the failed rotation's account %s does not exist; the test proves nothing", unused)
	}
	time.Sleep(2100 * time.Millisecond)
	if reaped := env.reapStep(t); len(reaped) != 0 {
		t.Fatalf("reapSecret dropped %v, although the account is AWSPENDING's", reaped)
	}
	if _, err := env.e.Client.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(env.arn), VersionStage: aws.String(rotation.LabelPending), RemoveFromVersionId: aws.String(token)}); err != nil {
		t.Fatal(err)
	}
	if reaped := env.reapStep(t); strings.Join(reaped, ",") != unused {
		t.Fatalf("reapSecret dropped %v, want the unused expired account %s", reaped, unused)
	}
	env.ts.loginValue(t, "AWSCURRENT after the reap", cur)
	env.rotate(t)
}

// TestExpiringUsersHostile: a base user without an account, a base name
// over the engine's limit, and an account named like an expiring user
// without the marker get a clear error and change nothing.
func TestExpiringUsersHostile(t *testing.T) {
	t.Run("base user missing", func(t *testing.T) {
		env := newExpiringEnv(t, time.Hour)
		ghost := uniqueName("gh")
		putLabeled(t, env.e, env.arn, withField(t, valueOf(t, env.e, env.arn, rotation.LabelCurrent), "username", ghost))
		if _, err := env.e.Rotate(t, env.arn); err == nil || !strings.Contains(err.Error(), "changes nothing") {
			t.Fatalf("rotation with a missing base user: %v", err)
		}
		if n := env.ts.count(t, "SELECT COUNT(*) FROM mysql.user WHERE User LIKE ?", ghost+"%"); n != 0 {
			t.Fatalf("%d accounts of the missing base were created", n)
		}
		name, _ := ExpiringUserName(ghost, MySQLNameLimit, time.Now())
		if _, err := env.admin(t).CreateExpiringUser(context.Background(), ExpiringUserSpec{Name: name, Base: ghost, Password: randomPassword(t), ExpiresAt: time.Now().Add(time.Hour)}); !errors.Is(err, dbsecret.ErrInvalidSecret) || !strings.Contains(err.Error(), "has no account") {
			t.Fatalf("create for a missing base: %v", err)
		}
	})
	t.Run("base name over the engine's limit", func(t *testing.T) {
		env := newExpiringEnv(t, time.Hour)
		for engine, limit := range map[string]int{"mysql": MySQLNameLimit, "aurora-mysql": MySQLNameLimit, "mariadb": MariaDBNameLimit} {
			long := strings.Repeat("b", limit-dbsecret.ExpiringSuffixLen+1)
			v := withField(t, withField(t, valueOf(t, env.e, env.arn, rotation.LabelCurrent), "username", long), "engine", engine)
			err := env.x.Validate(context.Background(), rotation.Version{ID: "v", Value: v})
			if !errors.Is(err, dbsecret.ErrNameTooLong) || !strings.Contains(err.Error(), "at most") {
				t.Errorf("engine %s, a %d-character base: %v", engine, len(long), err)
			}
			atLimit := withField(t, v, "username", long[1:])
			if err := env.x.Validate(context.Background(), rotation.Version{ID: "v", Value: atLimit}); err != nil {
				t.Errorf("engine %s, a base at the limit: %v", engine, err)
			}
		}
		cfg := env.cfg
		cfg.UsernameLimit = 20
		if got := cfg.EngineNameLimit("mariadb"); got != 20 {
			t.Errorf("USERNAME_CHARACTER_LIMIT 20 gives a limit of %d", got)
		}
	})
	t.Run("AWSCURRENT named like an expiring user without the marker", func(t *testing.T) {
		env := newExpiringEnv(t, time.Hour)
		fake, fakePW := env.base+"_250101120000_abcd", randomPassword(t)
		env.ts.createUser(t, fake, "%", fakePW, "GRANT SELECT ON "+quoteIdent(env.db)+".*")
		putLabeled(t, env.e, env.arn, env.ts.secret(fake, fakePW, map[string]any{"masterarn": field(t, valueOf(t, env.e, env.arn, rotation.LabelCurrent), "masterarn"), "dbname": env.db}))
		if _, err := env.e.Rotate(t, env.arn); err == nil || !strings.Contains(err.Error(), "has no Rotary marker") {
			t.Fatalf("rotation from an unmarked look-alike: %v", err)
		}
		if n := len(env.users(t, "")); n != 0 {
			t.Fatalf("%d expiring users were created", n)
		}
	})
}

// TestExpiringUsersRevokeSharedBase: another secret B on the same base
// whose rotation is unfinished (its account exists, its AWSCURRENT is
// still the base user's password) is not locked out by the revoke of
// secret A: A's revoke leaves the base's password and its log says why.
// Once B's accounts are gone, A's revoke retires it.
func TestExpiringUsersRevokeSharedBase(t *testing.T) {
	env := newExpiringEnv(t, time.Hour)
	ctx := context.Background()
	initial := valueOf(t, env.e, env.arn, rotation.LabelCurrent)
	out, err := env.e.Client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(uniqueName("b-")), SecretString: aws.String(initial)})
	if err != nil {
		t.Fatal(err)
	}
	bARN := aws.ToString(out.ARN)
	a := env.admin(t)
	bUser, _ := ExpiringUserName(env.base, MySQLNameLimit, time.Now())
	if _, err := a.CreateExpiringUser(ctx, ExpiringUserSpec{Name: bUser, Base: env.base, Origin: dbsecret.OriginRotation(bARN), Password: randomPassword(t), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	env.rotate(t)
	baseConn := env.ts.openConn(t, initial)
	if err := revokeStep(t, env.e, env.arn); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	env.ts.loginValue(t, "secret B's AWSCURRENT (the base user's password) after secret A's revoke", valueOf(t, env.e, bARN, rotation.LabelCurrent))
	if !alive(baseConn) {
		t.Fatal("secret A's revoke killed a connection of the base user, which secret B still uses")
	}
	if logs := env.e.Logs(); !strings.Contains(logs, "password was left as it is") || !strings.Contains(logs, bARN) {
		t.Fatalf("the revoke's log does not say that the base user's password was left for secret B:\n%s", logs)
	}
	if err := a.DropExpiringUser(ctx, env.base, bUser, "%", false); err != nil {
		t.Fatal(err)
	}
	if err := revokeStep(t, env.e, env.arn); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	env.ts.refusedValue(t, "the base user's initial password once no other secret's accounts are left", initial)
	env.ts.loginValue(t, "AWSCURRENT after the revoke", valueOf(t, env.e, env.arn, rotation.LabelCurrent))
}
