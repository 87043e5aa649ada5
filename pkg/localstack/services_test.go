package localstack

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/rotary-secrets/rotary/internal/elasticachelocal"
	"github.com/rotary-secrets/rotary/internal/rdslocal"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// TestServicesShareTheEndpoint: the RDS and ElastiCache stand-ins given as
// Config.Services answer the real SDK clients at the stack's one endpoint,
// next to Secrets Manager and SNS (which is form-encoded too: the signing
// name, not the body, tells them apart), and the functions are told to
// reach them there.
func TestServicesShareTheEndpoint(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rdsAPI := rdslocal.New()
	rdsAPI.AddInstance(rdslocal.Instance{Identifier: "orders", Engine: "postgres", Address: "db.test", Port: 5432, MasterUsername: "admin"})
	ecAPI := elasticachelocal.New()
	ecAPI.AddReplicationGroup(elasticachelocal.ReplicationGroup{ID: "cache", Host: "cache.test", Port: 6379, UserGroupIDs: []string{"g"}})
	s, err := Start(ctx, Config{Services: map[string]http.Handler{"rds": rdsAPI, "elasticache": ecAPI}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	creds := credentials.NewStaticCredentialsProvider(smlocal.LocalAccessKeyID, smlocal.LocalSecretAccessKey, "")
	ep := aws.String(s.Endpoint)

	inst, err := rds.New(rds.Options{Region: Region, BaseEndpoint: ep, Credentials: creds}).DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("orders")})
	if err != nil || len(inst.DBInstances) != 1 || aws.ToString(inst.DBInstances[0].Endpoint.Address) != "db.test" {
		t.Fatalf("DescribeDBInstances at the stack: %+v %v", inst, err)
	}
	groups, err := elasticache.New(elasticache.Options{Region: Region, BaseEndpoint: ep, Credentials: creds}).DescribeReplicationGroups(ctx, &elasticache.DescribeReplicationGroupsInput{ReplicationGroupId: aws.String("cache")})
	if err != nil || len(groups.ReplicationGroups) != 1 {
		t.Fatalf("DescribeReplicationGroups at the stack: %+v %v", groups, err)
	}
	if _, err := sns.New(sns.Options{Region: Region, BaseEndpoint: ep, Credentials: creds}).Publish(ctx, &sns.PublishInput{TopicArn: aws.String(WatchTopicARN()), Message: aws.String("hello")}); err != nil {
		t.Fatalf("SNS Publish at the stack: %v", err)
	}
	if _, err := s.Client.ListSecrets(ctx, &secretsmanager.ListSecretsInput{}); err != nil {
		t.Fatalf("Secrets Manager at the stack: %v", err)
	}
	if got, want := s.servicesEnv(), []string{"AWS_ENDPOINT_URL_ELASTICACHE=" + s.Endpoint, "AWS_ENDPOINT_URL_RDS=" + s.Endpoint}; !slices.Equal(got, want) {
		t.Fatalf("the functions' environment for the services: %v, want %v", got, want)
	}
	if !slices.Contains(rdsAPI.Calls(), "DescribeDBInstances") || !slices.Contains(ecAPI.Calls(), "DescribeReplicationGroups") {
		t.Fatalf("the stand-ins did not serve the calls: rds %v, elasticache %v", rdsAPI.Calls(), ecAPI.Calls())
	}
}
