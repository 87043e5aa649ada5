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
	// Settle is how long after a ModifyUser a wait that has not seen the
	// user "modifying" lasts before it takes "active" for the change
	// applied (ROTARY_ELASTICACHE_SETTLE): DescribeUsers is eventually
	// consistent, and for a while after the call may still show the user
	// as it was. 0 means DefaultSettle; negative means none.
	Settle time.Duration
	// Bindings binds each secret (by ARN) to the ElastiCache user (by
	// ARN) whose passwords it holds (ROTARY_ELASTICACHE_BINDINGS). The
	// function's role may modify every user of its secrets, so without it
	// whoever may write one of them could name in user_arn another of
	// them and have the function set that user's passwords. With
	// Bindings, a secret that is not bound, or whose user_arn is not its
	// bound user, is refused before any ElastiCache call. Nil binds
	// nothing (a function deployed by hand, without the variable).
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

// ConfigFromEnv reads the dbsecret settings (ROTARY_CA_BUNDLE,
// ROTARY_CONNECT_TIMEOUT, ROTARY_STATEMENT_TIMEOUT) and, for
// elasticache-user, ROTARY_ELASTICACHE_WAIT, ROTARY_ELASTICACHE_SETTLE and
// ROTARY_ELASTICACHE_BINDINGS. The ElastiCache client comes
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
	if c.Settle, err = settleFromEnv(getenv); err != nil {
		return Config{}, err
	}
	if c.Bindings, err = dbsecret.ParseBindings(EnvElastiCacheBindings, getenv(EnvElastiCacheBindings), checkUserARN); err != nil {
		return Config{}, err
	}
	return c, nil
}
