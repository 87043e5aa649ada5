package redis

import (
	"context"
	"time"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
)

// Config holds the settings of both Redis types.
type Config struct {
	// DB holds the connection settings the database types share
	// (ROTARY_CA_BUNDLE, ROTARY_CONNECT_TIMEOUT, ROTARY_STATEMENT_TIMEOUT,
	// the last bounding each command).
	DB dbsecret.Config
	// NewElastiCache builds the ElastiCache API client (elasticache-user
	// only). Nil refuses to rotate.
	NewElastiCache func(ctx context.Context) (ElastiCacheAPI, error)
	// WaitActive bounds the wait for an ElastiCache user to be active again
	// after ModifyUser (ROTARY_ELASTICACHE_WAIT); 0 means DefaultWaitActive.
	WaitActive time.Duration
	// PollInterval is the time between two DescribeUsers calls while
	// waiting; 0 means 2s.
	PollInterval time.Duration
}

// ConfigFromEnv reads the dbsecret settings (ROTARY_CA_BUNDLE,
// ROTARY_CONNECT_TIMEOUT, ROTARY_STATEMENT_TIMEOUT) and, for
// elasticache-user, ROTARY_ELASTICACHE_WAIT. The ElastiCache client comes
// from the default AWS configuration chain, so AWS_ENDPOINT_URL_ELASTICACHE
// points it at another endpoint.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	db, err := dbsecret.ConfigFromEnv(getenv)
	if err != nil {
		return Config{}, err
	}
	c := Config{DB: db, NewElastiCache: NewElastiCacheClient}
	if c.WaitActive, err = waitFromEnv(getenv); err != nil {
		return Config{}, err
	}
	return c, nil
}
