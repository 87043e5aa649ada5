package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// insufficientPrivilege is the SQLSTATE of a statement the server refused
// for want of a privilege.
const insufficientPrivilege = "42501"

func isInsufficientPrivilege(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == insufficientPrivilege
}

// serverMajor returns the major version of the server conn is logged in to
// (16 for "16.4"), from the server_version it reports at login; 0 if it
// cannot tell.
func serverMajor(conn *pgx.Conn) int {
	v := conn.PgConn().ParameterStatus("server_version")
	end := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	if end >= 0 {
		v = v[:end]
	}
	n, _ := strconv.Atoi(v)
	return n
}

// grantAdminSQL is what a DBA runs on PostgreSQL 16 and later so that the
// master user may manage role (set its password, grant membership in it,
// change its attributes and settings) without using its privileges or
// becoming it. Before 16, CREATEROLE alone allows that.
func grantAdminSQL(role, master string) string {
	return "GRANT " + QuoteIdentifier(role) + " TO " + QuoteIdentifier(master) + " WITH ADMIN OPTION, INHERIT FALSE, SET FALSE"
}

// explainRefusal turns err, a statement the master user was refused
// (insufficient_privilege), into an error that names what the master lacks
// on this server's version for roles (the users of the pair it was
// changing; those that do not exist are ignored) and the SQL that grants
// it. conn must accept queries (not be in a failed transaction). Other
// errors come back as they are.
func explainRefusal(ctx context.Context, conn *pgx.Conn, err error, master string, roles ...string) error {
	if !isInsufficientPrivilege(err) {
		return err
	}
	major := serverMajor(conn)
	var super, createRole bool
	if qerr := conn.QueryRow(ctx, "SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user").Scan(&super, &createRole); qerr != nil {
		return fmt.Errorf("%w; the master user %q needs CREATEROLE (and on PostgreSQL 16 and later ADMIN OPTION on both users of the pair; see \"Database privileges\" in docs/postgres.md), but its privileges could not be read: %v", err, master, qerr)
	}
	var missing []string
	if !super && !createRole {
		missing = append(missing, "CREATEROLE (ALTER ROLE "+QuoteIdentifier(master)+" CREATEROLE)")
	}
	if !super && major >= 16 {
		rows, qerr := conn.Query(ctx, `SELECT r.rolname FROM unnest($1::text[]) WITH ORDINALITY AS want(name, i)
			JOIN pg_roles r ON r.rolname = want.name
			WHERE NOT pg_has_role(current_user, r.oid, 'MEMBER WITH ADMIN OPTION') ORDER BY want.i`, roles)
		var noAdmin []string
		if qerr == nil {
			noAdmin, qerr = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if qerr != nil {
			return fmt.Errorf("%w; on PostgreSQL 16 and later the master user %q needs CREATEROLE and ADMIN OPTION on both users of the pair (see \"Database privileges\" in docs/postgres.md), but its privileges could not be read: %v", err, master, qerr)
		}
		for _, r := range noAdmin {
			missing = append(missing, "ADMIN OPTION on role "+strconv.Quote(r)+", which on PostgreSQL 16 and later CREATEROLE no longer gives over a role the master did not create ("+grantAdminSQL(r, master)+")")
		}
	}
	if len(missing) == 0 {
		has := "CREATEROLE"
		if major >= 16 {
			has += " and ADMIN OPTION on the pair's users"
		}
		return fmt.Errorf("%w; the master user %q has %s, so the refusal has another cause: a role with SUPERUSER or REPLICATION can be changed only by a superuser", err, master, has)
	}
	return fmt.Errorf("%w; the master user %q lacks %s: have a superuser run that, then try again", err, master, strings.Join(missing, ", and "))
}
