package redis

import (
	"bytes"
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
	s := &Secret{}
	var err error
	if s.Host, err = requiredString(m, "host"); err != nil {
		return nil, err
	}
	if strings.IndexFunc(s.Host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' }) >= 0 {
		return nil, fieldError("host", "is not a host name or address; remove spaces, slashes and control characters")
	}
	if s.Username, err = requiredString(m, "username"); err != nil {
		return nil, err
	}
	if strings.IndexFunc(s.Username, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return nil, fieldError("username", "contains a space or a control character, which a Redis ACL user name cannot hold; fix the user name")
	}
	if s.Password, err = requiredString(m, "password"); err != nil {
		return nil, err
	}
	if s.Port, err = port(m); err != nil {
		return nil, err
	}
	if s.SSL, err = sslField(m); err != nil {
		return nil, err
	}
	if s.MasterARN, err = optionalString(m, "masterarn"); err != nil {
		return nil, err
	}
	if s.UserARN, err = optionalString(m, "user_arn"); err != nil {
		return nil, err
	}
	if s.ReplicationGroupID, err = optionalString(m, "replication_group_id"); err != nil {
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
	return fmt.Errorf("%w: field %q %s", ErrInvalidSecret, field, fmt.Sprintf(format, args...))
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

func requiredString(m map[string]json.RawMessage, field string) (string, error) {
	raw, ok := m[field]
	if !ok || isNull(raw) {
		return "", fieldError(field, "is missing; add it to the secret")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fieldError(field, "must be a JSON string")
	}
	if strings.TrimSpace(s) == "" {
		return "", fieldError(field, "is empty; set it")
	}
	return s, nil
}

func optionalString(m map[string]json.RawMessage, field string) (string, error) {
	raw, ok := m[field]
	if !ok || isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fieldError(field, "must be a JSON string")
	}
	return s, nil
}

// port accepts a JSON number or a numeric string; absent means 6379. The
// value is never quoted: it may be a pasted password.
func port(m map[string]json.RawMessage) (int, error) {
	raw, ok := m["port"]
	if !ok || isNull(raw) {
		return DefaultPort, nil
	}
	var text string
	if err := json.Unmarshal(raw, &text); err != nil {
		var n json.Number
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&n); err != nil {
			return 0, fieldError("port", "must be a number or a numeric string, such as 6379")
		}
		text = n.String()
	}
	p, err := strconv.Atoi(strings.TrimSpace(text))
	if err != nil || p < 1 || p > 65535 {
		return 0, fieldError("port", "is not a port; use a whole number from 1 to 65535, such as 6379")
	}
	return p, nil
}

func sslField(m map[string]json.RawMessage) (*bool, error) {
	raw, ok := m["ssl"]
	if !ok || isNull(raw) {
		return nil, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil {
		return &b, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true":
			b = true
			return &b, nil
		case "false":
			return &b, nil
		}
	}
	return nil, fieldError("ssl", "must be true or false (a JSON boolean or the string \"true\" or \"false\"); remove it to require TLS with full verification")
}
