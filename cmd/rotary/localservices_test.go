package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/internal/elasticachelocal"
	"github.com/rotary-secrets/rotary/internal/mysqlserver"
	"github.com/rotary-secrets/rotary/internal/mysqlserver/mysqltest"
	"github.com/rotary-secrets/rotary/internal/redisserver"
	"github.com/rotary-secrets/rotary/internal/redisserver/redistest"
	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// TestLocalServesRDSAndElastiCache: `rotary local --services FILE` serves
// the RDS instance and the ElastiCache replication group and user the
// file declares, backed by a real MariaDB and a real TLS redis-server, so
// that rds-master and elasticache-user rotate there: after `rotary rotate`
// the new password logs in and the replaced one is refused (rds-master) or
// still works as AWSPREVIOUS's (elasticache-user).
func TestLocalServesRDSAndElastiCache(t *testing.T) {
	maria := mysqltest.Start(t, mysqlserver.Options{TestCA: true})
	redis := redistest.Start(t, redisserver.Options{TLS: true})
	master, masterPW := unique("master"), "Initial-"+unique("pw")
	mysqltest.CreateUser(t, maria, master, "%", masterPW)
	cacheUser, cachePW := unique("app"), "Initial-"+unique("password")
	redistest.CreateUser(t, redis, cacheUser, cachePW, "+ping")
	dbID, userID := strings.ReplaceAll(master, "_", "-"), strings.ReplaceAll(cacheUser, "_", "-")

	dir := t.TempDir()
	services := filepath.Join(dir, "services.json")
	file := jsonValue(map[string]any{
		"rdsInstances": []any{map[string]any{
			"identifier": dbID, "engine": "mariadb", "host": "localhost", "port": maria.Port, "masterUsername": master,
			"adminDSN": fmt.Sprintf("%s:%s@tcp(127.0.0.1:%d)/", maria.AdminUser, maria.AdminPassword, maria.Port),
		}},
		"elastiCacheGroups": []any{map[string]any{
			"id": "orders", "host": redis.Host, "port": redis.Port, "userGroupIds": []string{"orders-users"},
			"adminURL": fmt.Sprintf("rediss://default:%s@%s:%d", redis.AdminPassword, redis.Host, redis.Port), "caFile": redis.CAFile,
		}},
		"elastiCacheUsers": []any{map[string]any{"userId": userID, "userName": cacheUser, "accessString": "on ~* +ping", "userGroupIds": []string{"orders-users"}}},
	})
	if err := os.WriteFile(services, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	endpoint, stop := startLocal(t, filepath.Join(dir, "state.json"),
		"--functions", "rds-master,elasticache-user", "--services", services,
		"--env", "ROTARY_CA_BUNDLE="+redis.CAFile, "--env", "ROTARY_RDS_POLL_INTERVAL=100ms", "--env", "ROTARY_RDS_SETTLE=2s")
	if out := stop.output(); !strings.Contains(out, "1 RDS instances, 0 RDS clusters, 1 ElastiCache replication groups, 1 ElastiCache users") || strings.Contains(out, maria.AdminPassword) || strings.Contains(out, redis.AdminPassword) {
		t.Fatalf("rotary local does not list the services (or shows a password):\n%s", out)
	}
	sm := smlocal.NewClient(endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rotate := func(name, initial, function string) string {
		t.Helper()
		if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(initial)}); err != nil {
			t.Fatal(err)
		}
		r := rotaryAt(t, endpoint, "rotate", name, "--wait", "--function", localstack.FunctionARN(function))
		out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		cur := aws.ToString(out.SecretString)
		noSecretIn(t, r.out+r.errOut, initial, cur)
		if r.code != 0 {
			t.Fatalf("rotate %s on rotary local: exit %d: %s%s", name, r.code, r.out, r.errOut)
		}
		return cur
	}

	dbInitial := jsonValue(map[string]any{"engine": "mariadb", "host": "localhost", "port": maria.Port, "username": master, "password": masterPW, "dbInstanceIdentifier": dbID})
	dbCur := rotate("local/rds-master", dbInitial, "rds-master")
	if err := mysqlserver.Login(ctx, dbCur, maria.CAFile); err != nil {
		t.Fatalf("the rotated master password does not log in: %v", err)
	}
	if err := mysqlserver.Login(ctx, dbInitial, maria.CAFile); err == nil {
		t.Fatal("the replaced master password still logs in")
	}

	// Without a login (the default), rds-master cannot probe or revoke:
	// status says it could not verify, rollback puts the initial password
	// back, and revoke refuses, saying why, before it changes anything.
	if r := rotaryAt(t, endpoint, "status", "local/rds-master", "--verify"); r.code != 1 || !strings.Contains(r.out, "UNVERIFIED") {
		t.Fatalf("status --verify of rds-master without a login: exit %d, want 1 and UNVERIFIED:\n%s%s", r.code, r.out, r.errOut)
	}
	if r := rotaryAt(t, endpoint, "rollback", "local/rds-master", "--yes"); r.code != 0 {
		t.Fatalf("rollback of rds-master: exit %d: %s%s", r.code, r.out, r.errOut)
	}
	if err := mysqlserver.Login(ctx, dbInitial, maria.CAFile); err != nil {
		t.Fatalf("the initial master password does not log in after rollback: %v", err)
	}
	if err := mysqlserver.Login(ctx, dbCur, maria.CAFile); err == nil {
		t.Fatal("the rolled-back master password still logs in")
	}
	before, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("local/rds-master")})
	if err != nil {
		t.Fatal(err)
	}
	r := rotaryAt(t, endpoint, "revoke", "local/rds-master", "--yes")
	if r.code != 1 || !strings.Contains(r.errOut, "cannot revoke") || !strings.Contains(r.errOut, "Nothing was changed") || strings.Contains(r.out, "Rotating") {
		t.Fatalf("revoke of rds-master without a login: exit %d, want 1 saying the type cannot revoke, before rotating:\n%s%s", r.code, r.out, r.errOut)
	}
	noSecretIn(t, r.out+r.errOut, dbInitial, dbCur)
	after, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("local/rds-master")})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before.VersionIdsToStages, after.VersionIdsToStages) {
		t.Fatalf("the refused revoke changed the versions: %v, then %v", before.VersionIdsToStages, after.VersionIdsToStages)
	}
	if err := mysqlserver.Login(ctx, dbInitial, maria.CAFile); err != nil {
		t.Fatalf("AWSCURRENT does not log in after the refused revoke: %v", err)
	}

	cacheInitial := jsonValue(map[string]any{"username": cacheUser, "password": cachePW, "user_arn": elasticachelocal.UserARN(userID), "host": redis.Host, "port": redis.Port, "replication_group_id": "orders"})
	cacheCur := rotate("local/elasticache-user", cacheInitial, "elasticache-user")
	for what, v := range map[string]string{"the rotated password": cacheCur, "AWSPREVIOUS's password": cacheInitial} {
		if err := redisserver.Login(ctx, v, redis.CAFile); err != nil {
			t.Fatalf("%s does not log in: %v", what, err)
		}
	}
	if err := redisserver.Login(ctx, withPassword(t, cacheInitial, "Wrong-"+unique("password")), redis.CAFile); !errors.Is(err, redisserver.ErrRefused) {
		t.Fatalf("a wrong password: %v, want it refused", err)
	}
}

func withPassword(t *testing.T, value, pw string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(value), &m); err != nil {
		t.Fatal(err)
	}
	m["password"] = pw
	return jsonValue(m)
}
