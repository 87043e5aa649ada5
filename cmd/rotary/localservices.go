package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	"github.com/rotary-secrets/rotary/internal/elasticachelocal"
	"github.com/rotary-secrets/rotary/internal/rdslocal"
	"github.com/rotary-secrets/rotary/pkg/credentials/postgres/scram"
)

// localServicesFile is what `rotary local --services FILE` reads: the RDS
// databases and ElastiCache replication groups and users the stack's
// local RDS and ElastiCache APIs report, each backed by a real server the
// stand-in changes passwords on (docs/cli.md).
type localServicesFile struct {
	RDSInstances      []localRDS        `json:"rdsInstances"`
	RDSClusters       []localRDS        `json:"rdsClusters"`
	ElastiCacheGroups []localCacheGroup `json:"elastiCacheGroups"`
	ElastiCacheUsers  []localCacheUser  `json:"elastiCacheUsers"`
}

// localCacheUser is an ElastiCache user that exists on its groups'
// servers with one password.
type localCacheUser struct {
	UserID       string   `json:"userId"`
	UserName     string   `json:"userName"`
	AccessString string   `json:"accessString"`
	UserGroupIDs []string `json:"userGroupIds"`
}

// localRDS is an RDS instance or cluster on a local server.
type localRDS struct {
	Identifier     string `json:"identifier"`
	Engine         string `json:"engine"`
	Host           string `json:"host"`
	ReaderHost     string `json:"readerHost"` // clusters only
	Port           int    `json:"port"`
	MasterUsername string `json:"masterUsername"`
	// MasterHost is the host part of a MySQL or MariaDB master account
	// (default "%").
	MasterHost string `json:"masterHost"`
	// AdminDSN connects as an admin who may change the master's password,
	// as RDS does when it applies a change: a PostgreSQL connection string
	// or URL, or a go-sql-driver/mysql DSN (user:password@tcp(host:port)/).
	AdminDSN string `json:"adminDSN"`
	// ManagedSecretARN, when set, reports ManageMasterUserPassword on.
	ManagedSecretARN string `json:"managedSecretArn"`
}

// localCacheGroup is a replication group on a local redis-server.
type localCacheGroup struct {
	ID           string   `json:"id"`
	Host         string   `json:"host"`
	Port         int      `json:"port"`
	UserGroupIDs []string `json:"userGroupIds"`
	// AdminURL logs in as a user allowed ACL SETUSER (redis:// or
	// rediss://); CAFile verifies a rediss:// server's certificate.
	AdminURL string `json:"adminURL"`
	CAFile   string `json:"caFile"`
}

// localServices is what the stack serves besides Secrets Manager and SNS:
// the local RDS and ElastiCache APIs, empty without a file, so that the
// functions never reach AWS with the stack's fake credentials.
type localServices struct {
	rds      *rdslocal.Server
	ec       *elasticachelocal.Server
	summary  string
	closeFns []func()
}

func (l *localServices) handlers() map[string]http.Handler {
	return map[string]http.Handler{"rds": l.rds, "elasticache": l.ec}
}

func (l *localServices) close() {
	for _, f := range l.closeFns {
		f()
	}
}

// loadLocalServices reads path ("" for none) into the stand-ins. Errors
// name the entry and field; none quotes a DSN or URL, which may hold a
// password.
func loadLocalServices(path string) (*localServices, error) {
	l := &localServices{rds: rdslocal.New(), ec: elasticachelocal.New()}
	l.ec.Delay = time.Second
	if path == "" {
		l.summary = "no databases or replication groups (--services FILE declares them)"
		return l, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--services: %w", err)
	}
	var f localServicesFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("--services %s: %v", path, err)
	}
	for i, d := range append(append([]localRDS(nil), f.RDSInstances...), f.RDSClusters...) {
		cluster := i >= len(f.RDSInstances)
		kind := map[bool]string{false: "rdsInstances", true: "rdsClusters"}[cluster]
		if d.Identifier == "" || d.Engine == "" || d.Host == "" || d.Port == 0 || d.MasterUsername == "" || d.AdminDSN == "" {
			return nil, fmt.Errorf("--services %s: %s entry %q: identifier, engine, host, port, masterUsername and adminDSN are required", path, kind, d.Identifier)
		}
		set, err := masterSetter(d)
		if err != nil {
			return nil, fmt.Errorf("--services %s: %s entry %q: %w", path, kind, d.Identifier, err)
		}
		if cluster {
			l.rds.AddCluster(rdslocal.Cluster{Identifier: d.Identifier, Engine: d.Engine, Endpoint: d.Host, ReaderEndpoint: d.ReaderHost, Port: d.Port, MasterUsername: d.MasterUsername, MasterUserSecretARN: d.ManagedSecretARN, SetMasterPassword: set})
		} else {
			l.rds.AddInstance(rdslocal.Instance{Identifier: d.Identifier, Engine: d.Engine, Address: d.Host, Port: d.Port, MasterUsername: d.MasterUsername, MasterUserSecretARN: d.ManagedSecretARN, SetMasterPassword: set})
		}
	}
	for _, g := range f.ElastiCacheGroups {
		if g.ID == "" || g.Host == "" || g.Port == 0 || g.AdminURL == "" {
			return nil, fmt.Errorf("--services %s: elastiCacheGroups entry %q: id, host, port and adminURL are required", path, g.ID)
		}
		opts, err := goredis.ParseURL(g.AdminURL)
		if err != nil {
			return nil, fmt.Errorf("--services %s: elastiCacheGroups entry %q: adminURL is not a redis:// or rediss:// URL", path, g.ID)
		}
		if opts.TLSConfig != nil && g.CAFile != "" {
			pem, err := os.ReadFile(g.CAFile)
			if err != nil {
				return nil, fmt.Errorf("--services %s: elastiCacheGroups entry %q: caFile: %w", path, g.ID, err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			opts.TLSConfig = &tls.Config{RootCAs: pool, ServerName: opts.TLSConfig.ServerName, MinVersion: tls.VersionTLS12}
		}
		client := goredis.NewClient(opts)
		l.closeFns = append(l.closeFns, func() { _ = client.Close() })
		l.ec.AddReplicationGroup(elasticachelocal.ReplicationGroup{ID: g.ID, Host: g.Host, Port: g.Port, UserGroupIDs: g.UserGroupIDs, Redis: client})
	}
	for _, u := range f.ElastiCacheUsers {
		if u.UserID == "" || u.UserName == "" || len(u.UserGroupIDs) == 0 {
			return nil, fmt.Errorf("--services %s: elastiCacheUsers entry %q: userId, userName and userGroupIds are required", path, u.UserID)
		}
		// The user exists on the server already, with one password.
		l.ec.RegisterUser(elasticachelocal.User{UserID: u.UserID, UserName: u.UserName, AccessString: u.AccessString, UserGroupIDs: u.UserGroupIDs}, 1)
	}
	l.summary = fmt.Sprintf("%d RDS instances, %d RDS clusters, %d ElastiCache replication groups, %d ElastiCache users (from %s)",
		len(f.RDSInstances), len(f.RDSClusters), len(f.ElastiCacheGroups), len(f.ElastiCacheUsers), path)
	return l, nil
}

// masterSetter returns how the local RDS applies a master password to d's
// server, as RDS would: as an admin, without the old password.
func masterSetter(d localRDS) (func(context.Context, string) error, error) {
	switch {
	case strings.Contains(d.Engine, "postgres"):
		cfg, err := pgx.ParseConfig(d.AdminDSN)
		if err != nil {
			return nil, errors.New("adminDSN is not a PostgreSQL connection string")
		}
		user := d.MasterUsername
		return func(ctx context.Context, pw string) error {
			v, err := scram.Verifier(pw)
			if err != nil {
				return err
			}
			conn, err := pgx.ConnectConfig(ctx, cfg.Copy())
			if err != nil {
				return fmt.Errorf("connect with adminDSN: %w", err)
			}
			defer conn.Close(context.WithoutCancel(ctx))
			// A SCRAM verifier: the password never reaches the server's logs.
			if _, err := conn.Exec(ctx, "ALTER ROLE "+pgx.Identifier{user}.Sanitize()+" PASSWORD '"+v+"'"); err != nil {
				return fmt.Errorf("set the password of %s: %w", user, err)
			}
			return nil
		}, nil
	case strings.Contains(d.Engine, "mysql") || d.Engine == "mariadb":
		if _, err := gomysql.ParseDSN(d.AdminDSN); err != nil {
			return nil, errors.New("adminDSN is not a go-sql-driver/mysql DSN (user:password@tcp(host:port)/)")
		}
		host := d.MasterHost
		if host == "" {
			host = "%"
		}
		lit := func(v string) string { return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(v) + "'" }
		account := lit(d.MasterUsername) + "@" + lit(host)
		return func(ctx context.Context, pw string) error {
			db, err := sql.Open("mysql", d.AdminDSN)
			if err != nil {
				return errors.New("open adminDSN")
			}
			defer db.Close()
			if _, err := db.ExecContext(ctx, "ALTER USER "+account+" IDENTIFIED BY "+lit(pw)); err != nil {
				// The server's message may quote the statement, password included.
				var me *gomysql.MySQLError
				if errors.As(err, &me) {
					return fmt.Errorf("set the password of %s: MySQL error %d", account, me.Number)
				}
				return fmt.Errorf("set the password of %s: the statement failed", account)
			}
			return nil
		}, nil
	}
	return nil, fmt.Errorf("engine %q: the local RDS changes master passwords on PostgreSQL, MySQL and MariaDB only", d.Engine)
}
