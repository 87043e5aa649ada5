package dbsecret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// Tags on an RDS-managed master secret naming the instance or cluster it belongs to.
const (
	TagPrimaryDBInstanceARN = "aws:rds:primarydbinstancearn"
	TagPrimaryDBClusterARN  = "aws:rds:primarydbclusterarn"
)

// ErrMaster is wrapped by every error about the master secret of
// alternating-users rotation.
var ErrMaster = errors.New("invalid master secret")

// RDSAPI finds the endpoint of the RDS instance or cluster an RDS-managed
// master secret belongs to. It names no type of the RDS SDK, so that a
// function that never reads such a secret (a single user) does not link
// the RDS client: package rdsendpoint implements it over *rds.Client
// (DescribeDBInstances, DescribeDBClusters), and only the functions that
// need it link that package.
type RDSAPI interface {
	// InstanceEndpoint returns the address, port and identifier of the DB
	// instance named by arn; an empty Host when RDS reports none.
	InstanceEndpoint(ctx context.Context, arn string) (Endpoint, error)
	// ClusterEndpoint returns the writer endpoint, port and identifier of
	// the DB cluster named by arn; an empty Host when RDS reports none.
	ClusterEndpoint(ctx context.Context, arn string) (Endpoint, error)
}

// Endpoint is where an RDS instance or cluster accepts connections.
type Endpoint struct {
	Host       string
	Port       int
	Identifier string
}

// Master reads the admin secret named by user.MasterARN and returns it as a
// database secret for the same server as user.
//
// The master secret may be a full database secret, or an RDS-managed one
// holding only username and password: its host and port then come from its
// tag aws:rds:primarydbinstancearn (DescribeDBInstances) or
// aws:rds:primarydbclusterarn (DescribeDBClusters, the writer endpoint),
// through the client newRDS returns (called only on that path; nil means
// such a master secret is refused). The engine, dbname and ssl setting then
// come from user.
//
// The master must be for the same server (engine family, host and port) as
// user: a master secret for another server is refused before any
// connection is made.
func Master(ctx context.Context, store rotation.SecretStore, user *Secret, newRDS func(context.Context) (RDSAPI, error)) (*Secret, error) {
	if strings.TrimSpace(user.MasterARN) == "" {
		return nil, fmt.Errorf("%w: field \"masterarn\" is missing; alternating-users rotation needs the ARN of the admin secret in masterarn", ErrMaster)
	}
	v, err := store.Current(ctx, user.MasterARN)
	if err != nil {
		return nil, fmt.Errorf("%w: read the secret named by masterarn %s: %w; check that it exists and that the function may read it", ErrMaster, user.MasterARN, err)
	}
	fields, err := v.Fields()
	if err != nil {
		return nil, fmt.Errorf("%w: secret %s: %w", ErrMaster, user.MasterARN, err)
	}
	var m *Secret
	if _, hasHost := fields["host"]; hasHost {
		if m, err = Parse(v.Value); err != nil {
			return nil, fmt.Errorf("%w: secret %s named by masterarn: %w", ErrMaster, user.MasterARN, err)
		}
	} else {
		if m, err = rdsManaged(ctx, store, user, fields, newRDS); err != nil {
			return nil, err
		}
	}
	if m.Family() != user.Family() || !strings.EqualFold(m.Host, user.Host) || m.Port != user.Port {
		return nil, fmt.Errorf("%w: the master secret %s is for %s %s:%d, but the secret is for %s %s:%d; point masterarn at the admin secret of the same database server",
			ErrMaster, user.MasterARN, m.Engine, m.Host, m.Port, user.Engine, user.Host, user.Port)
	}
	return m, nil
}

// rdsManaged completes an RDS-managed master secret (username and password
// only) with the endpoint of the instance or cluster named by its tags.
func rdsManaged(ctx context.Context, store rotation.SecretStore, user *Secret, fields map[string]json.RawMessage, newRDS func(context.Context) (RDSAPI, error)) (*Secret, error) {
	var cred struct{ Username, Password string }
	for name, dst := range map[string]*string{"username": &cred.Username, "password": &cred.Password} {
		raw, ok := fields[name]
		if !ok || json.Unmarshal(raw, dst) != nil || *dst == "" {
			return nil, fmt.Errorf("%w: secret %s named by masterarn has no host and no string field %q; store a full database secret (engine, host, port, username, password) or an RDS-managed one (username, password)", ErrMaster, user.MasterARN, name)
		}
	}
	tags, err := store.Tags(ctx, user.MasterARN)
	if err != nil {
		return nil, fmt.Errorf("%w: read the tags of master secret %s: %w", ErrMaster, user.MasterARN, err)
	}
	var instanceARN, clusterARN string
	for k, val := range tags {
		switch strings.ToLower(k) {
		case TagPrimaryDBInstanceARN:
			instanceARN = val
		case TagPrimaryDBClusterARN:
			clusterARN = val
		}
	}
	if instanceARN == "" && clusterARN == "" {
		return nil, fmt.Errorf("%w: secret %s named by masterarn has no host field and neither tag %s nor %s; add host, port and engine to it, or use the secret RDS manages for the database", ErrMaster, user.MasterARN, TagPrimaryDBInstanceARN, TagPrimaryDBClusterARN)
	}
	if newRDS == nil {
		return nil, fmt.Errorf("%w: secret %s is an RDS-managed master secret, but this function has no RDS API client; add host and port to the master secret", ErrMaster, user.MasterARN)
	}
	client, err := newRDS(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: build the RDS API client: %w", ErrMaster, err)
	}
	m := &Secret{Engine: user.Engine, Username: cred.Username, Password: cred.Password, DBName: user.DBName, SSL: user.SSL, MasterARN: ""}
	if clusterARN != "" {
		ep, err := client.ClusterEndpoint(ctx, clusterARN)
		if err != nil {
			return nil, fmt.Errorf("%w: find the cluster %s of master secret %s with DescribeDBClusters: %w; allow rds:DescribeDBClusters on it", ErrMaster, clusterARN, user.MasterARN, err)
		}
		if ep.Host == "" {
			return nil, fmt.Errorf("%w: DescribeDBClusters found no endpoint for cluster %s of master secret %s", ErrMaster, clusterARN, user.MasterARN)
		}
		m.Host, m.Port, m.DBClusterIdentifier = ep.Host, ep.Port, ep.Identifier
	} else {
		ep, err := client.InstanceEndpoint(ctx, instanceARN)
		if err != nil {
			return nil, fmt.Errorf("%w: find the instance %s of master secret %s with DescribeDBInstances: %w; allow rds:DescribeDBInstances on it", ErrMaster, instanceARN, user.MasterARN, err)
		}
		if ep.Host == "" {
			return nil, fmt.Errorf("%w: DescribeDBInstances found no endpoint for instance %s of master secret %s", ErrMaster, instanceARN, user.MasterARN)
		}
		m.Host, m.Port, m.DBInstanceIdentifier = ep.Host, ep.Port, ep.Identifier
	}
	if m.Port == 0 {
		m.Port = DefaultPort(m.Family())
	}
	return m, nil
}
