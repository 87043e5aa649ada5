package config

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rotary-secrets/rotary/infra/internal/schedule"
	"github.com/rotary-secrets/rotary/pkg/registry"
)

// IsExpiringType reports whether typ creates a user per rotation that
// expires after credentialTtl.
func IsExpiringType(typ string) bool {
	t, ok := registry.Lookup(typ)
	return ok && t.ExpiringUsers
}

// ReapsUsers reports whether the function named fn (a type, or the issuer)
// reaps expired users, so reads ROTARY_REAP_KEEP_SESSIONS.
func ReapsUsers(fn string) bool { return IsExpiringType(fn) || fn == IssuerFunction }

// UsesMySQLMarker reports whether fn marks users in a MySQL marker table,
// so reads ROTARY_MYSQL_MARKER_DATABASE.
func UsesMySQLMarker(fn string) bool {
	t, ok := registry.Lookup(fn)
	return fn == IssuerFunction || ok && t.ExpiringUsers && t.Family == registry.FamilyMySQL
}

var markerDBRe = regexp.MustCompile(`^[A-Za-z0-9_$]{1,64}$`)

// validateFunctionFields refuses, in functions.<fn>, the fields fn does
// not read, and checks their values.
func (c *Config) validateFunctionFields(v *validator, fn string, f FunctionConfig) {
	where := "functions." + fn
	if f.CredentialTTL != "" && !IsExpiringType(fn) {
		v.addf("%s: field credentialTtl: %s creates no expiring users; remove credentialTtl (it is for %s)", where, fn, strings.Join(expiringTypes(), ", "))
	}
	if f.ReapKeepSessions != nil && !ReapsUsers(fn) {
		v.addf("%s: field reapKeepSessions: %s reaps no users; remove reapKeepSessions (it is for %s and %s)", where, fn, strings.Join(expiringTypes(), ", "), IssuerFunction)
	}
	if f.MySQLMarkerDatabase != "" && !UsesMySQLMarker(fn) {
		v.addf("%s: field mysqlMarkerDatabase: %s marks no MySQL users; remove mysqlMarkerDatabase (it is for mysql-expiring-user and %s)", where, fn, IssuerFunction)
	}
	if fn == IssuerFunction && c.Issuer == nil {
		v.addf("%s: there is no issuer section; add issuer or remove functions.%s", where, fn)
	}
	checkFunctionValues(v, where, f)
}

// validateFunctionDefaults checks function's fields of the expiring types
// and the issuer (they apply only to the functions that read them).
func (c *Config) validateFunctionDefaults(v *validator) {
	checkFunctionValues(v, "function", c.Function)
}

func checkFunctionValues(v *validator, where string, f FunctionConfig) {
	if f.CredentialTTL != "" {
		if d, err := time.ParseDuration(f.CredentialTTL); err != nil || d <= 0 || d%time.Second != 0 {
			v.addf("%s: field credentialTtl: %q is not a positive whole number of seconds as a Go duration, such as 360h", where, f.CredentialTTL)
		}
	}
	if f.MySQLMarkerDatabase != "" && !markerDBRe.MatchString(f.MySQLMarkerDatabase) {
		v.addf("%s: field mysqlMarkerDatabase: %q is not a database name of at most 64 ASCII letters, digits, _ and $", where, f.MySQLMarkerDatabase)
	}
}

func expiringTypes() []string {
	var out []string
	for _, t := range registry.All() {
		if t.ExpiringUsers {
			out = append(out, t.Name)
		}
	}
	return out
}

// validateCredentialTTLs refuses an expiring type without credentialTtl,
// and a secret of such a type whose schedule (staggered, when stagger
// moved it) plus its window the TTL does not outlive: its AWSCURRENT
// could expire before the next rotation replaced it.
func (c *Config) validateCredentialTTLs(v *validator, staggered map[string]string) {
	missing := map[string]bool{}
	for i, s := range c.Secrets {
		if !IsExpiringType(s.Type) {
			continue
		}
		where := fmt.Sprintf("secrets[%d] (%s)", i, s.Name)
		field := "functions." + s.Type + ".credentialTtl"
		raw := c.FunctionFor(s.Type).CredentialTTL
		if raw == "" {
			if !missing[s.Type] {
				missing[s.Type] = true
				v.addf("%s: field credentialTtl: type %s needs the lifetime of the users it creates: set %s (or function.credentialTtl), a Go duration longer than the schedule's interval plus its window, such as 2 x interval + window", where, s.Type, field)
			}
			continue
		}
		ttl, err := time.ParseDuration(raw)
		if err != nil || ttl <= 0 {
			continue // reported by checkFunctionValues
		}
		if _, ok := c.Functions[s.Type]; !ok || c.Functions[s.Type].CredentialTTL == "" {
			field = "function.credentialTtl"
		}
		expr, moved := s.Schedule, ""
		if m, ok := staggered[s.Name]; ok {
			expr, moved = m, fmt.Sprintf(" (stagger: host made it %s)", m)
		}
		hours, err := WindowHours(s.Window)
		if err != nil || ValidateSchedule(s.Schedule) != nil {
			continue // reported with the secret
		}
		gap, err := schedule.MaxInterval(expr)
		if err != nil {
			v.addf("%s: field schedule: %s: %v; the credential lifetime of type %s is checked against it", where, s.Schedule, err, s.Type)
			continue
		}
		window := time.Duration(hours) * time.Hour
		if need := gap + window; ttl <= need {
			v.addf("%s: field credentialTtl: %s is %s, not longer than the schedule %s%s's longest interval (%s) plus its window (%s) = %s: AWSCURRENT would expire before the next rotation replaced it; set %s above %s (2 x interval + window = %s leaves room for a retried rotation), or rotate more often",
				where, field, ttl, s.Schedule, moved, gap, window, need, field, need, 2*gap+window)
		}
	}
}

// validateIssuer checks the issuer section.
func (c *Config) validateIssuer(v *validator) {
	is := c.Issuer
	if is.FunctionName != "" && !regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`).MatchString(is.FunctionName) {
		v.addf("issuer: field functionName: %q must be 1 to 64 letters, digits, '-' or '_'", is.FunctionName)
	}
	if r := is.ReapInterval; r != "" && r != IssuerReapOff {
		if d, err := time.ParseDuration(r); err != nil || d%time.Minute != 0 || d < time.Minute || d > 24*time.Hour {
			v.addf("issuer: field reapInterval: %q must be whole minutes from 1m to 24h as a Go duration such as 5m, or off", r)
		}
	}
	if len(is.Roles) == 0 {
		v.addf("issuer: field roles: list at least one role (name, engine, masterSecret or masterSecretArn, database, baseUser)")
	}
	names := map[string]bool{}
	for i, r := range is.Roles {
		where := fmt.Sprintf("issuer.roles[%d] (%s)", i, r.Name)
		if !entryNameRe.MatchString(r.Name) {
			v.addf("%s: field name: %q must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit", where, r.Name)
		}
		if names[r.Name] {
			v.addf("%s: field name: another role has this name", where)
		}
		names[r.Name] = true
		limit := 0
		switch r.Engine {
		case registry.FamilyPostgres:
			limit = 63 - expiringSuffixLength
		case registry.FamilyMySQL:
			limit = 80 - expiringSuffixLength // MariaDB's; MySQL's is 32 - 18 = 14
		default:
			v.addf("%s: field engine: %q; use postgres, or mysql (MySQL and MariaDB)", where, r.Engine)
		}
		switch {
		case r.MasterSecret == "" && r.MasterSecretARN == "":
			v.addf("%s: field masterSecret: set masterSecret (a secrets entry) or masterSecretArn: the admin user's secret that creates the users", where)
		case r.MasterSecret != "" && r.MasterSecretARN != "":
			v.addf("%s: field masterSecret: set masterSecret or masterSecretArn, not both", where)
		case r.MasterSecret != "":
			if _, ok := c.Secret(r.MasterSecret); !ok {
				v.addf("%s: field masterSecret: no secrets entry is named %q", where, r.MasterSecret)
			}
		default:
			if !secretArnRe.MatchString(r.MasterSecretARN) {
				v.addf("%s: field masterSecretArn: %q is not a complete Secrets Manager secret ARN", where, r.MasterSecretARN)
			} else if parts := strings.Split(r.MasterSecretARN, ":"); parts[3] != c.Region {
				v.addf("%s: field masterSecretArn: the secret is in %s, but the issuer runs in %s and reads it through that region's Secrets Manager", where, parts[3], c.Region)
			}
		}
		if r.MasterKmsKeyARN != "" && (r.MasterSecretARN == "" || !kmsArnRe.MatchString(r.MasterKmsKeyARN)) {
			v.addf("%s: field masterKmsKeyArn: %q must be a KMS key ARN and goes with masterSecretArn", where, r.MasterKmsKeyARN)
		}
		if r.Database == "" {
			v.addf("%s: field database: required; name the databases entry of the master's server (the issuer gets a rule to its port)", where)
		} else if _, ok := c.Database(r.Database); !ok {
			v.addf("%s: field database: no databases entry is named %q", where, r.Database)
		}
		switch {
		case strings.TrimSpace(r.BaseUser) == "":
			v.addf("%s: field baseUser: required; the user whose privileges every issued user gets", where)
		case strings.ContainsFunc(r.BaseUser, func(c rune) bool { return c < 0x20 || c == 0x7f }):
			v.addf("%s: field baseUser: contains a control character; use the user's name", where)
		case limit > 0 && nameLength(r.Engine, r.BaseUser) > limit:
			v.addf("%s: field baseUser: %q is %d %s; an issued user's name adds %d, so on %s the base may have at most %d", where, r.BaseUser, nameLength(r.Engine, r.BaseUser), map[bool]string{true: "bytes", false: "characters"}[r.Engine == registry.FamilyPostgres], expiringSuffixLength, r.Engine, limit)
		}
		if _, _, err := r.TTLs(); err != nil {
			v.addf("%s: %w", where, err)
		}
	}
	if is.AllowedCallers == nil {
		v.addf("issuer: field allowedCallers: required: list the IAM role or user ARNs that may call the function URL (exact ARNs, any account), or write allowedCallers: [] to leave it to the callers' own IAM policies in this account")
	} else {
		for i, p := range *is.AllowedCallers {
			c.validateCaller(v, fmt.Sprintf("issuer: field allowedCallers[%d]", i), p)
		}
	}
	for i, p := range is.Operators {
		c.validateCaller(v, fmt.Sprintf("issuer: field operators[%d]", i), p)
	}
}

// nameLength is a user name's length as the engine counts it: PostgreSQL
// in bytes, MySQL and MariaDB in characters (as pkg/issuer checks it).
func nameLength(engine, name string) int {
	if engine == registry.FamilyPostgres {
		return len(name)
	}
	return utf8.RuneCountInString(name)
}

var callerRe = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[A-Za-z0-9+=,.@_/-]+$`)

func (c *Config) validateCaller(v *validator, where, arn string) {
	switch {
	case strings.Contains(arn, ":assumed-role/"):
		v.addf("%s: %q is an assumed-role session; name its role instead (arn:aws:iam::%s:role/NAME)", where, arn, c.Account)
	case strings.Contains(arn, "*") || strings.Contains(arn, "?"):
		v.addf("%s: %q has a wildcard; a Lambda function's resource policy takes exact principals: list each role or user", where, arn)
	case !callerRe.MatchString(arn):
		v.addf("%s: %q is not an IAM role or user ARN (arn:aws:iam::ACCOUNT:role/NAME or arn:aws:iam::ACCOUNT:user/NAME, with its path)", where, arn)
	}
}

// TTLs returns the role's default and maximum lifetimes with their
// defaults filled in (1h, or maxTtl if shorter; 12h), or an error naming
// the field.
func (r IssuerRoleConfig) TTLs() (def, maxTTL time.Duration, err error) {
	maxTTL = issuerDefaultMaxTTL
	if r.MaxTTL != "" {
		if maxTTL, err = time.ParseDuration(r.MaxTTL); err != nil || maxTTL%time.Second != 0 || maxTTL < issuerMinTTL || maxTTL > issuerCeilingTTL {
			return 0, 0, fmt.Errorf("field maxTtl: %q must be whole seconds from %s to %s as a Go duration such as 12h", r.MaxTTL, issuerMinTTL, issuerCeilingTTL)
		}
	}
	def = min(issuerDefaultTTL, maxTTL)
	if r.DefaultTTL != "" {
		if def, err = time.ParseDuration(r.DefaultTTL); err != nil || def%time.Second != 0 || def < issuerMinTTL || def > maxTTL {
			return 0, 0, fmt.Errorf("field defaultTtl: %q must be whole seconds from %s to maxTtl (%s) as a Go duration such as 1h", r.DefaultTTL, issuerMinTTL, maxTTL)
		}
	}
	return def, maxTTL, nil
}
