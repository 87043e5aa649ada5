package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotary-secrets/rotary/internal/mysqlserver"
	"github.com/rotary-secrets/rotary/internal/mysqlserver/mysqltest"
	"github.com/rotary-secrets/rotary/internal/pgcluster"
	"github.com/rotary-secrets/rotary/internal/pgcluster/pgtest"
	"github.com/rotary-secrets/rotary/pkg/issuer"
	"github.com/rotary-secrets/rotary/pkg/localauth"
	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/registry"
	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
)

// The caller the issuer tests sign as: a local key with its secret, which
// the stack's directory maps to an IAM user.
const (
	aliceKey    = "AKIAALICEEXAMPLE0001"
	aliceSecret = "alice-local-secret-key-0001"
	aliceARN    = "arn:aws:iam::123456789012:user/alice"
)

// lockedBuffer collects the functions' output of a stack.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func newLog() *lockedBuffer { return &lockedBuffer{} }

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// issuerStack starts a stack running the credential issuer with roles
// (ROTARY_ISSUER_ROLES) and the CA bundle, alice as a local principal, and
// signs the CLI's requests as alice (the SDK's environment credentials).
func issuerStack(t *testing.T, roles map[string]any, caFiles ...string) (*localstack.Stack, *lockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var bundle []byte
	for _, f := range caFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		bundle = append(bundle, b...)
	}
	rolesJSON, _ := json.Marshal(roles)
	env := []string{issuer.EnvRoles + "=" + string(rolesJSON)}
	if len(bundle) > 0 {
		caFile := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(caFile, bundle, 0o644); err != nil {
			t.Fatal(err)
		}
		env = append(env, "ROTARY_CA_BUNDLE="+caFile)
	}
	log := newLog()
	s, err := localstack.Start(ctx, localstack.Config{
		Functions:  []string{registry.Issuer.Name},
		Env:        env,
		Principals: []localauth.Principal{{AccessKeyID: aliceKey, SecretAccessKey: aliceSecret, ARN: aliceARN}},
		Log:        log,
	})
	if err != nil {
		failOrSkip(t, "start the local stack: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	t.Setenv("AWS_ACCESS_KEY_ID", aliceKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", aliceSecret)
	t.Setenv("AWS_REGION", localstack.Region)
	t.Setenv(envIssuerURL, "")
	return s, log
}

// putSecret stores a master secret in the stack and returns its ARN.
func putSecret(t *testing.T, s *localstack.Stack, name string, v map[string]any) string {
	t.Helper()
	b, _ := json.Marshal(v)
	out, err := s.Client.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(string(b))})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.ARN)
}

// issueCLI runs rotary issue on the stack and decodes the credential.
func issueCLI(t *testing.T, s *localstack.Stack, args ...string) (issuer.Credential, result) {
	t.Helper()
	r := rotaryAt(t, s.Endpoint, append([]string{"issue"}, args...)...)
	var c issuer.Credential
	if r.code == 0 {
		if err := json.Unmarshal([]byte(r.out), &c); err != nil {
			t.Fatalf("rotary issue printed no credential: %v\n%s", err, r.out)
		}
	}
	return c, r
}

// pgConnect logs in to the cluster as user over verified TLS.
func pgConnect(ctx context.Context, c *pgcluster.Cluster, user, password, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database = c.Host, uint16(c.Port), user, password, db
	cfg.TLSConfig, cfg.Fallbacks = c.TLSConfig(c.Host), nil
	cfg.ConnectTimeout = 5 * time.Second
	return pgx.ConnectConfig(ctx, cfg)
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// TestIssuerPostgres: through the local function URL (real SigV4 signing by
// the CLI, the real function under the emulator, a PostgreSQL cluster that
// checks passwords), a caller gets its own user with exactly the base
// user's privileges; the server itself refuses it after expiresAt; leases
// lists the issued users; revoke --leases drops them and ends a live
// session; unknown roles and TTLs over the maximum are refused; the
// password is in no log line.
func TestIssuerPostgres(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	u := strings.TrimPrefix(unique(""), "_")
	base, masterUser, masterPW := "iss_base_"+u, "iss_master_"+u, "Master-"+unique("pw")
	pgtest.CreateRole(t, c, base, "Base-"+unique("pw"), "")
	pgtest.CreateRole(t, c, masterUser, masterPW, "CREATEROLE")
	readable, secret := "iss_t_"+u, "iss_secret_"+u
	grant(t, c, fmt.Sprintf("CREATE TABLE %s (x int); INSERT INTO %s VALUES (42); CREATE TABLE %s (x int); GRANT SELECT ON %s TO %s; GRANT pg_signal_backend TO %s",
		readable, readable, secret, readable, base, masterUser))
	t.Cleanup(func() {
		conn, err := c.ConnectAdmin(ctx, "")
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		rows, _ := conn.Query(ctx, "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)", base+"_")
		names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		_ = c.DropRoles(ctx, names...)
		_, _ = conn.Exec(ctx, "DROP TABLE IF EXISTS "+readable+", "+secret)
	})
	roles := map[string]any{
		"pg-read": map[string]any{"engine": "postgres", "masterarn": "issuer/pg-master-" + u, "baseUser": base, "dbname": "postgres", "defaultTtl": "10m", "maxTtl": "1h"},
	}
	s, log := issuerStack(t, roles, c.CAFile)
	putSecret(t, s, "issuer/pg-master-"+u, map[string]any{"engine": "postgres", "host": c.Host, "port": c.Port, "username": masterUser, "password": masterPW, "dbname": "postgres"})

	// A signed request gets a credential that logs in and acts as the base
	// user: it reads the base user's table, not another, and cannot create roles.
	t0 := time.Now()
	cred, r := issueCLI(t, s, "pg-read")
	if r.code != 0 {
		t.Fatalf("rotary issue pg-read: exit %d: %s\nfunction log:\n%s", r.code, r.errOut, log)
	}
	if cred.Password == "" || cred.Host != c.Host || cred.Port != c.Port || cred.DBName != "postgres" || !strings.HasPrefix(cred.Username, base+"_") {
		t.Fatalf("credential = user %q host %q port %d dbname %q (password set: %v); want a user of %s on %s:%d postgres", cred.Username, cred.Host, cred.Port, cred.DBName, cred.Password != "", base, c.Host, c.Port)
	}
	if d := cred.ExpiresAt.Sub(t0); d < 9*time.Minute || d > 11*time.Minute {
		t.Errorf("expiresAt is %s after the request; want the role's default of 10m", d)
	}
	conn, err := pgConnect(ctx, c, cred.Username, cred.Password, "postgres")
	if err != nil {
		t.Fatalf("the issued credential does not log in: %v", err)
	}
	var x int
	if err := conn.QueryRow(ctx, "SELECT x FROM "+readable).Scan(&x); err != nil || x != 42 {
		t.Errorf("the issued user cannot read the base user's table: %v", err)
	}
	if _, err := conn.Exec(ctx, "SELECT x FROM "+secret); pgCode(err) != "42501" {
		t.Errorf("the issued user reads a table the base user may not: err = %v, want permission denied (42501)", err)
	}
	if _, err := conn.Exec(ctx, "CREATE ROLE iss_never_"+u); pgCode(err) != "42501" {
		t.Errorf("the issued user may create roles (the master's privilege): err = %v, want 42501", err)
	}
	conn.Close(ctx)
	if _, err := pgConnect(ctx, c, cred.Username, cred.Password+"x", "postgres"); pgCode(err) != "28P01" {
		t.Fatalf("a wrong password for the issued user: err = %v, want refused (28P01)", err)
	}

	// The audit line names the caller, the role, the user and the expiry.
	audit := ""
	for _, line := range strings.Split(log.String(), "\n") {
		if strings.Contains(line, `"msg":"credential issued"`) && strings.Contains(line, cred.Username) {
			audit = line
		}
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(audit), &rec); err != nil || rec["caller"] != aliceARN || rec["role"] != "pg-read" || rec["user"] != cred.Username || rec["expiresAt"] != cred.ExpiresAt.UTC().Format(time.RFC3339) || rec["accessKey"] != aliceKey {
		t.Errorf("no audit line with caller %s, role, user and expiresAt for the issued credential; got %q", aliceARN, audit)
	}

	// Refusals: an unknown role (404), a TTL over the maximum (400).
	if _, r := issueCLI(t, s, "no-such-role"); r.code != 1 || !strings.Contains(r.errOut, "HTTP 404") || !strings.Contains(r.errOut, `no role "no-such-role"`) {
		t.Errorf("rotary issue no-such-role: exit %d, stderr %q; want exit 1 naming HTTP 404 and the role", r.code, r.errOut)
	}
	if _, r := issueCLI(t, s, "pg-read", "--ttl", "2h"); r.code != 1 || !strings.Contains(r.errOut, "HTTP 400") || !strings.Contains(r.errOut, "maximum of 1h0m0s") {
		t.Errorf("rotary issue --ttl 2h over a 1h maximum: exit %d, stderr %q; want exit 1 with HTTP 400 naming the maximum", r.code, r.errOut)
	}

	// Expiry: the server refuses the credential after expiresAt, by itself
	// (the user still exists: no reaper ran).
	short, r := issueCLI(t, s, "pg-read", "--ttl", "3s")
	if r.code != 0 {
		t.Fatalf("rotary issue --ttl 3s: exit %d: %s", r.code, r.errOut)
	}
	if conn, err := pgConnect(ctx, c, short.Username, short.Password, "postgres"); err != nil {
		t.Fatalf("the 3s credential does not log in before it expires: %v", err)
	} else {
		conn.Close(ctx)
	}
	time.Sleep(time.Until(short.ExpiresAt) + 1500*time.Millisecond)
	if _, err := pgConnect(ctx, c, short.Username, short.Password, "postgres"); pgCode(err) != "28P01" {
		t.Fatalf("the credential after expiresAt: err = %v, want refused by the server (28P01)", err)
	}
	admin, err := c.ConnectAdmin(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", short.Username).Scan(&exists); err != nil || !exists {
		t.Fatalf("the expired user is gone (%v): the refusal must be the server's own VALID UNTIL", err)
	}

	// leases lists both users of the role, the expired one as expired.
	r = rotaryAt(t, s.Endpoint, "leases", "pg-read", "--json")
	if r.code != 0 {
		t.Fatalf("rotary leases: exit %d: %s", r.code, r.errOut)
	}
	var ls []issuer.Lease
	if err := json.Unmarshal([]byte(r.out), &ls); err != nil {
		t.Fatalf("rotary leases --json: %v\n%s", err, r.out)
	}
	got := map[string]bool{}
	for _, l := range ls {
		got[l.Username] = l.Expired
	}
	if len(ls) != 2 || got[cred.Username] || !got[short.Username] {
		t.Fatalf("leases = %+v; want %s live and %s expired", ls, cred.Username, short.Username)
	}
	if r := rotaryAt(t, s.Endpoint, "leases"); r.code != 0 || !strings.Contains(r.out, cred.Username) || !strings.Contains(r.out, "left") || !strings.Contains(r.out, "not yet reaped") {
		t.Errorf("rotary leases (table): exit %d\n%s%s", r.code, r.out, r.errOut)
	}

	// revoke --leases drops them all and ends a live session.
	live, err := pgConnect(ctx, c, cred.Username, cred.Password, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close(ctx)
	r = rotaryAt(t, s.Endpoint, "revoke", "--leases", "pg-read", "--yes")
	if r.code != 0 || !strings.Contains(r.out, "Revoked 2 credentials") {
		t.Fatalf("rotary revoke --leases pg-read: exit %d\n%s%s\nfunction log:\n%s", r.code, r.out, r.errOut, log)
	}
	if err := live.QueryRow(ctx, "SELECT 1").Scan(&x); err == nil {
		t.Error("a session of a revoked credential still runs queries")
	}
	if _, err := pgConnect(ctx, c, cred.Username, cred.Password, "postgres"); err == nil {
		t.Error("a revoked credential still logs in")
	}
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", base).Scan(&exists); err != nil || !exists {
		t.Errorf("revoke dropped the base user %s (%v)", base, err)
	}
	if r := rotaryAt(t, s.Endpoint, "leases", "pg-read", "--json"); r.code != 0 || strings.TrimSpace(r.out) != "[]" {
		t.Errorf("leases after revoke: exit %d: %s%s; want []", r.code, r.out, r.errOut)
	}

	for _, pw := range []string{cred.Password, short.Password, masterPW} {
		if rotationtest.Leaks(log.String(), pw) || rotationtest.Leaks(r.errOut, pw) {
			t.Fatalf("a password (%s) appears in the function log or the CLI's stderr", fingerprint(pw))
		}
	}
}

// TestIssuerRefusesUnsignedRequests: the local function URL answers 403
// {"Message":"Forbidden"}, as AWS does, to a request that is unsigned,
// signed with a wrong secret or an unknown key, or signed for another
// service; the function never runs for them. A request signed by the SDK's
// signer gets through, and the function answers bad JSON with 400.
func TestIssuerRefusesUnsignedRequests(t *testing.T) {
	s, log := issuerStack(t, map[string]any{
		"r": map[string]any{"engine": "postgres", "masterarn": "issuer/none", "baseUser": "nobody"},
	})
	target, ok := s.FunctionURL(registry.Issuer.Name)
	if !ok {
		t.Fatal("the stack serves no function URL for the issuer")
	}
	// rotary issue finds the URL through GetFunctionUrlConfig.
	cfg, err := s.LambdaClient().GetFunctionUrlConfig(context.Background(), &awslambda.GetFunctionUrlConfigInput{FunctionName: aws.String("rotary-" + registry.Issuer.Name)})
	if err != nil || aws.ToString(cfg.FunctionUrl) != target || cfg.AuthType != "AWS_IAM" {
		t.Fatalf("GetFunctionUrlConfig = %+v, %v; want %s with AWS_IAM", cfg, err, target)
	}
	post := func(body string, sign func(*http.Request, string)) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if sign != nil {
			sign(req, body)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	signer := func(key, secret, service string) func(*http.Request, string) {
		return func(req *http.Request, body string) {
			sum := sha256.Sum256([]byte(body))
			if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: key, SecretAccessKey: secret}, req, hex.EncodeToString(sum[:]), service, localstack.Region, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := strings.Count(log.String(), `"msg":"credential refused"`)
	for name, sign := range map[string]func(*http.Request, string){
		"unsigned":           nil,
		"wrong secret":       signer(aliceKey, aliceSecret+"x", "lambda"),
		"unknown key":        signer("AKIAUNKNOWNKEY000001", aliceSecret, "lambda"),
		"other service":      signer(aliceKey, aliceSecret, "execute-api"),
		"body changed after": func(req *http.Request, body string) { signer(aliceKey, aliceSecret, "lambda")(req, body+" ") },
	} {
		if code, body := post(`{"role":"r"}`, sign); code != http.StatusForbidden || body != `{"Message":"Forbidden"}` {
			t.Errorf("%s: HTTP %d %s; want 403 {\"Message\":\"Forbidden\"}", name, code, body)
		}
	}
	if n := strings.Count(log.String(), `"msg":"credential refused"`); n != before {
		t.Errorf("the function ran for %d refused requests; IAM refuses them before the function", n-before)
	}
	if !strings.Contains(log.String(), "InvalidSignatureException") {
		t.Errorf("the stack's log does not say why it refused a request:\n%s", log)
	}
	// Signed: the function answers, with its own refusals.
	if code, body := post(`{not json`, signer(aliceKey, aliceSecret, "lambda")); code != http.StatusBadRequest || !strings.Contains(body, "not a JSON object") {
		t.Errorf("signed, bad JSON: HTTP %d %s; want 400 from the function", code, body)
	}
	if code, body := post(`{"role":"other"}`, signer(aliceKey, aliceSecret, "lambda")); code != http.StatusNotFound || !strings.Contains(body, `no role \"other\"`) {
		t.Errorf("signed, unknown role: HTTP %d %s; want 404", code, body)
	}
	// The CLI signing with a wrong secret is refused, and says so.
	t.Setenv("AWS_SECRET_ACCESS_KEY", aliceSecret+"x")
	if _, r := issueCLI(t, s, "r", "--url", target); r.code != 1 || !strings.Contains(r.errOut, "HTTP 403") {
		t.Errorf("rotary issue with a wrong secret: exit %d, stderr %q; want exit 1 with HTTP 403", r.code, r.errOut)
	}
}

// TestIssuerMariaDB: on MariaDB the issued user gets the base user's grants
// and no more; the server has no expiry of its own, so an expired
// credential works until the reaper (the operator event "reap") drops it;
// revoke --leases ends a live connection; no password in the log.
func TestIssuerMariaDB(t *testing.T) {
	db := mysqltest.Start(t, mysqlserver.Options{TestCA: true})
	ctx := context.Background()
	u := strings.TrimPrefix(unique(""), "_")
	base, masterUser, masterPW, dbName := "ib"+u[:6], "im_"+u, "Master-"+unique("pw"), "idb_"+u
	for _, stmt := range []string{
		"CREATE DATABASE " + dbName, "CREATE TABLE " + dbName + ".t (x INT)", "INSERT INTO " + dbName + ".t VALUES (42)", "CREATE TABLE " + dbName + ".secret (x INT)",
	} {
		if _, err := db.Root.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	mysqltest.CreateUser(t, db, base, "%", "Base-"+unique("pw"), "GRANT SELECT ON "+dbName+".t")
	mysqltest.CreateUser(t, db, masterUser, "%", masterPW, "GRANT CREATE USER ON *.*", "GRANT SELECT ON mysql.*", "GRANT PROCESS, CONNECTION ADMIN ON *.*",
		"GRANT ALL PRIVILEGES ON rotary.*")
	if _, err := db.Root.ExecContext(ctx, "GRANT SELECT ON "+dbName+".t TO '"+masterUser+"'@'%' WITH GRANT OPTION"); err != nil {
		t.Fatal(err)
	}
	roles := map[string]any{
		"my-read": map[string]any{"engine": "mysql", "masterarn": "issuer/my-master-" + u, "baseUser": base, "dbname": dbName, "defaultTtl": "10m", "maxTtl": "1h"},
	}
	s, log := issuerStack(t, roles, db.CAFile)
	putSecret(t, s, "issuer/my-master-"+u, map[string]any{"engine": "mariadb", "host": "localhost", "port": db.Port, "username": masterUser, "password": masterPW})

	open := func(c issuer.Credential) (*sql.DB, error) {
		pem, err := os.ReadFile(db.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		mc := mysql.NewConfig()
		mc.Net, mc.Addr, mc.User, mc.Passwd, mc.DBName = "tcp", net.JoinHostPort(c.Host, strconv.Itoa(c.Port)), c.Username, c.Password, c.DBName
		mc.TLS, mc.Timeout, mc.AllowNativePasswords = &tls.Config{RootCAs: pool, ServerName: c.Host}, 5*time.Second, true
		conn, err := mysql.NewConnector(mc)
		if err != nil {
			return nil, err
		}
		d := sql.OpenDB(conn)
		d.SetMaxOpenConns(1)
		if err := d.PingContext(ctx); err != nil {
			d.Close()
			return nil, err
		}
		return d, nil
	}
	cred, r := issueCLI(t, s, "my-read")
	if r.code != 0 {
		t.Fatalf("rotary issue my-read: exit %d: %s\nfunction log:\n%s", r.code, r.errOut, log)
	}
	if !strings.HasPrefix(cred.Username, base+"_") || cred.Host != "localhost" || cred.Port != db.Port || cred.DBName != dbName {
		t.Fatalf("credential = user %q at %s:%d db %q; want a user of %s at localhost:%d db %s", cred.Username, cred.Host, cred.Port, cred.DBName, base, db.Port, dbName)
	}
	conn, err := open(cred)
	if err != nil {
		t.Fatalf("the issued credential does not log in: %v", err)
	}
	var x int
	if err := conn.QueryRowContext(ctx, "SELECT x FROM t").Scan(&x); err != nil || x != 42 {
		t.Errorf("the issued user cannot read the base user's table: %v", err)
	}
	if _, err := conn.ExecContext(ctx, "SELECT x FROM secret"); err == nil {
		t.Error("the issued user reads a table the base user may not")
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err == nil {
		t.Error("the issued user may write a table the base user may only read")
	}
	wrong := cred
	wrong.Password += "x"
	if d, err := open(wrong); err == nil {
		d.Close()
		t.Fatal("a wrong password for the issued user logs in")
	}

	// No server-side expiry: the credential outlives expiresAt until the
	// reaper drops it.
	short, r := issueCLI(t, s, "my-read", "--ttl", "2s")
	if r.code != 0 {
		t.Fatalf("rotary issue --ttl 2s: exit %d: %s", r.code, r.errOut)
	}
	time.Sleep(time.Until(short.ExpiresAt) + time.Second)
	if d, err := open(short); err != nil {
		t.Logf("the expired MariaDB credential is refused before the reaper ran (%v)", err)
	} else {
		d.Close()
	}
	out, err := s.LambdaClient().Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String("rotary-" + registry.Issuer.Name), Payload: []byte(`{"rotary":"reap"}`)})
	if err != nil || out.FunctionError != nil {
		t.Fatalf("the reap event: %v %s", err, out.Payload)
	}
	var res issuer.OperatorResult
	if err := json.Unmarshal(out.Payload, &res); err != nil || len(res.Leases) != 1 || res.Leases[0].Username != short.Username {
		t.Fatalf("reap answered %s; want the expired user %s only", out.Payload, short.Username)
	}
	if d, err := open(short); err == nil {
		d.Close()
		t.Fatal("the expired credential still logs in after the reaper ran")
	}
	if err := conn.QueryRowContext(ctx, "SELECT x FROM t").Scan(&x); err != nil {
		t.Fatalf("the live credential's connection stopped working when the reaper dropped another user: %v", err)
	}

	// revoke --leases drops the live user and kills its connection.
	r = rotaryAt(t, s.Endpoint, "revoke", "--leases", "my-read", "--yes")
	if r.code != 0 || !strings.Contains(r.out, "Revoked 1 credentials") {
		t.Fatalf("rotary revoke --leases my-read: exit %d\n%s%s\nfunction log:\n%s", r.code, r.out, r.errOut, log)
	}
	// SELECT 1 needs no privilege: only a killed connection refuses it
	// (MariaDB checks table privileges per statement, so a table query
	// would fail on a dropped user's live connection too).
	if err := conn.QueryRowContext(ctx, "SELECT 1").Scan(&x); err == nil {
		t.Error("a connection of a revoked credential still runs queries")
	}
	conn.Close()
	if d, err := open(cred); err == nil {
		d.Close()
		t.Error("a revoked credential still logs in")
	}
	for _, pw := range []string{cred.Password, short.Password, masterPW} {
		if rotationtest.Leaks(log.String(), pw) {
			t.Fatalf("a password (%s) appears in the function log", fingerprint(pw))
		}
	}
}

// TestIssueEnvLines: --format env quotes every value for the shell (a
// password with quotes and $ survives eval) and names the engine's variables.
func TestIssueEnvLines(t *testing.T) {
	pw := `a'b"c$d\e` + "`x`"
	c := &issuer.Credential{Username: "u_1", Password: pw, Engine: "postgres", Host: "db.example", Port: 5432, DBName: "orders", ExpiresAt: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	out := envLines(c)
	for _, want := range []string{"export PGHOST='db.example'\n", "export PGPORT='5432'\n", "export PGUSER='u_1'\n", "export PGDATABASE='orders'\n", "export ROTARY_EXPIRES_AT='2026-12-02T10:00:00Z'\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("env lines lack %q:\n%s", want, out)
		}
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	got, err := exec.Command(sh, "-c", out+`printf %s "$PGPASSWORD"`).Output()
	if err != nil || string(got) != pw {
		t.Errorf("eval of the env lines gives PGPASSWORD %s (%v); want the password back", fingerprint(string(got)), err)
	}
	c.Engine, c.DBName = "mariadb", ""
	if out := envLines(c); !strings.Contains(out, "export MYSQL_HOST='db.example'\n") || !strings.Contains(out, "MYSQL_PWD=") || strings.Contains(out, "MYSQL_DATABASE") {
		t.Errorf("MariaDB env lines:\n%s", out)
	}
}
