package rdsmaster

// Fault tests against a small in-process RDS client (the real rdslocal
// applies changes to real servers; these need what it does not do: an
// unreachable database, a busy answer).

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

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

type fakeRDS struct {
	mu        sync.Mutex
	modifies  int
	modErr    error
	errTimes  int // modifies that fail with modErr before one succeeds (0: all)
	lagAfter  int // describes still "available" after modify
	sinceMod  int
	pendingOn bool
}

func (f *fakeRDS) DescribeDBInstances(ctx context.Context, in *rds.DescribeDBInstancesInput, _ ...func(*rds.Options)) (*rds.DescribeDBInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := "available"
	pm := &types.PendingModifiedValues{}
	if f.pendingOn {
		f.sinceMod++
		switch {
		case f.sinceMod <= f.lagAfter:
		case f.sinceMod <= f.lagAfter+2:
			st = "resetting-master-credentials"
			pm.MasterUserPassword = aws.String("****")
		default:
			f.pendingOn = false
		}
	}
	return &rds.DescribeDBInstancesOutput{DBInstances: []types.DBInstance{{
		DBInstanceIdentifier: in.DBInstanceIdentifier, DBInstanceStatus: aws.String(st), Engine: aws.String("postgres"),
		MasterUsername: aws.String("master"), Endpoint: &types.Endpoint{Address: aws.String("127.0.0.1"), Port: aws.Int32(1)},
		PendingModifiedValues: pm,
	}}}, nil
}
func (f *fakeRDS) DescribeDBClusters(ctx context.Context, in *rds.DescribeDBClustersInput, _ ...func(*rds.Options)) (*rds.DescribeDBClustersOutput, error) {
	return nil, errors.New("no")
}
func (f *fakeRDS) ModifyDBInstance(ctx context.Context, in *rds.ModifyDBInstanceInput, _ ...func(*rds.Options)) (*rds.ModifyDBInstanceOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.modifies++
	if f.modErr != nil && (f.errTimes == 0 || f.modifies <= f.errTimes) {
		return nil, f.modErr
	}
	f.pendingOn, f.sinceMod = true, 0
	return &rds.ModifyDBInstanceOutput{}, nil
}
func (f *fakeRDS) ModifyDBCluster(ctx context.Context, in *rds.ModifyDBClusterInput, _ ...func(*rds.Options)) (*rds.ModifyDBClusterOutput, error) {
	return nil, errors.New("no")
}

const curV = `{"engine":"postgres","host":"127.0.0.1","port":1,"username":"master","password":"OldPassword-123456","dbInstanceIdentifier":"db1"}`
const pendV = `{"engine":"postgres","host":"127.0.0.1","port":1,"username":"master","password":"NewPassword-654321","dbInstanceIdentifier":"db1"}`

func cfgFor(f *fakeRDS, login bool) Config {
	return Config{DB: dbsecret.Config{ConnectTimeout: 2 * time.Second, StatementTimeout: 2 * time.Second},
		NewRDS: func(context.Context) (API, error) { return f, nil }, Login: login, WaitTimeout: 10 * time.Second, PollInterval: 10 * time.Millisecond}
}

// TestRestoreWhenTheLoginCannotTell: with a login, a Restore whose login
// cannot reach the database (as when testSecret failed for that reason)
// still sets AWSCURRENT's password through the API.
func TestRestoreWhenTheLoginCannotTell(t *testing.T) {
	f := &fakeRDS{}
	cred := New(cfgFor(f, true)).(rotation.Restorer)
	restored, err := cred.Restore(context.Background(), rotation.RestoreRequest{Current: rotation.Version{ID: "c", Value: curV}, Pending: rotation.Version{ID: "p", Value: pendV}})
	if f.modifies != 1 || !restored || err != nil {
		t.Fatalf("restore with the database unreachable: %d ModifyDBInstance, restored %v, err %v; want AWSCURRENT's password set once", f.modifies, restored, err)
	}
}

// TestSetRetriesWhenBusy: a ModifyDBInstance refused because a change is in
// flight (this step's own, sent before an answer that was lost) is sent
// again once nothing is pending, and is not reported as a permission
// problem.
func TestSetRetriesWhenBusy(t *testing.T) {
	f := &fakeRDS{modErr: &smithy.GenericAPIError{Code: "InvalidDBInstanceState", Message: "not available"}, errTimes: 1}
	cred := New(cfgFor(f, false))
	err := cred.Set(context.Background(), rotation.SetRequest{Current: rotation.Version{ID: "c", Value: curV}, Pending: rotation.Version{ID: "p", Value: pendV}})
	if err != nil || f.modifies != 2 {
		t.Fatalf("Set with the database busy once: err %v, %d ModifyDBInstance; want success on the second", err, f.modifies)
	}
	f = &fakeRDS{modErr: &smithy.GenericAPIError{Code: "InvalidDBInstanceState", Message: "not available"}}
	err = New(cfgFor(f, false)).Set(context.Background(), rotation.SetRequest{Current: rotation.Version{ID: "c", Value: curV}, Pending: rotation.Version{ID: "p", Value: pendV}})
	if err == nil || strings.Contains(err.Error(), "allow rds:") || !errors.Is(err, errBusy) {
		t.Fatalf("Set with the database always busy: err %v; want a busy error, not a permission hint", err)
	}
}
