package rdsmaster

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/rds"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/envflag"
)

// Environment variables read by ConfigFromEnv, besides dbsecret's.
const (
	// EnvLogin, when true, says the function has a network path to the
	// database: testSecret then also logs in with the new password, and
	// the probe and recovery steps work.
	EnvLogin = "ROTARY_RDS_MASTER_LOGIN"
	// EnvWaitTimeout bounds each wait for RDS to apply a password change.
	EnvWaitTimeout = "ROTARY_RDS_WAIT_TIMEOUT"
	// EnvSettle is how long, after a ModifyDB*, a wait that has not seen
	// RDS apply the change lasts before "available, nothing pending" counts
	// as applied: RDS's Describe calls are eventually consistent.
	EnvSettle = "ROTARY_RDS_SETTLE"
	// EnvPollInterval is the time between two Describe calls of a wait.
	EnvPollInterval = "ROTARY_RDS_POLL_INTERVAL"
	// EnvBindings binds each secret the function serves to its database:
	// a JSON object {"<secret ARN>": "<RDS instance or cluster ARN>"}
	// that the CDK app writes (see Config.Bindings).
	EnvBindings = "ROTARY_RDS_BINDINGS"
)

// Wait bounds and defaults.
const (
	DefaultWaitTimeout  = 10 * time.Minute
	MinWaitTimeout      = 10 * time.Second
	MaxWaitTimeout      = 14 * time.Minute
	DefaultPollInterval = 5 * time.Second
	MinPollInterval     = 100 * time.Millisecond
	MaxPollInterval     = time.Minute
	DefaultSettle       = 30 * time.Second
	MaxSettle           = 5 * time.Minute
)

// API is the part of the RDS API client (*rds.Client) the type calls.
type API interface {
	DescribeDBInstances(ctx context.Context, in *rds.DescribeDBInstancesInput, optFns ...func(*rds.Options)) (*rds.DescribeDBInstancesOutput, error)
	DescribeDBClusters(ctx context.Context, in *rds.DescribeDBClustersInput, optFns ...func(*rds.Options)) (*rds.DescribeDBClustersOutput, error)
	ModifyDBInstance(ctx context.Context, in *rds.ModifyDBInstanceInput, optFns ...func(*rds.Options)) (*rds.ModifyDBInstanceOutput, error)
	ModifyDBCluster(ctx context.Context, in *rds.ModifyDBClusterInput, optFns ...func(*rds.Options)) (*rds.ModifyDBClusterOutput, error)
}

// Config configures the type.
type Config struct {
	// DB holds the CA bundle and timeouts of the logins (Login only).
	DB dbsecret.Config
	// NewRDS builds the RDS API client.
	NewRDS func(ctx context.Context) (API, error)
	// Login says the function can reach the database: testSecret logs in
	// with the pending password once RDS has applied it, Set and Restore
	// first check by logging in whether anything needs changing, and the
	// type can probe (rotary status, unstick). Without it the type trusts
	// what RDS reports.
	Login bool
	// WaitTimeout bounds each wait for RDS to apply a change (also bounded
	// by the invocation's deadline); 0 means DefaultWaitTimeout.
	WaitTimeout time.Duration
	// PollInterval is the time between two DescribeDBInstances
	// (DescribeDBClusters) calls while waiting; 0 means DefaultPollInterval.
	PollInterval time.Duration
	// Settle is how long after a ModifyDB* a wait that has not seen the
	// change (a pending master password, or the status
	// resetting-master-credentials) lasts before it takes "available with
	// nothing pending" for applied: RDS's Describe calls are eventually
	// consistent, and for a while after the call may still show the
	// database as it was. 0 means DefaultSettle; negative means none.
	Settle time.Duration
	// Bindings binds each secret (by ARN) to the RDS instance or cluster
	// (by ARN) whose master password it holds. The function's role may
	// modify every database of its secrets, so without it whoever may
	// write one of them could point it at another of them and have the
	// function reset that database's master password. With Bindings, a
	// secret that is not bound, or whose dbInstanceIdentifier
	// (dbClusterIdentifier) is not its bound database, is refused before
	// any RDS call. Nil binds nothing: every secret the function is
	// invoked for may name any database its role may modify (a function
	// deployed by hand, without ROTARY_RDS_BINDINGS).
	Bindings dbsecret.Bindings
}

func (c Config) settle() time.Duration {
	switch {
	case c.Settle < 0:
		return 0
	case c.Settle == 0:
		return DefaultSettle
	}
	return c.Settle
}

func (c Config) waitTimeout() time.Duration {
	if c.WaitTimeout <= 0 {
		return DefaultWaitTimeout
	}
	return c.WaitTimeout
}

func (c Config) pollInterval() time.Duration {
	if c.PollInterval <= 0 {
		return DefaultPollInterval
	}
	return c.PollInterval
}

// ConfigFromEnv reads dbsecret's settings (ROTARY_CA_BUNDLE,
// ROTARY_CONNECT_TIMEOUT, ROTARY_STATEMENT_TIMEOUT), ROTARY_RDS_MASTER_LOGIN
// (a boolean, default false), ROTARY_RDS_WAIT_TIMEOUT (a Go duration
// from 10s to 14m, default 10m), ROTARY_RDS_SETTLE (0s to 5m, default
// 30s), ROTARY_RDS_POLL_INTERVAL (100ms to 1m, default 5s) and
// ROTARY_RDS_BINDINGS (see Config.Bindings; unset binds nothing). The RDS
// client comes from the default AWS configuration chain, so
// AWS_ENDPOINT_URL_RDS points it at another endpoint.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	db, err := dbsecret.ConfigFromEnv(getenv)
	if err != nil {
		return Config{}, err
	}
	c := Config{DB: db, NewRDS: NewRDSClient, WaitTimeout: DefaultWaitTimeout}
	if v := strings.TrimSpace(getenv(EnvLogin)); v != "" {
		if c.Login, err = envflag.ParseBool(v); err != nil {
			return Config{}, fmt.Errorf("%w: %s is %q, not a boolean; use true when the function has a network path to the database, else false", dbsecret.ErrConfig, EnvLogin, v)
		}
	}
	if v := strings.TrimSpace(getenv(EnvWaitTimeout)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return Config{}, fmt.Errorf("%w: %s %q is not a duration; use a value such as 5m", dbsecret.ErrConfig, EnvWaitTimeout, v)
		}
		if d < MinWaitTimeout || d > MaxWaitTimeout {
			return Config{}, fmt.Errorf("%w: %s %s is out of range; use a value from %s to %s (and a function timeout longer than it)", dbsecret.ErrConfig, EnvWaitTimeout, d, MinWaitTimeout, MaxWaitTimeout)
		}
		c.WaitTimeout = d
	}
	if v := strings.TrimSpace(getenv(EnvSettle)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > MaxSettle {
			return Config{}, fmt.Errorf("%w: %s %q is not a duration from 0s to %s; use a value such as 30s (how long RDS's Describe may lag a ModifyDB*)", dbsecret.ErrConfig, EnvSettle, v, MaxSettle)
		}
		c.Settle = d
		if d == 0 {
			c.Settle = -1
		}
	}
	if v := strings.TrimSpace(getenv(EnvPollInterval)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < MinPollInterval || d > MaxPollInterval {
			return Config{}, fmt.Errorf("%w: %s %q is not a duration from %s to %s; use a value such as 5s", dbsecret.ErrConfig, EnvPollInterval, v, MinPollInterval, MaxPollInterval)
		}
		c.PollInterval = d
	}
	if c.Bindings, err = dbsecret.ParseBindings(EnvBindings, getenv(EnvBindings), checkDatabaseARN); err != nil {
		return Config{}, err
	}
	return c, nil
}

// databaseArnRe is the ARN of an RDS DB instance (db) or cluster.
var databaseArnRe = regexp.MustCompile(`^arn:aws[a-z-]*:rds:[a-z0-9-]+:[0-9]{12}:(db|cluster):([a-zA-Z][a-zA-Z0-9-]*)$`)

func checkDatabaseARN(v string) error {
	if !databaseArnRe.MatchString(v) {
		return fmt.Errorf("%q is not the ARN of an RDS DB instance (arn:aws:rds:<region>:<account>:db:<id>) or cluster (...:cluster:<id>)", v)
	}
	return nil
}

// checkBinding refuses, with Bindings, a secret that is not bound to the
// database its version names (see Config.Bindings).
func (c Config) checkBinding(secretARN string, s *dbsecret.Secret) error {
	if c.Bindings == nil {
		return nil
	}
	bound, ok := c.Bindings.Lookup(secretARN)
	if !ok {
		return fmt.Errorf("%w: secret %s is bound to no database in %s, so this function changes nothing for it; add the secret (with its rdsDatabaseArn) to the deployment that rotates it with this function", ErrInvalid, secretARN, EnvBindings)
	}
	m := databaseArnRe.FindStringSubmatch(bound)
	kind, id := "db", strings.TrimSpace(s.DBInstanceIdentifier)
	field := "dbInstanceIdentifier"
	if s.DBClusterIdentifier != "" {
		kind, id, field = "cluster", strings.TrimSpace(s.DBClusterIdentifier), "dbClusterIdentifier"
	}
	// RDS identifiers are case-insensitive (RDS keeps them in lower case).
	if m == nil || m[1] != kind || !strings.EqualFold(m[2], id) {
		return fmt.Errorf("%w: field %q is %q, but this secret is bound to %s (%s); the function changes only the database a secret is bound to: set the secret's fields back to that database, or change the secret's rdsDatabaseArn in the deployment", ErrInvalid, field, id, bound, EnvBindings)
	}
	return nil
}

// NewRDSClient builds the RDS API client from the default AWS
// configuration chain.
func NewRDSClient(ctx context.Context) (API, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load the AWS configuration for the RDS API: %w", err)
	}
	return rds.NewFromConfig(cfg), nil
}
