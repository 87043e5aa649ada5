// Package rdsmaster is the rds-master credential type: the master password
// of an RDS DB instance or DB cluster (Aurora, Multi-AZ), changed through
// the RDS API (ModifyDBInstance, ModifyDBCluster) rather than by logging in,
// for masters whose password RDS does not manage (ManageMasterUserPassword
// off). See docs/rds-master.md.
package rdsmaster
