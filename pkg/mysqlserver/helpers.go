package mysqlserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
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

	"github.com/rotary-secrets/rotary/pkg/testpki"
)

// StartTLS starts a server with TLS on and a certificate for the name
// "localhost" only, from a fresh test CA. It returns the server and the CA
// file (PEM) that verifies it. Secrets for it should name host "localhost".
func StartTLS(t testing.TB, opts Options) (*Server, string) {
	t.Helper()
	ca, err := testpki.NewCA("rotary mysqlserver test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("localhost")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "rotary-mariadb-pki-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	files, err := testpki.WriteFiles(dir, ca, cert)
	if err != nil {
		t.Fatal(err)
	}
	opts.CAFile, opts.CertFile, opts.KeyFile = files.CA, files.Cert, files.Key
	return Start(t, opts), files.CA
}

// CreateUser creates user@host with password and runs each grant (a GRANT
// ... ON ... prefix, completed with TO the account) as the admin user. The
// user is dropped in t.Cleanup. Names and password are quoted for the
// default sql_mode.
func (s *Server) CreateUser(t testing.TB, user, host, password string, grants ...string) {
	t.Helper()
	acct := literal(user) + "@" + literal(host)
	if _, err := s.Root.Exec("CREATE USER " + acct + " IDENTIFIED BY " + literal(password)); err != nil {
		// Not the server's message: it can quote the statement, password and all.
		var me *mysql.MySQLError
		if errors.As(err, &me) {
			t.Fatalf("create user %s: server error %d (SQLSTATE %s)", user, me.Number, me.SQLState)
		}
		t.Fatalf("create user %s: %T", user, err)
	}
	t.Cleanup(func() { s.Root.Exec("DROP USER IF EXISTS " + acct) })
	for _, g := range grants {
		if _, err := s.Root.Exec(g + " TO " + acct); err != nil {
			t.Fatalf("%s TO %s: %v", g, user, err)
		}
	}
}

func literal(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(v) + "'"
}

// Login logs in with a database secret value (host, port, username,
// password, optional dbname and ssl) and runs a query. Unless the value says
// "ssl": false it uses TLS verified against caFile. It is an independent
// check, sharing no code with the credential types under test.
func Login(ctx context.Context, value, caFile string) error {
	var v struct {
		Host     string          `json:"host"`
		Port     json.RawMessage `json:"port"`
		Username string          `json:"username"`
		Password string          `json:"password"`
		DBName   string          `json:"dbname"`
		SSL      any             `json:"ssl"`
	}
	if err := json.Unmarshal([]byte(value), &v); err != nil {
		return fmt.Errorf("secret value: %w", err)
	}
	port, err := strconv.Atoi(strings.Trim(string(v.Port), `"`))
	if err != nil {
		return fmt.Errorf("secret value: port: %w", err)
	}
	mc := mysql.NewConfig()
	mc.Net, mc.Addr = "tcp", net.JoinHostPort(v.Host, strconv.Itoa(port))
	mc.User, mc.Passwd, mc.DBName = v.Username, v.Password, v.DBName
	mc.Timeout = 5 * time.Second
	mc.AllowNativePasswords = true
	if v.SSL != false && v.SSL != "false" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		mc.TLS = &tls.Config{RootCAs: pool, ServerName: v.Host}
	}
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	var current string
	if err := db.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&current); err != nil {
		return err
	}
	if !strings.HasPrefix(current, v.Username+"@") {
		return fmt.Errorf("logged in as %q but the server matched %q", v.Username, current)
	}
	return nil
}
