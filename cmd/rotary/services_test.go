package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	gomysql "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/rotary-secrets/rotary/internal/elasticachelocal"
	"github.com/rotary-secrets/rotary/internal/mysqlserver"
	"github.com/rotary-secrets/rotary/internal/mysqlserver/mysqltest"
	"github.com/rotary-secrets/rotary/internal/pgcluster"
	"github.com/rotary-secrets/rotary/internal/rdslocal"
	"github.com/rotary-secrets/rotary/internal/redisserver"
	"github.com/rotary-secrets/rotary/internal/redisserver/redistest"
	"github.com/rotary-secrets/rotary/pkg/credentials/postgres/scram"
	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// serviceType is one of the credential types of AWS services, as the CLI
// test below drives it: how to make a fresh credential and its secret, and
// how to prove a secret value logs in (and that a refusal is one).
type serviceType struct {
	name, function string
	// single: one password at a time (rds-master); else the user keeps
	// AWSCURRENT's and AWSPREVIOUS's (Redis users).
	single    bool
	newSecret func(t *testing.T) string
	login     func(ctx context.Context, value string) error
	refused   func(error) bool
	// hashes returns the SHA-256 hashes of the user's passwords (Redis
	// types), to prove which passwords the server holds.
	hashes func(t *testing.T, value string) []string
}

// TestServicesThroughTheCLI runs the CLI's rotate, status, history,
// rollback and revoke against each credential type of an AWS service, on
// a local stack that runs the real redis-acl, elasticache-user and
// rds-master functions under the emulator, with the local RDS and
// ElastiCache APIs served at the stack's endpoint (the functions' SDK
// clients reach them through AWS_ENDPOINT_URL_RDS and
// AWS_ENDPOINT_URL_ELASTICACHE). Behind them are a real redis-server with
// TLS and ACLs, a password-checking PostgreSQL cluster and a MariaDB; the
// local RDS lags its Describe calls as RDS may. Every outcome is proven by
// logging in, and every refusal is the server's.
func TestServicesThroughTheCLI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	redis := redistest.Start(t, redisserver.Options{TLS: true, ACLFile: true})
	pg, err := pgcluster.Start(ctx, pgcluster.Options{TLS: true})
	if err != nil {
		failOrSkip(t, "start a throwaway PostgreSQL cluster: %v", err)
	}
	t.Cleanup(func() { pg.Close() })
	maria := mysqltest.Start(t, mysqlserver.Options{TestCA: true})

	// One CA bundle for the three functions: each server has its own test CA.
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	var pems []byte
	for _, f := range []string{redis.CAFile, pg.CAFile, maria.CAFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pems = append(pems, b...)
	}
	if err := os.WriteFile(bundle, pems, 0o600); err != nil {
		t.Fatal(err)
	}

	rdsAPI := rdslocal.New()
	rdsAPI.SetApplyDelay(200 * time.Millisecond)
	rdsAPI.SetDescribeLag(300 * time.Millisecond)
	ecAPI := elasticachelocal.New()
	ecAPI.Delay = 100 * time.Millisecond
	ecAPI.AddReplicationGroup(elasticachelocal.ReplicationGroup{ID: "orders", Host: redis.Host, Port: redis.Port, UserGroupIDs: []string{"orders-users"}, Redis: redis.Admin})

	s, err := localstack.Start(ctx, localstack.Config{
		Functions: []string{"redis-acl", "elasticache-user", "rds-master"},
		BinDir:    t.TempDir(),
		Env:       []string{"ROTARY_CA_BUNDLE=" + bundle},
		FunctionEnv: map[string][]string{"rds-master": {
			"ROTARY_RDS_MASTER_LOGIN=true", "ROTARY_RDS_POLL_INTERVAL=100ms", "ROTARY_RDS_SETTLE=3s", "ROTARY_RDS_WAIT_TIMEOUT=30s",
		}},
		Retry:    smlocal.RetryPolicy{Attempts: 2},
		Services: map[string]http.Handler{"rds": rdsAPI, "elasticache": ecAPI},
	})
	if err != nil {
		failOrSkip(t, "start the local stack: %v", err)
	}
	t.Cleanup(func() {
		s.Close()
		rdsAPI.Wait()
	})

	redisLogin := func(ctx context.Context, v string) error { return redisserver.Login(ctx, v, redis.CAFile) }
	redisRefused := func(err error) bool { return errors.Is(err, redisserver.ErrRefused) }
	redisHashes := func(t *testing.T, v string) []string {
		t.Helper()
		h, err := redis.PasswordHashes(context.Background(), fieldOf(t, v, "username"))
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(h)
		return h
	}
	types := []serviceType{
		{
			name: "redis-acl", function: "redis-acl", login: redisLogin, refused: redisRefused, hashes: redisHashes,
			newSecret: func(t *testing.T) string {
				user, pw := unique("app"), "Initial-"+unique("pw")
				// The user changes its own passwords (docs/redis.md).
				redistest.CreateUser(t, redis, user, pw, "+ping", "+acl|getuser", "+acl|setuser", "+acl|save")
				return jsonValue(map[string]any{"host": redis.Host, "port": redis.Port, "username": user, "password": pw})
			},
		},
		{
			name: "elasticache-user", function: "elasticache-user", login: redisLogin, refused: redisRefused, hashes: redisHashes,
			newSecret: func(t *testing.T) string {
				id := strings.ReplaceAll(unique("app"), "_", "-")
				user, pw := strings.ReplaceAll(id, "-", "_"), "Initial-"+unique("password")
				if err := ecAPI.AddUser(context.Background(), elasticachelocal.User{UserID: id, UserName: user, AccessString: "on ~app:* +get +ping", UserGroupIDs: []string{"orders-users"}}, pw); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = redis.DeleteUser(context.Background(), user) })
				return jsonValue(map[string]any{"username": user, "password": pw, "user_arn": elasticachelocal.UserARN(id), "host": redis.Host, "port": redis.Port, "replication_group_id": "orders"})
			},
		},
		{
			name: "rds-master/postgres", function: "rds-master", single: true,
			newSecret: func(t *testing.T) string {
				user, pw := unique("master"), "Initial-"+unique("pw")
				if err := pg.CreateRole(context.Background(), user, pw, ""); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = pg.DropRoles(context.Background(), user) })
				id := strings.ReplaceAll(user, "_", "-")
				rdsAPI.AddInstance(rdslocal.Instance{Identifier: id, Engine: "postgres", Address: pg.Host, Port: pg.Port, MasterUsername: user,
					SetMasterPassword: func(ctx context.Context, pw string) error { return pgSetPassword(ctx, pg, user, pw) }})
				return jsonValue(map[string]any{"engine": "postgres", "host": pg.Host, "port": pg.Port, "username": user, "password": pw, "dbname": "postgres", "dbInstanceIdentifier": id})
			},
			login:   func(ctx context.Context, v string) error { return pgLogin(ctx, pg, v) },
			refused: func(err error) bool { return strings.Contains(err.Error(), "28P01") },
		},
		{
			name: "rds-master/mariadb", function: "rds-master", single: true,
			newSecret: func(t *testing.T) string {
				user, pw := unique("master"), "Initial-"+unique("pw")
				mysqltest.CreateUser(t, maria, user, "%", pw)
				id := strings.ReplaceAll(user, "_", "-")
				rdsAPI.AddInstance(rdslocal.Instance{Identifier: id, Engine: "mariadb", Address: "localhost", Port: maria.Port, MasterUsername: user,
					SetMasterPassword: func(ctx context.Context, pw string) error { return mariaSetPassword(ctx, maria, user, pw) }})
				return jsonValue(map[string]any{"engine": "mariadb", "host": "localhost", "port": maria.Port, "username": user, "password": pw, "dbInstanceIdentifier": id})
			},
			login: func(ctx context.Context, v string) error { return mysqlserver.Login(ctx, v, maria.CAFile) },
			refused: func(err error) bool {
				var me *gomysql.MySQLError
				return errors.As(err, &me) && me.Number == 1045
			},
		},
	}
	for _, typ := range types {
		t.Run(typ.name, func(t *testing.T) {
			t.Parallel()
			runServiceCLI(t, s, typ)
		})
	}
}

// runServiceCLI is the operator's story for one type: rotate, status,
// history, rollback, revoke, each through the CLI and proven by logins.
func runServiceCLI(t *testing.T, s *localstack.Stack, typ serviceType) {
	ctx := context.Background()
	initial := typ.newSecret(t)
	name := unique("cli/" + strings.ReplaceAll(typ.name, "/", "-"))
	if _, err := s.Client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(initial)}); err != nil {
		t.Fatal(err)
	}
	cur := func() string {
		t.Helper()
		out, err := s.Client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.SecretString)
	}
	seen := []string{initial}
	cli := func(args ...string) result {
		t.Helper()
		r := rotaryAt(t, s.Endpoint, args...)
		seen = append(seen, cur())
		noSecretIn(t, r.out+r.errOut, seen...)
		if r.code != 0 {
			t.Fatalf("rotary %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.out, r.errOut)
		}
		return r
	}
	mustLogIn := func(what, v string) {
		t.Helper()
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := typ.login(lctx, v); err != nil {
			t.Fatalf("%s (%s) does not log in: %v", what, fingerprint(v), err)
		}
	}
	mustBeRefused := func(what, v string) {
		t.Helper()
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		err := typ.login(lctx, v)
		if err == nil {
			t.Fatalf("%s (%s) still logs in", what, fingerprint(v))
		}
		if !typ.refused(err) {
			t.Fatalf("%s (%s): want the server to refuse the password, got %v", what, fingerprint(v), err)
		}
	}
	mustHold := func(when string, values ...string) {
		t.Helper()
		if typ.hashes == nil {
			return
		}
		var want []string
		for _, v := range values {
			sum := sha256.Sum256([]byte(fieldOf(t, v, "password")))
			want = append(want, hex.EncodeToString(sum[:]))
		}
		slices.Sort(want)
		if got := typ.hashes(t, initial); !slices.Equal(got, want) {
			t.Fatalf("%s the user holds %d passwords, want exactly those of %d versions", when, len(got), len(want))
		}
	}
	mustBeHealthy := func(when string) {
		t.Helper()
		r := cli("status", name, "--verify", "--json")
		var st []secretStatus
		if err := json.Unmarshal([]byte(r.out), &st); err != nil || len(st) != 1 || st[0].State != "ok" {
			t.Fatalf("status --verify %s: %+v %v; want one secret, state ok\n%s", when, st, err, r.out)
		}
	}
	mustLogIn("the initial password", initial)

	// rotate
	r := cli("rotate", name, "--wait", "--function", localstack.FunctionARN(typ.function))
	if !strings.Contains(r.out, "Rotated "+name) {
		t.Fatalf("rotate output:\n%s", r.out)
	}
	rotated := cur()
	mustLogIn("AWSCURRENT after rotate", rotated)
	if typ.single {
		mustBeRefused("the replaced password", initial)
	} else {
		mustLogIn("AWSPREVIOUS after rotate (two passwords)", initial)
		mustHold("after rotate", initial, rotated)
	}
	mustBeHealthy("after rotate")

	// history
	r = cli("history", name, "--json")
	var h struct {
		Versions []struct {
			Labels []string `json:"labels"`
		} `json:"versions"`
	}
	if err := json.Unmarshal([]byte(r.out), &h); err != nil || len(h.Versions) != 2 || !slices.Contains(h.Versions[0].Labels, labelCurrent) || !slices.Contains(h.Versions[1].Labels, "AWSPREVIOUS") {
		t.Fatalf("history --json: %+v %v; want AWSCURRENT then AWSPREVIOUS", h.Versions, err)
	}
	if strings.Contains(r.out, "password") {
		t.Fatal("history --json shows secret content")
	}

	// rollback: the initial value is AWSCURRENT again, and logs in.
	cli("rollback", name, "--yes")
	if cur() != initial {
		t.Fatalf("AWSCURRENT after rollback is %s, want the initial value %s", fingerprint(cur()), fingerprint(initial))
	}
	mustLogIn("AWSCURRENT after rollback (the initial password)", initial)
	if typ.single {
		mustBeRefused("the rolled-back password", rotated)
	} else {
		mustHold("after rollback", initial, rotated)
	}
	mustBeHealthy("after rollback")

	// revoke: only the new AWSCURRENT logs in.
	r = cli("revoke", name, "--yes")
	if !strings.Contains(r.out, "revokeSecret  ok") {
		t.Fatalf("revoke output:\n%s", r.out)
	}
	final := cur()
	mustLogIn("AWSCURRENT after revoke", final)
	mustBeRefused("the initial password after revoke", initial)
	mustBeRefused("the rotated password after revoke", rotated)
	mustHold("after revoke", final)
	mustBeHealthy("after revoke")
}

func jsonValue(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}

func fieldOf(t *testing.T, value, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(value), &m); err != nil {
		t.Fatal(err)
	}
	s, _ := m[name].(string)
	return s
}

// pgSetPassword sets a role's password as the cluster's superuser, as RDS
// does when it applies a master password: a SCRAM verifier, so the
// password never reaches the server's logs.
func pgSetPassword(ctx context.Context, c *pgcluster.Cluster, user, pw string) error {
	v, err := scram.Verifier(pw)
	if err != nil {
		return err
	}
	conn, err := c.ConnectAdmin(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "ALTER ROLE "+pgx.Identifier{user}.Sanitize()+" PASSWORD '"+v+"'")
	return err
}

// mariaSetPassword sets an account's password as root, as RDS does.
func mariaSetPassword(ctx context.Context, s *mysqlserver.Server, user, pw string) error {
	lit := func(v string) string { return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(v) + "'" }
	if _, err := s.Root.ExecContext(ctx, "ALTER USER "+lit(user)+"@'%' IDENTIFIED BY "+lit(pw)); err != nil {
		return errors.New("ALTER USER failed") // the server's message may quote the statement
	}
	return nil
}
