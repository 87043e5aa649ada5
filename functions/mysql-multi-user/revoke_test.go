package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/go-sql-driver/mysql"

	"github.com/rotary-secrets/rotary/pkg/lambdaemu"
	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/mysqlserver"
	"github.com/rotary-secrets/rotary/pkg/rotation"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// TestFunctionRevoke runs what `rotary revoke` does against the built
// function under the Lambda Runtime Interface Emulator: two rotations
// through the local Secrets Manager, then the function invoked directly
// with Step revokeSecret and the new AWSCURRENT token. The master is shaped
// like RDS's: PROCESS but neither CONNECTION ADMIN nor SUPER, killing
// connections through mysql.rds_kill. Afterwards both users' passwords from
// before are refused, the other user's open connection is killed, and
// AWSCURRENT logs in. Revoking twice is fine; a token that is not
// AWSCURRENT is refused and changes nothing.
func TestFunctionRevoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	db, caFile := mysqlserver.StartTLS(t, mysqlserver.Options{})
	stack, err := localstack.Start(ctx, localstack.Config{
		Functions:   []string{function},
		BinDir:      t.TempDir(),
		Retry:       smlocal.RetryPolicy{Attempts: 2},
		FunctionEnv: map[string][]string{function: {"ROTARY_CA_BUNDLE=" + caFile}},
	})
	if err != nil {
		failOrSkip(t, "start the local stack: %v", err)
	}
	t.Cleanup(func() { stack.Close() })
	fn, ok := stack.Function(function)
	if !ok {
		t.Fatalf("the stack does not run %s", function)
	}

	for _, q := range []string{
		"CREATE DATABASE orders", "CREATE TABLE orders.t (id INT)", "INSERT INTO orders.t VALUES (1)",
		// RDS's procedure for killing connections of other users.
		"CREATE PROCEDURE mysql.rds_kill(IN thread BIGINT) SQL SECURITY DEFINER KILL CONNECTION thread",
	} {
		if _, err := db.Root.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	master, masterPW := "rotary_e2e_rds_master", "master-Passw0rd"
	db.CreateUser(t, master, "%", masterPW, "GRANT CREATE USER, PROCESS ON *.*", "GRANT SELECT ON mysql.*", "GRANT EXECUTE ON PROCEDURE mysql.rds_kill")
	if _, err := db.Root.Exec("GRANT SELECT ON orders.* TO '" + master + "'@'%' WITH GRANT OPTION"); err != nil {
		t.Fatal(err)
	}
	masterARN := createSecret(ctx, t, stack, "e2e/mysql-revoke-master", secretValue(t, db, master, masterPW, nil))

	user, pw := "rotary_e2e_revoke", `initial-Passw0rd!'"\`
	db.CreateUser(t, user, "%", pw, "GRANT SELECT ON orders.*")
	t.Cleanup(func() { db.Root.Exec("DROP USER IF EXISTS 'rotary_e2e_revoke_clone'@'%'") })
	initial := secretValue(t, db, user, pw, map[string]any{"masterarn": masterARN})
	arn := createSecret(ctx, t, stack, "e2e/mysql-revoke", initial)
	before := []string{initial}
	for i := 1; i <= 2; i++ {
		if r := rotate(ctx, t, stack, arn); r.State != smlocal.RotationSucceeded {
			t.Fatalf("rotation %d: %s: %s", i, r.State, r.Err)
		}
		before = append(before, currentValue(ctx, t, stack, arn))
	}
	cur, prev := before[2], before[1]
	if err := mysqlserver.Login(ctx, prev, caFile); err != nil {
		t.Fatalf("AWSPREVIOUS (the clone) does not log in before the revoke, so the test proves nothing: %v", err)
	}
	conn := openConn(ctx, t, prev, caFile)

	invokeRevoke := func(token string) error {
		payload, err := json.Marshal(rotation.Event{Step: rotation.StepRevoke, SecretID: arn, ClientRequestToken: token})
		if err != nil {
			t.Fatal(err)
		}
		_, err = fn.Invoke(ctx, payload)
		return err
	}
	curToken := versionID(ctx, t, stack, arn, rotation.LabelCurrent)
	for i := 1; i <= 2; i++ {
		if err := invokeRevoke(curToken); err != nil {
			t.Fatalf("revoke %d: %v", i, err)
		}
		if got := currentValue(ctx, t, stack, arn); got != cur {
			t.Fatalf("revoke %d changed AWSCURRENT", i)
		}
		if err := mysqlserver.Login(ctx, cur, caFile); err != nil {
			t.Fatalf("AWSCURRENT does not log in after revoke %d: %v", i, err)
		}
		for j, old := range before[:2] {
			mustBeRefused(ctx, t, old, caFile, "the credential current before rotation "+strconv.Itoa(j+1))
		}
	}
	var one int
	if err := conn.QueryRowContext(ctx, "SELECT 1").Scan(&one); err == nil {
		t.Fatal("a connection the clone opened before the revoke still runs queries")
	}

	err = invokeRevoke(versionID(ctx, t, stack, arn, rotation.LabelPrevious))
	var fe *lambdaemu.FunctionError
	if !errors.As(err, &fe) || !strings.Contains(fe.Message, "revoke refused") {
		t.Fatalf("revoke with the AWSPREVIOUS token: err = %v, want the function to refuse", err)
	}
	if err := mysqlserver.Login(ctx, cur, caFile); err != nil {
		t.Fatalf("AWSCURRENT does not log in after the refused revoke: %v", err)
	}
}

func versionID(ctx context.Context, t *testing.T, s *localstack.Stack, arn, label string) string {
	t.Helper()
	out, err := s.Client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionStage: aws.String(label)})
	if err != nil {
		t.Fatalf("read %s: %v", label, err)
	}
	return aws.ToString(out.VersionId)
}

// mustBeRefused fails unless the server refuses the value's password
// (error 1045), rather than, say, being unreachable.
func mustBeRefused(ctx context.Context, t *testing.T, value, caFile, what string) {
	t.Helper()
	err := mysqlserver.Login(ctx, value, caFile)
	var me *mysql.MySQLError
	if err == nil {
		t.Fatalf("%s still logs in", what)
	}
	if !errors.As(err, &me) || me.Number != 1045 {
		t.Fatalf("%s: %v; want the server to refuse the password", what, err)
	}
}

// openConn opens one connection with a secret value over TLS verified
// against caFile; it is closed in t.Cleanup.
func openConn(ctx context.Context, t *testing.T, value, caFile string) *sql.Conn {
	t.Helper()
	var v struct {
		Host     string `json:"host"`
		Port     int    `json:"port"`
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := json.Unmarshal([]byte(value), &v); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	mc := mysql.NewConfig()
	mc.Net, mc.Addr = "tcp", net.JoinHostPort(v.Host, strconv.Itoa(v.Port))
	mc.User, mc.Passwd = v.Username, v.Password
	mc.TLS = &tls.Config{RootCAs: pool, ServerName: v.Host}
	mc.Logger = mysql.Logger(log.New(io.Discard, "", 0)) // the revoke kills this connection
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(ctx)
	if err == nil {
		err = conn.PingContext(ctx)
	}
	if err != nil {
		t.Fatalf("open a connection as %q: %v", v.Username, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
