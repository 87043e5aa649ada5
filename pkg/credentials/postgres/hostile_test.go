package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
)

const everyPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// TestHostileInputSingleUser feeds pending values that must be refused
// before any database change, and proves with a login with the old
// credential (and the victim's) that nothing changed.
func TestHostileInputSingleUser(t *testing.T) {
	f := setup(t)
	victim, victimPW := uniqueName("rotary_victim"), newPassword(t)
	f.createRole(t, victim, victimPW, "")
	tests := []struct {
		name    string
		pending func(t *testing.T, old string) string
		wantErr string
	}{
		{"another user", func(t *testing.T, old string) string { return withField(t, old, "username", victim) }, `"username" differs`},
		{"sql in the username", func(t *testing.T, old string) string {
			return withField(t, old, "username", field(t, old, "username")+`" PASSWORD 'x`)
		}, `"username" differs`},
		{"another host", func(t *testing.T, old string) string { return withField(t, old, "host", "localhost") }, `"host" differs`},
		{"another port", func(t *testing.T, old string) string { return withField(t, old, "port", f.c.Port+1) }, `"port" differs`},
		{"another database", func(t *testing.T, old string) string { return withField(t, old, "dbname", "template1") }, `"dbname" differs`},
		{"TLS turned off", func(t *testing.T, old string) string {
			return withField(t, withField(t, old, "ssl", false), "password", newPassword(t))
		}, `"ssl" differs`},
		{"a MySQL engine", func(t *testing.T, old string) string { return withField(t, old, "engine", "mysql") }, `"engine" is "mysql"`},
		{"no password", func(t *testing.T, old string) string { return withField(t, old, "password", nil) }, `"password" is missing`},
		{"over-long username", func(t *testing.T, old string) string { return withField(t, old, "username", strings.Repeat("u", 64)) }, "63-byte limit"},
		{"not JSON", func(t *testing.T, old string) string { return "{" }, "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, f, NewSingleUser(f.cfg))
			user, pw := uniqueName("rotary_hostile"), newPassword(t)
			f.createRole(t, user, pw, "")
			old := f.secret(t, user, pw, nil)
			arn := createSecret(t, e, old)
			err := rotateTo(t, e, arn, tt.pending(t, old))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			t.Logf("refused: %v", err)
			if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), victimPW) {
				t.Fatal("the error quotes a password")
			}
			if current(t, e, arn) != old {
				t.Fatal("AWSCURRENT changed")
			}
			f.mustLogin(t, "the old credential", old)
			f.mustLogin(t, "the victim's credential", f.secret(t, victim, victimPW, nil))
		})
	}
}

// TestHostileCurrentValue: a current value the type cannot rotate fails in
// createSecret with a clear error, before anything changes.
func TestHostileCurrentValue(t *testing.T) {
	f := setup(t)
	tests := []struct {
		name    string
		multi   bool
		mutate  func(t *testing.T, v string) string
		wantErr string
	}{
		{"MySQL engine", false, func(t *testing.T, v string) string { return withField(t, v, "engine", "mariadb") }, "use a MySQL rotation function"},
		{"over-long username", false, func(t *testing.T, v string) string { return withField(t, v, "username", strings.Repeat("é", 32)) }, "64 bytes, over PostgreSQL's 63-byte limit"},
		{"no room for _clone", true, func(t *testing.T, v string) string { return withField(t, v, "username", strings.Repeat("u", 58)) }, "at most 57 bytes"},
		{"username is only the suffix", true, func(t *testing.T, v string) string { return withField(t, v, "username", dbsecret.CloneSuffix) }, "needs a name"},
		{"no masterarn", true, func(t *testing.T, v string) string { return withField(t, v, "masterarn", nil) }, `"masterarn" is missing`},
		{"port not a number", false, func(t *testing.T, v string) string { return withField(t, v, "port", "five") }, `"port"`},
		{"ssl not a boolean", false, func(t *testing.T, v string) string { return withField(t, v, "ssl", "sometimes") }, `"ssl"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e *rotationtest.Env
			if tt.multi {
				e = newEnv(t, f, NewMultiUser(f.cfg))
			} else {
				e = newEnv(t, f, NewSingleUser(f.cfg))
			}
			user, pw := uniqueName("rotary_hostile"), newPassword(t)
			f.createRole(t, user, pw, "")
			value := tt.mutate(t, f.secret(t, user, pw, map[string]any{"masterarn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:unused"}))
			arn := createSecret(t, e, value)
			_, err := e.Rotate(t, arn)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			t.Logf("refused: %v", err)
			if current(t, e, arn) != value {
				t.Fatal("AWSCURRENT changed")
			}
			f.mustLogin(t, "the old credential", f.secret(t, user, pw, nil))
		})
	}
}

// TestHostileInputMultiUser covers what alternating users add: the master
// secret and the user pair.
func TestHostileInputMultiUser(t *testing.T) { eachVersion(t, testHostileInputMultiUser) }

func testHostileInputMultiUser(t *testing.T, f *fixture) {
	victim, victimPW := uniqueName("rotary_victim"), newPassword(t)
	f.createRole(t, victim, victimPW, "")
	type setupFn func(t *testing.T, sm *secretsmanager.Client, user, pw string) (current, pending string)
	full := func(t *testing.T, sm *secretsmanager.Client, base string) string {
		return f.master(t, sm, func(u, p string) string { return f.secret(t, u, p, nil) }, nil, base)
	}
	tests := []struct {
		name    string
		setup   setupFn
		wantErr string
	}{
		{"masterarn names no secret", func(t *testing.T, sm *secretsmanager.Client, user, pw string) (string, string) {
			cur := f.secret(t, user, pw, map[string]any{"masterarn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf"})
			return cur, withField(t, withField(t, cur, "username", dbsecret.CloneName(user)), "password", newPassword(t))
		}, "read the secret named by masterarn"},
		{"master secret on another host", func(t *testing.T, sm *secretsmanager.Client, user, pw string) (string, string) {
			m := f.master(t, sm, func(u, p string) string { return f.secret(t, u, p, map[string]any{"host": "db.elsewhere.test"}) }, nil, user)
			cur := f.secret(t, user, pw, map[string]any{"masterarn": m})
			return cur, withField(t, withField(t, cur, "username", dbsecret.CloneName(user)), "password", newPassword(t))
		}, "point masterarn at the admin secret of the same database server"},
		{"pending user outside the pair", func(t *testing.T, sm *secretsmanager.Client, user, pw string) (string, string) {
			cur := f.secret(t, user, pw, map[string]any{"masterarn": full(t, sm, user)})
			return cur, withField(t, withField(t, cur, "username", victim), "password", newPassword(t))
		}, "comes"},
		{"pending user is the current user", func(t *testing.T, sm *secretsmanager.Client, user, pw string) (string, string) {
			// The current user's password would change under the
			// applications that use it: alternating users never do that.
			cur := f.secret(t, user, pw, map[string]any{"masterarn": full(t, sm, user)})
			return cur, withField(t, cur, "password", newPassword(t))
		}, "comes"},
		{"pending masterarn differs", func(t *testing.T, sm *secretsmanager.Client, user, pw string) (string, string) {
			cur := f.secret(t, user, pw, map[string]any{"masterarn": full(t, sm, user)})
			return cur, withField(t, withField(t, cur, "masterarn", full(t, sm, user)), "username", dbsecret.CloneName(user))
		}, `"masterarn" differs`},
		{"pending host differs", func(t *testing.T, sm *secretsmanager.Client, user, pw string) (string, string) {
			cur := f.secret(t, user, pw, map[string]any{"masterarn": full(t, sm, user)})
			return cur, withField(t, withField(t, cur, "host", "localhost"), "username", dbsecret.CloneName(user))
		}, `"host" differs`},
		{"pending turns TLS off", func(t *testing.T, sm *secretsmanager.Client, user, pw string) (string, string) {
			cur := f.secret(t, user, pw, map[string]any{"masterarn": full(t, sm, user)})
			return cur, withField(t, withField(t, withField(t, cur, "ssl", "false"), "username", dbsecret.CloneName(user)), "password", newPassword(t))
		}, `"ssl" differs`},
		{"current password does not log in", func(t *testing.T, sm *secretsmanager.Client, user, pw string) (string, string) {
			cur := f.secret(t, user, pw+"-wrong", map[string]any{"masterarn": full(t, sm, user)})
			return cur, withField(t, withField(t, cur, "username", dbsecret.CloneName(user)), "password", newPassword(t))
		}, "AWSCURRENT does not log in"},
		{"master user is the rotated user", func(t *testing.T, sm *secretsmanager.Client, user, pw string) (string, string) {
			m := f.master(t, sm, func(_, _ string) string { return f.secret(t, user, pw, nil) }, nil, user)
			cur := f.secret(t, user, pw, map[string]any{"masterarn": m})
			return cur, withField(t, withField(t, cur, "username", dbsecret.CloneName(user)), "password", newPassword(t))
		}, "use a separate admin user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, f, NewMultiUser(f.cfg))
			user, pw := uniqueName("rotary_hostile"), newPassword(t)
			f.createRole(t, user, pw, "")
			old, pending := tt.setup(t, e.Client, user, pw)
			arn := createSecret(t, e, old)
			err := rotateTo(t, e, arn, pending)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			t.Logf("refused: %v", err)
			if current(t, e, arn) != old {
				t.Fatal("AWSCURRENT changed")
			}
			f.mustLogin(t, "the old credential", f.secret(t, user, pw, nil))
			f.mustLogin(t, "the victim's credential", f.secret(t, victim, victimPW, nil))
			var clones int
			if err := f.adminConn(t).QueryRow(t.Context(), "SELECT count(*) FROM pg_roles WHERE rolname = $1", dbsecret.CloneName(user)).Scan(&clones); err != nil {
				t.Fatal(err)
			}
			if clones != 0 {
				t.Fatalf("the clone %q was created although the rotation was refused", dbsecret.CloneName(user))
			}
		})
	}
}

// TestUnusualNamesAndPasswords: names with quotes, backslashes, spaces and
// unicode, and passwords with every punctuation character, are legal in
// PostgreSQL and must rotate correctly (proving the quoting), both types.
func TestUnusualNamesAndPasswords(t *testing.T) {
	f := setup(t)
	names := []struct{ name, user string }{
		{"quotes", `o'brien "the" admin` + uniqueName("")},
		{"backslash", `back\slash` + uniqueName("")},
		{"space", "with space" + uniqueName("")},
		{"unicode", "ünïcødé_ユーザー" + uniqueName("")},
		{"sql", `x"; DROP ROLE postgres; --` + uniqueName("")},
		{"longest alternating name", strings.Repeat("a", 57-len(uniqueName(""))) + uniqueName("")},
	}
	for _, n := range names {
		for _, multi := range []bool{false, true} {
			kind := "single"
			if multi {
				kind = "multi"
			}
			t.Run(kind+"/"+n.name, func(t *testing.T) {
				pw := everyPunctuation + newPassword(t)
				f.createRole(t, n.user, pw, "")
				var e *rotationtest.Env
				extra := map[string]any{}
				if multi {
					e = newEnv(t, f, NewMultiUser(f.cfg))
					extra["masterarn"] = f.master(t, e.Client, func(u, p string) string { return f.secret(t, u, p, nil) }, nil, n.user)
				} else {
					e = newEnv(t, f, NewSingleUser(f.cfg))
				}
				arn := createSecret(t, e, f.secret(t, n.user, pw, extra))
				// A pending password with every punctuation character, then
				// two generated ones (for multi: clone, then base again).
				pending := withField(t, current(t, e, arn), "password", everyPunctuation+everyPunctuation)
				if multi {
					pending = withField(t, pending, "username", dbsecret.CloneName(n.user))
				}
				if err := rotateTo(t, e, arn, pending); err != nil {
					t.Fatalf("rotation to a password of every punctuation character: %v", err)
				}
				f.mustLogin(t, "AWSCURRENT with every punctuation character", current(t, e, arn))
				for i := 0; i < 2; i++ {
					if _, err := e.Rotate(t, arn); err != nil {
						t.Fatalf("rotation %d: %v", i+1, err)
					}
					f.mustLogin(t, "AWSCURRENT", current(t, e, arn))
				}
				if multi && field(t, current(t, e, arn), "username") != dbsecret.CloneName(n.user) {
					t.Fatalf("after three rotations the user is %q, want the clone", field(t, current(t, e, arn), "username"))
				}
				f.mustLogin(t, "the postgres superuser still", f.secret(t, f.c.SuperUser, f.c.SuperPassword, nil))
			})
		}
	}
}

// TestMultiUserPendingAloneProvesNothing: someone who may write the secret
// and controls a role named <user>_clone (knowing its password) but not the
// base user's password must not get the master to make that role a member
// of the base user. The pending password logging in proves nothing about
// the base user, so AWSCURRENT must still log in first.
func TestMultiUserPendingAloneProvesNothing(t *testing.T) {
	eachVersion(t, testMultiUserPendingAloneProvesNothing)
}

func testMultiUserPendingAloneProvesNothing(t *testing.T, f *fixture) {
	e := newEnv(t, f, NewMultiUser(f.cfg))
	base, basePW := uniqueName("rotary_priv"), newPassword(t)
	f.createRole(t, base, basePW, "")
	masterARN := f.master(t, e.Client, func(u, p string) string { return f.secret(t, u, p, nil) }, nil, base)
	attackerPW := newPassword(t)
	f.createRole(t, dbsecret.CloneName(base), attackerPW, "") // dropped by createRole's cleanup

	old := f.secret(t, base, newPassword(t), map[string]any{"masterarn": masterARN}) // a password the writer guessed
	pending := f.secret(t, dbsecret.CloneName(base), attackerPW, map[string]any{"masterarn": masterARN})
	arn := createSecret(t, e, old)
	err := rotateTo(t, e, arn, pending)
	if err == nil || !strings.Contains(err.Error(), "AWSCURRENT does not log in") {
		t.Fatalf("err = %v, want one containing %q", err, "AWSCURRENT does not log in")
	}
	var member bool
	if err := f.adminConn(t).QueryRow(t.Context(), "SELECT pg_has_role($1, $2, 'MEMBER')", dbsecret.CloneName(base), base).Scan(&member); err != nil {
		t.Fatal(err)
	}
	if member {
		t.Fatalf("the master made %q a member of %q although AWSCURRENT does not log in", dbsecret.CloneName(base), base)
	}
	if current(t, e, arn) != old {
		t.Fatal("AWSCURRENT changed")
	}
	f.mustLogin(t, "the base user's real credential", f.secret(t, base, basePW, nil))
}

// TestMultiUserProvesPasswordsAfterTheGrant: pg_hba.conf can match a role
// by membership (+group), so a server that refused a wrong password for the
// clone before the master granted it the base role may accept any password
// after. testSecret proves it after the grant: a rotation onto a clone the
// server trusts fails, and AWSCURRENT stays.
func TestMultiUserProvesPasswordsAfterTheGrant(t *testing.T) {
	eachVersion(t, testMultiUserProvesPasswordsAfterTheGrant)
}

func testMultiUserProvesPasswordsAfterTheGrant(t *testing.T, f *fixture) {
	e := newEnv(t, f, NewMultiUser(f.cfg))
	base, basePW := uniqueName("rotary_grp"), newPassword(t)
	f.createRole(t, base, basePW, "")
	group := uniqueName("rotary_grp_members")
	f.createRole(t, group, newPassword(t), "") // a login role is a group too
	f.exec(t, "GRANT "+QuoteIdentifier(group)+" TO "+QuoteIdentifier(base))
	masterARN := f.master(t, e.Client, func(u, p string) string { return f.secret(t, u, p, nil) }, nil, base)
	old := f.secret(t, base, basePW, map[string]any{"masterarn": masterARN})
	arn := createSecret(t, e, old)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := f.c.PrependHBA(ctx, "host all +"+group+" 127.0.0.1/32 trust"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.c.PrependHBA(context.Background()); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	pending := f.secret(t, dbsecret.CloneName(base), newPassword(t), map[string]any{"masterarn": masterARN})
	err := rotateTo(t, e, arn, pending)
	if !errors.Is(err, ErrPasswordsNotChecked) {
		t.Fatalf("rotation onto a clone the server trusts after the grant: err = %v, want ErrPasswordsNotChecked", err)
	}
	if current(t, e, arn) != old {
		t.Fatal("AWSCURRENT moved to a credential that proves nothing")
	}
}

// TestMultiUserWarmInstanceProvesAHandWrittenCurrent: an instance that
// proved the versions of earlier rotations (dbsecret.Proofs) must still
// prove an AWSCURRENT written by hand: a value for the other user of the
// pair with a guessed password is refused before the master acts, and the
// users' real passwords stay.
func TestMultiUserWarmInstanceProvesAHandWrittenCurrent(t *testing.T) {
	eachVersion(t, testMultiUserWarmInstanceProvesAHandWrittenCurrent)
}

func testMultiUserWarmInstanceProvesAHandWrittenCurrent(t *testing.T, f *fixture) {
	e := newEnv(t, f, NewMultiUser(f.cfg)) // one instance for every rotation: warm
	base, basePW := uniqueName("rotary_warm"), newPassword(t)
	f.createRole(t, base, basePW, "")
	masterARN := f.master(t, e.Client, func(u, p string) string { return f.secret(t, u, p, nil) }, nil, base)
	arn := createSecret(t, e, f.secret(t, base, basePW, map[string]any{"masterarn": masterARN}))
	for i := range 2 {
		if _, err := e.Rotate(t, arn); err != nil {
			t.Fatalf("rotation %d: %v", i+1, err)
		}
	}
	real := current(t, e, arn)
	guessed := withField(t, withField(t, real, "username", dbsecret.Other(field(t, real, "username"))), "password", newPassword(t))
	if _, err := e.Client.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: &arn, SecretString: &guessed, VersionStages: []string{"AWSCURRENT"},
	}); err != nil {
		t.Fatal(err)
	}
	_, err := e.Rotate(t, arn)
	if err == nil || !strings.Contains(err.Error(), "AWSCURRENT does not log in") {
		t.Fatalf("rotation after AWSCURRENT was written by hand with a guessed password: err = %v, want one containing %q", err, "AWSCURRENT does not log in")
	}
	f.mustLogin(t, "the credential AWSCURRENT held before it was written by hand", real)
}
