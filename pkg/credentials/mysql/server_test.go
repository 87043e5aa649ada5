package mysql

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rotary-secrets/rotary/internal/mysqlserver"
	"github.com/rotary-secrets/rotary/pkg/password"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// The tests run against a real MariaDB or MySQL server: by default the
// machine's MariaDB at 127.0.0.1:3306 as root with no password. Override
// with ROTARY_MYSQL_ADDR, ROTARY_MYSQL_ROOT_USER and ROTARY_MYSQL_ROOT_PASSWORD.
// With CI=true a server that cannot be reached fails the test.

// testServer is the server under test and a root connection to it.
type testServer struct {
	host string
	port int
	root *sql.DB
	// extra holds secret fields every test secret gets (for example "ssl").
	extra map[string]any
	// adminUser and adminPassword, when set, are the master secret's login.
	adminUser, adminPassword string
	// noBackslash is set when the server's sql_mode has NO_BACKSLASH_ESCAPES.
	noBackslash bool
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// unavailable fails under CI=true and skips otherwise.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format+" (set CI=true to make this a failure)", args...)
}

// sharedServer connects to the machine's MariaDB as root.
func sharedServer(t *testing.T) *testServer {
	t.Helper()
	addr := envOr("ROTARY_MYSQL_ADDR", "127.0.0.1:3306")
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("ROTARY_MYSQL_ADDR %q: %v", addr, err)
	}
	port, _ := strconv.Atoi(portText)
	mc := mysql.NewConfig()
	mc.User = envOr("ROTARY_MYSQL_ROOT_USER", "root")
	mc.Passwd = os.Getenv("ROTARY_MYSQL_ROOT_PASSWORD")
	mc.Net, mc.Addr, mc.Timeout = "tcp", addr, 5*time.Second
	mc.AllowNativePasswords = true
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		unavailable(t, "MariaDB/MySQL at %s as %s is not reachable: %v", addr, mc.User, err)
	}
	return &testServer{host: host, port: port, root: db, extra: map[string]any{"ssl": false}}
}

func uniqueName(prefix string) string {
	b := make([]byte, 5)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func randomPassword(t *testing.T) string {
	t.Helper()
	pw, err := password.DefaultPolicy().Generate()
	if err != nil {
		t.Fatal(err)
	}
	return pw
}

// fingerprint names a password in a test message without revealing it.
func fingerprint(pw string) string {
	sum := sha256.Sum256([]byte(pw))
	return "sha256:" + hex.EncodeToString(sum[:4])
}

// exec runs query as root and fails the test on error. The failure message
// shows neither the statement's string literals nor the server's message,
// which can quote the statement: they may hold a password (CREATE USER ...
// IDENTIFIED BY '...').
func (ts *testServer) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	if _, err := ts.root.Exec(query, args...); err != nil {
		var me *mysql.MySQLError
		if errors.As(err, &me) {
			t.Fatalf("%s: server error %d (SQLSTATE %s)", redactLiterals(query), me.Number, me.SQLState)
		}
		t.Fatalf("%s: %T", redactLiterals(query), err)
	}
}

// redactLiterals replaces every quoted string in s with '…'.
func redactLiterals(s string) string {
	toks, err := lexGrant(s)
	if err != nil {
		return "(statement withheld: it may hold a password)"
	}
	var b strings.Builder
	last := 0
	for _, tok := range toks {
		if tok.kind == tokString {
			b.WriteString(s[last:tok.start])
			b.WriteString("'…'")
			last = tok.end
		}
	}
	b.WriteString(s[last:])
	return b.String()
}

func (ts *testServer) quote(s string) string { return quoteString(s, ts.noBackslash) }

// createUser creates user@host with password and the given grants (each a
// "GRANT ... ON ..." prefix without TO), and drops it in t.Cleanup.
func (ts *testServer) createUser(t *testing.T, user, host, password string, grants ...string) {
	t.Helper()
	acct := ts.quote(user) + "@" + ts.quote(host)
	t.Cleanup(func() {
		if _, err := ts.root.Exec("DROP USER IF EXISTS " + acct); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := mysqlserver.CreateUser(ctx, ts.root, ts.quote, user, host, password, grants...); err != nil {
		t.Fatal(err)
	}
}

// dropLater drops user@host in t.Cleanup (for users Rotary creates).
func (ts *testServer) dropLater(t *testing.T, user, host string) {
	t.Helper()
	t.Cleanup(func() {
		if _, err := ts.root.Exec("DROP USER IF EXISTS " + ts.quote(user) + "@" + ts.quote(host)); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
}

// createDatabase creates a database dropped in t.Cleanup.
func (ts *testServer) createDatabase(t *testing.T, name string) {
	t.Helper()
	ts.exec(t, "CREATE DATABASE "+quoteIdent(name))
	t.Cleanup(func() {
		if _, err := ts.root.Exec("DROP DATABASE IF EXISTS " + quoteIdent(name)); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
}

// secret returns a secret value for user and password on this server.
func (ts *testServer) secret(user, password string, extra map[string]any) string {
	m := map[string]any{"engine": "mariadb", "host": ts.host, "port": ts.port, "username": user, "password": password}
	for k, v := range ts.extra {
		m[k] = v
	}
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// login logs in as user with password over the connection settings of
// tests (plaintext unless ts.extra asks otherwise) and runs a query.
func (ts *testServer) login(ctx context.Context, cfg Config, user, password string) error {
	v := rotation.Version{ID: "login", Value: ts.secret(user, password, nil)}
	sec, err := parseMySQL(v)
	if err != nil {
		return err
	}
	return testLogin(ctx, cfg, sec)
}

// mustLogin fails the test unless user logs in with password.
func (ts *testServer) mustLogin(t *testing.T, cfg Config, user, password string) {
	t.Helper()
	if err := ts.login(context.Background(), cfg, user, password); err != nil {
		t.Fatalf("log in as %q with password %s: %v", user, fingerprint(password), err)
	}
}

// mustNotLogin fails the test if user logs in with password.
func (ts *testServer) mustNotLogin(t *testing.T, cfg Config, user, password string) {
	t.Helper()
	err := ts.login(context.Background(), cfg, user, password)
	if err == nil {
		t.Fatalf("log in as %q with password %s succeeded; want it refused", user, fingerprint(password))
	}
	if !errors.Is(err, ErrLogin) {
		t.Fatalf("log in as %q with password %s: %v; want ErrLogin", user, fingerprint(password), err)
	}
}

// count runs a SELECT COUNT(*) as root, failing the test if it cannot, so
// that a broken query never reads as "none found".
func (ts *testServer) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := ts.root.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// authString returns user@host's stored password hash, to prove an account
// was left alone.
func (ts *testServer) authString(t *testing.T, user, host string) string {
	t.Helper()
	var s string
	if err := ts.root.QueryRow("SELECT authentication_string FROM mysql.user WHERE User = ? AND Host = ?", user, host).Scan(&s); err != nil {
		t.Fatalf("read the password hash of %s@%s: %v", user, host, err)
	}
	return s
}

// store is a SecretStore over a map, for tests of one package.
type store struct {
	values map[string]string
	tags   map[string]map[string]string
}

func (s *store) Current(_ context.Context, id string) (rotation.Version, error) {
	v, ok := s.values[id]
	if !ok {
		return rotation.Version{}, fmt.Errorf("secret %s: not found", id)
	}
	return rotation.Version{ID: "master-v1", Value: v}, nil
}

func (s *store) Tags(_ context.Context, id string) (map[string]string, error) {
	return s.tags[id], nil
}

func version(id, value string) rotation.Version { return rotation.Version{ID: id, Value: value} }

// withField returns value with field set.
func withField(t *testing.T, value, field string, v any) string {
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
	b, _ := json.Marshal(m)
	return string(b)
}

// TestWrongPasswordRefused proves the server under test checks passwords,
// so that every login test below means something.
func TestWrongPasswordRefused(t *testing.T) {
	ts := sharedServer(t)
	user, pw := uniqueName("rt_pw_"), randomPassword(t)
	ts.createUser(t, user, "%", pw)
	ts.mustLogin(t, Config{}, user, pw)
	ts.mustNotLogin(t, Config{}, user, pw+"x")
	ts.mustNotLogin(t, Config{}, user, strings.ToUpper(pw))
	ts.mustNotLogin(t, Config{}, uniqueName("rt_nobody_"), pw)
}

// TestQuoteString proves quoteString round-trips every punctuation
// character and awkward sequences under both backslash modes of sql_mode.
func TestQuoteString(t *testing.T) {
	ts := sharedServer(t)
	values := []string{
		"",
		`!"#$%&'()*+,-./:;<=>?@[\]^_` + "`{|}~",
		`\`, `\\`, `'`, `''`, `\'`, `'\`, `\'; DROP USER root; --`,
		"a\nb\rc\x1ad\te",
		"ünïcödé ✓ 🙂",
		"%_", `\%\_`,
	}
	for _, mode := range []struct {
		name        string
		noBackslash bool
	}{{"default", false}, {"NO_BACKSLASH_ESCAPES", true}} {
		t.Run(mode.name, func(t *testing.T) {
			ctx := context.Background()
			conn, err := ts.root.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			sqlMode := "''"
			if mode.noBackslash {
				sqlMode = "'NO_BACKSLASH_ESCAPES'"
			}
			if _, err := conn.ExecContext(ctx, "SET SESSION sql_mode = "+sqlMode); err != nil {
				t.Fatal(err)
			}
			for i, v := range values {
				var got string
				if err := conn.QueryRowContext(ctx, "SELECT "+quoteString(v, mode.noBackslash)).Scan(&got); err != nil {
					t.Fatalf("value %d: %v", i, err)
				}
				if got != v {
					t.Errorf("value %d: server read %q, want %q", i, got, v)
				}
			}
		})
	}
}
