// Package pgcluster starts throwaway PostgreSQL clusters that demand
// scram-sha-256 passwords over TCP, for tests and the demo.
package pgcluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
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

	"github.com/jackc/pgx/v5"

	"github.com/rotary-secrets/rotary/internal/testpki"
	"github.com/rotary-secrets/rotary/pkg/credentials/postgres/scram"
)

// DefaultBinDir holds initdb and pg_ctl of PostgreSQL 15 on Debian.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// EnvBinDir overrides DefaultBinDir.
const EnvBinDir = "ROTARY_PG_BIN"

// dirPrefix names the temporary directories of clusters; ownerFile in each
// holds the process ID of the process that started it.
const (
	dirPrefix = "rotary-pgcluster-"
	ownerFile = "owner.pid"
	binFile   = "bindir" // the BinDir of the cluster, for sweep
)

// Options configures a cluster.
type Options struct {
	// BinDir holds initdb and pg_ctl; empty means $ROTARY_PG_BIN or DefaultBinDir.
	BinDir string
	// TLS turns on ssl with a server certificate issued by a fresh test CA
	// for TLSHosts (default "127.0.0.1"). Clients may still connect without
	// TLS: refusing plaintext is the client's job.
	TLS      bool
	TLSHosts []string
	// Settings are extra postgresql.conf lines, such as "log_min_messages = debug1".
	Settings []string
}

// Cluster is a running throwaway cluster. Host is always 127.0.0.1.
type Cluster struct {
	Host string
	Port int
	// SuperUser and SuperPassword log in over TCP with scram-sha-256.
	SuperUser, SuperPassword string
	// CA and CAFile are the test CA that issued the server certificate
	// (nil and empty without TLS). CAFile is readable by anyone.
	CA     *testpki.CA
	CAFile string
	// LogFile is the server log; every statement is logged (log_statement = all).
	LogFile string
	// Major is the server's major version, such as 16.
	Major int

	dir, data, sock, bin string
	cred                 *syscall.Credential
}

// Start initialises and starts a cluster in a new temporary directory. The
// caller must call Close, in tests with t.Cleanup(func() { c.Close() }), or the
// server keeps running and its directory stays on disk.
//
// Run as root, the server runs as the postgres OS user (PostgreSQL refuses
// root); otherwise it runs as the current user. pg_hba.conf demands
// scram-sha-256 for every TCP login from 127.0.0.1 and trusts only the
// cluster's own unix socket, whose directory only the server's user can enter.
//
// Start first stops and removes clusters whose starting process has died
// without calling Close (see sweep), so a killed test run leaves nothing
// running for long.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	bin := opts.BinDir
	if bin == "" {
		bin = os.Getenv(EnvBinDir)
	}
	if bin == "" {
		bin = DefaultBinDir
	}
	for _, tool := range []string{"initdb", "pg_ctl"} {
		if _, err := os.Stat(filepath.Join(bin, tool)); err != nil {
			return nil, fmt.Errorf("start postgres cluster: %s not found in %s; install postgresql-15 or set %s (other versions: %s): %w", tool, bin, EnvBinDir, InstallScript, err)
		}
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	sweep(ctx, bin, cred)
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("start postgres cluster: %w", err)
	}
	if err := errors.Join(os.WriteFile(filepath.Join(dir, binFile), []byte(bin), 0o644),
		os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644)); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start postgres cluster: %w", err)
	}
	c = &Cluster{
		Host: "127.0.0.1", SuperUser: "rotary_super", SuperPassword: randomHex(16),
		LogFile: filepath.Join(dir, "server.log"),
		dir:     dir, data: filepath.Join(dir, "data"), sock: filepath.Join(dir, "sock"), bin: bin, cred: cred,
	}
	defer func() {
		if err != nil {
			c.Close()
			c = nil
		}
	}()
	if err := os.Mkdir(c.sock, 0o700); err != nil {
		return nil, fmt.Errorf("start postgres cluster: %w", err)
	}
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.SuperPassword+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("start postgres cluster: %w", err)
	}
	if err := c.chown(dir, c.sock, pwfile); err != nil {
		return nil, err
	}
	if out, err := c.run(ctx, "initdb", "-D", c.data, "-U", c.SuperUser, "--pwfile", pwfile,
		"--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		return nil, fmt.Errorf("start postgres cluster: initdb: %w: %s", err, out)
	}
	_ = os.Remove(pwfile)
	version, err := os.ReadFile(filepath.Join(c.data, "PG_VERSION"))
	if err == nil {
		c.Major, err = strconv.Atoi(strings.TrimSpace(string(version)))
	}
	if err != nil {
		return nil, fmt.Errorf("start postgres cluster: read the version initdb wrote: %w", err)
	}

	conf := []string{
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = '" + c.sock + "'",
		"password_encryption = 'scram-sha-256'",
		"fsync = off", "synchronous_commit = off", "full_page_writes = off",
		"shared_buffers = 16MB", "max_connections = 60",
		"shared_preload_libraries = 'pg_stat_statements'",
		"pg_stat_statements.track_utility = on",
		"log_statement = 'all'", "log_connections = on",
	}
	if opts.TLS {
		hosts := opts.TLSHosts
		if len(hosts) == 0 {
			hosts = []string{"127.0.0.1"}
		}
		ca, err := testpki.NewCA("rotary pgcluster test CA")
		if err != nil {
			return nil, err
		}
		srv, err := ca.Issue(hosts...)
		if err != nil {
			return nil, err
		}
		files, err := testpki.WriteFiles(c.dir, ca, srv)
		if err != nil {
			return nil, err
		}
		if err := c.chown(files.Cert, files.Key); err != nil {
			return nil, err
		}
		c.CA, c.CAFile = ca, files.CA
		conf = append(conf, "ssl = on", "ssl_cert_file = '"+files.Cert+"'", "ssl_key_file = '"+files.Key+"'")
	}
	conf = append(conf, opts.Settings...)
	hba := "# written by pgcluster: passwords over TCP, trust only on the private socket\n" +
		"local all all trust\n" +
		"host all all 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(c.data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return nil, fmt.Errorf("start postgres cluster: %w", err)
	}
	if err := c.chown(filepath.Join(c.data, "pg_hba.conf")); err != nil {
		return nil, err
	}

	// The port is picked free and then bound by the server, so another
	// process can take it in between: retry a few times with a new port.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		lines := append([]string{"port = " + strconv.Itoa(port)}, conf...)
		if err := os.WriteFile(filepath.Join(c.data, "postgresql.auto.conf"), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("start postgres cluster: %w", err)
		}
		if err := c.chown(filepath.Join(c.data, "postgresql.auto.conf")); err != nil {
			return nil, err
		}
		out, err := c.run(ctx, "pg_ctl", "-D", c.data, "-l", c.LogFile, "-w", "-t", "60", "start")
		if err == nil {
			c.Port = port
			return c, nil
		}
		lastErr = fmt.Errorf("pg_ctl start: %w: %s; server log: %s", err, out, tail(c.LogFile))
	}
	return nil, fmt.Errorf("start postgres cluster: %w", lastErr)
}

// Close stops the server at once and removes its directory. It is safe to call
// twice and on a nil cluster.
func (c *Cluster) Close() error {
	if c == nil || c.dir == "" {
		return nil
	}
	var err error
	if _, statErr := os.Stat(filepath.Join(c.data, "postmaster.pid")); statErr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, e := c.run(ctx, "pg_ctl", "-D", c.data, "-m", "immediate", "-w", "stop"); e != nil {
			err = fmt.Errorf("stop postgres cluster: %w: %s", e, out)
		}
	}
	if e := os.RemoveAll(c.dir); e != nil && err == nil {
		err = fmt.Errorf("remove postgres cluster directory: %w", e)
	}
	c.dir = ""
	return err
}

// ConnectAdmin connects as the superuser to database db ("" means postgres)
// through the cluster's private unix socket. The caller must Close the connection.
func (c *Cluster) ConnectAdmin(ctx context.Context, db string) (*pgx.Conn, error) {
	if db == "" {
		db = "postgres"
	}
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, fmt.Errorf("connect to postgres cluster as superuser: %w", err)
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Database = c.sock, uint16(c.Port), c.SuperUser, db
	cfg.Password, cfg.TLSConfig, cfg.Fallbacks = "", nil, nil
	cfg.ConnectTimeout = 10 * time.Second
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres cluster as superuser: %w", err)
	}
	return conn, nil
}

// TLSConfig returns a client TLS configuration that trusts only the
// cluster's test CA and checks serverName.
func (c *Cluster) TLSConfig(serverName string) *tls.Config {
	pool := x509.NewCertPool()
	if c.CA != nil {
		pool.AppendCertsFromPEM(c.CA.CertPEM)
	}
	return &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
}

// ServerLog returns the server log so far.
func (c *Cluster) ServerLog() (string, error) {
	b, err := os.ReadFile(c.LogFile)
	if err != nil {
		return "", fmt.Errorf("read postgres server log: %w", err)
	}
	return string(b), nil
}

func (c *Cluster) run(ctx context.Context, tool string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, tool), args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (c *Cluster) chown(paths ...string) error {
	if c.cred == nil {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return fmt.Errorf("start postgres cluster: give %s to the postgres user: %w", p, err)
		}
	}
	return nil
}

// serverCredential is the postgres OS user when running as root, else nil.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("start postgres cluster: running as root needs the postgres OS user (install postgresql-15): %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("start postgres cluster: postgres OS user ids: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("start postgres cluster: find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("pgcluster: read random bytes: %v", err))
	}
	return hex.EncodeToString(b)
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log)"
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// sweep stops and removes clusters left behind by test processes that died
// without calling Close (a test binary killed by its -timeout, say): those
// whose owner process no longer exists. Clusters of running processes are
// left alone.
func sweep(ctx context.Context, bin string, cred *syscall.Credential) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		staleBin := bin
		if b, err := os.ReadFile(filepath.Join(dir, binFile)); err == nil && len(b) > 0 {
			staleBin = string(b) // its own pg_ctl, which knows its data directory's version
		}
		stale := &Cluster{dir: dir, data: filepath.Join(dir, "data"), bin: staleBin, cred: cred}
		_ = stale.Close()
	}
}

// ping connects as the superuser over TCP and runs a query.
func (c *Cluster) ping(ctx context.Context) error {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database = c.Host, uint16(c.Port), c.SuperUser, c.SuperPassword, "postgres"
	cfg.TLSConfig, cfg.Fallbacks = nil, nil
	cfg.ConnectTimeout = 5 * time.Second
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
}

// CreateRole creates a login role with password and attrs (such as
// "CREATEROLE"), as the superuser. The password is sent as a SCRAM-SHA-256
// verifier, never in clear, so the server's statement log cannot hold it:
// the one way the tests and the demo create a PostgreSQL user with a
// password. The error never holds the password.
func (c *Cluster) CreateRole(ctx context.Context, name, password, attrs string) error {
	v, err := scram.Verifier(password)
	if err != nil {
		return fmt.Errorf("create role %s: %w", name, err)
	}
	conn, err := c.ConnectAdmin(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE ROLE "+pgx.Identifier{name}.Sanitize()+" WITH LOGIN "+attrs+" PASSWORD '"+v+"'"); err != nil {
		return fmt.Errorf("create role %s: %w", name, err)
	}
	return nil
}

// DropRoles drops those of the roles that exist, with what they own.
func (c *Cluster) DropRoles(ctx context.Context, names ...string) error {
	conn, err := c.ConnectAdmin(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var errs []error
	for _, n := range names {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", n).Scan(&exists); err != nil {
			errs = append(errs, err)
			continue
		}
		if !exists {
			continue
		}
		id := pgx.Identifier{n}.Sanitize()
		for _, q := range []string{"DROP OWNED BY " + id + " CASCADE", "DROP ROLE " + id} {
			if _, err := conn.Exec(ctx, q); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", q, err))
			}
		}
	}
	return errors.Join(errs...)
}
