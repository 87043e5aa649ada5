// Command mysql-single-user is the rotation function for a MySQL or MariaDB
// user that changes its own password: no admin secret is needed.
package main

import (
	"os"

	"github.com/rotary-secrets/rotary/pkg/credentials/mysql"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

func main() {
	cfg, err := mysql.ConfigFromEnv(os.Getenv)
	if err != nil {
		rotation.Fatal(err)
	}
	rotation.Start(mysql.NewSingleUser(cfg))
}
