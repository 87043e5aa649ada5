package main

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotary-secrets/rotary/internal/mysqlserver"
	"github.com/rotary-secrets/rotary/internal/mysqlserver/mysqltest"
	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
)

// TestLocalExpiringUsers runs the command sequence of docs/expiring-users.md
// ("Try it on the local stack"): rotary local with the two expiring-user
// functions and the watch, a 4s ROTARY_CREDENTIAL_TTL and a 1s tick; two
// `rotary rotate --wait` per secret; then the credential the second
// rotation replaced is refused once it has expired: by PostgreSQL itself
// (VALID UNTIL, the server's clock), and on MariaDB after the watch's
// reapSecret dropped the account. Until then it logs in.
func TestLocalExpiringUsers(t *testing.T) {
	c := cluster(t)
	maria := mysqltest.Start(t, mysqlserver.Options{})
	dir := t.TempDir()
	endpoint, _ := startLocal(t, filepath.Join(dir, "state.json"),
		"--functions", "postgres-expiring-user,mysql-expiring-user,watch", "--tick", "1s", "--log", filepath.Join(dir, "local.log"),
		"--env", "ROTARY_CREDENTIAL_TTL=4s", "--env", "ROTARY_CA_BUNDLE="+c.CAFile)
	sm := smlocal.NewClient(endpoint)
	ctx := context.Background()
	create := func(name string, value map[string]any) string {
		t.Helper()
		b, _ := json.Marshal(value)
		out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(string(b))})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.ARN)
	}
	value := func(name, label string) string {
		t.Helper()
		out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionStage: aws.String(label)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.SecretString)
	}
	rotate := func(name, function string) {
		t.Helper()
		if r := rotaryAt(t, endpoint, "rotate", name, "--wait", "--function", localstack.FunctionARN(function)); r.code != 0 {
			t.Fatalf("rotary rotate %s: exit %d: %s", name, r.code, r.errOut)
		}
	}

	// PostgreSQL: a base role with a password, a master with CREATEROLE
	// and pg_signal_backend.
	pgBase, pgMaster := unique("app"), unique("rotary_admin")
	pgBasePW, pgMasterPW := "Base-"+unique("pw"), "Master-"+unique("pw")
	t.Cleanup(func() { dropPostgresFamily(t, c.ConnectAdmin, pgBase, pgMaster) })
	if err := c.CreateRole(ctx, pgBase, pgBasePW, ""); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateRole(ctx, pgMaster, pgMasterPW, "CREATEROLE IN ROLE pg_signal_backend"); err != nil {
		t.Fatal(err)
	}
	pgSecret := func(user, pw string) map[string]any {
		return map[string]any{"engine": "postgres", "host": c.Host, "port": c.Port, "username": user, "password": pw, "dbname": "postgres"}
	}
	pgApp := pgSecret(pgBase, pgBasePW)
	pgApp["masterarn"] = create("local/pg-admin", pgSecret(pgMaster, pgMasterPW))
	create("local/pg-app", pgApp)

	// MariaDB: a base user that may read its database, the server's admin as master.
	myBase, myPW, db := unique("app"), "Base-"+unique("pw"), unique("db")
	if _, err := maria.Root.Exec("CREATE DATABASE " + db); err != nil {
		t.Fatal(err)
	}
	mysqltest.CreateUser(t, maria, myBase, "%", myPW, "GRANT SELECT ON "+db+".*")
	mySecret := func(user, pw string) map[string]any {
		return map[string]any{"engine": "mariadb", "host": maria.Host, "port": maria.Port, "username": user, "password": pw, "dbname": db, "ssl": false}
	}
	myApp := mySecret(myBase, myPW)
	myApp["masterarn"] = create("local/mysql-admin", mySecret(maria.AdminUser, maria.AdminPassword))
	create("local/mysql-app", myApp)

	pgLogin := func(v string) error { return postgresLogin(ctx, c.CAFile, v) }
	myLogin := func(v string) error { return mysqlserver.Login(ctx, v, "") }
	for _, tc := range []struct {
		name, function string
		login          func(string) error
	}{
		{"local/pg-app", "postgres-expiring-user", pgLogin},
		{"local/mysql-app", "mysql-expiring-user", myLogin},
	} {
		rotate(tc.name, tc.function)
		rotate(tc.name, tc.function)
		prev := value(tc.name, "AWSPREVIOUS")
		if err := tc.login(prev); err != nil {
			t.Fatalf("%s: AWSPREVIOUS does not log in before its expiry: %v", tc.name, err)
		}
		var v struct{ ExpiresAt time.Time }
		if err := json.Unmarshal([]byte(prev), &v); err != nil || v.ExpiresAt.IsZero() {
			t.Fatalf("%s: AWSPREVIOUS has no expiresAt (%v)", tc.name, err)
		}
		deadline := v.ExpiresAt.Add(20 * time.Second)
		for {
			err := tc.login(prev)
			if err != nil && time.Now().After(v.ExpiresAt) {
				t.Logf("%s: refused after expiresAt %s: %v", tc.name, v.ExpiresAt.Format(time.RFC3339), err)
				break
			}
			if err != nil {
				t.Fatalf("%s: refused before its expiresAt %s: %v", tc.name, v.ExpiresAt, err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: AWSPREVIOUS still logs in 20s after its expiresAt", tc.name)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// The reaper dropped the MariaDB account (not only locked it).
	var prev struct{ Username string }
	_ = json.Unmarshal([]byte(value("local/mysql-app", "AWSPREVIOUS")), &prev)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var n int
		if err := maria.Root.QueryRow("SELECT COUNT(*) FROM mysql.user WHERE User = ?", prev.Username).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the expired account %s is still in mysql.user", prev.Username)
		}
	}
}

// postgresLogin logs in with a secret value over TLS verified by caFile.
func postgresLogin(ctx context.Context, caFile, value string) error {
	var v struct {
		Host, Username, Password, DBName string
		Port                             int
	}
	if err := json.Unmarshal([]byte(value), &v); err != nil {
		return err
	}
	cfg, err := pgx.ParseConfig("sslmode=verify-full sslrootcert=" + caFile)
	if err != nil {
		return err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database = v.Host, uint16(v.Port), v.Username, v.Password, v.DBName
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return errors.New("refused: " + pgErr.Code)
		}
		return err
	}
	return conn.Close(ctx)
}

// dropPostgresFamily drops base, its expiring users and master.
func dropPostgresFamily(t *testing.T, connect func(context.Context, string) (*pgx.Conn, error), base, master string) {
	ctx := context.Background()
	conn, err := connect(ctx, "")
	if err != nil {
		t.Error(err)
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) OR rolname = $2", base, master)
	if err != nil {
		t.Error(err)
		return
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, n := range names {
		if !strings.HasPrefix(n, base) || n == base {
			continue
		}
		_, _ = conn.Exec(ctx, "DROP ROLE "+pgx.Identifier{n}.Sanitize())
	}
	for _, n := range []string{base, master} {
		_, _ = conn.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{n}.Sanitize())
	}
}
