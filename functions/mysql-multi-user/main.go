// Command mysql-multi-user is the rotation function for alternating MySQL or
// MariaDB users: the secret switches between <user> and <user>_clone, and
// the admin secret named by masterarn creates the clone, sets passwords and
// copies the base user's grants to the clone.
package main

import (
	"os"

	"github.com/rotary-secrets/rotary/pkg/credentials/mysql"
	"github.com/rotary-secrets/rotary/pkg/dbsecret/rdsendpoint"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

func main() {
	cfg, err := mysql.ConfigFromEnv(os.Getenv)
	if err != nil {
		rotation.Fatal(err)
	}
	// Only this function reads RDS-managed master secrets, so only it
	// links the RDS client (see package rdsendpoint).
	cfg.NewRDS = rdsendpoint.New
	rotation.Start(mysql.NewMultiUser(cfg))
}
