// Command postgres-expiring-user is the rotation function for expiring
// PostgreSQL users: every rotation, the admin secret named by masterarn
// creates a new user <base>_<time>_<random> that acts as the base role,
// with VALID UNTIL now + ROTARY_CREDENTIAL_TTL, and the secret gets its
// name, password and expiresAt. After each rotation, and when the watch
// invokes reapSecret, it drops the base's expired users; its revokeSecret
// step drops every user of the secret but AWSCURRENT's (see
// docs/expiring-users.md).
package main

import (
	"os"

	"github.com/rotary-secrets/rotary/pkg/credentials/postgres"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/dbsecret/rdsendpoint"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

func main() {
	cfg, err := postgres.ConfigFromEnv(os.Getenv)
	if err != nil {
		rotation.Fatal(err)
	}
	// The master may be an RDS-managed secret, whose host comes from the
	// RDS API (see package rdsendpoint).
	cfg.NewRDS = rdsendpoint.New
	exp, err := dbsecret.ExpiringConfigFromEnv(os.Getenv)
	if err != nil {
		rotation.Fatal(err)
	}
	cred, err := postgres.NewExpiringUsers(cfg, exp)
	if err != nil {
		rotation.Fatal(err)
	}
	rotation.Start(cred)
}
