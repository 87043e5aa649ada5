package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/jackc/pgx/v5"

	"github.com/rotary-secrets/rotary/internal/pgcluster"
	"github.com/rotary-secrets/rotary/internal/pgcluster/pgtest"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/password"
)

// clusters are the TLS-enabled throwaway clusters the tests of this package
// share, one per PostgreSQL version; plainCluster has no TLS, for the
// plaintext-refusal test.
var (
	clusters     = pgtest.NewMatrix(pgcluster.Options{TLS: true, TLSHosts: []string{"127.0.0.1"}})
	plainCluster = pgtest.NewShared(pgcluster.Options{})
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := errors.Join(clusters.Close(), plainCluster.Close()); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

type fixture struct {
	c   *pgcluster.Cluster
	cfg Config
}

// testConnectTimeout bounds each login of the tests. It is longer than the
// functions' default (5s): on a 2-core machine busy with the race detector,
// six servers and other work, a scram-sha-256 login over TLS can take
// longer, and no test relies on a login timing out.
const testConnectTimeout = 20 * time.Second

func newFixture(c *pgcluster.Cluster) *fixture {
	return &fixture{c: c, cfg: Config{DB: dbsecret.Config{CABundlePath: c.CAFile, ConnectTimeout: testConnectTimeout, StatementTimeout: 30 * time.Second}}}
}

// setup returns the shared cluster of the default PostgreSQL (Debian's 15,
// or $ROTARY_PG_BIN) and a Config that trusts its test CA.
func setup(t *testing.T) *fixture {
	t.Helper()
	return newFixture(clusters.Default(t))
}

// eachVersion runs test once for every PostgreSQL version RDS runs
// (pgcluster.Majors), as parallel subtests pg13 ... pg18, each with the
// shared cluster of its version. With CI=true a version that is not
// installed fails its subtest; otherwise it is skipped.
func eachVersion(t *testing.T, test func(t *testing.T, f *fixture)) {
	clusters.Run(t, func(t *testing.T, c *pgcluster.Cluster) { test(t, newFixture(c)) })
}

var seq atomic.Int64

// uniqueName returns a role name no other test uses.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, os.Getpid()%100000, seq.Add(1))
}

func newPassword(t *testing.T) string {
	t.Helper()
	pw, err := password.DefaultPolicy().Generate()
	if err != nil {
		t.Fatal(err)
	}
	return pw
}

// exec runs SQL as the cluster's superuser in database postgres.
func (f *fixture) exec(t *testing.T, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := f.c.ConnectAdmin(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("superuser SQL failed: %v", err)
	}
}

// createRole creates a login role with a password (sent as a verifier) and
// drops it, its clone and everything they own in t.Cleanup.
func (f *fixture) createRole(t *testing.T, name, password, attrs string) {
	t.Helper()
	pgtest.CreateRole(t, f.c, name, password, attrs, dbsecret.CloneName(name))
}

func (f *fixture) dropRoles(t *testing.T, names ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := f.c.ConnectAdmin(ctx, "")
	if err != nil {
		t.Error(err)
		return
	}
	defer conn.Close(ctx)
	for _, n := range names {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", n).Scan(&exists); err != nil {
			t.Error(err)
			continue
		}
		if !exists {
			continue
		}
		if _, err := conn.Exec(ctx, "DROP OWNED BY "+QuoteIdentifier(n)+" CASCADE; DROP ROLE "+QuoteIdentifier(n)); err != nil {
			t.Errorf("drop role %q: %v", n, err)
		}
	}
}

// secret returns a database secret JSON for the shared cluster.
func (f *fixture) secret(t *testing.T, user, password string, extra map[string]any) string {
	t.Helper()
	m := map[string]any{"engine": "postgres", "host": f.c.Host, "port": f.c.Port, "username": user, "password": password, "dbname": "postgres"}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// login logs in with a secret value and runs a query.
func (f *fixture) login(ctx context.Context, value string) error {
	s, err := dbsecret.Parse(value)
	if err != nil {
		return err
	}
	return f.cfg.check(ctx, s)
}

func (f *fixture) mustLogin(t *testing.T, what, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.login(ctx, value); err != nil {
		t.Fatalf("%s does not log in: %v", what, err)
	}
}

func (f *fixture) mustNotLogin(t *testing.T, what, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := f.login(ctx, value)
	if err == nil {
		t.Fatalf("%s logs in, but it must not", what)
	}
	// Only the server refusing the password proves it; a network or TLS
	// error, or a value that does not parse, proves nothing.
	if !isAuthFailure(err) {
		t.Fatalf("%s: want the server to refuse the password, got %v", what, err)
	}
}

// withField returns value with one field replaced.
func withField(t testing.TB, value, field string, v any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(value), &m); err != nil {
		t.Fatal(err)
	}
	if v == nil {
		delete(m, field)
	} else {
		m[field] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func field(t testing.TB, value, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(value), &m); err != nil {
		t.Fatal(err)
	}
	s, _ := m[name].(string)
	return s
}

// masterGrants is the SQL that docs/postgres.md's "Database privileges" tells a
// DBA to run for the master user of postgres-multi-user on PostgreSQL
// major, beyond CREATE ROLE admin WITH LOGIN CREATEROLE, for the base user
// app: nothing before 16; on 16 and later ADMIN OPTION on the base role,
// without its privileges (INHERIT FALSE) or the right to become it (SET FALSE).
func masterGrants(major int, admin, app string) []string {
	if major < 16 {
		return nil
	}
	return []string{"GRANT " + app + " TO " + admin + " WITH ADMIN OPTION, INHERIT FALSE, SET FALSE"}
}

// master creates an admin role with exactly the privileges docs/postgres.md
// gives the master user on this server's version, the least alternating
// users need: CREATEROLE and, for each of roles (the base user, and a clone
// the master did not create), masterGrants. It stores the master's secret
// in the local Secrets Manager and returns the secret's ARN. The roles must
// exist.
func (f *fixture) master(t *testing.T, sm *secretsmanager.Client, value func(user, pw string) string, tags map[string]string, roles ...string) string {
	t.Helper()
	user, pw := f.masterUser(t, roles...)
	in := &secretsmanager.CreateSecretInput{Name: aws.String("master/" + user), SecretString: aws.String(value(user, pw))}
	for k, v := range tags {
		in.Tags = append(in.Tags, smtypes.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	out, err := sm.CreateSecret(context.Background(), in)
	if err != nil {
		t.Fatalf("create master secret: %v", err)
	}
	return aws.ToString(out.ARN)
}

// masterUser creates the admin role of master and returns its name and password.
func (f *fixture) masterUser(t *testing.T, roles ...string) (user, pw string) {
	t.Helper()
	user, pw = uniqueName("rotary_master"), newPassword(t)
	f.createRole(t, user, pw, "CREATEROLE")
	for _, role := range roles {
		for _, sql := range masterGrants(f.c.Major, QuoteIdentifier(user), QuoteIdentifier(role)) {
			f.exec(t, sql)
		}
	}
	return user, pw
}

// adminConn connects as the superuser for checks; closed in t.Cleanup.
func (f *fixture) adminConn(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := f.c.ConnectAdmin(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
