// Command redis-acl is the rotation function for a Redis or Valkey ACL
// user on a self-managed server: two passwords are valid while a rotation
// runs, so applications are never locked out (docs/redis.md).
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
	rotation.Start(redis.NewACLUser(cfg))
}
