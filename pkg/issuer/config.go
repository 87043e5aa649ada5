package issuer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rotary-secrets/rotary/pkg/credentials/mysql"
	"github.com/rotary-secrets/rotary/pkg/credentials/postgres"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/registry"
)

// EnvRoles is the issuer's configuration: a JSON object mapping each role's
// name to its Role (docs/issued-credentials.md).
const EnvRoles = "ROTARY_ISSUER_ROLES"

// Bounds of a role's lifetimes.
const (
	// MinTTL is the shortest lifetime a caller may ask for: shorter ones
	// expire before a client has logged in.
	MinTTL = time.Second
	// DefaultTTL is a role's default lifetime when its configuration sets none.
	DefaultTTL = time.Hour
	// DefaultMaxTTL is a role's maximum lifetime when its configuration sets none.
	DefaultMaxTTL = 12 * time.Hour
	// CeilingTTL is the longest maximum a role may have: an issued user is a
	// short-lived credential, not an account.
	CeilingTTL = 7 * 24 * time.Hour
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid issuer configuration")

// Role is what callers may ask for by name: a user with the privileges of
// BaseUser on the server of the master secret, living DefaultTTL unless the
// caller asks for another lifetime, at most MaxTTL.
type Role struct {
	// Name is the role's key in the configuration.
	Name string `json:"-"`
	// Engine is the database family: registry.FamilyPostgres ("postgres")
	// or registry.FamilyMySQL ("mysql", for MySQL and MariaDB).
	Engine string `json:"engine"`
	// MasterARN is the ARN (or name) of a full database secret (engine, host, port,
	// username, password; dbname optional) of an admin user that may create
	// and drop users on the server: the master secret of the alternating
	// users types.
	MasterARN string `json:"masterarn"`
	// BaseUser is the user whose privileges every issued user gets.
	BaseUser string `json:"baseUser"`
	// DBName, when set, is the database the credential names (and the
	// master connects to); else the master secret's.
	DBName string `json:"dbname,omitempty"`
	// DefaultTTL and MaxTTL are Go durations ("1h").
	DefaultTTL Duration `json:"defaultTtl,omitzero"`
	MaxTTL     Duration `json:"maxTtl,omitzero"`
}

// Duration is a time.Duration written as a Go duration string in JSON.
type Duration time.Duration

// UnmarshalJSON reads a Go duration string such as "1h30m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("want a Go duration string such as \"1h\"")
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a Go duration such as \"1h\"", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// roleName is what a role's name may be: it appears in the users' markers,
// the audit lines and the CLI.
var roleName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Config is the issuer's roles, by name.
type Config struct {
	Roles map[string]Role
}

// RoleNames lists the configured roles, sorted.
func (c Config) RoleNames() []string {
	names := make([]string, 0, len(c.Roles))
	for n := range c.Roles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ConfigFromEnv reads ROTARY_ISSUER_ROLES. Every error names the role and
// the field, and how to fix it.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	raw := strings.TrimSpace(getenv(EnvRoles))
	if raw == "" {
		return Config{}, fmt.Errorf("%w: %s is not set; set it to a JSON object of roles, e.g. {\"app-read\":{\"engine\":\"postgres\",\"masterarn\":\"arn:aws:secretsmanager:...\",\"baseUser\":\"app_read\",\"maxTtl\":\"12h\"}}", ErrConfig, EnvRoles)
	}
	return ParseConfig(raw)
}

// ParseConfig reads the JSON form of ROTARY_ISSUER_ROLES.
func ParseConfig(raw string) (Config, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &m); err != nil || m == nil {
		return Config{}, fmt.Errorf("%w: %s is not a JSON object of roles (role name -> {engine, masterarn, baseUser, defaultTtl, maxTtl})", ErrConfig, EnvRoles)
	}
	if len(m) == 0 {
		return Config{}, fmt.Errorf("%w: %s names no role; add at least one", ErrConfig, EnvRoles)
	}
	c := Config{Roles: map[string]Role{}}
	for name, body := range m {
		if !roleName.MatchString(name) {
			return Config{}, fmt.Errorf("%w: %s: role name %q must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit", ErrConfig, EnvRoles, name)
		}
		var r Role
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return Config{}, fmt.Errorf("%w: %s: role %q: %v (the fields are engine, masterarn, baseUser, dbname, defaultTtl, maxTtl)", ErrConfig, EnvRoles, name, err)
		}
		r.Name = name
		if err := r.check(); err != nil {
			return Config{}, fmt.Errorf("%w: %s: role %q: %w", ErrConfig, EnvRoles, name, err)
		}
		c.Roles[name] = r
	}
	return c, nil
}

// check validates a role and fills in its default lifetimes.
func (r *Role) check() error {
	switch r.Engine {
	case registry.FamilyPostgres, registry.FamilyMySQL:
	case "":
		return errors.New("field \"engine\" is missing; set it to postgres or mysql (MySQL and MariaDB)")
	default:
		return fmt.Errorf("field \"engine\" is %q; set it to postgres or mysql (MySQL and MariaDB)", r.Engine)
	}
	if m := strings.TrimSpace(r.MasterARN); m == "" || m != r.MasterARN || strings.ContainsFunc(m, func(c rune) bool { return c <= ' ' || c == 0x7f }) ||
		strings.HasPrefix(m, "arn:") && !strings.Contains(m, ":secretsmanager:") {
		return fmt.Errorf("field \"masterarn\" is %q; set it to the ARN (or name) of the admin user's database secret, arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME", r.MasterARN)
	}
	if strings.TrimSpace(r.BaseUser) == "" {
		return errors.New("field \"baseUser\" is missing; set it to the user whose privileges issued users get")
	}
	if strings.ContainsFunc(r.BaseUser, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return errors.New("field \"baseUser\" contains a control character; use the user's name")
	}
	// The longest base whose issued users fit the engine's longest names
	// (PostgreSQL counts bytes; MariaDB's limit is the loosest of the MySQL
	// family, and the server's own is checked when a user is created).
	limit, n := postgres.MaxNameBytes, len(r.BaseUser)
	if r.Engine == registry.FamilyMySQL {
		limit, n = mysql.MariaDBNameLimit, utf8.RuneCountInString(r.BaseUser)
	}
	if n+dbsecret.ExpiringSuffixLen > limit {
		return fmt.Errorf("field \"baseUser\" %q leaves no room for the %d-character suffix of its issued users under the server's limit of %d; use a base user of at most %d", r.BaseUser, dbsecret.ExpiringSuffixLen, limit, limit-dbsecret.ExpiringSuffixLen)
	}
	if r.MaxTTL == 0 {
		r.MaxTTL = Duration(DefaultMaxTTL)
	}
	if r.DefaultTTL == 0 {
		r.DefaultTTL = Duration(min(DefaultTTL, time.Duration(r.MaxTTL)))
	}
	maxTTL, def := time.Duration(r.MaxTTL), time.Duration(r.DefaultTTL)
	if maxTTL < MinTTL || maxTTL > CeilingTTL {
		return fmt.Errorf("field \"maxTtl\" is %s; set it from %s to %s", maxTTL, MinTTL, CeilingTTL)
	}
	if def < MinTTL || def > maxTTL {
		return fmt.Errorf("field \"defaultTtl\" is %s; set it from %s to maxTtl (%s)", def, MinTTL, maxTTL)
	}
	return nil
}

// TTL returns the lifetime of a credential a caller asks for with ttl
// (empty: the role's default). The error says what is allowed.
func (r Role) TTL(ttl string) (time.Duration, error) {
	if strings.TrimSpace(ttl) == "" {
		return time.Duration(r.DefaultTTL), nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(ttl))
	if err != nil {
		return 0, fmt.Errorf("ttl %q is not a Go duration such as \"1h\" or \"15m\"", ttl)
	}
	if d < MinTTL {
		return 0, fmt.Errorf("ttl %s is below the minimum of %s", d, MinTTL)
	}
	if d > time.Duration(r.MaxTTL) {
		return 0, fmt.Errorf("ttl %s is above role %q's maximum of %s; ask for at most %s", d, r.Name, time.Duration(r.MaxTTL), time.Duration(r.MaxTTL))
	}
	return d, nil
}
