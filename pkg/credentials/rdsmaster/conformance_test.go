package rdsmaster

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/pkg/rotation/rotationtest"
)

// conform runs the conformance suite with the master of an instance (or a
// cluster) on the stack's server, whose password the local RDS really
// changes there.
func conform(t *testing.T, s *stack, cluster, login bool) {
	rotationtest.Run(t, rotationtest.Subject{
		Credential: New(s.config(login)),
		NewSecret:  func(t *testing.T, _ *secretsmanager.Client) string { return s.database(t, cluster, nil) },
		Check:      s.login,
		Corrupt:    func(v string) string { return withField(t, v, "password", field(t, v, "password")+"x") },
		Refused:    s.refused,
	})
}

// With a network path (Login) the type is a Prober too, so the suite also
// checks probes, recovery and the restore after a failed test.
func TestConformancePostgresInstance(t *testing.T) { conform(t, pgStack(t), false, true) }
func TestConformanceMariaDBInstance(t *testing.T)  { conform(t, myStack(t), false, true) }
func TestConformanceAuroraMySQLCluster(t *testing.T) {
	conform(t, myStack(t), true, true)
}

// Without a network path the type trusts what RDS reports.
func TestConformanceAuroraPostgresClusterNoLogin(t *testing.T) { conform(t, pgStack(t), true, false) }
