package redis

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// ErrInvalidSecret is wrapped by every error about a malformed secret.
var ErrInvalidSecret = errors.New("invalid Redis secret")

// DefaultPort is Redis's port.
const DefaultPort = 6379

// Secret is the secret of both types: where the server is, the user and
// its password. Fields Rotary does not know are carried over by the engine.
type Secret struct {
	Host     string
	Port     int
	Username string
	Password string
	// SSL is nil when the secret does not say, which means TLS with full
	// verification; false only for "ssl": false or "false".
	SSL *bool
	// MasterARN names an admin secret (redis-acl only).
	MasterARN string
	// UserARN and ReplicationGroupID name the ElastiCache user and the
	// replication group it serves (elasticache-user only).
	UserARN            string
	ReplicationGroupID string
}

// PlaintextAllowed reports whether the secret says "ssl": false.
func (s *Secret) PlaintextAllowed() bool { return s.SSL != nil && !*s.SSL }

// Addr returns host:port.
func (s *Secret) Addr() string { return joinHostPort(s.Host, s.Port) }

func joinHostPort(h string, p int) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]:" + strconv.Itoa(p)
	}
	return h + ":" + strconv.Itoa(p)
}

// String describes the secret without its password.
func (s Secret) String() string {
	ssl := "verified TLS"
	if s.PlaintextAllowed() {
		ssl = "plaintext allowed"
	}
	return fmt.Sprintf("redis://%s@%s (%s, password redacted)", s.Username, s.Addr(), ssl)
}

// GoString is String, for %#v.
func (s Secret) GoString() string { return s.String() }

// dbTLS is the secret as dbsecret's TLS settings see it.
func (s *Secret) dbTLS() *dbsecret.Secret { return &dbsecret.Secret{Host: s.Host, SSL: s.SSL} }

// publicFields are the fields whose values say where and who.
var publicFields = []string{"host", "port", "username", "ssl", "masterarn", "user_arn", "replication_group_id"}

// Parse decodes and validates a secret value. Errors name the field and the
// fix and never quote the password.
func Parse(value string) (*Secret, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(value), &m); err != nil || m == nil {
		return nil, fmt.Errorf("%w: the secret value is not a JSON object; store a JSON object with host, port, username and password", ErrInvalidSecret)
	}
	f := dbsecret.Fields{M: m, Err: ErrInvalidSecret}
	var pw string
	if raw, ok := m["password"]; ok {
		_ = json.Unmarshal(raw, &pw) // only to keep it out of a port error
	}
	s := &Secret{}
	var err error
	if s.Host, err = f.Required("host"); err != nil {
		return nil, err
	}
	if strings.IndexFunc(s.Host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' }) >= 0 {
		return nil, fieldError("host", "is not a host name or address; remove spaces, slashes and control characters")
	}
	if s.Username, err = f.Required("username"); err != nil {
		return nil, err
	}
	if strings.IndexFunc(s.Username, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return nil, fieldError("username", "contains a space or a control character, which a Redis ACL user name cannot hold; fix the user name")
	}
	if s.Password, err = f.Required("password"); err != nil {
		return nil, err
	}
	if s.Port, err = f.Port(DefaultPort, pw); err != nil {
		return nil, err
	}
	if s.SSL, err = f.SSL(); err != nil {
		return nil, err
	}
	if s.MasterARN, err = f.Optional("masterarn"); err != nil {
		return nil, err
	}
	if s.UserARN, err = f.Optional("user_arn"); err != nil {
		return nil, err
	}
	if s.ReplicationGroupID, err = f.Optional("replication_group_id"); err != nil {
		return nil, err
	}
	return s, nil
}

type parseKey struct{}

// parseVersion is Parse of a version, decoded once per step.
func parseVersion(v rotation.Version) (*Secret, error) {
	x, err := v.Decoded(parseKey{}, func(value string) (any, error) { return Parse(value) })
	if err != nil {
		return nil, fmt.Errorf("version %s: %w", v.ID, err)
	}
	cp := *x.(*Secret)
	return &cp, nil
}

// checkPending refuses a pending (or previous) value for another server,
// user or way of connecting than the current one.
func checkPending(cur, pend *Secret) error {
	tls := func(s *Secret) string {
		if s.PlaintextAllowed() {
			return "plaintext allowed"
		}
		return "verified TLS"
	}
	switch {
	case !strings.EqualFold(cur.Host, pend.Host):
		return pendingDiff("host", strconv.Quote(cur.Host), strconv.Quote(pend.Host))
	case cur.Port != pend.Port:
		return pendingDiff("port", cur.Port, pend.Port)
	case cur.Username != pend.Username:
		return pendingDiff("username", strconv.Quote(cur.Username), strconv.Quote(pend.Username))
	case cur.PlaintextAllowed() != pend.PlaintextAllowed():
		return pendingDiff("ssl", tls(cur), tls(pend))
	case cur.MasterARN != pend.MasterARN:
		return pendingDiff("masterarn", strconv.Quote(cur.MasterARN), strconv.Quote(pend.MasterARN))
	case cur.UserARN != pend.UserARN:
		return pendingDiff("user_arn", strconv.Quote(cur.UserARN), strconv.Quote(pend.UserARN))
	case cur.ReplicationGroupID != pend.ReplicationGroupID:
		return pendingDiff("replication_group_id", strconv.Quote(cur.ReplicationGroupID), strconv.Quote(pend.ReplicationGroupID))
	}
	return nil
}

func pendingDiff(field string, a, b any) error {
	return fmt.Errorf("%w: field %q differs between the current and the pending version (%v, %v); a rotation changes only the password: remove the pending version (AWSPENDING) and rotate again", ErrInvalidSecret, field, a, b)
}

func fieldError(field, format string, args ...any) error {
	return dbsecret.Fields{Err: ErrInvalidSecret}.Error(field, format, args...)
}
