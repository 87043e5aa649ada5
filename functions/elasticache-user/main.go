// Command elasticache-user is the rotation function for an ElastiCache
// (Redis OSS or Valkey) RBAC user, through the ElastiCache API's
// ModifyUser: two passwords are valid while a rotation runs
// (docs/redis.md).
package main

import (
	"os"

	"github.com/rotary-secrets/rotary/pkg/credentials/redis"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

func main() {
	cfg, err := redis.ConfigFromEnv(os.Getenv)
	if err != nil {
		rotation.Fatal(err)
	}
	rotation.Start(redis.NewElastiCacheUser(cfg))
}
