// Command postgres-single-user is the rotation function for a PostgreSQL
// user that changes its own password: the secret's user logs in with its
// current (or previous) password and sets the new one as a SCRAM verifier.
// Its revokeSecret step proves that the previous password is refused.
package main

import (
	"os"

	"github.com/rotary-secrets/rotary/pkg/credentials/postgres"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

func main() {
	cfg, err := postgres.ConfigFromEnv(os.Getenv)
	if err != nil {
		rotation.Fatal(err)
	}
	rotation.Start(postgres.NewSingleUser(cfg))
}
