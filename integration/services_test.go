package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5"

	"github.com/rotary-secrets/rotary/internal/elasticachelocal"
	"github.com/rotary-secrets/rotary/internal/rdslocal"
	"github.com/rotary-secrets/rotary/internal/redisserver"
	"github.com/rotary-secrets/rotary/pkg/credentials/postgres/scram"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// redisUsers is the shared redis-server as the tests of the Redis types
// see it: logins, refusals and the passwords a user holds.
type redisUsers struct{ s *redisserver.Server }

func (r redisUsers) login(ctx context.Context, value string) error {
	return redisserver.Login(ctx, value, r.s.CAFile)
}

func (r redisUsers) mustLogIn(t *testing.T, value, what string) {
	t.Helper()
	if err := r.login(within(t, loginTimeout), value); err != nil {
		t.Fatalf("%s does not log in: %v", what, err)
	}
}

func (r redisUsers) mustBeRefused(t *testing.T, value, what string) {
	t.Helper()
	err := r.login(within(t, loginTimeout), value)
	if err == nil {
		t.Fatalf("%s still logs in", what)
	}
	if !errors.Is(err, redisserver.ErrRefused) {
		t.Fatalf("%s: %v; want the server to refuse the password", what, err)
	}
}

// mustHold fails unless the user holds exactly the passwords of values.
func (r redisUsers) mustHold(t *testing.T, user, when string, values ...string) {
	t.Helper()
	got, err := r.s.PasswordHashes(within(t, loginTimeout), user)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, v := range values {
		sum := sha256.Sum256([]byte(passwordOf(t, v)))
		want = append(want, hex.EncodeToString(sum[:]))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s user %s holds %d passwords, want exactly those of %d versions", when, user, len(got), len(want))
	}
}

func passwordOf(t *testing.T, value string) string {
	t.Helper()
	var v struct{ Password string }
	if err := json.Unmarshal([]byte(value), &v); err != nil || v.Password == "" {
		t.Fatal("the value has no password")
	}
	return v.Password
}

// redisACLSecret creates a user that changes its own passwords and
// returns its name and secret value.
func redisACLSecret(t *testing.T, r redisUsers) (user, value string) {
	t.Helper()
	user, pw := uniqueName("e2e_redis"), "Initial-"+uniqueName("password")
	if err := r.s.CreateUser(within(t, loginTimeout), user, pw, "+ping", "+acl|getuser", "+acl|setuser", "+acl|save"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.s.DeleteUser(context.Background(), user) })
	return user, jsonValue(t, map[string]any{"host": r.s.Host, "port": r.s.Port, "username": user, "password": pw, "team": "kept"}, nil)
}

// elastiCacheSecret creates an ElastiCache user in userGroup through the
// local ElastiCache API and returns its name and secret value for the
// replication group "orders".
func elastiCacheSecret(t *testing.T, r redisUsers, userGroup string) (user, value string) {
	t.Helper()
	id := strings.ReplaceAll(uniqueName("e2e-ec"), "_", "-")
	user, pw := strings.ReplaceAll(id, "-", "_"), "Initial-"+uniqueName("password")
	if err := ecAPI.AddUser(within(t, loginTimeout), elasticachelocal.User{UserID: id, UserName: user, AccessString: "on ~app:* +get +ping", UserGroupIDs: []string{userGroup}}, pw); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.s.DeleteUser(context.Background(), user) })
	return user, jsonValue(t, map[string]any{"username": user, "password": pw, "user_arn": elasticachelocal.UserARN(id), "host": r.s.Host, "port": r.s.Port, "replication_group_id": "orders", "team": "kept"}, nil)
}

// rdsMasterSecret makes a login role on the shared PostgreSQL cluster the
// master user of a new instance of the local RDS API (which sets its
// password as the superuser when it applies a change) and returns the
// instance's identifier and the secret value.
func rdsMasterSecret(t *testing.T, db postgresDB, mutate func(*rdslocal.Instance)) (id, value string) {
	t.Helper()
	user, pw := uniqueName("e2e_master"), "Initial-"+uniqueName("pw")
	db.createUser(t, user, pw)
	id = strings.ReplaceAll(user, "_", "-")
	inst := rdslocal.Instance{Identifier: id, Engine: "postgres", Address: db.c.Host, Port: db.c.Port, MasterUsername: user,
		SetMasterPassword: func(ctx context.Context, pw string) error {
			v, err := scram.Verifier(pw)
			if err != nil {
				return err
			}
			conn, err := db.c.ConnectAdmin(ctx, "")
			if err != nil {
				return err
			}
			defer conn.Close(context.WithoutCancel(ctx))
			_, err = conn.Exec(ctx, "ALTER ROLE "+pgx.Identifier{user}.Sanitize()+" PASSWORD '"+v+"'")
			return err
		}}
	if mutate != nil {
		mutate(&inst)
	}
	rdsAPI.AddInstance(inst)
	return id, db.secretValue(t, user, pw, map[string]any{"dbInstanceIdentifier": id})
}

// TestServiceRotationIsProvenByLogin rotates a credential of each AWS
// service type twice through RotateSecret and the real function under the
// emulator, reaching the local RDS and ElastiCache APIs at the stack's
// endpoint, and proves each result by logging in: the Redis users keep
// exactly AWSCURRENT's and AWSPREVIOUS's passwords (the one before is
// refused); rds-master without a login, whose local RDS lags its Describe
// calls, leaves only AWSCURRENT's password working, and each rotation ends
// only once RDS applied it.
func TestServiceRotationIsProvenByLogin(t *testing.T) {
	t.Run(fnRedisACL, func(t *testing.T) {
		t.Parallel()
		r := redisUsers{redisFix.get(t)}
		user, initial := redisACLSecret(t, r)
		twoPasswords(t, r, fnRedisACL, user, initial)
	})
	t.Run(fnElastiCache, func(t *testing.T) {
		t.Parallel()
		r := redisUsers{redisFix.get(t)}
		user, initial := elastiCacheSecret(t, r, "orders-users")
		twoPasswords(t, r, fnElastiCache, user, initial)
	})
	t.Run(fnRDSMaster, func(t *testing.T) {
		t.Parallel()
		db := postgresServer(t).(postgresDB)
		id, initial := rdsMasterSecret(t, db, nil)
		arn := newSecret(t, initial, nil)
		values := []string{initial}
		for i := 1; i <= 2; i++ {
			before := rdsAPI.Applied(id)
			cur := mustRotate(t, fnRDSMaster, arn, fmt.Sprintf("rotation %d", i))
			values = append(values, cur)
			// The rotation ended: RDS applied the password by then (the
			// lagging Describe did not pass for applied).
			mustLogIn(t, db, cur, fmt.Sprintf("AWSCURRENT right after rotation %d", i))
			mustBeRefused(t, db, values[i-1], fmt.Sprintf("the password rotation %d replaced", i))
			if n := rdsAPI.Applied(id) - before; n != 1 {
				t.Fatalf("rotation %d applied %d master password changes, want 1", i, n)
			}
		}
		mustNotBeLogged(t, values...)
	})
}

// twoPasswords rotates a Redis user's secret twice and proves the two
// passwords at each point.
func twoPasswords(t *testing.T, r redisUsers, function, user, initial string) {
	t.Helper()
	arn := newSecret(t, initial, nil)
	values := []string{initial}
	for i := 1; i <= 2; i++ {
		cur := mustRotate(t, function, arn, fmt.Sprintf("rotation %d", i))
		values = append(values, cur)
		if !strings.Contains(cur, `"team":"kept"`) {
			t.Fatalf("rotation %d lost the field team", i)
		}
		r.mustLogIn(t, cur, fmt.Sprintf("AWSCURRENT after rotation %d", i))
		r.mustLogIn(t, values[i-1], fmt.Sprintf("AWSPREVIOUS after rotation %d", i))
		r.mustHold(t, user, fmt.Sprintf("after rotation %d", i), values[i-1], cur)
	}
	r.mustBeRefused(t, initial, "the password before AWSPREVIOUS")
	mustNotBeLogged(t, values...)
}

// TestServiceRotationFailsWithAWorkingCurrent: a rotation of a Redis type
// that cannot finish (the pending password is removed from the user by
// hand before every testSecret, so every attempt fails) leaves AWSCURRENT
// logging in: setSecret never took its password away.
func TestServiceRotationFailsWithAWorkingCurrent(t *testing.T) {
	for _, fn := range []string{fnRedisACL, fnElastiCache} {
		t.Run(fn, func(t *testing.T) {
			r := redisUsers{redisFix.get(t)}
			var user, initial string
			if fn == fnRedisACL {
				user, initial = redisACLSecret(t, r)
			} else {
				user, initial = elastiCacheSecret(t, r, "orders-users")
			}
			arn := newSecret(t, initial, nil)
			inject.set(func(ctx context.Context, ev smlocal.Event, run func() error) error {
				if ev.SecretId == arn && ev.Step == rotation.StepTest {
					out, err := stack.Client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionId: aws.String(ev.ClientRequestToken)})
					if err != nil {
						return err
					}
					sum := sha256.Sum256([]byte(passwordOf(t, aws.ToString(out.SecretString))))
					if err := r.s.Admin.Do(ctx, "ACL", "SETUSER", user, "!"+hex.EncodeToString(sum[:])).Err(); err != nil {
						return err
					}
				}
				return run()
			})
			t.Cleanup(func() { inject.set(nil) })
			_, rot := rotateWith(t, fn, arn)
			inject.set(nil)
			if rot.State == smlocal.RotationSucceeded {
				t.Fatal("the rotation succeeded although its password was removed before every testSecret")
			}
			if _, cur := label(t, arn, rotation.LabelCurrent); cur != initial {
				t.Fatal("AWSCURRENT changed although the rotation failed")
			}
			r.mustLogIn(t, initial, "AWSCURRENT after the failed rotation")
			r.mustHold(t, user, "after the failed rotation", initial)
			// The next rotation (AWSPENDING removed, as 'rotary unstick' does) works.
			pending, _ := label(t, arn, rotation.LabelPending)
			if _, err := stack.Client.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(arn), VersionStage: aws.String(rotation.LabelPending), RemoveFromVersionId: aws.String(pending)}); err != nil {
				t.Fatal(err)
			}
			cur := mustRotate(t, fn, arn, "the rotation after the failed one")
			r.mustLogIn(t, cur, "AWSCURRENT after the next rotation")
			r.mustHold(t, user, "after the next rotation", initial, cur)
		})
	}
}
