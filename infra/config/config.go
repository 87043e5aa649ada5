// Package config parses and validates the Rotary CDK app's configuration file.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rotary-secrets/rotary/pkg/registry"
)

// ErrInvalid is wrapped by every validation error, so callers can tell a bad
// file from an unreadable one with errors.Is.
var ErrInvalid = errors.New("invalid rotary config")

// Config is the whole configuration file. Every field is documented in
// infra/README.md; rotary.example.yaml shows them in use.
type Config struct {
	// StackName is the CloudFormation stack name (default "Rotary").
	StackName string `yaml:"stackName"`
	// Account and Region pin the stack environment, so synth needs no credentials.
	Account string `yaml:"account"`
	Region  string `yaml:"region"`
	// DistDir holds <type>.zip for every function type in use. A relative path
	// is resolved against the directory of the config file.
	DistDir string `yaml:"distDir"`
	// LogRetentionDays of every function's log group (default 90).
	LogRetentionDays int `yaml:"logRetentionDays"`
	// Function holds defaults for all functions; Functions overrides them per type.
	Function  FunctionConfig            `yaml:"function"`
	Functions map[string]FunctionConfig `yaml:"functions"`
	// Vpc is where the database functions run. Required if any secret has a database type.
	Vpc *VpcConfig `yaml:"vpc"`
	// SecretsManagerEndpoint creates an interface VPC endpoint for Secrets Manager.
	SecretsManagerEndpoint EndpointConfig `yaml:"secretsManagerEndpoint"`
	// Databases are the targets the database functions may reach, by name.
	Databases []DatabaseConfig `yaml:"databases"`
	// Alarms configures where notifications go.
	Alarms AlarmsConfig `yaml:"alarms"`
	// Watch configures the watch function that checks the secrets' health
	// on a schedule (docs/watch.md).
	Watch WatchConfig `yaml:"watch"`
	// Issuer deploys the credential issuer (docs/issued-credentials.md):
	// short-lived database users on demand through a function URL with
	// AWS_IAM auth. Optional.
	Issuer *IssuerConfig `yaml:"issuer"`
	// Stagger spreads the rotation windows of the secrets of one database
	// host so that no two of them rotate in the same hour: "host", or
	// "none" (the default).
	Stagger string `yaml:"stagger"`
	// Secrets to rotate.
	Secrets []SecretConfig `yaml:"secrets"`
	// Tags are added to every resource of the stack.
	Tags map[string]string `yaml:"tags"`
	// DeployRoleArn is the IAM role CloudFormation deploys the stack with,
	// which the secrets' resource policies let update the secrets and
	// their policies (optional; default: the CDK bootstrap's CloudFormation
	// execution role, cdk-QUALIFIER-cfn-exec-role-ACCOUNT-REGION). Set it
	// for a pipeline or a custom synthesizer that deploys with another role.
	DeployRoleArn string `yaml:"deployRoleArn"`

	// dir is the directory the file was read from.
	dir string
}

// FunctionConfig sets a function's size and environment.
type FunctionConfig struct {
	// MemoryMB is the function memory (default 256).
	MemoryMB int `yaml:"memoryMB"`
	// Timeout is a Go duration (default "2m", at most "15m").
	Timeout string `yaml:"timeout"`
	// Environment adds or overrides environment variables (PASSWORD_LENGTH,
	// EXCLUDE_CHARACTERS, ROTARY_CONNECT_TIMEOUT, ...).
	Environment map[string]string `yaml:"environment"`
	// ReservedConcurrency caps how many invocations of the function run
	// at once (Lambda reserved concurrency): a number from 1 to 1000, or
	// "unreserved". Default: DefaultReservedConcurrency for types that log
	// in to a database, unreserved for the others (docs/scale.md).
	ReservedConcurrency *Concurrency `yaml:"reservedConcurrency"`
	// CredentialTTL is the lifetime of each user the expiring-user types
	// create (ROTARY_CREDENTIAL_TTL), a Go duration longer than every
	// secret's schedule interval plus its window. Required when such a
	// type is in use; only in function and functions.<expiring type>.
	CredentialTTL string `yaml:"credentialTtl"`
	// ReapKeepSessions makes the reaper drop expired users without ending
	// their open sessions (ROTARY_REAP_KEEP_SESSIONS): expiring-user types
	// and the credential issuer. Default false.
	ReapKeepSessions *bool `yaml:"reapKeepSessions"`
	// MySQLMarkerDatabase is the database of the table that marks the
	// expiring users Rotary created on MySQL and MariaDB
	// (ROTARY_MYSQL_MARKER_DATABASE, default rotary): mysql-expiring-user
	// and the credential issuer.
	MySQLMarkerDatabase string `yaml:"mysqlMarkerDatabase"`
}

// IssuerConfig is the credential issuer.
type IssuerConfig struct {
	// FunctionName of the issuer (default rotary-credential-issuer, the
	// rotary CLI's default --issuer).
	FunctionName string `yaml:"functionName"`
	// Roles callers may ask for. At least one.
	Roles []IssuerRoleConfig `yaml:"roles"`
	// AllowedCallers are the IAM role and user ARNs (exact, any account)
	// that may call the function URL, through it only. Required ([]: only
	// principals of the account whose own IAM policies allow it).
	AllowedCallers *[]string `yaml:"allowedCallers"`
	// Operators are the IAM role and user ARNs that may invoke the issuer
	// directly: rotary leases, rotary revoke --leases. Optional.
	Operators []string `yaml:"operators"`
	// ReapInterval is how often a schedule asks the issuer to drop every
	// role's expired users: whole minutes from 1m to 24h, or "off"
	// (default 5m).
	ReapInterval string `yaml:"reapInterval"`
}

// IssuerRoleConfig is one role of the issuer.
type IssuerRoleConfig struct {
	// Name callers ask for.
	Name string `yaml:"name"`
	// Engine is postgres, or mysql (MySQL and MariaDB).
	Engine string `yaml:"engine"`
	// MasterSecret names a secrets entry; MasterSecretARN an existing
	// secret (MasterKmsKeyARN its customer-managed key): the admin user
	// that creates the users. Exactly one.
	MasterSecret    string `yaml:"masterSecret"`
	MasterSecretARN string `yaml:"masterSecretArn"`
	MasterKmsKeyARN string `yaml:"masterKmsKeyArn"`
	// Database names a databases entry: the issuer's network path to it.
	Database string `yaml:"database"`
	// BaseUser is the user whose privileges every issued user gets.
	BaseUser string `yaml:"baseUser"`
	// DBName is the database the credential names (default the master
	// secret's).
	DBName string `yaml:"dbname"`
	// DefaultTTL (default 1h, or maxTtl if shorter) and MaxTTL (default
	// 12h, at most 168h) are Go durations.
	DefaultTTL string `yaml:"defaultTtl"`
	MaxTTL     string `yaml:"maxTtl"`
}

// IssuerFunction is the issuer's key in functions: (its per-function
// settings, as for a type).
const IssuerFunction = "credential-issuer"

// Environment variables the app sets from fields, which environment may
// not set.
const (
	EnvCredentialTTL     = "ROTARY_CREDENTIAL_TTL"
	EnvReapKeepSessions  = "ROTARY_REAP_KEEP_SESSIONS"
	EnvMySQLMarkerDB     = "ROTARY_MYSQL_MARKER_DATABASE"
	EnvIssuerRoles       = "ROTARY_ISSUER_ROLES"
	DefaultIssuerName    = "rotary-credential-issuer"
	DefaultIssuerReap    = "5m"
	IssuerReapOff        = "off"
	issuerMinTTL         = time.Second
	issuerCeilingTTL     = 7 * 24 * time.Hour
	issuerDefaultTTL     = time.Hour
	issuerDefaultMaxTTL  = 12 * time.Hour
	expiringSuffixLength = 18 // "_" + yyMMddHHmmss + "_" + 4 random (pkg/dbsecret)
)

// Concurrency is a reserved concurrency: N >= 1, or Unreserved (0).
type Concurrency int

// Unreserved is the Concurrency "unreserved": no reservation, the function
// shares the account's unreserved pool. (Lambda's own 0 would stop the
// function, so the config has no way to write it.)
const Unreserved Concurrency = 0

// DefaultReservedConcurrency is the reservation of a function that logs in
// to a database: each in-flight step holds at most two connections, so a
// function of this type opens at most 20 at once on all its servers
// together, about a tenth of a small RDS instance's max_connections.
const DefaultReservedConcurrency Concurrency = 10

// MaxReservedConcurrency is the largest reservation the config accepts
// (the default account concurrency, of which 100 must stay unreserved).
const MaxReservedConcurrency = 1000

// UnmarshalYAML accepts a number or the word "unreserved".
func (c *Concurrency) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Value == "unreserved" {
		*c = Unreserved
		return nil
	}
	v, err := strconv.Atoi(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil || v < 1 || v > MaxReservedConcurrency {
		return fmt.Errorf("line %d: reservedConcurrency %q must be a whole number from 1 to %d, or unreserved", n.Line, n.Value, MaxReservedConcurrency)
	}
	*c = Concurrency(v)
	return nil
}

// VpcConfig names an existing VPC by ID; nothing is looked up.
type VpcConfig struct {
	ID      string         `yaml:"id"`
	Subnets []SubnetConfig `yaml:"subnets"`
	// SecurityGroupIDs are extra, existing security groups attached to every
	// database function (optional).
	SecurityGroupIDs []string `yaml:"securityGroupIds"`
}

// SubnetConfig is one private subnet the functions and the endpoint use.
type SubnetConfig struct {
	ID               string `yaml:"id"`
	AvailabilityZone string `yaml:"availabilityZone"`
	RouteTableID     string `yaml:"routeTableId"`
}

// EndpointConfig controls the Secrets Manager interface endpoint.
type EndpointConfig struct {
	Enabled bool `yaml:"enabled"`
	// PrivateDNS enables private DNS on the endpoint (default true).
	PrivateDNS *bool `yaml:"privateDns"`
}

// DatabaseConfig is a database the functions connect to.
type DatabaseConfig struct {
	Name            string `yaml:"name"`
	SecurityGroupID string `yaml:"securityGroupId"`
	Port            int    `yaml:"port"`
}

// AlarmsConfig configures notifications.
type AlarmsConfig struct {
	// Emails subscribed to the alarm topic (optional).
	Emails []string `yaml:"emails"`
	// StaleRotationCheck adds the AWS Config rule
	// SECRETSMANAGER_SCHEDULED_ROTATION_SUCCESS_CHECK and alerts when a
	// secret's rotation does not happen as scheduled (needs AWS Config
	// recording in the account). Default false.
	StaleRotationCheck bool `yaml:"staleRotationCheck"`
}

// WatchConfig configures the watch function.
type WatchConfig struct {
	// Enabled deploys the watch (default true: the config has secrets).
	Enabled *bool `yaml:"enabled"`
	// Interval between two runs, a Go duration of whole minutes from 5m to
	// 12h (default 15m).
	Interval string `yaml:"interval"`
	// Repair lets the watch heal stuck rotations (default false); a
	// secret's own repair overrides it.
	Repair bool `yaml:"repair"`
	// RepairAfter is how old a stuck rotation must be before the watch
	// repairs it (Go duration, at least 5m, default 1h).
	RepairAfter string `yaml:"repairAfter"`
	// OverdueAfter is how long after its window a rotation that has not
	// happened counts as overdue (Go duration, default 1h).
	OverdueAfter string `yaml:"overdueAfter"`
	// PerSecretAlarms alarms per secret (SecretName and FunctionName)
	// instead of per rotation function, for small fleets (default false).
	PerSecretAlarms bool `yaml:"perSecretAlarms"`
}

// StaggerHost is the value of Config.Stagger that spreads each host's rotation windows.
const StaggerHost = "host"

// MaxPerSecretAlarmSecrets is the largest fleet watch.perSecretAlarms
// accepts: up to four alarms per secret, next to the four resources every
// secret already has, must stay well below CloudFormation's 500 resources
// per stack.
const MaxPerSecretAlarmSecrets = 50

// SecretConfig is one secret to rotate: an existing one (ARN) or one the app creates (Create).
type SecretConfig struct {
	// Name identifies the entry; for a created secret it is also the secret name.
	Name string `yaml:"name"`
	// Type is the function type that rotates the secret.
	Type string `yaml:"type"`
	// ARN of an existing secret (the complete ARN, with the 6-character suffix).
	ARN string `yaml:"arn"`
	// KmsKeyARN of the customer-managed key that encrypts an existing secret
	// (omit when it uses aws/secretsmanager).
	KmsKeyARN string `yaml:"kmsKeyArn"`
	// Create makes the app create the secret, encrypted with the app's key.
	Create *CreateConfig `yaml:"create"`
	// Database names an entry of databases (required for database types).
	Database string `yaml:"database"`
	// RDSDatabaseARN is the ARN of the RDS DB instance or cluster whose
	// master password the secret holds (required for rds-master, refused
	// for other types): the function may describe and modify it only.
	RDSDatabaseARN string `yaml:"rdsDatabaseArn"`
	// ElastiCacheUserARN is the ARN of the ElastiCache user whose passwords
	// the secret holds, and ReplicationGroupARN the ARN of the replication
	// group its host belongs to (both required for elasticache-user,
	// refused for other types): the function may describe and modify that
	// user and describe that group only.
	ElastiCacheUserARN  string `yaml:"elasticacheUserArn"`
	ReplicationGroupARN string `yaml:"replicationGroupArn"`
	// MasterSecret names another entry of secrets; MasterSecretARN names an
	// existing secret. Multi-user types need exactly one of them.
	MasterSecret      string `yaml:"masterSecret"`
	MasterSecretARN   string `yaml:"masterSecretArn"`
	MasterKmsKeyARN   string `yaml:"masterKmsKeyArn"`
	Schedule          string `yaml:"schedule"`
	Window            string `yaml:"window"`
	RotateImmediately *bool  `yaml:"rotateImmediatelyOnUpdate"`
	// Repair overrides watch.repair for this secret (optional).
	Repair *bool `yaml:"repair"`
	// Host is the database server the secret's user is on, the group
	// stagger: host spreads (optional; default: the database entry, taken
	// as one host).
	Host string `yaml:"host"`
	// Readers are the IAM roles and users (ARNs, with IAM's * wildcard)
	// that may read the secret's value besides the suite's own functions.
	// Required: the secret's resource policy denies GetSecretValue to
	// everyone else, so a list that is not written is an error (write []
	// for a secret only the suite reads).
	Readers *[]string `yaml:"readers"`
	// Admins are break-glass principals (role or user ARNs, or the
	// account's root user): they may read, write versions and move labels
	// by hand; each write alerts as a manual override. Optional.
	Admins []string `yaml:"admins"`
	// RequireVpcEndpoint denies reads that do not come through the
	// suite's Secrets Manager VPC endpoint (secretsManagerEndpoint), except
	// by admins and by the suite's functions that run outside the VPC.
	RequireVpcEndpoint bool `yaml:"requireVpcEndpoint"`
}

// CreateConfig describes a secret the app creates.
type CreateConfig struct {
	// Template holds the non-secret fields of the secret JSON (engine, host,
	// port, username, dbname, ...). The app generates "password", and adds
	// "masterarn" when the entry has a master secret.
	Template map[string]any `yaml:"template"`
	// Description of the secret.
	Description string `yaml:"description"`
}

// Load reads, parses and validates a config file. Unknown fields are errors.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rotary config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolve rotary config path %s: %w", path, err)
	}
	c, err := Parse(data, filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse parses and validates a config held in memory (YAML or JSON); dir is
// the directory relative paths are resolved against.
func Parse(data []byte, dir string) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: parse: %w", ErrInvalid, err)
	}
	c.dir = dir
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) applyDefaults() {
	if c.StackName == "" {
		c.StackName = "Rotary"
	}
	if c.DistDir == "" {
		c.DistDir = "dist"
	}
	if c.LogRetentionDays == 0 {
		c.LogRetentionDays = 90
	}
	if c.Function.MemoryMB == 0 {
		c.Function.MemoryMB = 256
	}
	if c.Function.Timeout == "" {
		c.Function.Timeout = "2m"
	}
	for i := range c.Secrets {
		if c.Secrets[i].Window == "" {
			c.Secrets[i].Window = "2h"
		}
	}
	if c.Watch.Enabled == nil {
		c.Watch.Enabled = ptr(len(c.Secrets) > 0)
	}
	if c.Watch.Interval == "" {
		c.Watch.Interval = "15m"
	}
	if c.Watch.RepairAfter == "" {
		c.Watch.RepairAfter = "1h"
	}
	if c.Watch.OverdueAfter == "" {
		c.Watch.OverdueAfter = "1h"
	}
	if c.Stagger == "" {
		c.Stagger = "none"
	}
	if c.Issuer != nil {
		if c.Issuer.FunctionName == "" {
			c.Issuer.FunctionName = DefaultIssuerName
		}
		if c.Issuer.ReapInterval == "" {
			c.Issuer.ReapInterval = DefaultIssuerReap
		}
	}
}

func ptr[T any](v T) *T { return &v }

// WatchEnabled reports whether the app deploys the watch: watch.enabled,
// which defaults to true when the config has secrets.
func (c *Config) WatchEnabled() bool {
	if c.Watch.Enabled == nil {
		return len(c.Secrets) > 0
	}
	return *c.Watch.Enabled && len(c.Secrets) > 0
}

// HostOf is the group stagger: host spreads the secret in: its host, else
// its database entry ("" for types without a database).
func HostOf(s SecretConfig) string {
	if s.Host != "" {
		return s.Host
	}
	return s.Database
}

// DistPath is DistDir resolved against the config file's directory.
func (c *Config) DistPath() string {
	if filepath.IsAbs(c.DistDir) {
		return c.DistDir
	}
	return filepath.Join(c.dir, c.DistDir)
}

// SetDir changes the directory relative paths are resolved against.
func (c *Config) SetDir(dir string) { c.dir = dir }

// FunctionFor merges the defaults with the per-type overrides of typ.
func (c *Config) FunctionFor(typ string) FunctionConfig {
	f := FunctionConfig{MemoryMB: c.Function.MemoryMB, Timeout: c.Function.Timeout, ReservedConcurrency: c.Function.ReservedConcurrency, Environment: map[string]string{},
		CredentialTTL: c.Function.CredentialTTL, ReapKeepSessions: c.Function.ReapKeepSessions, MySQLMarkerDatabase: c.Function.MySQLMarkerDatabase}
	for k, v := range c.Function.Environment {
		f.Environment[k] = v
	}
	if o, ok := c.Functions[typ]; ok {
		if o.MemoryMB != 0 {
			f.MemoryMB = o.MemoryMB
		}
		if o.Timeout != "" {
			f.Timeout = o.Timeout
		}
		if o.ReservedConcurrency != nil {
			f.ReservedConcurrency = o.ReservedConcurrency
		}
		if o.CredentialTTL != "" {
			f.CredentialTTL = o.CredentialTTL
		}
		if o.ReapKeepSessions != nil {
			f.ReapKeepSessions = o.ReapKeepSessions
		}
		if o.MySQLMarkerDatabase != "" {
			f.MySQLMarkerDatabase = o.MySQLMarkerDatabase
		}
		for k, v := range o.Environment {
			f.Environment[k] = v
		}
	}
	return f
}

// TypesInUse returns the function types the secrets need, in the order of
// the registry (pkg/registry).
func (c *Config) TypesInUse() []string {
	used := map[string]bool{}
	for _, s := range c.Secrets {
		used[s.Type] = true
	}
	var out []string
	for _, t := range registry.Names() {
		if used[t] {
			out = append(out, t)
		}
	}
	return out
}

// Database returns the databases entry called name.
func (c *Config) Database(name string) (DatabaseConfig, bool) {
	for _, d := range c.Databases {
		if d.Name == name {
			return d, true
		}
	}
	return DatabaseConfig{}, false
}

// Secret returns the secrets entry called name.
func (c *Config) Secret(name string) (SecretConfig, bool) {
	for _, s := range c.Secrets {
		if s.Name == name {
			return s, true
		}
	}
	return SecretConfig{}, false
}

// IsDatabaseType reports whether functions of typ run in the VPC and reach a database.
func IsDatabaseType(typ string) bool {
	t, ok := registry.Lookup(typ)
	return ok && t.Database()
}

// IsMultiUserType reports whether typ reads a master secret.
func IsMultiUserType(typ string) bool {
	t, ok := registry.Lookup(typ)
	return ok && t.Master
}

// IsOptionalMasterType reports whether typ may read a master secret
// (redis-acl's masterarn: an admin user changes the user's passwords).
func IsOptionalMasterType(typ string) bool {
	t, ok := registry.Lookup(typ)
	return ok && t.OptionalMaster
}

// IsRDSMasterType reports whether typ sets a master password through the RDS API.
func IsRDSMasterType(typ string) bool {
	t, ok := registry.Lookup(typ)
	return ok && t.RDSMasterPassword
}

// LogsInToDatabase reports whether the function of typ logs in to a
// database with this config: the database types, and rds-master in its
// login mode (its secrets name their database).
func (c *Config) LogsInToDatabase(typ string) bool {
	if IsDatabaseType(typ) || typ == IssuerFunction && c.Issuer != nil {
		return true
	}
	if !IsRDSMasterType(typ) {
		return false
	}
	for _, s := range c.Secrets {
		if s.Type == typ && s.Database != "" {
			return true
		}
	}
	return false
}

// ReservedConcurrencyFor is the reservation of the function of typ: its
// reservedConcurrency (functions.<type>, else function), else
// DefaultReservedConcurrency when it logs in to a database, else
// Unreserved.
func (c *Config) ReservedConcurrencyFor(typ string) Concurrency {
	if f := c.FunctionFor(typ); f.ReservedConcurrency != nil {
		return *f.ReservedConcurrency
	}
	if c.LogsInToDatabase(typ) {
		return DefaultReservedConcurrency
	}
	return Unreserved
}

var (
	accountRe    = regexp.MustCompile(`^\d{12}$`)
	regionRe     = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`)
	vpcRe        = regexp.MustCompile(`^vpc-[0-9a-f]{8,17}$`)
	subnetRe     = regexp.MustCompile(`^subnet-[0-9a-f]{8,17}$`)
	sgRe         = regexp.MustCompile(`^sg-[0-9a-f]{8,17}$`)
	rtbRe        = regexp.MustCompile(`^rtb-[0-9a-f]{8,17}$`)
	nameRe       = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]{1,512}$`)
	entryNameRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	secretArnRe  = regexp.MustCompile(`^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$`)
	kmsArnRe     = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]+$`)
	rdsArnRe     = regexp.MustCompile(`^arn:aws[a-z-]*:rds:[a-z0-9-]+:\d{12}:(db|cluster):[a-zA-Z][a-zA-Z0-9-]*$`)
	ecUserArnRe  = regexp.MustCompile(`^arn:aws[a-z-]*:elasticache:[a-z0-9-]+:\d{12}:user:[a-zA-Z][a-zA-Z0-9-]*$`)
	ecGroupArnRe = regexp.MustCompile(`^arn:aws[a-z-]*:elasticache:[a-z0-9-]+:\d{12}:replicationgroup:[a-zA-Z][a-zA-Z0-9-]*$`)
	rateRe       = regexp.MustCompile(`^rate\((\d+) (hour|hours|day|days)\)$`)
	cronRe       = regexp.MustCompile(`^cron\(([^ ()]+ ){5}[^ ()]+\)$`)
	envNameRe    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	hostRe       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$`)
	principalRe  = regexp.MustCompile(`^arn:aws[a-z-]*:iam::(\d{12}):(role|user)/([A-Za-z0-9+=,.@_/*-]+)$`)
	rootRe       = regexp.MustCompile(`^arn:aws[a-z-]*:iam::(\d{12}):root$`)
	reservedEnvs = map[string]bool{"AWS_REGION": true, "AWS_DEFAULT_REGION": true, "AWS_LAMBDA_FUNCTION_NAME": true, "AWS_ACCESS_KEY_ID": true, "AWS_SECRET_ACCESS_KEY": true, "AWS_SESSION_TOKEN": true}
)

// validator collects errors so one run reports every problem in the file.
type validator struct{ errs []error }

func (v *validator) addf(format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf(format, args...))
}

// Validate checks every field; each error names the entry and the field.
func (c *Config) Validate() error {
	v := &validator{}
	if c.Account == "" || !accountRe.MatchString(c.Account) {
		v.addf("field account: %q is not a 12-digit AWS account ID; set account to the account you deploy to", c.Account)
	}
	if !regionRe.MatchString(c.Region) {
		v.addf("field region: %q is not an AWS region such as eu-west-1; set region", c.Region)
	}
	if !regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,127}$`).MatchString(c.StackName) {
		v.addf("field stackName: %q must start with a letter and hold only letters, digits and hyphens", c.StackName)
	}
	if c.LogRetentionDays < 0 {
		v.addf("field logRetentionDays: %d must be positive", c.LogRetentionDays)
	} else if _, ok := RetentionDaysAllowed[c.LogRetentionDays]; !ok {
		v.addf("field logRetentionDays: %d is not a CloudWatch Logs retention; use one of %s", c.LogRetentionDays, allowedRetentions())
	}
	if c.DeployRoleArn != "" {
		if m := deployRoleRe.FindStringSubmatch(c.DeployRoleArn); m == nil {
			v.addf("field deployRoleArn: %q is not an IAM role ARN (arn:aws:iam::%s:role/NAME, with its path if it has one, no wildcards)", c.DeployRoleArn, c.Account)
		} else if m[1] != c.Account {
			v.addf("field deployRoleArn: %q is in account %s, not %s: CloudFormation deploys the stack with a role of the stack's account", c.DeployRoleArn, m[1], c.Account)
		}
	}
	validateFunction(v, "function", c.Function)
	fnTypes := make([]string, 0, len(c.Functions))
	for t := range c.Functions {
		fnTypes = append(fnTypes, t)
	}
	sort.Strings(fnTypes)
	for _, t := range fnTypes {
		if !knownType(t) && t != IssuerFunction {
			v.addf("functions.%s: unknown function type; use one of %s, or %s (the issuer)", t, registry.List(), IssuerFunction)
			continue
		}
		validateFunction(v, "functions."+t, c.Functions[t])
		c.validateFunctionFields(v, t, c.Functions[t])
	}
	c.validateFunctionDefaults(v)

	needsVpc := false
	for _, s := range c.Secrets {
		if IsDatabaseType(s.Type) || s.Database != "" {
			needsVpc = true
		}
	}
	if c.Issuer != nil {
		needsVpc = true
	}
	if c.Vpc != nil {
		c.validateVpc(v)
	} else if needsVpc {
		v.addf("field vpc: required because database secrets are configured; set vpc.id and vpc.subnets")
	}
	if c.SecretsManagerEndpoint.Enabled && c.Vpc == nil {
		v.addf("field secretsManagerEndpoint.enabled: needs vpc; set vpc or disable the endpoint")
	}

	dbNames := map[string]bool{}
	for i, d := range c.Databases {
		where := fmt.Sprintf("databases[%d] (%s)", i, d.Name)
		if !entryNameRe.MatchString(d.Name) {
			v.addf("%s: field name: %q must be 1-64 letters, digits, '.', '_' or '-'", where, d.Name)
		}
		if dbNames[d.Name] {
			v.addf("%s: field name: duplicate database name; names must be unique", where)
		}
		dbNames[d.Name] = true
		if !sgRe.MatchString(d.SecurityGroupID) {
			v.addf("%s: field securityGroupId: %q is not a security group ID (sg-...)", where, d.SecurityGroupID)
		}
		if d.Port < 1 || d.Port > 65535 {
			v.addf("%s: field port: %d is not a TCP port (1-65535)", where, d.Port)
		}
	}
	for i, e := range c.Alarms.Emails {
		if !strings.Contains(e, "@") {
			v.addf("alarms.emails[%d]: field emails: %q is not an email address", i, e)
		}
	}
	for k := range c.Tags {
		if k == "" || strings.HasPrefix(strings.ToLower(k), "aws:") {
			v.addf("field tags: key %q is empty or uses the reserved aws: prefix", k)
		}
	}
	if len(c.Secrets) == 0 {
		v.addf("field secrets: no secrets to rotate; add at least one entry")
	}
	c.validateWatch(v)
	switch c.Stagger {
	case "none", StaggerHost:
	default:
		v.addf("field stagger: %q is not a stagger mode; use host (no two secrets of one database host rotate in the same hour) or none", c.Stagger)
	}
	names := map[string]bool{}
	arns := map[string]string{} // ARN -> entry name
	for i, s := range c.Secrets {
		c.validateSecret(v, i, s, names)
		if s.ARN == "" {
			continue
		}
		if first, ok := arns[s.ARN]; ok {
			v.addf("secrets[%d] (%s): field arn: the same secret as entry %s; a secret has one rotation schedule, so list it once", i, s.Name, first)
		} else {
			arns[s.ARN] = s.Name
		}
	}
	c.validateBindingsSize(v)
	if c.Issuer != nil {
		c.validateIssuer(v)
	}
	staggered := map[string]string{}
	if len(v.errs) == 0 && c.Stagger == StaggerHost {
		var err error
		if staggered, err = c.StaggeredSchedules(); err != nil {
			v.errs = append(v.errs, err)
		}
	}
	c.validateCredentialTTLs(v, staggered)
	if len(v.errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(v.errs...))
}

// Bounds of the watch's durations.
const (
	MinWatchInterval    = 5 * time.Minute
	MaxWatchInterval    = 12 * time.Hour
	MinWatchRepairAfter = 5 * time.Minute
)

func (c *Config) validateWatch(v *validator) {
	w := c.Watch
	if d, err := time.ParseDuration(w.Interval); err != nil || d%time.Minute != 0 || d < MinWatchInterval || d > MaxWatchInterval {
		v.addf("field watch.interval: %q must be a whole number of minutes between 5m and 12h, as a Go duration such as 15m (the alarm that the watch stopped waits two intervals, and CloudWatch evaluates at most a day)", w.Interval)
	}
	if d, err := time.ParseDuration(w.RepairAfter); err != nil {
		v.addf("field watch.repairAfter: %q is not a Go duration such as 1h", w.RepairAfter)
	} else if d < MinWatchRepairAfter {
		v.addf("field watch.repairAfter: %q is shorter than 5m: a rotation that young may still be running; set at least 5m", w.RepairAfter)
	}
	if d, err := time.ParseDuration(w.OverdueAfter); err != nil || d < 0 {
		v.addf("field watch.overdueAfter: %q is not a non-negative Go duration such as 1h", w.OverdueAfter)
	}
	enabled := w.Enabled == nil || *w.Enabled
	if enabled && w.PerSecretAlarms && len(c.Secrets) > MaxPerSecretAlarmSecrets {
		v.addf("field watch.perSecretAlarms: %d secrets would get up to %d alarms, too many for one stack (CloudFormation allows 500 resources) and for one inbox; it is for fleets of at most %d secrets: remove it to get one alarm per rotation function and metric", len(c.Secrets), 4*len(c.Secrets), MaxPerSecretAlarmSecrets)
	}
	for i, s := range c.Secrets {
		if s.Repair != nil && !enabled {
			v.addf("secrets[%d] (%s): field repair: the watch is off (watch.enabled: false), so nothing repairs; remove repair or enable the watch", i, s.Name)
		}
	}
}

func (c *Config) validateVpc(v *validator) {
	if !vpcRe.MatchString(c.Vpc.ID) {
		v.addf("vpc: field id: %q is not a VPC ID (vpc-...)", c.Vpc.ID)
	}
	if len(c.Vpc.Subnets) == 0 {
		v.addf("vpc: field subnets: list at least one private subnet with id and availabilityZone")
	}
	seen := map[string]bool{}
	for i, s := range c.Vpc.Subnets {
		where := fmt.Sprintf("vpc.subnets[%d]", i)
		if !subnetRe.MatchString(s.ID) {
			v.addf("%s: field id: %q is not a subnet ID (subnet-...)", where, s.ID)
		}
		if seen[s.ID] {
			v.addf("%s: field id: subnet %s is listed twice", where, s.ID)
		}
		seen[s.ID] = true
		if !regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d[a-z]$`).MatchString(s.AvailabilityZone) || !strings.HasPrefix(s.AvailabilityZone, c.Region) {
			v.addf("%s: field availabilityZone: %q is not an availability zone of region %s", where, s.AvailabilityZone, c.Region)
		}
		if s.RouteTableID != "" && !rtbRe.MatchString(s.RouteTableID) {
			v.addf("%s: field routeTableId: %q is not a route table ID (rtb-...)", where, s.RouteTableID)
		}
	}
	for i, sg := range c.Vpc.SecurityGroupIDs {
		if !sgRe.MatchString(sg) {
			v.addf("vpc.securityGroupIds[%d]: field securityGroupIds: %q is not a security group ID (sg-...)", i, sg)
		}
	}
}

func (c *Config) validateSecret(v *validator, i int, s SecretConfig, names map[string]bool) {
	where := fmt.Sprintf("secrets[%d] (%s)", i, s.Name)
	if !entryNameRe.MatchString(s.Name) {
		v.addf("%s: field name: %q must be 1-64 letters, digits, '.', '_' or '-'", where, s.Name)
	}
	if names[s.Name] {
		v.addf("%s: field name: duplicate secret name; names must be unique", where)
	}
	names[s.Name] = true
	if !knownType(s.Type) {
		v.addf("%s: field type: %q is not a function type; use one of %s", where, s.Type, registry.List())
	}
	switch {
	case s.ARN != "" && s.Create != nil:
		v.addf("%s: field arn: set either arn (an existing secret) or create (a new one), not both", where)
	case s.ARN == "" && s.Create == nil:
		v.addf("%s: field arn: set arn to the complete ARN of an existing secret, or add create to have the app create it", where)
	case s.ARN != "":
		if !secretArnRe.MatchString(s.ARN) {
			v.addf("%s: field arn: %q is not a complete Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX)", where, s.ARN)
		} else if parts := strings.Split(s.ARN, ":"); parts[3] != c.Region || parts[4] != c.Account {
			v.addf("%s: field arn: the secret is in %s/%s but the stack deploys to %s/%s; rotation functions must be in the secret's account and region", where, parts[4], parts[3], c.Account, c.Region)
		}
	case s.Create != nil:
		if IsDatabaseType(s.Type) && !IsMultiUserType(s.Type) {
			v.addf("%s: field create: a %s function logs in with the current password, which a secret the app generates cannot know; create the secret with the database's password yourself and set arn", where, s.Type)
		} else if IsExpiringType(s.Type) {
			v.addf("%s: field create: a %s secret starts with the base user's own password (the first rotation logs in with it before the master creates a user), which a secret the app generates cannot know; create the secret with the base user's credentials yourself and set arn", where, s.Type)
		}
		if !nameRe.MatchString(s.Name) {
			v.addf("%s: field name: %q is not a valid secret name", where, s.Name)
		}
		for k := range s.Create.Template {
			if k == "password" {
				v.addf("%s: field create.template: must not hold password; the app generates it", where)
			}
		}
	}
	if s.KmsKeyARN != "" {
		if s.Create != nil {
			v.addf("%s: field kmsKeyArn: created secrets use the app's key; remove kmsKeyArn", where)
		} else if !kmsArnRe.MatchString(s.KmsKeyARN) {
			v.addf("%s: field kmsKeyArn: %q is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)", where, s.KmsKeyARN)
		}
	}
	switch {
	case IsDatabaseType(s.Type) && knownType(s.Type):
		if s.Database == "" {
			v.addf("%s: field database: required for type %s; name an entry of databases", where, s.Type)
		} else if _, ok := c.Database(s.Database); !ok {
			v.addf("%s: field database: no databases entry is named %q", where, s.Database)
		}
	case IsRDSMasterType(s.Type) && s.Database != "":
		// The login mode: the function reaches the database and logs in.
		if _, ok := c.Database(s.Database); !ok {
			v.addf("%s: field database: no databases entry is named %q", where, s.Database)
		}
		for j, o := range c.Secrets {
			if o.Type == s.Type && o.Database == "" {
				v.addf("%s: field database: the %s function logs in for every secret or for none (ROTARY_RDS_MASTER_LOGIN is a setting of the function, which needs a network path to each database), but secrets[%d] (%s) names no database; set database on every %s secret or on none", where, s.Type, j, o.Name, s.Type)
				break
			}
		}
	case s.Database != "":
		v.addf("%s: field database: type %s reaches no database; remove database", where, s.Type)
	}
	if t, ok := registry.Lookup(s.Type); ok && t.RDSMasterPassword {
		if s.RDSDatabaseARN == "" {
			v.addf("%s: field rdsDatabaseArn: required for type %s; set the ARN of the DB instance (arn:aws:rds:<region>:<account>:db:<id>) or cluster (...:cluster:<id>) whose master password the secret holds", where, s.Type)
		} else if !rdsArnRe.MatchString(s.RDSDatabaseARN) {
			v.addf("%s: field rdsDatabaseArn: %q is not the ARN of an RDS DB instance (arn:aws:rds:<region>:<account>:db:<id>) or cluster (...:cluster:<id>)", where, s.RDSDatabaseARN)
		}
	} else if s.RDSDatabaseARN != "" {
		v.addf("%s: field rdsDatabaseArn: type %s sets no master password through the RDS API; remove rdsDatabaseArn", where, s.Type)
	}
	if t, ok := registry.Lookup(s.Type); ok && t.ElastiCacheUser {
		c.validateElastiCacheArn(v, where, s.Type, "elasticacheUserArn", s.ElastiCacheUserARN, ecUserArnRe,
			"an ElastiCache user (arn:aws:elasticache:<region>:<account>:user:<user id>)", "the secret's user_arn, the user whose passwords it holds")
		c.validateElastiCacheArn(v, where, s.Type, "replicationGroupArn", s.ReplicationGroupARN, ecGroupArnRe,
			"an ElastiCache replication group (arn:aws:elasticache:<region>:<account>:replicationgroup:<id>)", "the group of the secret's replication_group_id")
	} else {
		if s.ElastiCacheUserARN != "" {
			v.addf("%s: field elasticacheUserArn: type %s changes no ElastiCache user through the ElastiCache API; remove elasticacheUserArn", where, s.Type)
		}
		if s.ReplicationGroupARN != "" {
			v.addf("%s: field replicationGroupArn: type %s changes no ElastiCache user through the ElastiCache API; remove replicationGroupArn", where, s.Type)
		}
	}
	if IsMultiUserType(s.Type) {
		switch {
		case s.MasterSecret == "" && s.MasterSecretARN == "":
			v.addf("%s: field masterSecret: type %s needs a master secret; set masterSecret (an entry name) or masterSecretArn", where, s.Type)
		case s.MasterSecret != "" && s.MasterSecretARN != "":
			v.addf("%s: field masterSecret: set masterSecret or masterSecretArn, not both", where)
		case s.MasterSecret != "":
			if s.MasterSecret == s.Name {
				v.addf("%s: field masterSecret: a secret cannot be its own master", where)
			} else if _, ok := c.Secret(s.MasterSecret); !ok {
				v.addf("%s: field masterSecret: no secrets entry is named %q", where, s.MasterSecret)
			}
		case s.MasterSecretARN != "":
			if !secretArnRe.MatchString(s.MasterSecretARN) {
				v.addf("%s: field masterSecretArn: %q is not a complete Secrets Manager secret ARN", where, s.MasterSecretARN)
			}
		}
		if s.MasterKmsKeyARN != "" && (s.MasterSecretARN == "" || !kmsArnRe.MatchString(s.MasterKmsKeyARN)) {
			v.addf("%s: field masterKmsKeyArn: %q must be a KMS key ARN and goes with masterSecretArn", where, s.MasterKmsKeyARN)
		}
	} else if IsOptionalMasterType(s.Type) {
		switch {
		case s.MasterSecret != "" && s.MasterSecretARN != "":
			v.addf("%s: field masterSecret: set masterSecret or masterSecretArn, not both", where)
		case s.MasterSecret != "":
			if s.MasterSecret == s.Name {
				v.addf("%s: field masterSecret: a secret cannot be its own master", where)
			} else if _, ok := c.Secret(s.MasterSecret); !ok {
				v.addf("%s: field masterSecret: no secrets entry is named %q", where, s.MasterSecret)
			}
		case s.MasterSecretARN != "":
			if !secretArnRe.MatchString(s.MasterSecretARN) {
				v.addf("%s: field masterSecretArn: %q is not a complete Secrets Manager secret ARN", where, s.MasterSecretARN)
			}
		}
		if s.MasterKmsKeyARN != "" && (s.MasterSecretARN == "" || !kmsArnRe.MatchString(s.MasterKmsKeyARN)) {
			v.addf("%s: field masterKmsKeyArn: %q must be a KMS key ARN and goes with masterSecretArn", where, s.MasterKmsKeyARN)
		}
	} else if s.MasterSecret != "" || s.MasterSecretARN != "" || s.MasterKmsKeyARN != "" {
		v.addf("%s: field masterSecret: type %s uses no master secret; remove masterSecret/masterSecretArn/masterKmsKeyArn", where, s.Type)
	}
	if s.Host != "" {
		if !IsDatabaseType(s.Type) {
			v.addf("%s: field host: type %s reaches no database host; remove host", where, s.Type)
		} else if !hostRe.MatchString(s.Host) {
			v.addf("%s: field host: %q must be a host name (letters, digits, '.', '-', '_', ':', at most 253)", where, s.Host)
		}
	}
	c.validateAccess(v, where, s)
	if err := ValidateSchedule(s.Schedule); err != nil {
		v.addf("%s: field schedule: %w", where, err)
	}
	if _, err := WindowHours(s.Window); err != nil {
		v.addf("%s: field window: %w", where, err)
	}
}

func validateFunction(v *validator, where string, f FunctionConfig) {
	if f.MemoryMB != 0 && (f.MemoryMB < 128 || f.MemoryMB > 10240) {
		v.addf("%s: field memoryMB: %d must be between 128 and 10240", where, f.MemoryMB)
	}
	if f.Timeout != "" {
		d, err := time.ParseDuration(f.Timeout)
		if err != nil || d < time.Second || d > 15*time.Minute || d%time.Second != 0 {
			v.addf("%s: field timeout: %q must be a whole number of seconds between 1s and 15m, as a Go duration such as 2m", where, f.Timeout)
		}
	}
	keys := make([]string, 0, len(f.Environment))
	for k := range f.Environment {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !envNameRe.MatchString(k) || reservedEnvs[k] {
			v.addf("%s: field environment: %q is not a name the function may set", where, k)
		}
		switch k {
		case EnvCredentialTTL:
			v.addf("%s: field environment: %s is set by the app: set credentialTtl", where, k)
		case EnvReapKeepSessions:
			v.addf("%s: field environment: %s is set by the app: set reapKeepSessions", where, k)
		case EnvMySQLMarkerDB:
			v.addf("%s: field environment: %s is set by the app: set mysqlMarkerDatabase", where, k)
		case EnvIssuerRoles:
			v.addf("%s: field environment: %s is set by the app from issuer.roles", where, k)
		case EnvRDSBindings:
			v.addf("%s: field environment: %s is set by the app from each rds-master secret's rdsDatabaseArn", where, k)
		case EnvElastiCacheBindings:
			v.addf("%s: field environment: %s is set by the app from each elasticache-user secret's elasticacheUserArn", where, k)
		}
		if k == EnvRDSMasterLogin {
			v.addf("%s: field environment: %s is set by the app: set database on the rds-master secrets for the login mode (the function then runs in the VPC with a rule to each database port), or on none", where, k)
		}
		if strings.HasSuffix(k, "_TIMEOUT") && strings.HasPrefix(k, "ROTARY_") {
			if _, err := time.ParseDuration(f.Environment[k]); err != nil {
				v.addf("%s: field environment.%s: %q is not a Go duration such as 5s", where, k, f.Environment[k])
			}
		}
	}
}

// ValidateSchedule accepts Secrets Manager's rate(N hours|days) (at least 4
// hours, at most 1000 days) and six-field cron(...) expressions.
func ValidateSchedule(s string) error {
	if s == "" {
		return errors.New("required; use rate(30 days) or a cron(...) expression")
	}
	if m := rateRe.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n < 1 {
			return fmt.Errorf("%q: the rate must be a positive number", s)
		}
		hours := n
		if strings.HasPrefix(m[2], "day") {
			hours = n * 24
		}
		if hours < 4 || hours > 1000*24 {
			return fmt.Errorf("%q: Secrets Manager accepts rates between 4 hours and 1000 days", s)
		}
		if (n == 1) != !strings.HasSuffix(m[2], "s") {
			return fmt.Errorf("%q: write rate(1 day) / rate(N days) (singular only for 1)", s)
		}
		return nil
	}
	if cronRe.MatchString(s) {
		return nil
	}
	return fmt.Errorf("%q is neither rate(N hours|days) nor a six-field cron(...) expression", s)
}

// WindowHours parses a rotation window (a Go duration of whole hours, 1h to 24h).
func WindowHours(s string) (int, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d%time.Hour != 0 || d < time.Hour || d > 24*time.Hour {
		return 0, fmt.Errorf("%q must be a whole number of hours between 1h and 24h, such as 3h", s)
	}
	return int(d / time.Hour), nil
}

// RetentionDaysAllowed are the retention periods CloudWatch Logs accepts.
var RetentionDaysAllowed = map[int]struct{}{1: {}, 3: {}, 5: {}, 7: {}, 14: {}, 30: {}, 60: {}, 90: {}, 120: {}, 150: {}, 180: {}, 365: {}, 400: {}, 545: {}, 731: {}, 1096: {}, 1827: {}, 2192: {}, 2557: {}, 2922: {}, 3288: {}, 3653: {}}

func allowedRetentions() string {
	var ds []int
	for d := range RetentionDaysAllowed {
		ds = append(ds, d)
	}
	sort.Ints(ds)
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = strconv.Itoa(d)
	}
	return strings.Join(s, ", ")
}

func knownType(t string) bool {
	_, ok := registry.Lookup(t)
	return ok
}

// validateElastiCacheArn checks field (value) of an elasticache-user
// secret: set, of the form re, and in the stack's account and region,
// since the function calls the ElastiCache API of its own region.
func (c *Config) validateElastiCacheArn(v *validator, where, typ, field, value string, re *regexp.Regexp, kind, which string) {
	switch {
	case value == "":
		v.addf("%s: field %s: required for type %s; set the ARN of %s: %s", where, field, typ, kind, which)
	case !re.MatchString(value):
		v.addf("%s: field %s: %q is not the ARN of %s", where, field, value, kind)
	default:
		if parts := strings.Split(value, ":"); parts[3] != c.Region || parts[4] != c.Account {
			v.addf("%s: field %s: %q is in %s/%s but the stack deploys to %s/%s; the function calls the ElastiCache API of its own account and region", where, field, value, parts[4], parts[3], c.Account, c.Region)
		}
	}
}

// EnvRDSMasterLogin is the rds-master function's login switch
// (pkg/credentials/rdsmaster), which the app sets from the secrets'
// database fields.
const EnvRDSMasterLogin = "ROTARY_RDS_MASTER_LOGIN"

// EnvRDSBindings and EnvElastiCacheBindings bind each rds-master
// (elasticache-user) secret to its database (user), which the app sets
// from rdsDatabaseArn (elasticacheUserArn) (infra/rotary).
const (
	EnvRDSBindings         = "ROTARY_RDS_BINDINGS"
	EnvElastiCacheBindings = "ROTARY_ELASTICACHE_BINDINGS"
)

// MaxLambdaEnvironment is Lambda's limit on the total size of a
// function's environment variables (names and values), and
// envHeadroom what the app may add besides the bindings and the
// configured environment (SECRETS_MANAGER_ENDPOINT, the login switch).
const (
	MaxLambdaEnvironment = 4096
	envHeadroom          = 256
)

// validateBindingsSize refuses a config whose rds-master or
// elasticache-user function would have an environment larger than
// Lambda allows: the app binds each secret of those functions to its
// resource in one variable (EnvRDSBindings, EnvElastiCacheBindings), the
// ARN of a created secret counted as Secrets Manager will make it.
func (c *Config) validateBindingsSize(v *validator) {
	size := map[string]int{}
	count := map[string]int{}
	for _, s := range c.Secrets {
		target := s.RDSDatabaseARN
		if s.Type == "elasticache-user" {
			target = s.ElastiCacheUserARN
		}
		if target == "" || (s.Type != "rds-master" && s.Type != "elasticache-user") {
			continue
		}
		arn := s.ARN
		if arn == "" {
			arn = "arn:aws:secretsmanager:" + c.Region + ":" + c.Account + ":secret:" + s.Name + "-XXXXXX"
		}
		size[s.Type] += len(arn) + len(target) + 6 // two quoted strings, a colon, a comma
		count[s.Type]++
	}
	for _, typ := range []string{"rds-master", "elasticache-user"} {
		if count[typ] == 0 {
			continue
		}
		name := EnvRDSBindings
		if typ == "elasticache-user" {
			name = EnvElastiCacheBindings
		}
		total := len(name) + 2 + size[typ] + envHeadroom
		for k, val := range c.FunctionFor(typ).Environment {
			total += len(k) + len(val)
		}
		if total > MaxLambdaEnvironment {
			v.addf("secrets: the %s function would serve %d secrets, and binding each to its resource (%s) takes its environment to about %d bytes, over Lambda's %d; deploy some of these secrets from another stack (another config with its own stackName), or shorten functions.%s.environment", typ, count[typ], name, total, MaxLambdaEnvironment, typ)
		}
	}
}

// validateAccess checks who may read and write the secret: readers
// (required), admins, and requireVpcEndpoint.
func (c *Config) validateAccess(v *validator, where string, s SecretConfig) {
	if s.Readers == nil {
		v.addf("%s: field readers: required: list the IAM role or user ARNs that may read the secret (arn:aws:iam::%s:role/NAME; IAM's * wildcard allowed), or write readers: [] when only the suite reads it; the secret's resource policy denies reads to everyone else", where, c.Account)
	} else {
		for i, a := range *s.Readers {
			c.validatePrincipal(v, where, fmt.Sprintf("readers[%d]", i), a, false)
		}
	}
	for i, a := range s.Admins {
		c.validatePrincipal(v, where, fmt.Sprintf("admins[%d]", i), a, true)
	}
	if s.RequireVpcEndpoint && !c.SecretsManagerEndpoint.Enabled {
		v.addf("%s: field requireVpcEndpoint: needs the suite's endpoint; set secretsManagerEndpoint.enabled: true, or remove requireVpcEndpoint", where)
	}
}

// validatePrincipal checks one readers or admins entry: the ARN of an IAM
// role or user of the stack's account (IAM's * wildcard allowed, as in
// aws:PrincipalArn with ArnLike), or, for admins, the account's root user.
// deployRoleRe matches a role ARN without wildcards; group 1 is its account.
var deployRoleRe = regexp.MustCompile(`^arn:aws[a-z-]*:iam::([0-9]{12}):role/[A-Za-z0-9+=,.@_/-]+$`)

func (c *Config) validatePrincipal(v *validator, where, field, arn string, admin bool) {
	kinds := "an IAM role or user ARN"
	if admin {
		kinds = "an IAM role or user ARN, or the account's root user (arn:aws:iam::" + c.Account + ":root)"
	}
	m := principalRe.FindStringSubmatch(arn)
	switch {
	case strings.Contains(arn, ":sts::") && strings.Contains(arn, ":assumed-role/"):
		v.addf("%s: field %s: %q is an assumed-role session; name its role instead (arn:aws:iam::%s:role/NAME): a session's aws:PrincipalArn is its role's ARN", where, field, arn, c.Account)
		return
	case strings.Contains(arn, ":group/"):
		v.addf("%s: field %s: %q is an IAM group, which is not a principal; list its roles or users", where, field, arn)
		return
	case admin && rootRe.MatchString(arn):
		m = rootRe.FindStringSubmatch(arn)
	case strings.Contains(arn, "?") || strings.Contains(arn, "**"):
		v.addf("%s: field %s: %q: use single * wildcards only (the alert rules match with EventBridge wildcards, which have no ? and refuse **)", where, field, arn)
		return
	case m == nil:
		v.addf("%s: field %s: %q is not %s (arn:aws:iam::%s:role/NAME or arn:aws:iam::%s:user/NAME, with a path if it has one)", where, field, arn, kinds, c.Account, c.Account)
		return
	}
	if m[1] != c.Account {
		v.addf("%s: field %s: %q is in account %s, not %s: the secret's policy only denies, so a principal of another account could not read it anyway (that needs an Allow this app does not write)", where, field, arn, m[1], c.Account)
	}
}
