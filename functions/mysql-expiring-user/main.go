// Command mysql-expiring-user is the rotation function for expiring MySQL
// or MariaDB users: every rotation, the admin secret named by masterarn
// creates a new account <base>_<time>_<random> at the base user's host with
// the base user's grants, and the secret gets its name, password and
// expiresAt (now + ROTARY_CREDENTIAL_TTL). The servers cannot expire an
// account, so the reaper does: after each rotation, and when the watch
// invokes reapSecret, it drops the base's expired accounts. Its
// revokeSecret step drops every account of the secret but AWSCURRENT's
// (see docs/expiring-users.md).
package main

import (
	"os"

	"github.com/rotary-secrets/rotary/pkg/credentials/mysql"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/dbsecret/rdsendpoint"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

func main() {
	cfg, err := mysql.ConfigFromEnv(os.Getenv)
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
	cred, err := mysql.NewExpiringUsers(cfg, exp)
	if err != nil {
		rotation.Fatal(err)
	}
	rotation.Start(cred)
}
