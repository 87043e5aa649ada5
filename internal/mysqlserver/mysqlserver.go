// Package mysqlserver starts a throwaway MariaDB server for tests that need
// settings the machine's shared server must not change (TLS, sql_mode).
package mysqlserver

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Options configure a throwaway server.
type Options struct {
	// CAFile, CertFile and KeyFile turn TLS on (--ssl-ca, --ssl-cert, --ssl-key).
	CAFile, CertFile, KeyFile string
	// SQLMode sets the server's global sql_mode; empty keeps the default.
	SQLMode string
	// Args are extra mariadbd options, such as "--general-log".
	Args []string
	// TestCA turns TLS on with a certificate for the name "localhost" only,
	// from a fresh test CA (Server.CAFile); secrets for the server then
	// name host "localhost". It replaces CAFile, CertFile and KeyFile.
	TestCA bool
}

// Server is a running throwaway MariaDB server on 127.0.0.1. The caller
// must Close it (in tests, mysqltest.Start does in t.Cleanup).
type Server struct {
	Host string
	Port int
	// AdminUser and AdminPassword log in from anywhere with every privilege,
	// WITH GRANT OPTION (root itself has no password and is local only).
	AdminUser, AdminPassword string
	// Root is a plaintext connection as AdminUser.
	Root *sql.DB
	// Dir holds the server's files (data/, error.log, ...); removed by Close.
	Dir string
	// CAFile is the PEM file of the CA that verifies the server's
	// certificate, with Options.TestCA; removed by Close.
	CAFile string

	cmd     *exec.Cmd
	exited  chan struct{}
	cleanup []func()
}

// Addr returns host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// ErrNoBinaries is wrapped when mariadbd or mariadb-install-db is missing.
var ErrNoBinaries = errors.New("mariadbd or mariadb-install-db not found; install the mariadb-server package")

// binaries finds mariadbd and mariadb-install-db.
func binaries() (server, installDB string, err error) {
	find := func(names ...string) string {
		for _, n := range names {
			if p, err := exec.LookPath(n); err == nil {
				return p
			}
			for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/mysql/bin"} {
				if p := filepath.Join(dir, n); fileExists(p) {
					return p
				}
			}
		}
		return ""
	}
	server, installDB = find("mariadbd", "mysqld"), find("mariadb-install-db", "mysql_install_db")
	if server == "" || installDB == "" {
		return "", "", ErrNoBinaries
	}
	return server, installDB, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Start initialises and starts a server with opts in a new temporary
// directory. The caller must Close it. On error nothing is left running.
func Start(ctx context.Context, opts Options) (_ *Server, err error) {
	server, installDB, err := binaries()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rotary-mariadb-")
	if err != nil {
		return nil, err
	}
	s := &Server{Host: "127.0.0.1", AdminUser: "rotary_admin", AdminPassword: randomHex(), Dir: dir}
	s.cleanup = append(s.cleanup, func() { os.RemoveAll(dir) })
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if opts.TestCA {
		var pki string
		if opts, s.CAFile, pki, err = withTestCA(opts); err != nil {
			return nil, err
		}
		s.cleanup = append(s.cleanup, func() { os.RemoveAll(pki) })
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	// As root, the server runs as the mysql OS user, which must own its files.
	var runAs []string
	var cred *syscall.Credential
	owner := func(string) error { return nil }
	if os.Geteuid() == 0 {
		u, err := user.Lookup("mysql")
		if err != nil {
			return nil, fmt.Errorf("running as root, the server needs the mysql OS user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		owner = func(p string) error { return os.Lchown(p, uid, gid) }
		runAs = []string{"--user=mysql"}
		// The server starts as mysql rather than switching to it itself:
		// a process that changes its own user loses its parent-death
		// signal, and the server would outlive a test binary that panics.
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if err := owner(dir); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o750); err != nil {
		return nil, err
	}
	if err := owner(data); err != nil {
		return nil, err
	}
	var tlsArgs []string
	for _, f := range []struct{ flag, src, name string }{
		{"--ssl-ca", opts.CAFile, "ca.pem"}, {"--ssl-cert", opts.CertFile, "server.pem"}, {"--ssl-key", opts.KeyFile, "server.key"},
	} {
		if f.src == "" {
			continue
		}
		dst := filepath.Join(dir, f.name)
		b, err := os.ReadFile(f.src)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			return nil, err
		}
		if err := owner(dst); err != nil {
			return nil, err
		}
		tlsArgs = append(tlsArgs, f.flag+"="+dst)
	}

	installCtx, cancelInstall := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelInstall()
	install := exec.CommandContext(installCtx, installDB, append([]string{"--no-defaults", "--datadir=" + data,
		"--auth-root-authentication-method=normal", "--skip-test-db"}, runAs...)...)
	if out, err := install.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mariadb-install-db: %w\n%s", err, out)
	}
	if s.Port, err = freePort(); err != nil {
		return nil, err
	}
	args := []string{"--no-defaults", "--datadir=" + data, "--bind-address=127.0.0.1",
		"--port=" + strconv.Itoa(s.Port), "--socket=" + filepath.Join(dir, "mysqld.sock"),
		"--pid-file=" + filepath.Join(dir, "mysqld.pid"), "--log-error=" + filepath.Join(dir, "error.log"),
		"--innodb-buffer-pool-size=16M", "--skip-log-bin", "--max-connections=50"}
	args = append(args, tlsArgs...)
	if opts.SQLMode != "" {
		args = append(args, "--sql-mode="+opts.SQLMode)
	}
	args = append(args, opts.Args...)
	cmd := exec.Command(server, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true, Credential: cred}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mariadbd: %w", err)
	}
	s.cmd, s.exited = cmd, make(chan struct{}) // exited is closed when the server has exited; then waitErr is set
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(s.exited) }()

	root := connect(s.Addr(), "root", "")
	defer root.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := root.PingContext(pctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-s.exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return nil, fmt.Errorf("mariadbd exited (%v) before accepting connections:\n%s", waitErr, tail(log))
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for mariadbd: %w", ctx.Err())
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return nil, fmt.Errorf("mariadbd did not accept connections within 60s: %w\n%s", err, tail(log))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, q := range []string{
		"CREATE USER '" + s.AdminUser + "'@'%' IDENTIFIED BY '" + s.AdminPassword + "'",
		"GRANT ALL PRIVILEGES ON *.* TO '" + s.AdminUser + "'@'%' WITH GRANT OPTION",
	} {
		if _, err := root.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("set up the admin user: %w", err)
		}
	}
	s.Root = connect(s.Addr(), s.AdminUser, s.AdminPassword)
	return s, nil
}

// Close stops the server and removes its files. It is safe to call twice.
func (s *Server) Close() error {
	if s.Root != nil {
		s.Root.Close()
		s.Root = nil
	}
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM) // it may have exited already
		select {
		case <-s.exited:
		case <-time.After(20 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		s.cmd = nil
	}
	for i := len(s.cleanup) - 1; i >= 0; i-- {
		s.cleanup[i]()
	}
	s.cleanup = nil
	return nil
}

func connect(addr, user, password string) *sql.DB {
	mc := mysql.NewConfig()
	mc.Net, mc.Addr, mc.User, mc.Passwd = "tcp", addr, user, password
	mc.Timeout = 2 * time.Second
	mc.AllowNativePasswords = true
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		panic(err) // only a malformed static configuration gets here
	}
	return sql.OpenDB(connector)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}
