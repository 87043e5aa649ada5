package rdslocal

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/smithy-go"
)

// recorder stands for the database server: it records the passwords the
// stand-in applies. The tests of pkg/credentials/rdsmaster apply them to
// real PostgreSQL and MariaDB servers.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) set(_ context.Context, pw string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, pw)
	return nil
}

func (r *recorder) passwords() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

const goodPassword = "Abcdefgh1234!#$%"

func TestModifyDBInstanceAppliesAfterTheDelay(t *testing.T) {
	srv := New()
	srv.SetApplyDelay(150 * time.Millisecond)
	var db recorder
	srv.AddInstance(Instance{Identifier: "orders", Engine: "postgres", Address: "127.0.0.1", Port: 5432, MasterUsername: "admin", SetMasterPassword: db.set})
	client := newClient(t, srv)
	ctx := context.Background()
	out, err := client.ModifyDBInstance(ctx, &rds.ModifyDBInstanceInput{DBInstanceIdentifier: aws.String("orders"), MasterUserPassword: aws.String(goodPassword), ApplyImmediately: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if st := aws.ToString(out.DBInstance.DBInstanceStatus); st != StatusResetting || out.DBInstance.PendingModifiedValues == nil || aws.ToString(out.DBInstance.PendingModifiedValues.MasterUserPassword) != "****" {
		t.Fatalf("ModifyDBInstance answered status %q, pending %+v; want %s and a pending master password", st, out.DBInstance.PendingModifiedValues, StatusResetting)
	}
	if len(db.passwords()) != 0 {
		t.Fatal("the password was applied at once; RDS applies it asynchronously")
	}
	// A second change while the first is applied is refused.
	_, err = client.ModifyDBInstance(ctx, &rds.ModifyDBInstanceInput{DBInstanceIdentifier: aws.String("orders"), MasterUserPassword: aws.String(goodPassword + "x"), ApplyImmediately: aws.Bool(true)})
	var bad *types.InvalidDBInstanceStateFault
	if !errors.As(err, &bad) {
		t.Fatalf("a second ModifyDBInstance while resetting: %v, want InvalidDBInstanceState", err)
	}
	d, err := client.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("orders")})
	if err != nil || aws.ToString(d.DBInstances[0].DBInstanceStatus) != StatusResetting {
		t.Fatalf("DescribeDBInstances while applying: %v %v", err, d)
	}
	if errs := srv.Wait(); len(errs) != 0 {
		t.Fatal(errs)
	}
	if got := db.passwords(); len(got) != 1 || got[0] != goodPassword {
		t.Fatalf("the server got %d passwords, want the one ModifyDBInstance sent", len(got))
	}
	d, err = client.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("orders")})
	if err != nil {
		t.Fatal(err)
	}
	i := d.DBInstances[0]
	if aws.ToString(i.DBInstanceStatus) != "available" || (i.PendingModifiedValues != nil && i.PendingModifiedValues.MasterUserPassword != nil) || i.MasterUserSecret != nil {
		t.Fatalf("after the change: status %q, pending %+v; want available with nothing pending", aws.ToString(i.DBInstanceStatus), i.PendingModifiedValues)
	}
	if srv.Applied("orders") != 1 {
		t.Fatalf("Applied = %d, want 1", srv.Applied("orders"))
	}
}

func TestModifyRefusals(t *testing.T) {
	srv := New()
	srv.SetApplyDelay(time.Millisecond)
	var db recorder
	srv.AddInstance(Instance{Identifier: "pg", Engine: "postgres", Address: "h", Port: 5432, MasterUsername: "admin", SetMasterPassword: db.set})
	srv.AddInstance(Instance{Identifier: "my", Engine: "mysql", Address: "h", Port: 3306, MasterUsername: "admin", SetMasterPassword: db.set})
	srv.AddInstance(Instance{Identifier: "managed", Engine: "postgres", Address: "h", Port: 5432, MasterUsername: "admin", MasterUserSecretARN: "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1", SetMasterPassword: db.set})
	srv.AddInstance(Instance{Identifier: "member", Engine: "aurora-postgresql", Address: "h", Port: 5432, ClusterIdentifier: "aurora", SetMasterPassword: db.set})
	srv.AddCluster(Cluster{Identifier: "aurora", Engine: "aurora-postgresql", Endpoint: "h", Port: 5432, MasterUsername: "admin", SetMasterPassword: db.set})
	srv.AddCluster(Cluster{Identifier: "managed-cluster", Engine: "aurora-mysql", Endpoint: "h", Port: 3306, MasterUserSecretARN: "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!cluster-1", SetMasterPassword: db.set})
	client := newClient(t, srv)
	ctx := context.Background()
	long := strings.Repeat("a1B!", 11) // 44 characters
	instance := func(id, pw string) error {
		_, err := client.ModifyDBInstance(ctx, &rds.ModifyDBInstanceInput{DBInstanceIdentifier: aws.String(id), MasterUserPassword: aws.String(pw), ApplyImmediately: aws.Bool(true)})
		return err
	}
	cluster := func(id, pw string) error {
		_, err := client.ModifyDBCluster(ctx, &rds.ModifyDBClusterInput{DBClusterIdentifier: aws.String(id), MasterUserPassword: aws.String(pw), ApplyImmediately: aws.Bool(true)})
		return err
	}
	for _, tc := range []struct {
		name string
		err  error
		code string
		pw   string // must not be in the message
	}{
		{"unknown instance", instance("nope", goodPassword), "DBInstanceNotFound", ""},
		{"unknown cluster", cluster("nope", goodPassword), "DBClusterNotFoundFault", ""},
		{"too short", instance("pg", "Ab1!xyz"), "InvalidParameterValue", "Ab1!xyz"},
		{"a slash", instance("pg", "Abcdefgh/123"), "InvalidParameterValue", "Abcdefgh/123"},
		{"an at sign", instance("pg", "Abcdefgh@123"), "InvalidParameterValue", "Abcdefgh@123"},
		{"a double quote", instance("pg", "Abcdefgh\"123"), "InvalidParameterValue", "Abcdefgh\"123"},
		{"a space", instance("pg", "Abcdefgh 123"), "InvalidParameterValue", "Abcdefgh 123"},
		{"non-ASCII", instance("pg", "Abcdefgh123é"), "InvalidParameterValue", "Abcdefgh123é"},
		{"over MySQL's 41", instance("my", long), "InvalidParameterValue", long},
		{"over a cluster's 41", cluster("aurora", long), "InvalidParameterValue", long},
		{"RDS-managed instance", instance("managed", goodPassword), "InvalidParameterCombination", ""},
		{"RDS-managed cluster", cluster("managed-cluster", goodPassword), "InvalidParameterCombination", ""},
		{"Aurora member instance", instance("member", goodPassword), "InvalidParameterCombination", ""},
	} {
		if got := apiCode(tc.err); got != tc.code {
			t.Errorf("%s: error %v, want %s", tc.name, tc.err, tc.code)
		}
		if tc.pw != "" && tc.err != nil && strings.Contains(tc.err.Error(), tc.pw) {
			t.Errorf("%s: the error quotes the password", tc.name)
		}
	}
	// PostgreSQL instances take up to 128 characters.
	if err := instance("pg", long); err != nil {
		t.Errorf("a 44-character password for PostgreSQL: %v", err)
	}
	if errs := srv.Wait(); len(errs) != 0 {
		t.Fatal(errs)
	}
	if got := db.passwords(); len(got) != 1 || got[0] != long {
		t.Fatalf("the refused changes reached the server: %d applied, want only the valid one", len(got))
	}
}

func TestModifyDBClusterAppliesAfterTheDelay(t *testing.T) {
	srv := New()
	srv.SetApplyDelay(100 * time.Millisecond)
	var db recorder
	srv.AddCluster(Cluster{Identifier: "aurora", Engine: "aurora-mysql", Endpoint: "aurora.cluster-abc", Port: 3306, MasterUsername: "admin", SetMasterPassword: db.set})
	client := newClient(t, srv)
	ctx := context.Background()
	out, err := client.ModifyDBCluster(ctx, &rds.ModifyDBClusterInput{DBClusterIdentifier: aws.String("aurora"), MasterUserPassword: aws.String(goodPassword), ApplyImmediately: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.DBCluster.Status) != StatusResetting || out.DBCluster.PendingModifiedValues == nil || out.DBCluster.PendingModifiedValues.MasterUserPassword == nil {
		t.Fatalf("ModifyDBCluster answered %q %+v, want %s with a pending master password", aws.ToString(out.DBCluster.Status), out.DBCluster.PendingModifiedValues, StatusResetting)
	}
	_, err = client.ModifyDBCluster(ctx, &rds.ModifyDBClusterInput{DBClusterIdentifier: aws.String("aurora"), MasterUserPassword: aws.String(goodPassword), ApplyImmediately: aws.Bool(true)})
	var bad *types.InvalidDBClusterStateFault
	if !errors.As(err, &bad) {
		t.Fatalf("a second ModifyDBCluster while resetting: %v, want InvalidDBClusterStateFault", err)
	}
	srv.Wait()
	d, err := client.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String("aurora")})
	if err != nil {
		t.Fatal(err)
	}
	if c := d.DBClusters[0]; aws.ToString(c.Status) != "available" || (c.PendingModifiedValues != nil && c.PendingModifiedValues.MasterUserPassword != nil) {
		t.Fatalf("after the change: %q %+v, want available with nothing pending", aws.ToString(c.Status), c.PendingModifiedValues)
	}
	if got := db.passwords(); len(got) != 1 || got[0] != goodPassword {
		t.Fatalf("the server got %d passwords, want 1", len(got))
	}
}

func TestDescribeLagsModify(t *testing.T) {
	srv := New()
	srv.SetApplyDelay(100 * time.Millisecond)
	srv.SetDescribeLag(300 * time.Millisecond)
	var db recorder
	srv.AddInstance(Instance{Identifier: "orders", Engine: "postgres", Address: "127.0.0.1", Port: 5432, MasterUsername: "admin", SetMasterPassword: db.set})
	client := newClient(t, srv)
	ctx := context.Background()
	start := time.Now()
	if _, err := client.ModifyDBInstance(ctx, &rds.ModifyDBInstanceInput{DBInstanceIdentifier: aws.String("orders"), MasterUserPassword: aws.String(goodPassword), ApplyImmediately: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	describe := func() (string, bool) {
		out, err := client.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("orders")})
		if err != nil {
			t.Fatal(err)
		}
		i := out.DBInstances[0]
		return aws.ToString(i.DBInstanceStatus), i.PendingModifiedValues != nil && i.PendingModifiedValues.MasterUserPassword != nil
	}
	// Within the lag: the database as it was, and a second change refused.
	if st, pending := describe(); st != "available" || pending || time.Since(start) > 250*time.Millisecond {
		t.Fatalf("within the describe lag: status %q, pending %v (after %s); want available, nothing pending", st, pending, time.Since(start))
	}
	if len(db.passwords()) != 0 {
		t.Fatal("the password was applied within the describe lag")
	}
	if _, err := client.ModifyDBInstance(ctx, &rds.ModifyDBInstanceInput{DBInstanceIdentifier: aws.String("orders"), MasterUserPassword: aws.String(goodPassword), ApplyImmediately: aws.Bool(true)}); apiCode(err) != "InvalidDBInstanceState" {
		t.Fatalf("a second ModifyDBInstance within the lag: %v, want InvalidDBInstanceState", err)
	}
	time.Sleep(time.Until(start.Add(320 * time.Millisecond)))
	if st, pending := describe(); st != StatusResetting || !pending {
		t.Fatalf("after the lag: status %q, pending %v; want %s with a pending master password", st, pending, StatusResetting)
	}
	if errs := srv.Wait(); len(errs) != 0 {
		t.Fatal(errs)
	}
	if st, pending := describe(); st != "available" || pending || len(db.passwords()) != 1 {
		t.Fatalf("after the apply: status %q, pending %v, %d applied; want available, nothing pending, 1", st, pending, len(db.passwords()))
	}
}
