package coldstart

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotary-secrets/rotary/internal/mysqlserver"
	"github.com/rotary-secrets/rotary/internal/mysqlserver/mysqltest"
	"github.com/rotary-secrets/rotary/internal/pgcluster"
	"github.com/rotary-secrets/rotary/internal/pgcluster/pgtest"
)

var (
	pg  = pgtest.NewShared(pgcluster.Options{TLS: true, TLSHosts: []string{"127.0.0.1"}})
	seq atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := pg.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func name(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, os.Getpid()%100000, seq.Add(1))
}

func value(t testing.TB, m map[string]any) string {
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const benchPassword = "Coldstart-passw0rd-initial-0000"

// BenchmarkPeakRSSDatabaseRotation is BenchmarkPeakRSSRotation for the
// database types: one whole rotation per fresh process, against a
// throwaway PostgreSQL cluster (verified TLS, scram-sha-256) and MariaDB
// server that check passwords.
func BenchmarkPeakRSSDatabaseRotation(b *testing.B) {
	bins := bootstraps(b, "postgres-single-user", "postgres-multi-user", "postgres-expiring-user", "mysql-single-user", "mysql-multi-user", "mysql-expiring-user")
	ctx := context.Background()
	b.Run("postgres-single-user", func(b *testing.B) {
		c := pg.Get(b)
		rotatePeak(b, bins["postgres-single-user"], "postgres-single-user", func(b *testing.B, _ *secretsmanager.Client) string {
			u := name("cs_pg")
			if err := c.CreateRole(ctx, u, benchPassword, ""); err != nil {
				b.Fatal(err)
			}
			return value(b, map[string]any{"engine": "postgres", "host": "127.0.0.1", "port": c.Port, "username": u, "password": benchPassword})
		}, append([]string{"ROTARY_CA_BUNDLE=" + c.CAFile}, extraEnv()...)...)
	})
	b.Run("postgres-multi-user", func(b *testing.B) {
		c := pg.Get(b)
		rotatePeak(b, bins["postgres-multi-user"], "postgres-multi-user", func(b *testing.B, sm *secretsmanager.Client) string {
			u, m := name("cs_pgm"), name("cs_pgmaster")
			if err := c.CreateRole(ctx, u, benchPassword, ""); err != nil {
				b.Fatal(err)
			}
			if err := c.CreateRole(ctx, m, benchPassword, "CREATEROLE"); err != nil {
				b.Fatal(err)
			}
			out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("master/" + u),
				SecretString: aws.String(value(b, map[string]any{"engine": "postgres", "host": "127.0.0.1", "port": c.Port, "username": m, "password": benchPassword}))})
			if err != nil {
				b.Fatal(err)
			}
			return value(b, map[string]any{"engine": "postgres", "host": "127.0.0.1", "port": c.Port, "username": u, "password": benchPassword, "masterarn": aws.ToString(out.ARN)})
		}, append([]string{"ROTARY_CA_BUNDLE=" + c.CAFile}, extraEnv()...)...)
	})
	b.Run("postgres-expiring-user", func(b *testing.B) {
		c := pg.Get(b)
		rotatePeak(b, bins["postgres-expiring-user"], "postgres-expiring-user", func(b *testing.B, sm *secretsmanager.Client) string {
			u, m := name("cs_pge"), name("cs_pgemaster")
			if err := c.CreateRole(ctx, u, benchPassword, ""); err != nil {
				b.Fatal(err)
			}
			if err := c.CreateRole(ctx, m, benchPassword, "CREATEROLE"); err != nil {
				b.Fatal(err)
			}
			out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("master/" + u),
				SecretString: aws.String(value(b, map[string]any{"engine": "postgres", "host": "127.0.0.1", "port": c.Port, "username": m, "password": benchPassword}))})
			if err != nil {
				b.Fatal(err)
			}
			return value(b, map[string]any{"engine": "postgres", "host": "127.0.0.1", "port": c.Port, "username": u, "password": benchPassword, "masterarn": aws.ToString(out.ARN)})
		}, append([]string{"ROTARY_CA_BUNDLE=" + c.CAFile, expiringTTL}, extraEnv()...)...)
	})
	var my *mysqlserver.Server
	parent := b
	mysql := func(b *testing.B) *mysqlserver.Server {
		if my == nil {
			my = mysqltest.Start(parent, mysqlserver.Options{})
		}
		return my
	}
	b.Run("mysql-single-user", func(b *testing.B) {
		s := mysql(b)
		rotatePeak(b, bins["mysql-single-user"], "mysql-single-user", func(b *testing.B, _ *secretsmanager.Client) string {
			u := name("cs_my")
			mysqltest.CreateUser(b, s, u, "%", benchPassword)
			return value(b, map[string]any{"engine": "mariadb", "host": s.Host, "port": strconv.Itoa(s.Port), "username": u, "password": benchPassword, "ssl": false})
		}, extraEnv()...)
	})
	b.Run("mysql-multi-user", func(b *testing.B) {
		s := mysql(b)
		rotatePeak(b, bins["mysql-multi-user"], "mysql-multi-user", func(b *testing.B, sm *secretsmanager.Client) string {
			u := name("cs_mym")
			mysqltest.CreateUser(b, s, u, "%", benchPassword)
			out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("master/" + u),
				SecretString: aws.String(value(b, map[string]any{"engine": "mariadb", "host": s.Host, "port": s.Port, "username": s.AdminUser, "password": s.AdminPassword, "ssl": false}))})
			if err != nil {
				b.Fatal(err)
			}
			return value(b, map[string]any{"engine": "mariadb", "host": s.Host, "port": s.Port, "username": u, "password": benchPassword, "ssl": false, "masterarn": aws.ToString(out.ARN)})
		}, extraEnv()...)
	})
	b.Run("mysql-expiring-user", func(b *testing.B) {
		s := mysql(b)
		rotatePeak(b, bins["mysql-expiring-user"], "mysql-expiring-user", func(b *testing.B, sm *secretsmanager.Client) string {
			u := name("cs_mye")
			mysqltest.CreateUser(b, s, u, "%", benchPassword)
			out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("master/" + u),
				SecretString: aws.String(value(b, map[string]any{"engine": "mariadb", "host": s.Host, "port": s.Port, "username": s.AdminUser, "password": s.AdminPassword, "ssl": false}))})
			if err != nil {
				b.Fatal(err)
			}
			return value(b, map[string]any{"engine": "mariadb", "host": s.Host, "port": s.Port, "username": u, "password": benchPassword, "ssl": false, "masterarn": aws.ToString(out.ARN)})
		}, append([]string{expiringTTL}, extraEnv()...)...)
	})
}

// expiringTTL is the expiring users' lifetime in the benchmarks.
const expiringTTL = "ROTARY_CREDENTIAL_TTL=6h"

// extraEnv is ROTARY_COLDSTART_ENV (space-separated NAME=value pairs) for
// the functions, to try a runtime setting (GOGC=50, say) side by side.
func extraEnv() []string { return strings.Fields(os.Getenv("ROTARY_COLDSTART_ENV")) }
