package redis

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
)

// Environment variables of elasticache-user, besides dbsecret's.
const (
	// EnvWaitActive bounds the wait for an ElastiCache user to be active again.
	EnvWaitActive = "ROTARY_ELASTICACHE_WAIT"
	// EnvElastiCacheSettle is how long, after a ModifyUser, a wait that has not seen
	// the user modifying lasts before "active" counts as applied:
	// DescribeUsers is eventually consistent.
	EnvElastiCacheSettle = "ROTARY_ELASTICACHE_SETTLE"
	// EnvElastiCacheBindings binds each secret the function serves to its user: a
	// JSON object {"<secret ARN>": "<ElastiCache user ARN>"} that the CDK
	// app writes (see Config.Bindings).
	EnvElastiCacheBindings = "ROTARY_ELASTICACHE_BINDINGS"
)

// DefaultWaitActive is the default bound of that wait.
const DefaultWaitActive = 2 * time.Minute

// DefaultSettle is the default of Config.Settle, MaxSettle its largest value.
const (
	DefaultSettle = 30 * time.Second
	MaxSettle     = 5 * time.Minute
)

// ElastiCacheAPI is the part of the ElastiCache API elasticache-user calls.
type ElastiCacheAPI interface {
	DescribeUsers(ctx context.Context, in *elasticache.DescribeUsersInput, opts ...func(*elasticache.Options)) (*elasticache.DescribeUsersOutput, error)
	ModifyUser(ctx context.Context, in *elasticache.ModifyUserInput, opts ...func(*elasticache.Options)) (*elasticache.ModifyUserOutput, error)
	DescribeReplicationGroups(ctx context.Context, in *elasticache.DescribeReplicationGroupsInput, opts ...func(*elasticache.Options)) (*elasticache.DescribeReplicationGroupsOutput, error)
}

// NewElastiCacheClient builds the ElastiCache client from the default AWS
// configuration chain (AWS_ENDPOINT_URL_ELASTICACHE points it elsewhere).
func NewElastiCacheClient(ctx context.Context) (ElastiCacheAPI, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load the AWS configuration for the ElastiCache API: %w", err)
	}
	return elasticache.NewFromConfig(cfg), nil
}

func settleFromEnv(getenv func(string) string) (time.Duration, error) {
	s := strings.TrimSpace(getenv(EnvElastiCacheSettle))
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > MaxSettle {
		return 0, fmt.Errorf("%w: %s %q is not a duration from 0s to %s; use a value such as 30s (how long DescribeUsers may lag a ModifyUser)", dbsecret.ErrConfig, EnvElastiCacheSettle, s, MaxSettle)
	}
	if d == 0 {
		return -1, nil
	}
	return d, nil
}

// ecUserArnRe is the ARN of an ElastiCache user.
var ecUserArnRe = regexp.MustCompile(`^arn:aws[a-z-]*:elasticache:[a-z0-9-]+:[0-9]{12}:user:[a-zA-Z][a-zA-Z0-9-]*$`)

func checkUserARN(v string) error {
	if !ecUserArnRe.MatchString(v) {
		return fmt.Errorf("%q is not the ARN of an ElastiCache user (arn:aws:elasticache:<region>:<account>:user:<id>)", v)
	}
	return nil
}

// checkBinding refuses, with Bindings, a secret that is not bound to the
// user its version names (see Config.Bindings).
func (c Config) checkBinding(secretARN string, s *Secret) error {
	if c.Bindings == nil {
		return nil
	}
	bound, ok := c.Bindings.Lookup(secretARN)
	if !ok {
		return fmt.Errorf("%w: secret %s is bound to no ElastiCache user in %s, so this function changes nothing for it; add the secret (with its elasticacheUserArn) to the deployment that rotates it with this function", ErrInvalidSecret, secretARN, EnvElastiCacheBindings)
	}
	if s.UserARN != bound {
		return fmt.Errorf("%w: field \"user_arn\" is %q, but this secret is bound to the ElastiCache user %s (%s); the function changes only the user a secret is bound to: set user_arn back to that user, or change the secret's elasticacheUserArn in the deployment", ErrInvalidSecret, s.UserARN, bound, EnvElastiCacheBindings)
	}
	return nil
}

func waitFromEnv(getenv func(string) string) (time.Duration, error) {
	s := strings.TrimSpace(getenv(EnvWaitActive))
	if s == "" {
		return DefaultWaitActive, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 10*time.Second || d > 10*time.Minute {
		return 0, fmt.Errorf("%w: %s %q is not a duration from 10s to 10m; use a value such as 2m", dbsecret.ErrConfig, EnvWaitActive, s)
	}
	return d, nil
}
