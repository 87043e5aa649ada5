package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/internal/mysqlserver"
	"github.com/rotary-secrets/rotary/internal/mysqlserver/mysqltest"
	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// TestRollbackAndRevokeMariaDB runs rotate, rollback and revoke through the
// CLI against a real MariaDB user (its own stack: the function needs the
// server's CA), each proven by logins.
func TestRollbackAndRevokeMariaDB(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	db := mysqltest.Start(t, mysqlserver.Options{TestCA: true})
	caFile := db.CAFile
	s, err := localstack.Start(ctx, localstack.Config{
		Functions: []string{"mysql-single-user"},
		Env:       []string{"ROTARY_CA_BUNDLE=" + caFile},
		Retry:     smlocal.RetryPolicy{Attempts: 2},
	})
	if err != nil {
		failOrSkip(t, "start the local stack: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	user, pw := unique("cli"), "Initial-"+unique("pw")
	mysqltest.CreateUser(t, db, user, "%", pw)
	initialB, _ := json.Marshal(map[string]any{"engine": "mariadb", "host": "localhost", "port": db.Port, "username": user, "password": pw})
	initial := string(initialB)
	name := "cli/mariadb"
	if _, err := s.Client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(initial)}); err != nil {
		t.Fatal(err)
	}
	cur := func() string {
		out, err := s.Client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.SecretString)
	}
	cli := func(args ...string) {
		t.Helper()
		r := rotaryAt(t, s.Endpoint, args...)
		if r.code != 0 {
			t.Fatalf("rotary %s: exit %d: %s", strings.Join(args, " "), r.code, r.errOut)
		}
		noSecretIn(t, r.out+r.errOut, initial, cur())
	}
	login := func(v string) error { return mysqlserver.Login(ctx, v, caFile) }

	cli("rotate", name, "--wait", "--function", localstack.FunctionARN("mysql-single-user"))
	rotated := cur()
	if login(rotated) != nil || login(initial) == nil {
		t.Fatal("after rotate: want AWSCURRENT to log in and the initial password refused")
	}
	cli("rollback", name, "--yes")
	if cur() != initial {
		t.Fatalf("AWSCURRENT after rollback is %s, want the initial value %s", fingerprint(cur()), fingerprint(initial))
	}
	if err := login(initial); err != nil {
		t.Fatalf("the initial password does not log in after rollback: %v", err)
	}
	if login(rotated) == nil {
		t.Fatal("the rotated password still logs in after rollback")
	}
	cli("revoke", name, "--yes")
	for what, v := range map[string]string{"initial (AWSCURRENT before revoke)": initial, "rotated (AWSPREVIOUS before revoke)": rotated} {
		if login(v) == nil {
			t.Errorf("the %s password still logs in after revoke", what)
		}
	}
	if err := login(cur()); err != nil {
		t.Fatalf("AWSCURRENT does not log in after revoke: %v", err)
	}
}
