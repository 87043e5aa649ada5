package redis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/internal/redisserver"
	"github.com/rotary-secrets/rotary/internal/redisserver/redistest"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// aclEnv is a local Secrets Manager rotating secrets of users on s.
func aclEnv(t *testing.T, s *redisserver.Server, newSecret func(t *testing.T, sm *secretsmanager.Client) string) *rotationtest.Env {
	return rotationtest.NewEnv(t, rotationtest.Subject{Credential: NewACLUser(configFor(s)), NewSecret: newSecret, Check: check(s)})
}

func hashes(t *testing.T, s *redisserver.Server, user string) []string {
	t.Helper()
	h, err := s.PasswordHashes(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(h)
	return h
}

func hashesOf(values ...string) []string {
	var out []string
	for _, v := range values {
		var pw string
		if v != "" {
			pw = mustPassword(v)
		}
		out = append(out, hashHex(pw))
	}
	slices.Sort(out)
	return out
}

func mustPassword(v string) string {
	s, err := Parse(v)
	if err != nil {
		panic(err)
	}
	return s.Password
}

// TestACLUserTwoPasswords: while a rotation runs the user has exactly
// AWSCURRENT's and AWSPENDING's passwords, afterwards AWSCURRENT's and
// AWSPREVIOUS's; the password before those is refused, and so is a wrong one.
func TestACLUserTwoPasswords(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redisserver.Options{})
	user := uniqueName("app_")
	first := randomPassword(t)
	extra := randomPassword(t) // a password the secret does not know, set by hand
	redistest.CreateUser(t, s, user, first, selfRules...)
	if err := s.Admin.Do(context.Background(), "ACL", "SETUSER", user, ">"+extra).Err(); err != nil {
		t.Fatal(err)
	}
	e := aclEnv(t, s, func(*testing.T, *secretsmanager.Client) string { return secretFor(s, user, first, nil) })
	arn, v0 := e.NewSecret(t)
	ctx := context.Background()

	// setSecret alone (testSecret held back): AWSCURRENT's and
	// AWSPENDING's, nothing else.
	e.Inject(func(ev smlocal.Event, run func() error) error {
		if ev.Step == rotation.StepTest {
			return errors.New("held back by the test")
		}
		return run()
	})
	token, err := e.Rotate(t, arn)
	if err == nil {
		t.Fatal("the rotation finished although testSecret was held back")
	}
	e.Inject(nil)
	_, pend, _ := e.Value(t, arn, rotation.LabelPending)
	if got, want := hashes(t, s, user), hashesOf(v0, pend); !reflect.DeepEqual(got, want) {
		t.Fatalf("after setSecret the user has %d passwords, want exactly AWSCURRENT's and AWSPENDING's", len(got))
	}
	for _, v := range []string{v0, pend} {
		if err := redisserver.Login(ctx, v, ""); err != nil {
			t.Fatalf("after setSecret: %v", err)
		}
	}
	if err := redisserver.Login(ctx, secretFor(s, user, extra, nil), ""); !errors.Is(err, redisserver.ErrRefused) {
		t.Fatalf("a password the secret does not hold still logs in after setSecret: %v", err)
	}
	for _, st := range []string{rotation.StepTest, rotation.StepFinish} {
		if err := e.Step(arn, st, token); err != nil {
			t.Fatal(err)
		}
	}
	prev := v0
	for i := range 2 {
		if _, err := e.Rotate(t, arn); err != nil {
			t.Fatalf("rotation %d: %v", i+1, err)
		}
		_, cur, _ := e.Value(t, arn, rotation.LabelCurrent)
		_, p, _ := e.Value(t, arn, rotation.LabelPrevious)
		if got, want := hashes(t, s, user), hashesOf(cur, p); !reflect.DeepEqual(got, want) {
			t.Fatalf("after rotation %d the user has %d passwords, want exactly AWSCURRENT's and AWSPREVIOUS's", i+1, len(got))
		}
		if err := redisserver.Login(ctx, prev, ""); !errors.Is(err, redisserver.ErrRefused) {
			t.Fatalf("after rotation %d the password before AWSPREVIOUS still logs in: %v", i+1, err)
		}
		if err := redisserver.Login(ctx, withField(t, cur, "password", "wrong-"+passwordOf(t, cur)), ""); !errors.Is(err, redisserver.ErrRefused) {
			t.Fatalf("a wrong password is not refused: %v", err)
		}
		prev = p
	}
}

// userAttrs is ACL GETUSER without the passwords.
func userAttrs(t *testing.T, s *redisserver.Server, user string) map[string]any {
	t.Helper()
	m, err := s.GetUser(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m["passwords"]; !ok {
		t.Fatal("ACL GETUSER lists no passwords: the comparison would prove nothing")
	}
	delete(m, "passwords")
	return m
}

// TestACLUserKeepsAttributes: rotation and revoke change the passwords and
// nothing else: keys, channels, commands, selectors, on or off.
func TestACLUserKeepsAttributes(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redisserver.Options{})
	admin, adminPW := uniqueName("admin_"), randomPassword(t)
	redistest.CreateUser(t, s, admin, adminPW, "+ping", "+acl|getuser", "+acl|setuser", "+acl|save")
	rules := []string{"~app:*", "%R~ro:*", "&news:*", "+get", "+set", "-@dangerous", "+ping", "(~other:* +hget)"}
	var master string
	newUser := func(t *testing.T, sm *secretsmanager.Client, more ...string) (string, string) {
		user, pw := uniqueName("app_"), randomPassword(t)
		redistest.CreateUser(t, s, user, pw, append(slices.Clone(rules), more...)...)
		master = storeMaster(t, sm, jsonOf(map[string]any{"username": admin, "password": adminPW, "host": s.Host, "port": s.Port}))
		return user, secretFor(s, user, pw, map[string]any{"masterarn": master})
	}
	var user string
	e := aclEnv(t, s, func(t *testing.T, sm *secretsmanager.Client) string {
		u, v := newUser(t, sm)
		user = u
		return v
	})
	arn, _ := e.NewSecret(t)
	before := userAttrs(t, s, user)
	for range 2 {
		if _, err := e.Rotate(t, arn); err != nil {
			t.Fatal(err)
		}
	}
	_, cur, _ := e.Value(t, arn, rotation.LabelCurrent)
	curID, _, _ := e.Value(t, arn, rotation.LabelCurrent)
	if err := e.Revoke(arn, curID); err != nil {
		t.Fatal(err)
	}
	if got := userAttrs(t, s, user); !reflect.DeepEqual(got, before) {
		t.Fatalf("the user's attributes changed:\nbefore %v\nafter  %v", before, got)
	}
	if got, want := hashes(t, s, user), hashesOf(cur); !reflect.DeepEqual(got, want) {
		t.Fatalf("after revoke the user has %d passwords, want AWSCURRENT's only", len(got))
	}

	// An off user stays off: setSecret (by the master) adds the password,
	// and testSecret fails, since the server refuses the user.
	a := NewACLUser(configFor(s))
	var offUser, offValue string
	sm := e.Client
	offUser, offValue = newUser(t, sm, "off")
	offBefore := userAttrs(t, s, offUser)
	pend := withField(t, offValue, "password", randomPassword(t))
	req := rotation.SetRequest{Current: version("cur", offValue), Pending: version("pend", pend), Secrets: store{sm}}
	if err := a.Set(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if got := userAttrs(t, s, offUser); !reflect.DeepEqual(got, offBefore) {
		t.Fatalf("the off user's attributes changed:\nbefore %v\nafter  %v", offBefore, got)
	}
	if err := a.Test(context.Background(), rotation.TestRequest{Pending: version("pend", pend)}); !errors.Is(err, ErrLogin) {
		t.Fatalf("testSecret of an off user: got %v, want a refused login", err)
	}
}

// TestACLSavePersists: on a server with an ACL file the rotated passwords
// are saved, so ACL LOAD (as at a restart) keeps them.
func TestACLSavePersists(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redisserver.Options{ACLFile: true})
	user, first := uniqueName("app_"), randomPassword(t)
	redistest.CreateUser(t, s, user, first, selfRules...)
	e := aclEnv(t, s, func(*testing.T, *secretsmanager.Client) string { return secretFor(s, user, first, nil) })
	arn, _ := e.NewSecret(t)
	for range 2 {
		if _, err := e.Rotate(t, arn); err != nil {
			t.Fatal(err)
		}
	}
	_, cur, _ := e.Value(t, arn, rotation.LabelCurrent)
	if err := s.Admin.Do(context.Background(), "ACL", "LOAD").Err(); err != nil {
		t.Fatal(err)
	}
	if err := redisserver.Login(context.Background(), cur, ""); err != nil {
		t.Fatalf("after ACL LOAD from the file: %v", err)
	}
	if err := redisserver.Login(context.Background(), secretFor(s, user, first, nil), ""); !errors.Is(err, redisserver.ErrRefused) {
		t.Fatalf("after ACL LOAD from the file the first password logs in: %v", err)
	}
	b, err := os.ReadFile(s.ACLFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), passwordOf(t, cur)) {
		t.Fatal("the ACL file holds a password in clear")
	}
}

// store is a rotation.SecretStore over the local Secrets Manager.
type store struct{ sm *secretsmanager.Client }

func (s store) Current(ctx context.Context, id string) (rotation.Version, error) {
	out, err := s.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &id})
	if err != nil {
		return rotation.Version{}, err
	}
	return rotation.Version{ID: *out.VersionId, Value: *out.SecretString}, nil
}

func (s store) Tags(context.Context, string) (map[string]string, error) {
	return nil, fmt.Errorf("no tags")
}

// TestACLUserRefusesDrift: when AWSCURRENT's password is no longer the
// user's (changed by hand), setSecret refuses and changes nothing: removing
// "every other" password would cut off whoever uses the one set by hand.
func TestACLUserRefusesDrift(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redisserver.Options{})
	// With a master (without one, the user cannot even log in to change
	// itself): the master could remove every password.
	admin, adminPW := uniqueName("admin_"), randomPassword(t)
	redistest.CreateUser(t, s, admin, adminPW, "+ping", "+acl|getuser", "+acl|setuser", "+acl|save")
	user := uniqueName("app_")
	first := randomPassword(t)
	redistest.CreateUser(t, s, user, first, selfRules...)
	e := aclEnv(t, s, func(t *testing.T, sm *secretsmanager.Client) string {
		arn := storeMaster(t, sm, jsonOf(map[string]any{"username": admin, "password": adminPW}))
		return secretFor(s, user, first, map[string]any{"masterarn": arn})
	})
	arn, _ := e.NewSecret(t)
	byHand := randomPassword(t)
	ctx := context.Background()
	if err := s.Admin.Do(ctx, "ACL", "SETUSER", user, "resetpass", ">"+byHand).Err(); err != nil {
		t.Fatal(err)
	}
	before := hashes(t, s, user)
	_, err := e.Rotate(t, arn)
	if err == nil {
		t.Fatal("a rotation whose AWSCURRENT the server no longer has succeeded")
	}
	if after := hashes(t, s, user); !reflect.DeepEqual(after, before) {
		t.Fatalf("the refused rotation changed the user's passwords (%d before, %d after)", len(before), len(after))
	}
	if err := redisserver.Login(ctx, secretFor(s, user, byHand, nil), ""); err != nil {
		t.Fatalf("the password set by hand no longer logs in: %v", err)
	}
}
