package mysql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// ErrLogin is wrapped by errors of a login the server refused (wrong
// password, unknown user, or no access to the secret's dbname).
var ErrLogin = errors.New("mysql login refused")

// session is one logged-in connection and what Rotary learned about the
// server on it. Close must be called.
type session struct {
	db   *sql.DB
	conn *sql.Conn

	version     string // SELECT VERSION()
	mariadb     bool
	noBackslash bool   // sql_mode has NO_BACKSLASH_ESCAPES
	user, host  string // CURRENT_USER(): the account the server matched
	timeout     time.Duration
}

// target is where and how to connect: the server and TLS settings of a
// secret, with the user and password to log in with.
type target struct {
	secret   *dbsecret.Secret // host, port, dbname and ssl
	username string
	password string
	dbname   string
}

// open logs in to the target's server over TLS with full verification
// unless its secret says "ssl": false; there is no fallback to plaintext.
// The error wraps ErrLogin when the server refused the credential.
// loginObserver, when set (by benchmarks), is told how long each login took.
var loginObserver func(time.Duration)

func open(ctx context.Context, cfg dbsecret.Config, t target) (*session, error) {
	if loginObserver != nil {
		defer func(start time.Time) { loginObserver(time.Since(start)) }(time.Now())
	}
	connectTimeout, stmtTimeout := cfg.Connect(), cfg.Statement() // the defaults for a zero Config
	tlsConfig, err := cfg.TLS(t.secret)
	if err != nil {
		return nil, err
	}
	mc := mysql.NewConfig()
	mc.User = t.username
	mc.Passwd = t.password
	mc.Net = "tcp"
	mc.Addr = net.JoinHostPort(t.secret.Host, strconv.Itoa(t.secret.Port))
	mc.DBName = t.dbname
	mc.TLS = tlsConfig
	mc.AllowFallbackToPlaintext = false
	mc.AllowCleartextPasswords = tlsConfig != nil // only ever over verified TLS
	mc.AllowNativePasswords = true
	mc.Timeout = connectTimeout
	mc.ReadTimeout = stmtTimeout + connectTimeout
	mc.WriteTimeout = stmtTimeout + connectTimeout
	mc.Collation = "utf8mb4_general_ci"
	mc.Logger = mysql.Logger(discardLogger{})
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("mysql connection settings for %s: %w", mc.Addr, err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	// go-sql-driver/mysql (v1.10.1) strips a trailing zero byte from the data
	// of an authentication switch, which for MariaDB's ed25519 is a random
	// 32-byte nonce: about one ed25519 login in 256 then fails with
	// ErrMalformPkt. A new login gets a new nonce, so that one error is
	// retried (twice at most); the server refusing a password never is.
	var conn *sql.Conn
	for attempt := 1; ; attempt++ {
		conn, err = db.Conn(cctx)
		if err == nil {
			if err = conn.PingContext(cctx); err != nil {
				conn.Close()
			}
		}
		if err == nil || attempt == 3 || !errors.Is(err, mysql.ErrMalformPkt) {
			break
		}
	}
	if err != nil {
		db.Close()
		return nil, connectError(t, mc.Addr, err)
	}
	s := &session{db: db, conn: conn, timeout: stmtTimeout}
	var sqlMode, current string
	if err := s.queryRow(ctx, "SELECT VERSION(), @@SESSION.sql_mode, CURRENT_USER()").Scan(&s.version, &sqlMode, &current); err != nil {
		s.Close()
		return nil, fmt.Errorf("read server version as %q on %s: %w", t.username, mc.Addr, err)
	}
	s.mariadb = strings.Contains(strings.ToLower(s.version), "mariadb")
	s.noBackslash = strings.Contains(strings.ToUpper(sqlMode), "NO_BACKSLASH_ESCAPES")
	if i := strings.LastIndexByte(current, '@'); i >= 0 {
		s.user, s.host = current[:i], current[i+1:]
	}
	// Bound every statement on the server as well as on the client.
	limit := "SET SESSION max_execution_time = " + strconv.FormatInt(stmtTimeout.Milliseconds(), 10)
	if s.mariadb {
		limit = "SET SESSION max_statement_time = " + strconv.FormatFloat(stmtTimeout.Seconds(), 'f', 3, 64)
	}
	if _, err := s.exec(ctx, limit); err != nil {
		s.Close()
		return nil, fmt.Errorf("set the statement timeout on %s: %w", mc.Addr, err)
	}
	return s, nil
}

func connectError(t target, addr string, err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1045, 1698: // ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR
			return fmt.Errorf("%w: log in as %q on %s: the server refused the password (error %d)", ErrLogin, t.username, addr, me.Number)
		case 3118, 4151: // ER_ACCOUNT_HAS_BEEN_LOCKED (MySQL, MariaDB)
			return fmt.Errorf("%w: %w: log in as %q on %s: the account is locked (error %d); unlock it (ALTER USER ... ACCOUNT UNLOCK)", ErrLogin, rotation.ErrLoginDisabled, t.username, addr, me.Number)
		case 1044: // ER_DBACCESS_DENIED_ERROR
			return fmt.Errorf("%w: log in as %q on %s: no access to database %q (error %d); grant the user access to it or fix the secret's dbname", ErrLogin, t.username, addr, t.dbname, me.Number)
		}
		return fmt.Errorf("log in as %q on %s: server error %d: %s", t.username, addr, me.Number, me.Message)
	}
	if t.secret.PlaintextAllowed() {
		return fmt.Errorf("connect as %q to %s without TLS (the secret says \"ssl\": false): %w", t.username, addr, err)
	}
	return fmt.Errorf("connect as %q to %s over TLS with full verification (the secret has no \"ssl\": false; set ROTARY_CA_BUNDLE to the server's CA bundle if the chain is not trusted): %w", t.username, addr, err)
}

// Close releases the connection.
func (s *session) Close() {
	s.conn.Close()
	s.db.Close()
}

func (s *session) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.conn.ExecContext(ctx, query, args...)
}

// execSecret runs a statement whose text holds a password. On failure only
// the server's error number and SQLSTATE are reported: a syntax error
// message would quote the statement text.
func (s *session) execSecret(ctx context.Context, what, query string) error {
	_, err := s.exec(ctx, query)
	if err == nil {
		return nil
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return fmt.Errorf("%s: server error %d (SQLSTATE %s); the message is withheld because the statement holds a password", what, me.Number, string(me.SQLState[:]))
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: the connection failed (%T)", what, err)
}

type rowScanner struct {
	row    *sql.Row
	cancel context.CancelFunc
}

func (r rowScanner) Scan(dst ...any) error {
	defer r.cancel()
	return r.row.Scan(dst...)
}

func (s *session) queryRow(ctx context.Context, query string, args ...any) rowScanner {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	return rowScanner{s.conn.QueryRowContext(ctx, query, args...), cancel}
}

// queryStrings returns the first column of every row.
func (s *session) queryStrings(ctx context.Context, query string, args ...any) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rows, err := s.conn.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// str quotes a value as a string literal for this session's sql_mode.
func (s *session) str(v string) string { return quoteString(v, s.noBackslash) }

// account returns the quoted account name 'user'@'host'.
func (s *session) account(user, host string) string { return s.str(user) + "@" + s.str(host) }

// discardLogger silences the driver, whose messages could name connection details.
type discardLogger struct{}

func (discardLogger) Print(...any) {}

// probe logs in with req.Version's credential over AWSCURRENT's connection
// settings, checks that the server matched the user's own account and that
// it refuses a random password; same refuses a version for another user
// before any login (see rotation.Prober).
func (c Config) probe(ctx context.Context, req rotation.ProbeRequest, same func(cur, v *dbsecret.Secret) error) error {
	cur, err := validate(ctx, req.Current)
	if err != nil {
		return err
	}
	v, err := validate(ctx, req.Version)
	if err != nil {
		return err
	}
	if err := dbsecret.CheckSameTarget(cur, v); err != nil {
		return fmt.Errorf("%w: %w", rotation.ErrOtherTarget, err)
	}
	if err := same(cur, v); err != nil {
		return fmt.Errorf("%w: %w", rotation.ErrOtherTarget, err)
	}
	try := *v
	try.SSL = cur.SSL
	// MySQL 8 (FAILED_LOGIN_ATTEMPTS) and MariaDB (max_password_errors)
	// lock an account after failed logins in a row, and only a successful
	// login resets the count. So the random password is tried once per
	// user in a probe run, for AWSCURRENT (probed first) before its own
	// login, which then resets the count; another version of AWSCURRENT's
	// user needs no second proof. A healthy single user's probe then fails
	// at most once in a row (the random password, then AWSPREVIOUS after
	// AWSCURRENT's login).
	random := req.Version.ID == req.Current.ID || v.Username != cur.Username
	if random && req.Version.ID == req.Current.ID {
		if err := c.randomRefused(ctx, &try); err != nil {
			return err
		}
	}
	if err := testLogin(ctx, c, &try); err != nil {
		if errors.Is(err, ErrLogin) {
			return fmt.Errorf("%w: %w", rotation.ErrRefused, err)
		}
		return err
	}
	if random && req.Version.ID != req.Current.ID {
		return c.randomRefused(ctx, &try)
	}
	return nil
}

// randomRefused proves the server refuses a random password for s's
// account: a server that accepts any password proves nothing by a login.
func (c Config) randomRefused(ctx context.Context, s *dbsecret.Secret) error {
	wrong := *s
	wrong.Password = rand.Text()
	if err := c.refused(ctx, "a random password", &wrong); err != nil {
		if errors.Is(err, ErrStillValid) {
			return fmt.Errorf("%w: %w", rotation.ErrUnproven, err)
		}
		return err
	}
	return nil
}
