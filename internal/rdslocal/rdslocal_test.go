package rdslocal

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
)

// newClient returns the real SDK client pointed at a stand-in serving srv.
func newClient(t *testing.T, srv *Server) *rds.Client {
	t.Helper()
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return rds.New(rds.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(hs.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDLOCAL", "local", ""),
	})
}

func TestDescribeDBInstances(t *testing.T) {
	srv := New()
	srv.AddInstance(Instance{Identifier: "orders", Engine: "postgres", Address: "orders.abc.us-east-1.rds.amazonaws.com", Port: 5432, MasterUsername: "admin"})
	srv.AddInstance(Instance{Identifier: "billing", Engine: "mysql", Address: "billing.example", Port: 3306})
	client := newClient(t, srv)
	ctx := context.Background()
	tests := []struct {
		name, id string
		want     []string // identifiers
		notFound bool
	}{
		{"by identifier", "orders", []string{"orders"}, false},
		{"by ARN", InstanceARN("orders"), []string{"orders"}, false},
		{"all", "", []string{"billing", "orders"}, false},
		{"unknown", "nope", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &rds.DescribeDBInstancesInput{}
			if tt.id != "" {
				in.DBInstanceIdentifier = aws.String(tt.id)
			}
			out, err := client.DescribeDBInstances(ctx, in)
			if tt.notFound {
				var nf *types.DBInstanceNotFoundFault
				if !errors.As(err, &nf) {
					t.Fatalf("error = %v, want DBInstanceNotFoundFault", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(out.DBInstances) != len(tt.want) {
				t.Fatalf("got %d instances, want %v", len(out.DBInstances), tt.want)
			}
			for i, id := range tt.want {
				if got := aws.ToString(out.DBInstances[i].DBInstanceIdentifier); got != id {
					t.Fatalf("instance %d = %q, want %q", i, got, id)
				}
			}
			if tt.id == "orders" {
				d := out.DBInstances[0]
				if aws.ToString(d.Endpoint.Address) != "orders.abc.us-east-1.rds.amazonaws.com" || aws.ToInt32(d.Endpoint.Port) != 5432 ||
					aws.ToString(d.Engine) != "postgres" || aws.ToString(d.DBInstanceArn) != InstanceARN("orders") {
					t.Fatalf("instance = %+v %+v, want the orders endpoint", d, d.Endpoint)
				}
			}
		})
	}
}

func TestDescribeDBClusters(t *testing.T) {
	srv := New()
	srv.AddCluster(Cluster{Identifier: "aurora", Engine: "aurora-postgresql", Endpoint: "aurora.cluster-abc.rds.amazonaws.com", ReaderEndpoint: "aurora.cluster-ro-abc.rds.amazonaws.com", Port: 5433})
	client := newClient(t, srv)
	ctx := context.Background()
	out, err := client.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(ClusterARN("aurora"))})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.DBClusters) != 1 {
		t.Fatalf("got %d clusters, want 1", len(out.DBClusters))
	}
	c := out.DBClusters[0]
	if aws.ToString(c.Endpoint) != "aurora.cluster-abc.rds.amazonaws.com" || aws.ToInt32(c.Port) != 5433 || aws.ToString(c.Engine) != "aurora-postgresql" {
		t.Fatalf("cluster = %q:%d %q, want the aurora writer endpoint", aws.ToString(c.Endpoint), aws.ToInt32(c.Port), aws.ToString(c.Engine))
	}
	_, err = client.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String("missing")})
	var nf *types.DBClusterNotFoundFault
	if !errors.As(err, &nf) {
		t.Fatalf("error = %v, want DBClusterNotFoundFault", err)
	}
	if got := srv.Calls(); len(got) != 2 || got[0] != "DescribeDBClusters" {
		t.Fatalf("Calls() = %v, want two DescribeDBClusters", got)
	}
}
