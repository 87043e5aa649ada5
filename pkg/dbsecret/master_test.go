package dbsecret

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"

	"github.com/rotary-secrets/rotary/internal/rdslocal"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// fakeStore is a SecretStore over a map, for unit tests of this package only.
type fakeStore struct {
	values map[string]string
	tags   map[string]map[string]string
}

func (f fakeStore) Current(_ context.Context, id string) (rotation.Version, error) {
	v, ok := f.values[id]
	if !ok {
		return rotation.Version{}, fmt.Errorf("secret %s not found", id)
	}
	return rotation.Version{ID: "v1", Value: v}, nil
}

func (f fakeStore) Tags(_ context.Context, id string) (map[string]string, error) {
	return f.tags[id], nil
}

func TestMaster(t *testing.T) {
	srv := rdslocal.New()
	srv.AddInstance(rdslocal.Instance{Identifier: "orders", Engine: "postgres", Address: "orders.rds.test", Port: 5432})
	srv.AddCluster(rdslocal.Cluster{Identifier: "aurora", Engine: "aurora-postgresql", Endpoint: "aurora.cluster.rds.test", Port: 5433})
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	newRDS := func(context.Context) (RDSAPI, error) {
		return rdsClient{rds.New(rds.Options{Region: "us-east-1", BaseEndpoint: aws.String(hs.URL),
			Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "local", "")})}, nil
	}
	const masterPW = "master-Pw-9f8e7d"
	store := fakeStore{
		values: map[string]string{
			"full":        `{"engine":"postgres","host":"orders.rds.test","port":5432,"username":"admin","password":"` + masterPW + `"}`,
			"other-host":  `{"engine":"postgres","host":"elsewhere.test","port":5432,"username":"admin","password":"` + masterPW + `"}`,
			"managed-i":   `{"username":"admin","password":"` + masterPW + `"}`,
			"managed-c":   `{"username":"admin","password":"` + masterPW + `"}`,
			"managed-bad": `{"username":"admin","password":"` + masterPW + `"}`,
			"untagged":    `{"username":"admin","password":"` + masterPW + `"}`,
			"no-password": `{"username":"admin"}`,
			"not-json":    `nope`,
		},
		tags: map[string]map[string]string{
			"managed-i":   {"aws:rds:primaryDBInstanceArn": rdslocal.InstanceARN("orders")},
			"managed-c":   {TagPrimaryDBClusterARN: rdslocal.ClusterARN("aurora")},
			"managed-bad": {TagPrimaryDBInstanceARN: rdslocal.InstanceARN("gone")},
		},
	}
	user := func(engine, host string, port int, masterarn string) *Secret {
		return &Secret{Engine: engine, Host: host, Port: port, Username: "app", Password: "x", DBName: "orders", MasterARN: masterarn}
	}
	tests := []struct {
		name     string
		user     *Secret
		wantHost string
		wantPort int
		wantErr  string
	}{
		{"full master secret", user("postgres", "orders.rds.test", 5432, "full"), "orders.rds.test", 5432, ""},
		{"rds-managed, instance tag", user("postgres", "orders.rds.test", 5432, "managed-i"), "orders.rds.test", 5432, ""},
		{"rds-managed, cluster tag", user("aurora-postgresql", "aurora.cluster.rds.test", 5433, "managed-c"), "aurora.cluster.rds.test", 5433, ""},
		{"missing masterarn", user("postgres", "orders.rds.test", 5432, ""), "", 0, `"masterarn" is missing`},
		{"master secret missing", user("postgres", "orders.rds.test", 5432, "absent"), "", 0, "read the secret named by masterarn absent"},
		{"master on another host", user("postgres", "orders.rds.test", 5432, "other-host"), "", 0, "is for postgres elsewhere.test:5432"},
		{"rds-managed master of another instance", user("postgres", "billing.rds.test", 5432, "managed-i"), "", 0, "point masterarn at the admin secret of the same database server"},
		{"rds instance not found", user("postgres", "orders.rds.test", 5432, "managed-bad"), "", 0, "DescribeDBInstances"},
		{"no host and no tags", user("postgres", "orders.rds.test", 5432, "untagged"), "", 0, "neither tag"},
		{"no password", user("postgres", "orders.rds.test", 5432, "no-password"), "", 0, `"password"`},
		{"not json", user("postgres", "orders.rds.test", 5432, "not-json"), "", 0, "not a JSON object"},
		{"wrong engine family", user("mysql", "orders.rds.test", 5432, "full"), "", 0, "same database server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Master(context.Background(), store, tt.user, newRDS)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrMaster) {
					t.Fatalf("Master() error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), masterPW) {
					t.Fatal("error quotes the master password")
				}
				return
			}
			if err != nil {
				t.Fatalf("Master() error = %v", err)
			}
			if m.Host != tt.wantHost || m.Port != tt.wantPort || m.Username != "admin" || m.Password != masterPW {
				t.Fatalf("Master() = %s:%d user %q, want %s:%d user admin", m.Host, m.Port, m.Username, tt.wantHost, tt.wantPort)
			}
		})
	}
	if _, err := Master(context.Background(), store, user("postgres", "orders.rds.test", 5432, "managed-i"), nil); err == nil || !strings.Contains(err.Error(), "no RDS API client") {
		t.Fatalf("Master() without an RDS client = %v, want a clear error", err)
	}
}

// rdsClient is RDSAPI over the real RDS client, as package rdsendpoint
// makes it (which this package's tests cannot import: it imports dbsecret).
type rdsClient struct{ c *rds.Client }

func (r rdsClient) InstanceEndpoint(ctx context.Context, arn string) (Endpoint, error) {
	out, err := r.c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(arn)})
	if err != nil || len(out.DBInstances) != 1 || out.DBInstances[0].Endpoint == nil {
		return Endpoint{}, err
	}
	i := out.DBInstances[0]
	return Endpoint{Host: aws.ToString(i.Endpoint.Address), Port: int(aws.ToInt32(i.Endpoint.Port)), Identifier: aws.ToString(i.DBInstanceIdentifier)}, nil
}

func (r rdsClient) ClusterEndpoint(ctx context.Context, arn string) (Endpoint, error) {
	out, err := r.c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(arn)})
	if err != nil || len(out.DBClusters) != 1 {
		return Endpoint{}, err
	}
	c := out.DBClusters[0]
	return Endpoint{Host: aws.ToString(c.Endpoint), Port: int(aws.ToInt32(c.Port)), Identifier: aws.ToString(c.DBClusterIdentifier)}, nil
}
