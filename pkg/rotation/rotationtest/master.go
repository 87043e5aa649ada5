package rotationtest

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/rotary-secrets/rotary/internal/rdslocal"
	"github.com/rotary-secrets/rotary/pkg/rotation"
)

// The tags RDS puts on the master secret it manages, spelled as AWS does.
const (
	tagInstance = "aws:rds:primaryDBInstanceArn"
	tagCluster  = "aws:rds:primaryDBClusterArn"
)

// runMaster rotates, with a local RDS API, with master secrets that RDS
// manages (username and password, and a tag naming the instance or
// cluster): found through the API when the instance or cluster is the
// subject's server, refused before any change when it is elsewhere or
// unknown. A Revoker then revokes with such a master too.
func runMaster(t *testing.T, s Subject, seen *valuesSeen) {
	m := s.Master
	if m == nil {
		return
	}
	api := rdslocal.New()
	api.AddInstance(rdslocal.Instance{Identifier: "orders", Engine: m.Engine, Address: m.Host, Port: m.Port})
	api.AddCluster(rdslocal.Cluster{Identifier: "aurora", Engine: m.ClusterEngine, Endpoint: m.Host, Port: m.Port})
	api.AddInstance(rdslocal.Instance{Identifier: "elsewhere", Engine: m.Engine, Address: "db.elsewhere.test", Port: m.Port})
	hs := httptest.NewServer(api)
	t.Cleanup(hs.Close)
	client := rds.New(rds.Options{Region: "us-east-1", BaseEndpoint: aws.String(hs.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "local", "")})

	var tag, tagValue string // the tag of the next master secret
	sub := s
	sub.Credential = m.WithRDS(client)
	sub.NewSecret = func(t *testing.T, sm *secretsmanager.Client) string {
		return m.NewSecret(t, func(user, password string) string {
			t.Helper()
			b, err := json.Marshal(map[string]string{"username": user, "password": password})
			if err != nil {
				t.Fatal(err)
			}
			out, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
				Name:         aws.String("rds-managed/" + sanitize(user)),
				SecretString: aws.String(string(b)),
				Tags:         []smtypes.Tag{{Key: aws.String(tag), Value: aws.String(tagValue)}},
			})
			if err != nil {
				t.Fatalf("create the RDS-managed master secret: %v", err)
			}
			seen.add(string(b))
			return aws.ToString(out.ARN)
		})
	}
	e := NewEnv(t, sub)
	_, revoker := sub.Credential.(rotation.Revoker)

	for _, c := range []struct {
		name, tag, arn string
		wantErr        string // "" when the rotation must succeed
	}{
		{"Instance", tagInstance, rdslocal.InstanceARN("orders"), ""},
		{"Cluster", tagCluster, rdslocal.ClusterARN("aurora"), ""},
		{"InstanceOnAnotherHost", tagInstance, rdslocal.InstanceARN("elsewhere"), "same database server"},
		{"UnknownInstance", tagInstance, rdslocal.InstanceARN("gone"), "DBInstanceNotFound"},
	} {
		t.Run("RDSManagedMaster/"+c.name, func(t *testing.T) {
			tag, tagValue = c.tag, c.arn
			arn, old := e.NewSecret(t)
			seen.add(old)
			token, err := e.Rotate(t, arn)
			e.mustNotQuote(t, err, seen) // before any message prints it
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("rotation: %v; want an error containing %q", err, c.wantErr)
				}
				if _, cur, _ := e.Value(t, arn, rotation.LabelCurrent); cur != old {
					t.Fatal("AWSCURRENT changed although the master secret was refused")
				}
				e.mustBeValid(t, "the credential current before the refused rotation", old)
				return
			}
			if err != nil {
				t.Fatalf("rotation: %v", err)
			}
			e.mustEndRotated(t, arn, token, old)
			seen.addCurrent(e, t, arn)
			if !revoker {
				return
			}
			e.mustRevoke(t, arn, "revoke with an RDS-managed master", seen)
			if !s.NoDownstream {
				e.mustBeRefused(t, "AWSPREVIOUS after the revoke", old)
			}
		})
	}

	t.Run("RDSManagedMaster/APICalls", func(t *testing.T) {
		calls := api.Calls()
		if !slices.Contains(calls, "DescribeDBInstances") || !slices.Contains(calls, "DescribeDBClusters") {
			t.Fatalf("RDS API calls = %v, want both DescribeDBInstances and DescribeDBClusters", calls)
		}
	})
	t.Run("RDSManagedMaster/NoSecretInLogs", func(t *testing.T) {
		logs := e.Logs()
		for _, v := range seen.all() {
			if Leaks(logs, v) {
				t.Fatalf("a secret value (%s) appears in the handler's logs", Fingerprint(v))
			}
		}
	})
}
