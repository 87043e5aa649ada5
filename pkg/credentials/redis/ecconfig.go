package redis

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
)

// EnvWaitActive bounds the wait for an ElastiCache user to be active again.
const EnvWaitActive = "ROTARY_ELASTICACHE_WAIT"

// DefaultWaitActive is the default bound of that wait.
const DefaultWaitActive = 2 * time.Minute

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
