// Package redisserver starts a throwaway redis-server for tests: ACLs on,
// a password on the default user, on a free loopback port, optionally
// with TLS only (a fresh test CA) and an ACL file. The machine's own Redis
// is never touched.
package redisserver

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rotary-secrets/rotary/internal/testpki"
)

// Options configure a throwaway server.
type Options struct {
	// TLS serves TLS only (--port 0 --tls-port), with a certificate for the
	// name "localhost" from a fresh test CA (Server.CAFile); secrets for
	// the server then name host "localhost".
	TLS bool
	// ACLFile makes the server keep its users in an ACL file
	// (Server.ACLFile), so ACL SAVE persists them.
	ACLFile bool
	// Args are extra redis-server options, such as "--maxclients", "20".
	Args []string
}

// Server is a running throwaway redis-server. The caller must Close it (in
// tests, redistest.Start does in t.Cleanup).
type Server struct {
	// Host is 127.0.0.1, or localhost with TLS.
	Host string
	Port int
	// AdminPassword is the password of the default user, which may do
	// anything.
	AdminPassword string
	// Admin is a client logged in as the default user.
	Admin *goredis.Client
	// Dir holds the server's files; removed by Close.
	Dir string
	// CAFile verifies the server's certificate (Options.TLS).
	CAFile string
	// ACLFile is the server's ACL file (Options.ACLFile).
	ACLFile string

	tls    *tls.Config
	cmd    *exec.Cmd
	exited chan struct{}
}

// ErrNoBinary is wrapped when redis-server is not installed.
var ErrNoBinary = errors.New("redis-server not found; install the redis-server package")

// Addr returns host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// TLSConfig returns the client TLS settings that verify the server, nil
// without TLS.
func (s *Server) TLSConfig() *tls.Config {
	if s.tls == nil {
		return nil
	}
	return s.tls.Clone()
}

// Start starts a server with opts in a new temporary directory. On error
// nothing is left running.
func Start(ctx context.Context, opts Options) (_ *Server, err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/redis-server"); serr != nil {
			return nil, ErrNoBinary
		}
		bin = "/usr/bin/redis-server"
	}
	dir, err := os.MkdirTemp("", "rotary-redis-")
	if err != nil {
		return nil, err
	}
	s := &Server{Host: "127.0.0.1", AdminPassword: randomHex(), Dir: dir}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s.Port = port
	args := []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir,
		"--daemonize", "no", "--logfile", filepath.Join(dir, "redis.log"), "--protected-mode", "yes"}
	if opts.ACLFile {
		s.ACLFile = filepath.Join(dir, "users.acl")
		line := "user default on #" + sha256Hex(s.AdminPassword) + " ~* &* +@all\n"
		if err := os.WriteFile(s.ACLFile, []byte(line), 0o600); err != nil {
			return nil, err
		}
		args = append(args, "--aclfile", s.ACLFile)
	} else {
		args = append(args, "--requirepass", s.AdminPassword)
	}
	if opts.TLS {
		ca, err := testpki.NewCA("rotary redisserver test CA")
		if err != nil {
			return nil, err
		}
		cert, err := ca.Issue("localhost")
		if err != nil {
			return nil, err
		}
		files, err := testpki.WriteFiles(dir, ca, cert)
		if err != nil {
			return nil, err
		}
		s.CAFile, s.Host = files.CA, "localhost"
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca.CertPEM)
		s.tls = &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
		args = append(args, "--port", "0", "--tls-port", strconv.Itoa(port),
			"--tls-cert-file", files.Cert, "--tls-key-file", files.Key, "--tls-ca-cert-file", files.CA,
			"--tls-auth-clients", "no")
	} else {
		args = append(args, "--port", strconv.Itoa(port))
	}
	args = append(args, opts.Args...)
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(s.exited) }()

	s.Admin = s.Client("default", s.AdminPassword)
	deadline := time.Now().Add(20 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := s.Admin.Ping(pctx).Err()
		cancel()
		if err == nil {
			return s, nil
		}
		select {
		case <-s.exited:
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			return nil, fmt.Errorf("redis-server exited (%v) before accepting connections:\n%s", waitErr, tail(log))
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for redis-server: %w", ctx.Err())
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			return nil, fmt.Errorf("redis-server did not accept connections within 20s: %w\n%s", err, tail(log))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Client returns a client of the server logged in as user with password
// (over TLS verified by the test CA when the server has TLS). It keeps at
// most one connection.
func (s *Server) Client(user, password string) *goredis.Client {
	return goredis.NewClient(&goredis.Options{
		Addr: s.Addr(), Username: user, Password: password, TLSConfig: s.TLSConfig(),
		PoolSize: 1, MaxRetries: -1, DialTimeout: 2 * time.Second, Protocol: 2,
		DisableIdentity: true,
	})
}

// CreateUser creates user with password and ACL rules (such as "~app:*",
// "+@read"); without rules the user may run PING only. It fails when the
// user exists. An error never holds the password.
func (s *Server) CreateUser(ctx context.Context, user, password string, rules ...string) error {
	exists, err := s.Admin.Do(ctx, "ACL", "GETUSER", user).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return fmt.Errorf("look up user %s: %w", user, err)
	}
	if exists != nil {
		return fmt.Errorf("create user %s: it exists already", user)
	}
	if len(rules) == 0 {
		rules = []string{"+ping"}
	}
	args := []any{"ACL", "SETUSER", user, "reset", "on", "#" + sha256Hex(password)}
	for _, r := range rules {
		args = append(args, r)
	}
	if err := s.Admin.Do(ctx, args...).Err(); err != nil {
		return fmt.Errorf("create user %s: %w", user, err)
	}
	return nil
}

// DeleteUser deletes user if it exists.
func (s *Server) DeleteUser(ctx context.Context, user string) error {
	return s.Admin.Do(ctx, "ACL", "DELUSER", user).Err()
}

// PasswordHashes returns the SHA-256 hashes (hex) of the user's passwords,
// as ACL GETUSER lists them.
func (s *Server) PasswordHashes(ctx context.Context, user string) ([]string, error) {
	m, err := s.GetUser(ctx, user)
	if err != nil {
		return nil, err
	}
	var out []string
	if l, ok := m["passwords"].([]any); ok {
		for _, h := range l {
			out = append(out, fmt.Sprint(h))
		}
	}
	return out, nil
}

// GetUser returns ACL GETUSER's answer as a map from attribute to value.
func (s *Server) GetUser(ctx context.Context, user string) (map[string]any, error) {
	v, err := s.Admin.Do(ctx, "ACL", "GETUSER", user).Result()
	if err != nil {
		return nil, fmt.Errorf("ACL GETUSER %s: %w", user, err)
	}
	l, ok := v.([]any)
	if !ok || len(l)%2 != 0 {
		return nil, fmt.Errorf("ACL GETUSER %s: unexpected answer %T", user, v)
	}
	m := map[string]any{}
	for i := 0; i < len(l); i += 2 {
		m[fmt.Sprint(l[i])] = l[i+1]
	}
	return m, nil
}

// Login authenticates as the secret value's username with its password
// (over TLS verified by caFile unless the value says "ssl": false) and runs
// PING. It is an independent check, sharing no code with the credential
// types under test; a refusal wraps ErrRefused.
func Login(ctx context.Context, value, caFile string) error {
	var v struct {
		Host     string          `json:"host"`
		Port     json.RawMessage `json:"port"`
		Username string          `json:"username"`
		Password string          `json:"password"`
		SSL      any             `json:"ssl"`
	}
	if err := json.Unmarshal([]byte(value), &v); err != nil {
		return fmt.Errorf("secret value: %w", err)
	}
	port, err := strconv.Atoi(strings.Trim(string(v.Port), `"`))
	if err != nil {
		return fmt.Errorf("secret value: port: %w", err)
	}
	var tc *tls.Config
	if v.SSL != false && v.SSL != "false" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tc = &tls.Config{RootCAs: pool, ServerName: v.Host}
	}
	c := goredis.NewClient(&goredis.Options{
		Addr: net.JoinHostPort(v.Host, strconv.Itoa(port)), Username: v.Username, Password: v.Password,
		TLSConfig: tc, PoolSize: 1, MaxRetries: -1, DialTimeout: 2 * time.Second, Protocol: 2, DisableIdentity: true,
	})
	defer func() { _ = c.Close() }()
	if err := c.Ping(ctx).Err(); err != nil {
		if strings.HasPrefix(err.Error(), "WRONGPASS") {
			return fmt.Errorf("%w: user %s", ErrRefused, v.Username)
		}
		return fmt.Errorf("PING as %s: %w", v.Username, err)
	}
	who, err := c.Do(ctx, "ACL", "WHOAMI").Text()
	if err == nil && who != v.Username {
		return fmt.Errorf("logged in as %q, not %q", who, v.Username)
	}
	return nil
}

// ErrRefused is wrapped by Login when the server refuses the password.
var ErrRefused = errors.New("the server refused the password")

// Close stops the server and removes its files. It is safe to call twice.
func (s *Server) Close() error {
	if s.Admin != nil {
		_ = s.Admin.Close()
		s.Admin = nil
	}
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		s.cmd = nil
	}
	if s.Dir != "" {
		os.RemoveAll(s.Dir)
	}
	return nil
}

func sha256Hex(s string) string { return hashHex(s) }

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
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}
