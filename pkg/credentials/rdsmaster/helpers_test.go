package rdsmaster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	gomysql "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotary-secrets/rotary/internal/mysqlserver"
	"github.com/rotary-secrets/rotary/internal/pgcluster"
	"github.com/rotary-secrets/rotary/internal/pgcluster/pgtest"
	"github.com/rotary-secrets/rotary/internal/rdslocal"
	"github.com/rotary-secrets/rotary/pkg/credentials/postgres/scram"
	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/password"
)

// The servers behind the local RDS API: a password-checking PostgreSQL
// cluster with TLS, and a throwaway MariaDB with TLS, shared by the tests.
var (
	pgShared = pgtest.NewShared(pgcluster.Options{TLS: true, TLSHosts: []string{"127.0.0.1"}})

	myOnce sync.Once
	mySrv  *mysqlserver.Server
	myErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	err := pgShared.Close()
	if mySrv != nil {
		err = errors.Join(err, mySrv.Close())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

func mariadb(t *testing.T) *mysqlserver.Server {
	t.Helper()
	myOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		mySrv, myErr = mysqlserver.Start(ctx, mysqlserver.Options{TestCA: true})
	})
	if myErr != nil {
		if errors.Is(myErr, mysqlserver.ErrNoBinaries) && os.Getenv("CI") != "true" {
			t.Skip(myErr)
		}
		t.Fatalf("start a throwaway MariaDB: %v", myErr)
	}
	return mySrv
}

// testWait is the wait bound of the tests: long enough for a busy 2-core
// machine, short enough that a wait that cannot end fails quickly.
const testWait = 20 * time.Second

// applyDelay is how long the local RDS takes to apply a password change.
const applyDelay = 100 * time.Millisecond

// stack is a local RDS API in front of one database server.
type stack struct {
	rds    *rdslocal.Server
	client *rds.Client
	// engine is the RDS engine of the instances ("postgres", "mariadb"),
	// clusterEngine that of the clusters.
	engine, clusterEngine string
	host                  string
	port                  int
	caFile                string
	// create makes a login user with a password on the server; setPassword
	// changes it as an admin, as RDS does when it applies a change.
	create      func(t *testing.T, user, pw string)
	setPassword func(ctx context.Context, user, pw string) error
	// login logs in with a secret value, independently of the type.
	login   func(ctx context.Context, value string) error
	refused func(error) bool
}

func newStack(t *testing.T) (*rdslocal.Server, *rds.Client) {
	t.Helper()
	srv := rdslocal.New()
	srv.SetApplyDelay(applyDelay)
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Wait()
		hs.Close()
	})
	return srv, rds.New(rds.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(hs.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "local", ""),
	})
}

func pgStack(t *testing.T) *stack {
	t.Helper()
	c := pgShared.Get(t)
	srv, client := newStack(t)
	return &stack{
		rds: srv, client: client, engine: "postgres", clusterEngine: "aurora-postgresql",
		host: "127.0.0.1", port: c.Port, caFile: c.CAFile,
		create: func(t *testing.T, user, pw string) { pgtest.CreateRole(t, c, user, pw, "") },
		setPassword: func(ctx context.Context, user, pw string) error {
			v, err := scram.Verifier(pw)
			if err != nil {
				return err
			}
			conn, err := c.ConnectAdmin(ctx, "")
			if err != nil {
				return err
			}
			defer conn.Close(context.WithoutCancel(ctx))
			_, err = conn.Exec(ctx, "ALTER ROLE "+pgx.Identifier{user}.Sanitize()+" PASSWORD '"+v+"'")
			return err
		},
		login: func(ctx context.Context, value string) error {
			var v struct{ Host, Username, Password string }
			if err := json.Unmarshal([]byte(value), &v); err != nil {
				return err
			}
			cfg, err := pgx.ParseConfig("")
			if err != nil {
				return err
			}
			cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database = v.Host, uint16(c.Port), v.Username, v.Password, "postgres"
			cfg.TLSConfig, cfg.ConnectTimeout = c.TLSConfig(v.Host), 10*time.Second
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				return err
			}
			defer conn.Close(context.WithoutCancel(ctx))
			var one int
			return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
		},
		refused: func(err error) bool {
			var pe *pgconn.PgError
			return errors.As(err, &pe) && pe.Code == "28P01"
		},
	}
}

func myStack(t *testing.T) *stack {
	t.Helper()
	s := mariadb(t)
	srv, client := newStack(t)
	lit := func(v string) string { return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(v) + "'" }
	return &stack{
		rds: srv, client: client, engine: "mariadb", clusterEngine: "aurora-mysql",
		host: "localhost", port: s.Port, caFile: s.CAFile,
		create: func(t *testing.T, user, pw string) {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := s.CreateUser(ctx, user, "%", pw); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.DropUser(context.Background(), user, "%") })
		},
		setPassword: func(ctx context.Context, user, pw string) error {
			_, err := s.Root.ExecContext(ctx, "ALTER USER "+lit(user)+"@'%' IDENTIFIED BY "+lit(pw))
			if err != nil {
				return errors.New("ALTER USER failed") // the server's message may quote the statement
			}
			return nil
		},
		login: func(ctx context.Context, value string) error { return mysqlserver.Login(ctx, value, s.CAFile) },
		refused: func(err error) bool {
			var me *gomysql.MySQLError
			return errors.As(err, &me) && me.Number == 1045
		},
	}
}

var seq atomic.Int64

func uniqueName(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, os.Getpid()%100000, seq.Add(1))
}

// newPassword is a password RDS accepts for every engine.
func newPassword(t *testing.T) string {
	t.Helper()
	p := password.DefaultPolicy()
	p.ExcludeCharacters = rdsExcluded
	pw, err := p.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return pw
}

// database makes a master user on the server and an RDS instance (or,
// with cluster, a cluster) for it in the local RDS, and returns the
// secret's value. mutate changes the RDS resource before it is added.
func (s *stack) database(t *testing.T, cluster bool, mutate func(i *rdslocal.Instance, c *rdslocal.Cluster)) string {
	t.Helper()
	user, pw := uniqueName("rds_master"), newPassword(t)
	s.create(t, user, pw)
	id := strings.ReplaceAll(user, "_", "-")
	set := func(ctx context.Context, pw string) error { return s.setPassword(ctx, user, pw) }
	value := map[string]any{"engine": s.engine, "host": s.host, "port": s.port, "username": user, "password": pw, "unknownField": map[string]any{"kept": true}}
	if cluster {
		c := rdslocal.Cluster{Identifier: id, Engine: s.clusterEngine, Endpoint: s.host, Port: s.port, MasterUsername: user, SetMasterPassword: set}
		if mutate != nil {
			mutate(nil, &c)
		}
		s.rds.AddCluster(c)
		value["engine"] = s.clusterEngine
		value["dbClusterIdentifier"] = id
	} else {
		i := rdslocal.Instance{Identifier: id, Engine: s.engine, Address: s.host, Port: s.port, MasterUsername: user, SetMasterPassword: set}
		if mutate != nil {
			mutate(&i, nil)
		}
		s.rds.AddInstance(i)
		value["dbInstanceIdentifier"] = id
	}
	b, err := json.Marshal(value)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// config is the type's Config against the stack.
func (s *stack) config(login bool) Config {
	return Config{
		DB:     dbsecret.Config{CABundlePath: s.caFile, ConnectTimeout: 20 * time.Second, StatementTimeout: 30 * time.Second},
		NewRDS: func(context.Context) (API, error) { return s.client, nil },
		Login:  login, WaitTimeout: testWait, PollInterval: 20 * time.Millisecond,
	}
}

func withField(t *testing.T, value, field string, v any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(value), &m); err != nil {
		t.Fatal(err)
	}
	if v == nil {
		delete(m, field)
	} else {
		m[field] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func field(t *testing.T, value, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(value), &m); err != nil {
		t.Fatal(err)
	}
	switch v := m[name].(type) {
	case string:
		return v
	case float64:
		return strconv.Itoa(int(v))
	}
	return ""
}
