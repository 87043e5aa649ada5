// Command rds-master is the rotation function for the master password of
// an RDS DB instance or DB cluster whose password RDS does not manage: it
// sets the new password through the RDS API (ModifyDBInstance or
// ModifyDBCluster), waits until RDS reports it applied and, with
// ROTARY_RDS_MASTER_LOGIN=true, logs in with it. A failed rotation puts
// AWSCURRENT's password back through the API (docs/rds-master.md).
package main

import (
	"os"

	"github.com/rotary-secrets/rotary/pkg/credentials/rdsmaster"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

func main() {
	cfg, err := rdsmaster.ConfigFromEnv(os.Getenv)
	if err != nil {
		rotation.Fatal(err)
	}
	rotation.Start(rdsmaster.New(cfg))
}
