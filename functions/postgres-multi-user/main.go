// Command postgres-multi-user is the rotation function for alternating
// PostgreSQL users: the secret switches between <user> and <user>_clone, and
// the admin secret named by masterarn creates the clone and sets passwords.
// Its revokeSecret step gives the other user a random password and ends its
// sessions (see docs/postgres.md).
package main

import (
	"os"

	"github.com/rotary-secrets/rotary/pkg/credentials/postgres"
	"github.com/rotary-secrets/rotary/pkg/dbsecret/rdsendpoint"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

func main() {
	cfg, err := postgres.ConfigFromEnv(os.Getenv)
	if err != nil {
		rotation.Fatal(err)
	}
	// Only this function reads RDS-managed master secrets, so only it
	// links the RDS client (see package rdsendpoint).
	cfg.NewRDS = rdsendpoint.New
	rotation.Start(postgres.NewMultiUser(cfg))
}
