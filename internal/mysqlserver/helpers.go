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
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rotary-secrets/rotary/internal/testpki"
)

// withTestCA writes a fresh test CA and a certificate for the name
// "localhost" only into a new directory, and returns opts with TLS on from
// them, the CA file, and the directory to remove with the server.
func withTestCA(opts Options) (Options, string, string, error) {
	ca, err := testpki.NewCA("rotary mysqlserver test CA")
	if err != nil {
		return opts, "", "", err
	}
	cert, err := ca.Issue("localhost")
	if err != nil {
		return opts, "", "", err
	}
	dir, err := os.MkdirTemp("", "rotary-mariadb-pki-")
	if err != nil {
		return opts, "", "", err
	}
	files, err := testpki.WriteFiles(dir, ca, cert)
	if err != nil {
		os.RemoveAll(dir)
		return opts, "", "", err
	}
	opts.CAFile, opts.CertFile, opts.KeyFile = files.CA, files.Cert, files.Key
	return opts, files.CA, dir, nil
}

// CreateUser creates user@host with password and runs each grant (a GRANT
// ... ON ... prefix, completed with TO the account) as the admin user:
// the one way the tests create a MariaDB user with a password. Names and
// password are quoted for the default sql_mode. An error never holds the
// password (nor the server's message, which can quote the statement).
func (s *Server) CreateUser(ctx context.Context, user, host, password string, grants ...string) error {
	return CreateUser(ctx, s.Root, literal, user, host, password, grants...)
}

// CreateUser is Server.CreateUser on any server: db is an admin
// connection, and quote makes a string literal for the server's sql_mode
// (with or without NO_BACKSLASH_ESCAPES).
func CreateUser(ctx context.Context, db *sql.DB, quote func(string) string, user, host, password string, grants ...string) error {
	acct := quote(user) + "@" + quote(host)
	if _, err := db.ExecContext(ctx, "CREATE USER "+acct+" IDENTIFIED BY "+quote(password)); err != nil {
		var me *mysql.MySQLError
		if errors.As(err, &me) {
			return fmt.Errorf("create user %s: server error %d (SQLSTATE %s)", user, me.Number, me.SQLState)
		}
		return fmt.Errorf("create user %s: %T", user, err)
	}
	for _, g := range grants {
		if _, err := db.ExecContext(ctx, g+" TO "+acct); err != nil {
			return fmt.Errorf("%s TO %s: %w", g, user, err)
		}
	}
	return nil
}

// DropUser drops user@host if it exists.
func (s *Server) DropUser(ctx context.Context, user, host string) error {
	_, err := s.Root.ExecContext(ctx, "DROP USER IF EXISTS "+literal(user)+"@"+literal(host))
	return err
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
