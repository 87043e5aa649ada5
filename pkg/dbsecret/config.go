package dbsecret

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rotary-secrets/rotary/pkg/envflag"
)

// Environment variables read by ConfigFromEnv.
const (
	EnvCABundle         = "ROTARY_CA_BUNDLE"
	EnvConnectTimeout   = "ROTARY_CONNECT_TIMEOUT"
	EnvStatementTimeout = "ROTARY_STATEMENT_TIMEOUT"
)

// EnvRevokeKeepSessions, when true, makes alternating-users revoke leave the
// other user's open sessions running (read by RevokeKeepSessionsFromEnv).
const EnvRevokeKeepSessions = "ROTARY_REVOKE_KEEP_SESSIONS"

// Timeout defaults and bounds.
const (
	DefaultConnectTimeout   = 5 * time.Second
	DefaultStatementTimeout = 30 * time.Second
	MinTimeout              = 1 * time.Second
	MaxTimeout              = 5 * time.Minute
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid database connection settings")

// Config holds the connection settings every database type shares.
type Config struct {
	// CABundlePath is a PEM file of CA certificates trusted in addition to
	// the system roots (for example the RDS CA bundle shipped with the function).
	CABundlePath string
	// ConnectTimeout bounds each connection attempt (TCP, TLS and login).
	ConnectTimeout time.Duration
	// StatementTimeout bounds each statement on the server.
	StatementTimeout time.Duration
}

// DefaultConfig returns the defaults: no extra CA, 5s to connect, 30s per statement.
func DefaultConfig() Config {
	return Config{ConnectTimeout: DefaultConnectTimeout, StatementTimeout: DefaultStatementTimeout}
}

// ConfigFromEnv reads ROTARY_CA_BUNDLE (a PEM file path), ROTARY_CONNECT_TIMEOUT
// and ROTARY_STATEMENT_TIMEOUT (Go durations such as "10s", from 1s to 5m).
// The CA bundle is read and checked here, so a bad one fails at start-up.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := DefaultConfig()
	c.CABundlePath = strings.TrimSpace(getenv(EnvCABundle))
	var err error
	if c.ConnectTimeout, err = durationEnv(getenv, EnvConnectTimeout, DefaultConnectTimeout); err != nil {
		return Config{}, err
	}
	if c.StatementTimeout, err = durationEnv(getenv, EnvStatementTimeout, DefaultStatementTimeout); err != nil {
		return Config{}, err
	}
	if c.CABundlePath != "" {
		if _, err := c.certPool(); err != nil {
			return Config{}, err
		}
	}
	return c, nil
}

func durationEnv(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	s := strings.TrimSpace(getenv(name))
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q is not a duration; use a value such as 10s or 1m", ErrConfig, name, s)
	}
	if d < MinTimeout || d > MaxTimeout {
		return 0, fmt.Errorf("%w: %s %s is out of range; use a value from %s to %s", ErrConfig, name, d, MinTimeout, MaxTimeout)
	}
	return d, nil
}

// Connect returns the connection timeout, the default when unset.
func (c Config) Connect() time.Duration {
	if c.ConnectTimeout <= 0 {
		return DefaultConnectTimeout
	}
	return c.ConnectTimeout
}

// Statement returns the statement timeout, the default when unset.
func (c Config) Statement() time.Duration {
	if c.StatementTimeout <= 0 {
		return DefaultStatementTimeout
	}
	return c.StatementTimeout
}

// caPools holds the trusted roots built for each CA bundle path: the
// system roots plus the bundle's certificates (a *caPool). A function
// builds them once and shares them across its logins (a pool is only read
// during a handshake), instead of copying the system roots and reading and
// parsing the bundle again for every login: the RDS global bundle holds
// over a hundred certificates, and a rotation makes up to five logins.
var caPools sync.Map

type caPool struct {
	once sync.Once
	pool *x509.CertPool
	err  error
}

// certPool returns the roots to verify a server with: nil (the system
// roots, as crypto/tls loads them) without a CA bundle, else the system
// roots plus the bundle, built once per bundle path. A bundle that cannot
// be read is read again on the next call.
func (c Config) certPool() (*x509.CertPool, error) {
	if c.CABundlePath == "" {
		return nil, nil
	}
	v, _ := caPools.LoadOrStore(c.CABundlePath, new(caPool))
	p := v.(*caPool)
	p.once.Do(func() { p.pool, p.err = c.loadCertPool() })
	if p.err != nil {
		caPools.CompareAndDelete(c.CABundlePath, p)
	}
	return p.pool, p.err
}

func (c Config) loadCertPool() (*x509.CertPool, error) {
	pem, err := os.ReadFile(c.CABundlePath)
	if err != nil {
		return nil, fmt.Errorf("%w: read %s %s: %w", ErrConfig, EnvCABundle, c.CABundlePath, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: %s %s holds no PEM certificate; point it at a PEM CA bundle such as the RDS global-bundle.pem", ErrConfig, EnvCABundle, c.CABundlePath)
	}
	return pool, nil
}

// TLS returns the TLS settings for connecting to the secret's server: nil,
// nil when the secret says "ssl": false; otherwise full verification of the
// chain (system roots plus the CA bundle) and of the host name s.Host, TLS 1.2
// or later. Callers must use it as the only way to connect: no fallback to
// plaintext when TLS fails.
func (c Config) TLS(s *Secret) (*tls.Config, error) {
	if s.PlaintextAllowed() {
		return nil, nil
	}
	pool, err := c.certPool()
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, ServerName: s.Host, MinVersion: tls.VersionTLS12}, nil
}

// RevokeKeepSessionsFromEnv reads ROTARY_REVOKE_KEEP_SESSIONS, a boolean
// (true/1/y/yes, false/0/n/no, any case) that defaults to false.
func RevokeKeepSessionsFromEnv(getenv func(string) string) (bool, error) {
	v := strings.TrimSpace(getenv(EnvRevokeKeepSessions))
	if v == "" {
		return false, nil
	}
	keep, err := envflag.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%w: %s is %q, not a boolean; use true or false", ErrConfig, EnvRevokeKeepSessions, v)
	}
	return keep, nil
}
