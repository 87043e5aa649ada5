package mysql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/rds"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// Tags RDS puts on the master secret it manages.
const (
	TagPrimaryInstance = "aws:rds:primarydbinstancearn"
	TagPrimaryCluster  = "aws:rds:primarydbclusterarn"
)

// RDSAPI is the part of the RDS API that finds the endpoint of an
// RDS-managed master secret's database. *rds.Client implements it.
type RDSAPI interface {
	DescribeDBInstances(ctx context.Context, in *rds.DescribeDBInstancesInput, opts ...func(*rds.Options)) (*rds.DescribeDBInstancesOutput, error)
	DescribeDBClusters(ctx context.Context, in *rds.DescribeDBClustersInput, opts ...func(*rds.Options)) (*rds.DescribeDBClustersOutput, error)
}

// NewRDSClient returns an RDS client configured from the environment (the
// function's role, region, and AWS_ENDPOINT_URL_RDS for a local stand-in).
func NewRDSClient(ctx context.Context) (*rds.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load the AWS configuration for the RDS client: %w", err)
	}
	return rds.NewFromConfig(cfg), nil
}

// resolveMaster reads the admin secret named by user.MasterARN and returns
// it as a database secret for the same server as user. A master secret that
// holds only username and password (one RDS manages) gets its host and port
// from its aws:rds:primarydb*arn tag through the RDS API, and the user
// secret's engine and ssl setting.
func resolveMaster(ctx context.Context, cfg Config, st rotation.SecretStore, user *dbsecret.Secret) (*dbsecret.Secret, error) {
	arn := user.MasterARN
	if st == nil {
		return nil, fmt.Errorf("read the master secret %s: no secret store was given", arn)
	}
	v, err := st.Current(ctx, arn)
	if err != nil {
		return nil, fmt.Errorf("read the master secret %s (field \"masterarn\"; check the ARN and that the function may read it): %w", arn, err)
	}
	fields, err := v.Fields()
	if err != nil {
		return nil, fmt.Errorf("master secret %s: %w", arn, err)
	}
	var master *dbsecret.Secret
	if _, hasHost := fields["host"]; hasHost {
		master, err = dbsecret.Parse(v.Value)
		if err != nil {
			return nil, fmt.Errorf("master secret %s: %w", arn, err)
		}
		if master.Family() != dbsecret.FamilyMySQL {
			return nil, fmt.Errorf("%w: master secret %s: field \"engine\" is %q; the master of a MySQL user must be a MySQL or MariaDB secret", dbsecret.ErrInvalidSecret, arn, master.Engine)
		}
	} else {
		master, err = rdsManagedMaster(ctx, cfg, st, arn, v, user)
		if err != nil {
			return nil, err
		}
	}
	if !strings.EqualFold(master.Host, user.Host) || master.Port != user.Port {
		return nil, fmt.Errorf("%w: master secret %s is for %s:%d but the secret is for %s:%d; set masterarn to the admin secret of the same server", dbsecret.ErrInvalidSecret, arn, master.Host, master.Port, user.Host, user.Port)
	}
	return master, nil
}

func rdsManagedMaster(ctx context.Context, cfg Config, st rotation.SecretStore, arn string, v rotation.Version, user *dbsecret.Secret) (*dbsecret.Secret, error) {
	var creds struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := json.Unmarshal([]byte(v.Value), &creds); err != nil || creds.Username == "" || creds.Password == "" {
		return nil, fmt.Errorf("%w: master secret %s has no \"host\" and no string fields \"username\" and \"password\"; use a full database secret or an RDS-managed master secret", dbsecret.ErrInvalidSecret, arn)
	}
	tags, err := st.Tags(ctx, arn)
	if err != nil {
		return nil, fmt.Errorf("read the tags of the master secret %s to find its database: %w", arn, err)
	}
	instance, cluster := tags[TagPrimaryInstance], tags[TagPrimaryCluster]
	if instance == "" && cluster == "" {
		return nil, fmt.Errorf("%w: master secret %s has no \"host\" field and no %s or %s tag; add host and port to it or use the secret RDS manages", dbsecret.ErrInvalidSecret, arn, TagPrimaryInstance, TagPrimaryCluster)
	}
	if cfg.RDS == nil {
		return nil, fmt.Errorf("master secret %s is RDS-managed, but the function has no RDS client to find its endpoint", arn)
	}
	var host string
	var port int32
	if instance != "" {
		out, err := cfg.RDS.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(instance)})
		if err != nil {
			return nil, fmt.Errorf("find the endpoint of %s (tag %s of the master secret; the function needs rds:DescribeDBInstances): %w", instance, TagPrimaryInstance, err)
		}
		if len(out.DBInstances) != 1 || out.DBInstances[0].Endpoint == nil {
			return nil, fmt.Errorf("find the endpoint of %s: RDS returned %d instances and no endpoint; is the instance available?", instance, len(out.DBInstances))
		}
		host, port = aws.ToString(out.DBInstances[0].Endpoint.Address), aws.ToInt32(out.DBInstances[0].Endpoint.Port)
	} else {
		out, err := cfg.RDS.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(cluster)})
		if err != nil {
			return nil, fmt.Errorf("find the endpoint of %s (tag %s of the master secret; the function needs rds:DescribeDBClusters): %w", cluster, TagPrimaryCluster, err)
		}
		if len(out.DBClusters) != 1 {
			return nil, fmt.Errorf("find the endpoint of %s: RDS returned %d clusters", cluster, len(out.DBClusters))
		}
		host, port = aws.ToString(out.DBClusters[0].Endpoint), aws.ToInt32(out.DBClusters[0].Port)
	}
	if host == "" || port == 0 {
		return nil, errors.New("find the endpoint of the master secret's database: RDS returned no address or port")
	}
	return &dbsecret.Secret{
		Engine: user.Engine, Host: host, Port: int(port),
		Username: creds.Username, Password: creds.Password, SSL: user.SSL,
	}, nil
}
