// Package dbsecret parses and validates the RDS-format database secret and its TLS settings.
package dbsecret

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// ErrInvalidSecret is wrapped by every error about a malformed database secret.
var ErrInvalidSecret = errors.New("invalid database secret")

// Engine families.
const (
	FamilyPostgres = "postgres"
	FamilyMySQL    = "mysql"
)

// engines maps each accepted "engine" value to its family.
var engines = map[string]string{
	"postgres":          FamilyPostgres,
	"aurora-postgresql": FamilyPostgres,
	"mysql":             FamilyMySQL,
	"aurora-mysql":      FamilyMySQL,
	"mariadb":           FamilyMySQL,
}

// PublicFields are the fields of a database secret whose values say where
// and who, never how to log in: every database type declares them to the
// engine's scrubber (rotation.PublicFielder).
func PublicFields() []string {
	return []string{"engine", "host", "port", "username", "dbname", "masterarn", "ssl", "dbInstanceIdentifier", "dbClusterIdentifier", "proxyHost"}
}

// Secret is the database secret JSON that RDS, CDK and AWS's rotation
// templates write. Fields Rotary does not know are not kept here: the engine
// carries them over from the current value unchanged.
type Secret struct {
	Engine   string
	Host     string
	Port     int // the family's default port when the secret has none
	Username string
	Password string
	DBName   string // as written; empty when absent (see Database)
	// SSL is nil when the secret does not say, which means TLS with full
	// verification. It is false only for "ssl": false or "ssl": "false".
	SSL *bool

	MasterARN            string
	DBInstanceIdentifier string
	DBClusterIdentifier  string
}

// Family returns FamilyPostgres or FamilyMySQL.
func (s *Secret) Family() string { return engines[s.Engine] }

// Database returns the database to connect to: dbname, or the family's
// default ("postgres" for PostgreSQL, none for MySQL) when it is empty.
func (s *Secret) Database() string {
	if s.DBName == "" && s.Family() == FamilyPostgres {
		return "postgres"
	}
	return s.DBName
}

// DefaultPort returns 5432 for PostgreSQL and 3306 for MySQL engines.
func DefaultPort(family string) int {
	if family == FamilyPostgres {
		return 5432
	}
	return 3306
}

// PlaintextAllowed reports whether the secret explicitly allows a connection
// without TLS ("ssl": false).
func (s *Secret) PlaintextAllowed() bool { return s.SSL != nil && !*s.SSL }

// Parse decodes and validates a database secret. Every error wraps
// ErrInvalidSecret, names the field and says how to fix it; no error ever
// quotes the password.
func Parse(value string) (*Secret, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(value), &m); err != nil || m == nil {
		return nil, fmt.Errorf("%w: the secret value is not a JSON object; store a JSON object with engine, host, username and password", ErrInvalidSecret)
	}
	// The password, read first (best effort) only to keep it out of the
	// errors that quote another field's value: it may have been pasted there.
	var pw string
	if raw, ok := m["password"]; ok {
		_ = json.Unmarshal(raw, &pw)
	}
	f := Fields{M: m, Err: ErrInvalidSecret}
	s := &Secret{}
	var err error
	if s.Engine, err = f.Required("engine"); err != nil {
		return nil, err
	}
	if _, ok := engines[s.Engine]; !ok {
		return nil, valueError("engine", s.Engine, "is not a supported engine; use postgres, aurora-postgresql, mysql, aurora-mysql or mariadb", pw)
	}
	if s.Host, err = f.Required("host"); err != nil {
		return nil, err
	}
	if strings.IndexFunc(s.Host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' }) >= 0 {
		return nil, valueError("host", s.Host, "is not a host name or address; remove spaces, slashes and control characters", pw)
	}
	if s.Username, err = f.Required("username"); err != nil {
		return nil, err
	}
	if strings.IndexFunc(s.Username, unicode.IsControl) >= 0 {
		return nil, fieldError("username", "contains a control character (such as a NUL byte or newline); use printable characters only")
	}
	if s.Password, err = f.Required("password"); err != nil {
		return nil, err
	}
	if strings.ContainsRune(s.Password, 0) {
		return nil, fieldError("password", "contains a NUL byte, which no database accepts; set a password without it")
	}
	if s.Port, err = f.Port(DefaultPort(s.Family()), pw); err != nil {
		return nil, err
	}
	if s.DBName, err = f.Optional("dbname"); err != nil {
		return nil, err
	}
	if strings.ContainsRune(s.DBName, 0) {
		return nil, fieldError("dbname", "contains a NUL byte; set a database name without it")
	}
	if s.SSL, err = f.SSL(); err != nil {
		return nil, err
	}
	if s.MasterARN, err = f.Optional("masterarn"); err != nil {
		return nil, err
	}
	if s.DBInstanceIdentifier, err = f.Optional("dbInstanceIdentifier"); err != nil {
		return nil, err
	}
	if s.DBClusterIdentifier, err = f.Optional("dbClusterIdentifier"); err != nil {
		return nil, err
	}
	return s, nil
}

func fieldError(field, format string, args ...any) error {
	return Fields{Err: ErrInvalidSecret}.Error(field, format, args...)
}

func valueError(field, value, rest, password string) error {
	return Fields{Err: ErrInvalidSecret}.ValueError(field, value, rest, password)
}

// CheckSameTarget refuses a pending value that points the rotation at another
// server or database than the current one: engine, host, port and dbname
// must be equal. The username is the credential type's business (it changes
// in alternating-users rotation).
func CheckSameTarget(cur, pend *Secret) error {
	diff := pendingDiff
	switch {
	case cur.Engine != pend.Engine:
		return diff("engine", strconv.Quote(cur.Engine), strconv.Quote(pend.Engine))
	case !strings.EqualFold(cur.Host, pend.Host):
		return diff("host", strconv.Quote(cur.Host), strconv.Quote(pend.Host))
	case cur.Port != pend.Port:
		return diff("port", cur.Port, pend.Port)
	case cur.Database() != pend.Database():
		return diff("dbname", strconv.Quote(cur.Database()), strconv.Quote(pend.Database()))
	}
	return nil
}

// CheckPending refuses a pending value that is not for the same rotation as
// cur: CheckSameTarget's fields, and also ssl (a pending version must not
// turn TLS off) and masterarn (nor name another admin secret). The username
// is the credential type's business.
func CheckPending(cur, pend *Secret) error {
	if err := CheckSameTarget(cur, pend); err != nil {
		return err
	}
	tls := func(s *Secret) string {
		if s.PlaintextAllowed() {
			return "plaintext allowed"
		}
		return "verified TLS"
	}
	switch {
	case cur.PlaintextAllowed() != pend.PlaintextAllowed():
		return pendingDiff("ssl", tls(cur), tls(pend))
	case cur.MasterARN != pend.MasterARN:
		return pendingDiff("masterarn", strconv.Quote(cur.MasterARN), strconv.Quote(pend.MasterARN))
	}
	return nil
}

func pendingDiff(field string, a, b any) error {
	return fmt.Errorf("%w: field %q differs between the current and the pending version (%v, %v); a rotation must not move to another server or change how it connects: remove the pending version (AWSPENDING) and rotate again", ErrInvalidSecret, field, a, b)
}

// String describes the secret without its password, so that printing a
// Secret by mistake (%v, %+v) cannot leak it.
func (s Secret) String() string {
	ssl := "verified TLS"
	if s.PlaintextAllowed() {
		ssl = "plaintext allowed"
	}
	return fmt.Sprintf("%s://%s@%s:%d/%s (%s, password redacted)", s.Engine, s.Username, s.Host, s.Port, s.Database(), ssl)
}

// GoString is String, for %#v.
func (s Secret) GoString() string { return s.String() }

// parseKey keys ParseVersion's result in rotation.Version.Decoded.
type parseKey struct{}

// ParseVersion is Parse of a version's value, decoded once per rotation
// step: the engine's Validate, then Set, Test or Probe share one result (see
// rotation.Version.Decoded). Each call returns its own copy, so a caller
// may change it without changing what the step's other calls see.
func ParseVersion(v rotation.Version) (*Secret, error) {
	x, err := v.Decoded(parseKey{}, func(value string) (any, error) { return Parse(value) })
	if err != nil {
		return nil, err
	}
	cp := *x.(*Secret)
	if cp.SSL != nil {
		ssl := *cp.SSL
		cp.SSL = &ssl
	}
	return &cp, nil
}
