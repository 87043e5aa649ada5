// Package rdsendpoint finds the endpoint of an RDS instance or cluster with
// the RDS API client: it is dbsecret.RDSAPI over *rds.Client. It lives apart
// from dbsecret so that only the functions that read RDS-managed master
// secrets (alternating users) link the RDS SDK, whose package init alone
// costs about 2 MB of peak memory and 1.7 ms of every cold start.
package rdsendpoint

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/rds"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
)

// Client is the part of the RDS API client (*rds.Client) it calls.
type Client interface {
	DescribeDBInstances(ctx context.Context, in *rds.DescribeDBInstancesInput, optFns ...func(*rds.Options)) (*rds.DescribeDBInstancesOutput, error)
	DescribeDBClusters(ctx context.Context, in *rds.DescribeDBClustersInput, optFns ...func(*rds.Options)) (*rds.DescribeDBClustersOutput, error)
}

// New builds the RDS API client from the default AWS configuration chain
// (so AWS_ENDPOINT_URL_RDS points it at another endpoint). It is the
// NewRDS of the alternating-users functions' configuration.
func New(ctx context.Context) (dbsecret.RDSAPI, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load the AWS configuration for the RDS API: %w", err)
	}
	return Of(rds.NewFromConfig(cfg)), nil
}

// Of returns c as a dbsecret.RDSAPI.
func Of(c Client) dbsecret.RDSAPI { return api{c} }

type api struct{ c Client }

func (a api) InstanceEndpoint(ctx context.Context, arn string) (dbsecret.Endpoint, error) {
	out, err := a.c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(arn)})
	if err != nil {
		return dbsecret.Endpoint{}, err
	}
	if len(out.DBInstances) != 1 || out.DBInstances[0].Endpoint == nil {
		return dbsecret.Endpoint{}, nil
	}
	i := out.DBInstances[0]
	return dbsecret.Endpoint{Host: aws.ToString(i.Endpoint.Address), Port: int(aws.ToInt32(i.Endpoint.Port)), Identifier: aws.ToString(i.DBInstanceIdentifier)}, nil
}

func (a api) ClusterEndpoint(ctx context.Context, arn string) (dbsecret.Endpoint, error) {
	out, err := a.c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(arn)})
	if err != nil {
		return dbsecret.Endpoint{}, err
	}
	if len(out.DBClusters) != 1 {
		return dbsecret.Endpoint{}, nil
	}
	c := out.DBClusters[0]
	return dbsecret.Endpoint{Host: aws.ToString(c.Endpoint), Port: int(aws.ToInt32(c.Port)), Identifier: aws.ToString(c.DBClusterIdentifier)}, nil
}
