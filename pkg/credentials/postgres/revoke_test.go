package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
)

// revoke runs the operator's revokeSecret step with the AWSCURRENT token,
// as `rotary revoke` does after its rotation.
func revoke(t *testing.T, e *rotationtest.Env, arn string) error {
	t.Helper()
	id, _, ok := e.Value(t, arn, rotation.LabelCurrent)
	if !ok {
		t.Fatal("secret has no AWSCURRENT value")
	}
	return e.Revoke(arn, id)
}

// previous returns the AWSPREVIOUS value.
func previous(t *testing.T, e *rotationtest.Env, arn string) string {
	t.Helper()
	_, v, ok := e.Value(t, arn, rotation.LabelPrevious)
	if !ok {
		t.Fatal("secret has no AWSPREVIOUS value")
	}
	return v
}

// putValue stores value in secret id under the given labels (AWSCURRENT when none).
func putValue(t *testing.T, e *rotationtest.Env, id, value string, labels ...string) {
	t.Helper()
	in := &secretsmanager.PutSecretValueInput{SecretId: aws.String(id), SecretString: aws.String(value)}
	if len(labels) > 0 {
		in.VersionStages = labels
	}
	if _, err := e.Client.PutSecretValue(context.Background(), in); err != nil {
		t.Fatalf("put a value in %s: %v", id, err)
	}
}

// revokingMaster creates a master secret for base user base whose user has
// what f.master gives it and, when signal is true, pg_signal_backend
// (which ending sessions needs).
func (f *fixture) revokingMaster(t *testing.T, e *rotationtest.Env, signal bool, base string) string {
	t.Helper()
	var user string
	arn := f.master(t, e.Client, func(u, p string) string { user = u; return f.secret(t, u, p, nil) }, nil, base)
	if signal {
		f.exec(t, "GRANT pg_signal_backend TO "+QuoteIdentifier(user))
	}
	return arn
}

// session opens a session with a secret value, closed in t.Cleanup.
func (f *fixture) session(t *testing.T, value string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := dbsecret.Parse(value)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := f.cfg.connect(ctx, s)
	if err != nil {
		t.Fatalf("open a session as %q: %v", s.Username, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func alive(conn *pgx.Conn) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one) == nil
}

func mustRotate(t *testing.T, e *rotationtest.Env, arn string) {
	t.Helper()
	if _, err := e.Rotate(t, arn); err != nil {
		t.Fatalf("rotation: %v", err)
	}
}

func mustRevoke(t *testing.T, e *rotationtest.Env, arn string) {
	t.Helper()
	if err := revoke(t, e, arn); err != nil {
		t.Fatalf("revoke: %v", err)
	}
}

// TestRevokeSingleUserRefuses: an AWSPREVIOUS that single-user revoke cannot
// handle is refused clearly and the user's working password stays (an
// AWSCURRENT that does not log in is the conformance suite's
// Revoke/RefusedWhenCurrentIsRefused).
func TestRevokeSingleUserRefuses(t *testing.T) { eachVersion(t, testRevokeSingleUserRefuses) }

func testRevokeSingleUserRefuses(t *testing.T, f *fixture) {
	victim, victimPW := uniqueName("rotary_victim"), newPassword(t)
	f.createRole(t, victim, victimPW, "")
	tests := []struct {
		name    string
		mutate  func(t *testing.T, e *rotationtest.Env, arn string) (working string)
		wantErr string
	}{
		{"AWSPREVIOUS for another user", func(t *testing.T, e *rotationtest.Env, arn string) string {
			putValue(t, e, arn, f.secret(t, victim, victimPW, nil), rotation.LabelPrevious)
			return current(t, e, arn)
		}, "not the secret's user"},
		{"AWSPREVIOUS on another host", func(t *testing.T, e *rotationtest.Env, arn string) string {
			putValue(t, e, arn, withField(t, previous(t, e, arn), "host", "localhost"), rotation.LabelPrevious)
			return current(t, e, arn)
		}, "only on AWSCURRENT's server"},
		{"AWSPREVIOUS not a database secret", func(t *testing.T, e *rotationtest.Env, arn string) string {
			putValue(t, e, arn, `{"password":"x"}`, rotation.LabelPrevious)
			return current(t, e, arn)
		}, "remove its AWSPREVIOUS label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, f, NewSingleUser(f.cfg))
			user, pw := uniqueName("rotary_rvk_single"), newPassword(t)
			f.createRole(t, user, pw, "")
			arn := createSecret(t, e, f.secret(t, user, pw, nil))
			mustRotate(t, e, arn)
			working := tt.mutate(t, e, arn)
			err := revoke(t, e, arn)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			t.Logf("refused: %v", err)
			if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), victimPW) || strings.Contains(err.Error(), field(t, working, "password")) {
				t.Fatal("the error quotes a password")
			}
			f.mustLogin(t, "the user's working password", working)
			f.mustLogin(t, "the victim's password", f.secret(t, victim, victimPW, nil))
		})
	}
}

// TestRevokeMultiUser: what rotationtest does not see (it revokes with
// KeepSessionsOnRevoke): by default revoke ends the other user's sessions,
// with the master's pg_signal_backend, and leaves AWSCURRENT's user's; with
// KeepSessionsOnRevoke they stay. Revoke never creates the clone, and the
// rotation after it moves to the other user.
func TestRevokeMultiUser(t *testing.T) { eachVersion(t, testRevokeMultiUser) }

func testRevokeMultiUser(t *testing.T, f *fixture) {
	for _, rotations := range []int{1, 2} {
		t.Run(strings.Repeat("rotate,", rotations)+"revoke twice ends the other user's sessions", func(t *testing.T) {
			e := newEnv(t, f, NewMultiUser(f.cfg))
			base, pw := uniqueName("rotary_rvk_multi"), newPassword(t)
			f.createRole(t, base, pw, "")
			arn := createSecret(t, e, f.secret(t, base, pw, map[string]any{"masterarn": f.revokingMaster(t, e, true, base)}))
			for i := 0; i < rotations; i++ {
				mustRotate(t, e, arn)
			}
			cur, prev := current(t, e, arn), previous(t, e, arn)
			otherSession, currentSession := f.session(t, prev), f.session(t, cur)
			for i := 1; i <= 2; i++ {
				mustRevoke(t, e, arn)
				f.mustLogin(t, "AWSCURRENT", cur)
				f.mustNotLogin(t, "AWSPREVIOUS", prev)
			}
			if alive(otherSession) {
				t.Fatal("a session of the other user opened before the revoke still runs queries")
			}
			if !alive(currentSession) {
				t.Fatal("revoke ended a session of AWSCURRENT's user")
			}
			mustRotate(t, e, arn)
			if got, want := field(t, current(t, e, arn), "username"), field(t, prev, "username"); got != want {
				t.Fatalf("the rotation after the revoke moved to %q, want %q", got, want)
			}
		})
	}

	t.Run("keep sessions: no pg_signal_backend needed, open sessions stay", func(t *testing.T) {
		cfg := f.cfg
		cfg.KeepSessionsOnRevoke = true
		e := newEnv(t, f, NewMultiUser(cfg))
		base, pw := uniqueName("rotary_rvk_keep"), newPassword(t)
		f.createRole(t, base, pw, "")
		arn := createSecret(t, e, f.secret(t, base, pw, map[string]any{"masterarn": f.revokingMaster(t, e, false, base)}))
		mustRotate(t, e, arn)
		prev := previous(t, e, arn)
		otherSession := f.session(t, prev)
		mustRevoke(t, e, arn)
		f.mustLogin(t, "AWSCURRENT", current(t, e, arn))
		f.mustNotLogin(t, "AWSPREVIOUS", prev)
		if !alive(otherSession) {
			t.Fatal("with KeepSessionsOnRevoke the other user's open session was ended")
		}
	})

	t.Run("the other user was never created", func(t *testing.T) {
		e := newEnv(t, f, NewMultiUser(f.cfg))
		base, pw := uniqueName("rotary_rvk_alone"), newPassword(t)
		f.createRole(t, base, pw, "")
		arn := createSecret(t, e, f.secret(t, base, pw, map[string]any{"masterarn": f.revokingMaster(t, e, false, base)}))
		mustRevoke(t, e, arn)
		f.mustLogin(t, "AWSCURRENT", current(t, e, arn))
		var clones int
		if err := f.adminConn(t).QueryRow(t.Context(), "SELECT count(*) FROM pg_roles WHERE rolname = $1", dbsecret.CloneName(base)).Scan(&clones); err != nil {
			t.Fatal(err)
		}
		if clones != 0 {
			t.Fatal("revoke created the clone")
		}
	})
}

// TestRevokeMultiUserRefuses: with a master secret that is missing, on
// another host, one of the pair or without the right to end sessions, or
// an AWSPREVIOUS outside the pair or on another server, or an AWSCURRENT
// that does not log in, revoke is refused clearly and changes nothing: the
// credential it would have revoked still logs in.
func TestRevokeMultiUserRefuses(t *testing.T) { eachVersion(t, testRevokeMultiUserRefuses) }

func testRevokeMultiUserRefuses(t *testing.T, f *fixture) {
	victim, victimPW := uniqueName("rotary_victim"), newPassword(t)
	f.createRole(t, victim, victimPW, "")
	type env struct {
		e                 *rotationtest.Env
		arn, masterARN    string
		previous, current string
	}
	tests := []struct {
		name   string
		signal bool // the master has pg_signal_backend
		// mutate breaks something and returns the credential that a
		// revoke would have invalidated, which must still log in.
		mutate  func(t *testing.T, s env) string
		wantErr string
	}{
		{"master secret missing", true, func(t *testing.T, s env) string {
			if _, err := s.e.Client.DeleteSecret(context.Background(), &secretsmanager.DeleteSecretInput{
				SecretId: aws.String(s.masterARN), ForceDeleteWithoutRecovery: aws.Bool(true),
			}); err != nil {
				t.Fatal(err)
			}
			return s.previous
		}, "read the secret named by masterarn"},
		{"master secret on another host", true, func(t *testing.T, s env) string {
			_, m, _ := s.e.Value(t, s.masterARN, rotation.LabelCurrent)
			putValue(t, s.e, s.masterARN, withField(t, m, "host", "db.elsewhere.test"))
			return s.previous
		}, "point masterarn at the admin secret of the same database server"},
		{"master user is one of the pair", true, func(t *testing.T, s env) string {
			putValue(t, s.e, s.masterARN, s.current)
			return s.previous
		}, "use a separate admin user"},
		{"master may not end sessions", false, func(t *testing.T, s env) string {
			return s.previous
		}, "GRANT pg_signal_backend TO"},
		{"AWSPREVIOUS outside the pair", true, func(t *testing.T, s env) string {
			putValue(t, s.e, s.arn, f.secret(t, victim, victimPW, map[string]any{"masterarn": s.masterARN}), rotation.LabelPrevious)
			return s.previous
		}, "outside the pair"},
		{"AWSPREVIOUS on another server", true, func(t *testing.T, s env) string {
			putValue(t, s.e, s.arn, withField(t, s.previous, "port", f.c.Port+1), rotation.LabelPrevious)
			return s.previous
		}, "only on AWSCURRENT's server"},
		{"AWSCURRENT does not log in", true, func(t *testing.T, s env) string {
			putValue(t, s.e, s.arn, withField(t, s.current, "password", newPassword(t)))
			return s.previous
		}, "AWSCURRENT does not log in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, f, NewMultiUser(f.cfg))
			base, pw := uniqueName("rotary_rvk_hostile"), newPassword(t)
			f.createRole(t, base, pw, "")
			masterARN := f.revokingMaster(t, e, tt.signal, base)
			arn := createSecret(t, e, f.secret(t, base, pw, map[string]any{"masterarn": masterARN}))
			mustRotate(t, e, arn)
			s := env{e: e, arn: arn, masterARN: masterARN, previous: previous(t, e, arn), current: current(t, e, arn)}
			otherSession := f.session(t, s.previous)
			mustStay := tt.mutate(t, s)
			err := revoke(t, e, arn)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			t.Logf("refused: %v", err)
			for _, p := range []string{field(t, s.previous, "password"), field(t, s.current, "password"), victimPW} {
				if strings.Contains(err.Error(), p) {
					t.Fatal("the error quotes a password")
				}
			}
			f.mustLogin(t, "the credential revoke would have invalidated", mustStay)
			f.mustLogin(t, "the credential current before the refused revoke", s.current)
			f.mustLogin(t, "the victim's password", f.secret(t, victim, victimPW, nil))
			if !alive(otherSession) {
				t.Fatal("a refused revoke ended the other user's session")
			}
		})
	}
}

// trustUsers makes the cluster's pg_hba.conf accept any password for
// users (trust), as a misconfigured server would, until t's cleanup puts
// the file back. The rules name only these users (unique names), so the
// other tests on the shared cluster are unaffected.
func (f *fixture) trustUsers(t *testing.T, users ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := f.c.ConnectAdmin(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var path, hba string
	if err := conn.QueryRow(ctx, "SELECT current_setting('hba_file'), pg_read_file(current_setting('hba_file'))").Scan(&path, &hba); err != nil {
		t.Fatal(err)
	}
	write := func(ctx context.Context, conn *pgx.Conn, lines []string) error {
		var rows []string
		for _, line := range lines {
			rows = append(rows, "("+quoteLiteral(line)+")")
		}
		_, err := conn.Exec(ctx, "COPY (VALUES "+strings.Join(rows, ", ")+") TO "+quoteLiteral(path)+"; SELECT pg_reload_conf()")
		return err
	}
	original := strings.Split(strings.TrimSpace(hba), "\n")
	var lines []string
	for _, u := range users {
		lines = append(lines, "host all "+QuoteIdentifier(u)+" 127.0.0.1/32 trust")
	}
	if err := write(ctx, conn, append(lines, original...)); err != nil {
		t.Fatalf("rewrite pg_hba.conf: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := f.c.ConnectAdmin(ctx, "")
		if err == nil {
			defer conn.Close(ctx)
			err = write(ctx, conn, original)
		}
		if err != nil {
			t.Errorf("put pg_hba.conf back: %v", err)
		}
	})
	// The reload is asynchronous: wait until a wrong password logs in.
	probe := f.secret(t, users[0], "not-the-password", nil)
	f.exec(t, "CREATE ROLE "+QuoteIdentifier(users[0])+" LOGIN")
	defer f.exec(t, "DROP ROLE "+QuoteIdentifier(users[0]))
	for deadline := time.Now().Add(30 * time.Second); f.login(ctx, probe) != nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("pg_hba.conf with trust did not take effect")
		}
	}
}

// TestRevokeWhenServerIgnoresPasswords: when pg_hba.conf trusts the user,
// no password change can make an old password stop logging in; revoke says
// so (ErrStillValid) instead of claiming success, and for alternating users
// it changes nothing.
func TestRevokeWhenServerIgnoresPasswords(t *testing.T) {
	eachVersion(t, testRevokeWhenServerIgnoresPasswords)
}

func testRevokeWhenServerIgnoresPasswords(t *testing.T, f *fixture) {
	single, base := uniqueName("rotary_trust_single"), uniqueName("rotary_trust_base")
	f.trustUsers(t, single, base)
	t.Run("single user", func(t *testing.T) {
		e := newEnv(t, f, NewSingleUser(f.cfg))
		f.createRole(t, single, newPassword(t), "")
		initial := f.secret(t, single, newPassword(t), nil)
		arn := createSecret(t, e, initial)
		// A rotation cannot prove a password the server does not check:
		// testSecret refuses, and AWSCURRENT stays where it was.
		_, err := e.Rotate(t, arn)
		if err == nil || !strings.Contains(err.Error(), "logs in with a random password") {
			t.Fatalf("rotation under trust: err = %v, want a refusal saying the server accepts a random password", err)
		}
		if current(t, e, arn) != initial {
			t.Fatal("AWSCURRENT moved although the rotation could not be proven")
		}
		// The failed rotation is unfinished, so revoke refuses too.
		if err := revoke(t, e, arn); !errors.Is(err, rotation.ErrRevokeRefused) {
			t.Fatalf("revoke after the refused rotation: err = %v, want ErrRevokeRefused", err)
		}
	})
	t.Run("alternating users", func(t *testing.T) {
		e := newEnv(t, f, NewMultiUser(f.cfg))
		f.createRole(t, base, newPassword(t), "")
		arn := createSecret(t, e, f.secret(t, base, newPassword(t), map[string]any{"masterarn": f.revokingMaster(t, e, true, base)}))
		mustRotate(t, e, arn)
		session := f.session(t, previous(t, e, arn))
		verifier := func() string {
			var v string
			if err := f.adminConn(t).QueryRow(t.Context(), "SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = $1", base).Scan(&v); err != nil {
				t.Fatal(err)
			}
			return v
		}
		was := verifier()
		err := revoke(t, e, arn)
		if !errors.Is(err, ErrStillValid) || !strings.Contains(err.Error(), "revoke changes nothing") {
			t.Fatalf("err = %v, want ErrStillValid saying revoke changes nothing", err)
		}
		t.Logf("refused: %v", err)
		if verifier() != was {
			t.Fatal("a refused revoke changed the other user's password")
		}
		if !alive(session) {
			t.Fatal("a refused revoke ended the other user's session")
		}
		f.mustLogin(t, "AWSCURRENT", current(t, e, arn))
	})
}
