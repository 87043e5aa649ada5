package coldstart

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/jackc/pgx/v5"

	"github.com/rotary-secrets/rotary/internal/elasticachelocal"
	"github.com/rotary-secrets/rotary/internal/rdslocal"
	"github.com/rotary-secrets/rotary/internal/redisserver"
	"github.com/rotary-secrets/rotary/internal/redisserver/redistest"
	"github.com/rotary-secrets/rotary/pkg/credentials/postgres/scram"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/recovery"
)

// BenchmarkPeakRSSServiceRotation is BenchmarkPeakRSSRotation for the
// types that call an AWS service API besides Secrets Manager, through the
// local RDS and ElastiCache APIs: rds-master (ModifyDBInstance, then a
// verified-TLS login to the throwaway PostgreSQL cluster), an alternating
// PostgreSQL user whose master secret is RDS-managed (DescribeDBInstances
// for its host), redis-acl and elasticache-user (a throwaway redis-server
// with TLS).
func BenchmarkPeakRSSServiceRotation(b *testing.B) {
	bins := bootstraps(b, "rds-master", "postgres-multi-user", "redis-acl", "elasticache-user")
	ctx := context.Background()
	rdsAPI := rdslocal.New()
	rdsAPI.SetApplyDelay(20 * time.Millisecond)
	rds := httptest.NewServer(rdsAPI)
	defer rds.Close()
	defer rdsAPI.Wait()
	b.Run("rds-master", func(b *testing.B) {
		c := pg.Get(b)
		rotatePeak(b, bins["rds-master"], "rds-master", func(b *testing.B, _ *secretsmanager.Client) string {
			u := name("cs_rdsm")
			if err := c.CreateRole(ctx, u, benchPassword, ""); err != nil {
				b.Fatal(err)
			}
			id := strings.ReplaceAll(u, "_", "-")
			rdsAPI.AddInstance(rdslocal.Instance{Identifier: id, Engine: "postgres", Address: "127.0.0.1", Port: c.Port, MasterUsername: u,
				SetMasterPassword: func(ctx context.Context, pw string) error { return setPGPassword(ctx, c.ConnectAdmin, u, pw) }})
			return value(b, map[string]any{"engine": "postgres", "host": "127.0.0.1", "port": c.Port, "username": u, "password": benchPassword, "dbInstanceIdentifier": id})
		}, append([]string{"ROTARY_CA_BUNDLE=" + c.CAFile, "AWS_ENDPOINT_URL_RDS=" + rds.URL, "ROTARY_RDS_MASTER_LOGIN=true",
			"ROTARY_RDS_POLL_INTERVAL=100ms", "ROTARY_RDS_SETTLE=1s", "ROTARY_RDS_WAIT_TIMEOUT=30s"}, extraEnv()...)...)
	})
	b.Run("postgres-multi-user-rds-managed-master", func(b *testing.B) {
		c := pg.Get(b)
		rotatePeak(b, bins["postgres-multi-user"], "postgres-multi-user", func(b *testing.B, sm *secretsmanager.Client) string {
			u, m := name("cs_pgr"), name("cs_pgrmaster")
			if err := c.CreateRole(ctx, u, benchPassword, ""); err != nil {
				b.Fatal(err)
			}
			if err := c.CreateRole(ctx, m, benchPassword, "CREATEROLE"); err != nil {
				b.Fatal(err)
			}
			id := strings.ReplaceAll(m, "_", "-")
			rdsAPI.AddInstance(rdslocal.Instance{Identifier: id, Engine: "postgres", Address: "127.0.0.1", Port: c.Port, MasterUsername: m})
			out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("rds-managed/" + id),
				SecretString: aws.String(value(b, map[string]any{"username": m, "password": benchPassword})),
				Tags:         []smtypes.Tag{{Key: aws.String(dbsecret.TagPrimaryDBInstanceARN), Value: aws.String(rdslocal.InstanceARN(id))}}})
			if err != nil {
				b.Fatal(err)
			}
			return value(b, map[string]any{"engine": "postgres", "host": "127.0.0.1", "port": c.Port, "username": u, "password": benchPassword, "masterarn": aws.ToString(out.ARN)})
		}, append([]string{"ROTARY_CA_BUNDLE=" + c.CAFile, "AWS_ENDPOINT_URL_RDS=" + rds.URL}, extraEnv()...)...)
	})
	var rs *redisserver.Server
	parent := b
	redis := func() *redisserver.Server {
		if rs == nil {
			rs = redistest.Start(parent, redisserver.Options{TLS: true, ACLFile: true})
		}
		return rs
	}
	b.Run("redis-acl", func(b *testing.B) {
		s := redis()
		rotatePeak(b, bins["redis-acl"], "redis-acl", func(b *testing.B, _ *secretsmanager.Client) string {
			u := name("cs_redis")
			redistest.CreateUser(b, s, u, benchPassword, "+ping", "+acl|getuser", "+acl|setuser", "+acl|save")
			return value(b, map[string]any{"host": s.Host, "port": s.Port, "username": u, "password": benchPassword})
		}, append([]string{"ROTARY_CA_BUNDLE=" + s.CAFile}, extraEnv()...)...)
	})
	b.Run("elasticache-user", func(b *testing.B) {
		s := redis()
		ec := elasticachelocal.New()
		ec.AddReplicationGroup(elasticachelocal.ReplicationGroup{ID: "orders", Host: s.Host, Port: s.Port, UserGroupIDs: []string{"orders-users"}, Redis: s.Admin})
		ecs := httptest.NewServer(ec)
		defer ecs.Close()
		rotatePeak(b, bins["elasticache-user"], "elasticache-user", func(b *testing.B, _ *secretsmanager.Client) string {
			u := name("cs_ec")
			id := strings.ReplaceAll(u, "_", "-")
			if err := ec.AddUser(ctx, elasticachelocal.User{UserID: id, UserName: u, AccessString: "on ~app:* +get +ping", UserGroupIDs: []string{"orders-users"}}, benchPassword); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.DeleteUser(context.Background(), u) })
			return value(b, map[string]any{"username": u, "password": benchPassword, "user_arn": elasticachelocal.UserARN(id), "host": s.Host, "port": s.Port, "replication_group_id": "orders"})
		}, append([]string{"ROTARY_CA_BUNDLE=" + s.CAFile, "AWS_ENDPOINT_URL_ELASTICACHE=" + ecs.URL}, extraEnv()...)...)
	})
}

// BenchmarkPeakRSSOtherFunctions is BenchmarkPeakRSSRotation for the
// functions that rotate nothing: the credential issuer answering one
// function URL request (a new PostgreSQL user, over verified TLS to the
// throwaway cluster) and the watch checking one rotated secret.
func BenchmarkPeakRSSOtherFunctions(b *testing.B) {
	bins := bootstraps(b, "credential-issuer", "watch", "random-secret")
	ctx := context.Background()
	b.Run("credential-issuer", func(b *testing.B) {
		c := pg.Get(b)
		base, m := name("cs_iss"), name("cs_issmaster")
		if err := c.CreateRole(ctx, base, benchPassword, ""); err != nil {
			b.Fatal(err)
		}
		if err := c.CreateRole(ctx, m, benchPassword, "CREATEROLE"); err != nil {
			b.Fatal(err)
		}
		roles := value(b, map[string]any{"app": map[string]any{"engine": "postgres", "masterarn": "master/" + base, "baseUser": base}})
		created := false
		req := events.LambdaFunctionURLRequest{Version: "2.0", RawPath: "/", Body: `{"role":"app","ttl":"1h"}`, RequestContext: events.LambdaFunctionURLRequestContext{
			RequestID: "req-1", HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: "POST", Path: "/"},
			Authorizer: &events.LambdaFunctionURLRequestContextAuthorizerDescription{IAM: &events.LambdaFunctionURLRequestContextAuthorizerIAMDescription{
				UserARN: "arn:aws:iam::123456789012:user/coldstart", AccountID: "123456789012", CallerID: "AIDACOLDSTART", AccessKey: "AKIACOLDSTART"}},
		}}
		event, err := json.Marshal(req)
		if err != nil {
			b.Fatal(err)
		}
		invokePeak(b, bins["credential-issuer"], "credential-issuer", func(b *testing.B, sm *secretsmanager.Client) []byte {
			if !created {
				if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("master/" + base),
					SecretString: aws.String(value(b, map[string]any{"engine": "postgres", "host": "127.0.0.1", "port": c.Port, "username": m, "password": benchPassword}))}); err != nil {
					b.Fatal(err)
				}
				created = true
			}
			return event
		}, append([]string{"ROTARY_CA_BUNDLE=" + c.CAFile, "ROTARY_ISSUER_ROLES=" + roles}, extraEnv()...)...)
	})
	b.Run("watch", func(b *testing.B) {
		// The watch probes each secret through its rotation function
		// (Lambda Invoke): a stand-in answers that it is healthy.
		lambdaAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var ev struct{ SecretId, ClientRequestToken string }
			if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			_ = json.NewEncoder(w).Encode(recovery.Report{SecretARN: ev.SecretId, State: recovery.StateHealthy, Plan: recovery.PlanNone, CurrentVersion: ev.ClientRequestToken,
				Versions: []recovery.VersionProbe{{VersionID: ev.ClientRequestToken, Labels: []string{"AWSCURRENT"}, Outcome: recovery.OutcomeLogsIn}}})
		}))
		defer lambdaAPI.Close()
		invokePeak(b, bins["watch"], "watch", func(b *testing.B, sm *secretsmanager.Client) []byte {
			out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name("peak/watch")), SecretString: aws.String(`{"apiKey":"initial-value-000000000000000000000000"}`)})
			if err != nil {
				b.Fatal(err)
			}
			return []byte(value(b, map[string]any{"secrets": []map[string]any{{"arn": aws.ToString(out.ARN), "function": "arn:aws:lambda:us-east-1:123456789012:function:random-secret"}}}))
		}, append([]string{"AWS_ENDPOINT_URL_LAMBDA=" + lambdaAPI.URL}, extraEnv()...)...)
	})
}

// setPGPassword sets user's password as the cluster's superuser (the local
// RDS applying a master password change).
func setPGPassword(ctx context.Context, admin func(context.Context, string) (*pgx.Conn, error), user, pw string) error {
	v, err := scram.Verifier(pw)
	if err != nil {
		return err
	}
	conn, err := admin(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "ALTER ROLE "+pgx.Identifier{user}.Sanitize()+" PASSWORD '"+v+"'")
	return err
}
