// Package registry lists Rotary's credential types: for each, what its
// function needs to be built, deployed and run. The functions' directories,
// the CLI and the CDK app read this one list, so adding a type is one
// package under pkg/credentials, one functions/<name>/main.go and one entry
// here. It imports nothing, so every layer may use it.
package registry

import (
	"slices"
	"strings"
)

// Database families a type may log in to.
const (
	FamilyPostgres = "postgres"
	FamilyMySQL    = "mysql"
	// FamilyRedis is Redis OSS and Valkey, self-managed or ElastiCache.
	FamilyRedis = "redis"
)

// Type is one credential type and its rotation function.
type Type struct {
	// Name names the function: functions/<Name>/main.go, dist/<Name>.zip,
	// and "type" in the CDK app's configuration.
	Name string
	// Summary says in one line what it rotates.
	Summary string
	// Family is the database family it logs in to; empty for none.
	Family string
	// Port is the family's default port (5432, 3306, 6379); 0 without a database.
	Port int
	// Master is true when the secret names an admin secret (masterarn)
	// that the function reads; such a master may be one RDS manages, whose
	// host the function finds through the RDS API (RDSRead).
	Master bool
	// OptionalMaster is true when the secret may name an admin secret
	// (masterarn) that the function then reads; without one the function
	// works as the user itself (redis-acl).
	OptionalMaster bool
	// RDSRead is true when the function may call rds:DescribeDBInstances
	// and rds:DescribeDBClusters.
	RDSRead bool
	// RDSMasterPassword is true when the function sets the master password
	// of the secret's RDS instance or cluster through the RDS API: it needs
	// rds:ModifyDBInstance and rds:DescribeDBInstances (rds:ModifyDBCluster
	// and rds:DescribeDBClusters) on that database's ARN only, which the
	// CDK app's configuration names for each secret. It logs in to nothing
	// unless configured to (docs/rds-master.md), so it needs no VPC.
	RDSMasterPassword bool
	// ElastiCacheUser is true when the function changes the passwords of
	// an ElastiCache RBAC user through the ElastiCache API: it needs
	// elasticache:DescribeUsers and elasticache:ModifyUser on that user's
	// ARN, elasticache:DescribeReplicationGroups on its replication
	// group's ARN (both named by the CDK app's configuration for each
	// secret), and HTTPS to the ElastiCache API from the VPC.
	ElastiCacheUser bool
	// ExpiringUsers is true when every rotation creates a new database
	// user that expires ROTARY_CREDENTIAL_TTL later, and the function reaps
	// the expired ones (docs/expiring-users.md): the CDK app sets the TTL
	// from its configuration and refuses one that a rotation would not
	// outlive (the schedule's longest interval plus its window).
	ExpiringUsers bool
	// BatchRead is true when setSecret reads AWSCURRENT and the master
	// secret in one secretsmanager:BatchGetSecretValue call (falling back
	// to GetSecretValue when refused): the function's role gets that
	// action, which has no resource-level permissions (Resource "*"; each
	// secret of a batch still needs GetSecretValue on it).
	BatchRead bool
	// Doc is the type's page, relative to the repository root.
	Doc string
}

// Database reports whether the function logs in to a database, so it runs
// in a VPC with a network path to it.
func (t Type) Database() bool { return t.Family != "" }

var types = []Type{
	{Name: "random-secret", Summary: "random API keys and tokens in a JSON secret; nothing downstream", Doc: "docs/random-secret.md"},
	{Name: "postgres-single-user", Summary: "a PostgreSQL user that changes its own password", Family: FamilyPostgres, Port: 5432, Doc: "docs/postgres.md"},
	{Name: "postgres-multi-user", Summary: "alternating PostgreSQL users <user> and <user>_clone, managed by a master secret", Family: FamilyPostgres, Port: 5432, Master: true, RDSRead: true, BatchRead: true, Doc: "docs/postgres.md"},
	{Name: "postgres-expiring-user", Summary: "a new PostgreSQL user per rotation with the base user's privileges and a VALID UNTIL, managed by a master secret; expired users reaped", Family: FamilyPostgres, Port: 5432, Master: true, RDSRead: true, ExpiringUsers: true, Doc: "docs/expiring-users.md"},
	{Name: "mysql-single-user", Summary: "a MySQL or MariaDB user that changes its own password", Family: FamilyMySQL, Port: 3306, Doc: "docs/mysql.md"},
	{Name: "mysql-multi-user", Summary: "alternating MySQL or MariaDB users <user> and <user>_clone, managed by a master secret", Family: FamilyMySQL, Port: 3306, Master: true, RDSRead: true, BatchRead: true, Doc: "docs/mysql.md"},
	{Name: "mysql-expiring-user", Summary: "a new MySQL or MariaDB user per rotation with the base user's grants, managed by a master secret; expired users reaped", Family: FamilyMySQL, Port: 3306, Master: true, RDSRead: true, ExpiringUsers: true, Doc: "docs/expiring-users.md"},
	{Name: "rds-master", Summary: "the master password of an RDS instance or Aurora cluster, set through the RDS API (not managed by RDS)", RDSMasterPassword: true, Doc: "docs/rds-master.md"},
	{Name: "redis-acl", Summary: "a Redis or Valkey ACL user with two passwords at a time, self-managed", Family: FamilyRedis, Port: 6379, OptionalMaster: true, Doc: "docs/redis.md"},
	{Name: "elasticache-user", Summary: "an ElastiCache RBAC user with two passwords at a time, through the ElastiCache API", Family: FamilyRedis, Port: 6379, ElastiCacheUser: true, Doc: "docs/redis.md"},
}

// All returns every type, in a stable order.
func All() []Type { return slices.Clone(types) }

// Names returns every type's name, in the order of All.
func Names() []string {
	out := make([]string, len(types))
	for i, t := range types {
		out[i] = t.Name
	}
	return out
}

// Lookup returns the type called name.
func Lookup(name string) (Type, bool) {
	for _, t := range types {
		if t.Name == name {
			return t, true
		}
	}
	return Type{}, false
}

// List is Names joined for messages: "random-secret, postgres-single-user, ...".
func List() string { return strings.Join(Names(), ", ") }

// Function is a Lambda function of the suite that is not a credential type.
type Function struct {
	// Name names the function: functions/<Name>/main.go and dist/<Name>.zip.
	Name string
	// Summary says in one line what it does.
	Summary string
	// Doc is its page, relative to the repository root.
	Doc string
	// URL is true when callers reach the function through a Lambda
	// function URL with AWS_IAM auth (the local stack serves one too).
	URL bool
}

// Watch checks the health of the suite's secrets on a schedule and, when
// enabled, repairs stuck rotations (docs/watch.md). It rotates nothing.
var Watch = Function{Name: "watch", Summary: "checks every rotated secret on a schedule (overdue, stuck, drifted, locked out) and repairs stuck rotations when enabled", Doc: "docs/watch.md"}

// Issuer hands callers short-lived database users on demand, through its
// function URL (docs/issued-credentials.md). It rotates nothing.
var Issuer = Function{Name: "credential-issuer", Summary: "hands each IAM caller its own short-lived PostgreSQL or MySQL/MariaDB user on demand, through a function URL with AWS_IAM auth", Doc: "docs/issued-credentials.md", URL: true}

// Functions returns the suite's functions that are not credential types:
// the watch and the issuer.
func Functions() []Function { return []Function{Watch, Issuer} }

// LookupFunction returns the function (not a credential type) called name.
func LookupFunction(name string) (Function, bool) {
	for _, f := range Functions() {
		if f.Name == name {
			return f, true
		}
	}
	return Function{}, false
}
