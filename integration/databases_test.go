package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotary-secrets/rotary/internal/mysqlserver"
	"github.com/rotary-secrets/rotary/internal/mysqlserver/mysqltest"
	"github.com/rotary-secrets/rotary/internal/pgcluster"
)

// database is one shared database server as the tests see it: users made
// with the superuser, secret values for them, and logins that prove a value
// works or is refused. Logins use verified TLS and share no code with the
// credential types under test.
type database interface {
	// createUser creates a login user with password that may read the
	// database its secrets name. Where the server outlives the test, the
	// user and its clone are dropped when the test ends.
	createUser(t *testing.T, user, password string)
	// userExists reports whether the server has a user of that name.
	userExists(t *testing.T, user string) bool
	// secretValue is the secret JSON for user and password, with extra
	// fields (such as masterarn) and a field no rotation may drop.
	secretValue(t testing.TB, user, password string, extra map[string]any) string
	// login logs in with a secret value and runs a query.
	login(ctx context.Context, value string) error
	// refusedPassword reports whether a login error is the server refusing
	// the password, rather than, say, the server being unreachable.
	refusedPassword(err error) bool
	// openSession logs in with a secret value and keeps the session open
	// until the test ends; query runs a query on it.
	openSession(t *testing.T, value string) (query func(context.Context) error)
}

// passwordWithQuotes is an initial password that needs quoting in SQL and
// escaping in JSON.
const passwordWithQuotes = `initial-Passw0rd!'"\`

// loginTimeout bounds a login and its query.
const loginTimeout = 30 * time.Second

// mustLogIn fails unless value logs in.
func mustLogIn(t *testing.T, db database, value, what string) {
	t.Helper()
	if err := db.login(within(t, loginTimeout), value); err != nil {
		t.Fatalf("%s does not log in: %v", what, err)
	}
}

// mustBeRefused fails unless the server refuses the value's password.
func mustBeRefused(t *testing.T, db database, value, what string) {
	t.Helper()
	err := db.login(within(t, loginTimeout), value)
	if err == nil {
		t.Fatalf("%s still logs in", what)
	}
	if !db.refusedPassword(err) {
		t.Fatalf("%s: %v; want the server to refuse the password", what, err)
	}
}

// postgresDB is the shared PostgreSQL cluster.
type postgresDB struct{ c *pgcluster.Cluster }

func postgresServer(t *testing.T) database { t.Helper(); return postgresDB{pg.Get(t)} }

// createRole creates a login role with attributes (such as CREATEROLE);
// the password goes as a SCRAM verifier, never in clear.
func (d postgresDB) createRole(t testing.TB, user, password, attrs string) {
	t.Helper()
	if err := d.c.CreateRole(context.Background(), user, password, attrs); err != nil {
		t.Fatal(err)
	}
}

func (d postgresDB) createUser(t *testing.T, user, password string) {
	t.Helper()
	d.createRole(t, user, password, "")
}

// admin connects as the superuser until the test ends.
func (d postgresDB) admin(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := d.c.ConnectAdmin(context.Background(), "")
	if err != nil {
		t.Fatalf("connect as the superuser: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// exec runs SQL as the superuser.
func (d postgresDB) exec(t testing.TB, sql string) {
	t.Helper()
	if _, err := d.admin(t).Exec(context.Background(), sql); err != nil {
		t.Fatalf("superuser SQL failed: %v", err)
	}
}

func (d postgresDB) userExists(t *testing.T, user string) bool {
	t.Helper()
	var n int
	if err := d.admin(t).QueryRow(context.Background(), "SELECT count(*) FROM pg_roles WHERE rolname = $1", user).Scan(&n); err != nil {
		t.Fatalf("look up role %q: %v", user, err)
	}
	return n > 0
}

func (d postgresDB) secretValue(t testing.TB, user, password string, extra map[string]any) string {
	t.Helper()
	return jsonValue(t, map[string]any{"engine": "postgres", "host": d.c.Host, "port": d.c.Port, "username": user, "password": password, "dbname": "postgres", "team": "kept"}, extra)
}

func (d postgresDB) connect(ctx context.Context, value string) (*pgx.Conn, error) {
	var s struct{ Username, Password string }
	if err := json.Unmarshal([]byte(value), &s); err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database = d.c.Host, uint16(d.c.Port), s.Username, s.Password, "postgres"
	cfg.TLSConfig, cfg.Fallbacks = d.c.TLSConfig(d.c.Host), nil
	cfg.ConnectTimeout = 10 * time.Second
	return pgx.ConnectConfig(ctx, cfg)
}

func (d postgresDB) login(ctx context.Context, value string) error {
	conn, err := d.connect(ctx, value)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

func (postgresDB) refusedPassword(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "28P01"
}

func (d postgresDB) openSession(t *testing.T, value string) func(context.Context) error {
	t.Helper()
	conn, err := d.connect(context.Background(), value)
	if err != nil {
		t.Fatalf("open a session: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return func(ctx context.Context) error {
		var one int
		return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
	}
}

// mariaDB is the shared MariaDB server; secrets name host "localhost", the
// name its certificate has.
type mariaDB struct {
	s      *mysqlserver.Server
	caFile string
}

func mariaDBServer(t *testing.T) database {
	t.Helper()
	s, caFile := maria.get(t)
	return mariaDB{s, caFile}
}

// createUserWith creates user@'%' with SELECT on the orders database and
// grants (GRANT ... ON ... prefixes); the user is dropped when the test ends.
func (d mariaDB) createUserWith(t *testing.T, user, password string, grants ...string) {
	t.Helper()
	mysqltest.CreateUser(t, d.s, user, "%", password, append([]string{"GRANT SELECT ON orders.*"}, grants...)...)
}

func (d mariaDB) createUser(t *testing.T, user, password string) {
	t.Helper()
	d.createUserWith(t, user, password)
	// The alternating users' clone is created by the rotation; drop it too.
	t.Cleanup(func() {
		if _, err := d.s.Root.Exec("DROP USER IF EXISTS '" + user + "_clone'@'%'"); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
}

func (d mariaDB) userExists(t *testing.T, user string) bool {
	t.Helper()
	var n int
	if err := d.s.Root.QueryRow("SELECT COUNT(*) FROM mysql.user WHERE User = ?", user).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func (d mariaDB) secretValue(t testing.TB, user, password string, extra map[string]any) string {
	t.Helper()
	return jsonValue(t, map[string]any{"engine": "mariadb", "host": "localhost", "port": d.s.Port, "username": user, "password": password, "dbname": "orders", "team": "kept"}, extra)
}

func (d mariaDB) login(ctx context.Context, value string) error {
	return mysqlserver.Login(ctx, value, d.caFile)
}

func (mariaDB) refusedPassword(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1045
}

func (d mariaDB) openSession(t *testing.T, value string) func(context.Context) error {
	t.Helper()
	var v struct {
		Host     string `json:"host"`
		Port     int    `json:"port"`
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := json.Unmarshal([]byte(value), &v); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(d.caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	mc := mysql.NewConfig()
	mc.Net, mc.Addr = "tcp", net.JoinHostPort(v.Host, strconv.Itoa(v.Port))
	mc.User, mc.Passwd = v.Username, v.Password
	mc.TLS = &tls.Config{RootCAs: pool, ServerName: v.Host}
	mc.Logger = mysql.Logger(log.New(io.Discard, "", 0)) // a revoke may kill this connection
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(within(t, loginTimeout))
	if err == nil {
		err = conn.PingContext(within(t, loginTimeout))
	}
	if err != nil {
		t.Fatalf("open a connection as %q: %v", v.Username, err)
	}
	t.Cleanup(func() { conn.Close() })
	return func(ctx context.Context) error {
		var one int
		return conn.QueryRowContext(ctx, "SELECT 1").Scan(&one)
	}
}

func jsonValue(t testing.TB, fields, extra map[string]any) string {
	t.Helper()
	for k, v := range extra {
		fields[k] = v
	}
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
