package integration

import (
	"context"
	"errors"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotary-secrets/rotary/pkg/credentials/postgres"
)

// Database helpers of the fault matrix (faults_test.go): each opens what it
// needs and closes it before it returns.

// createRoleNow creates a login role with attributes, its password sent as
// a SCRAM verifier.
func (d postgresDB) createRoleNow(ctx context.Context, user, password, attrs string) error {
	return d.c.CreateRole(ctx, user, password, attrs)
}

// setLogin gives those of users that exist LOGIN or NOLOGIN.
func (d postgresDB) setLogin(ctx context.Context, users []string, login bool) error {
	attr := "NOLOGIN"
	if login {
		attr = "LOGIN"
	}
	conn, err := d.c.ConnectAdmin(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, u := range users {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", u).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			continue
		}
		if _, err := conn.Exec(ctx, "ALTER ROLE "+postgres.QuoteIdentifier(u)+" "+attr); err != nil {
			return err
		}
	}
	return nil
}

// setLocked locks those of users@'%' that exist (ACCOUNT LOCK), or unlocks them.
func (d mariaDB) setLocked(ctx context.Context, users []string, locked bool) error {
	lock := "ACCOUNT UNLOCK"
	if locked {
		lock = "ACCOUNT LOCK"
	}
	for _, u := range users {
		if _, err := d.s.Root.ExecContext(ctx, "ALTER USER IF EXISTS '"+u+"'@'%' "+lock); err != nil {
			return err
		}
	}
	return nil
}

// serverRefused reports whether a login error is the server refusing the
// user or its password (PostgreSQL 28000 or 28P01; MariaDB 1045, or 4151
// and MySQL 3118 for a locked account), not a network or TLS failure.
func serverRefused(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "28000" || pgErr.Code == "28P01"
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1045 || me.Number == 4151 || me.Number == 3118
	}
	return false
}
