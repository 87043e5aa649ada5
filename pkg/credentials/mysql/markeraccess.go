package mysql

import (
	"context"
	"fmt"
	"strings"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
)

// The expiry of a MySQL/MariaDB expiring user is enforced only by the
// reaper, which goes by the user's row of the marker table. An expiring
// user has exactly its base user's grants, so a base whose grants let it
// write that table (INSERT, UPDATE, DELETE, DROP, ALTER or ALL on *.*, on
// the marker database or on the table) would give every expiring and
// issued user of it the power to delete or edit its own row and never be
// reaped. checkMarkerAccess refuses such a base before any change.

// markerWritePrivileges are the privileges that let a user change or
// remove the rows of a table (DROP: the table itself, TRUNCATE; ALTER:
// rename it away).
var markerWritePrivileges = []string{"ALL", "ALL PRIVILEGES", "INSERT", "UPDATE", "DELETE", "DROP", "ALTER"}

// checkMarkerAccess refuses (dbsecret.ErrInvalidSecret) a base user
// base@host whose grants, or those of the roles granted to it, give write
// access to the marker table, naming the grant and the fix.
func (a *Admin) checkMarkerAccess(ctx context.Context, base, host string) error {
	db := a.markerDatabase()
	seen := map[string]bool{}
	queue := []string{a.s.account(base, host)}
	for len(queue) > 0 && len(seen) < 64 {
		acct := queue[0]
		queue = queue[1:]
		if seen[acct] {
			continue
		}
		seen[acct] = true
		lines, err := a.s.grants(ctx, acct)
		if err != nil {
			return fmt.Errorf("check that the base user %q@%q may not write Rotary's marker table: %w", base, host, err)
		}
		for _, g := range lines {
			switch g.kind {
			case grantRoles:
				queue = append(queue, g.roles...)
				continue
			case grantPrivileges:
			default:
				continue
			}
			if !objectCoversTable(g.object, db, MarkerTable) {
				continue
			}
			for _, p := range g.privs {
				name, _, _ := strings.Cut(p, " (")
				for _, w := range markerWritePrivileges {
					if name != w {
						continue
					}
					via := ""
					if acct != a.s.account(base, host) {
						via = " through the role " + acct
					}
					return fmt.Errorf("%w: the base user %q@%q has %s ON %s%s, which lets its expiring users edit or delete their own rows of Rotary's marker table %s and so never be reaped; revoke it (REVOKE %s ON %s FROM %s) and grant the base user only the databases the application uses, or set %s to a database the base user may not write; nothing was changed",
						dbsecret.ErrInvalidSecret, base, host, p, g.object, via, a.markerTable(), name, g.object, acct, EnvMarkerDatabase)
				}
			}
		}
	}
	return nil
}

// objectCoversTable reports whether the object of a GRANT line as SHOW
// GRANTS prints it (*.*, `db`.*, `db`.`table`) covers db.table. A
// database-level grant's name is a LIKE pattern (% and _, \ escaping).
func objectCoversTable(object, db, table string) bool {
	if object == "*.*" || object == "*" {
		return true
	}
	dbPart, tablePart, ok := splitObject(object)
	if !ok {
		return true // an object Rotary cannot read: assume the worst
	}
	if tablePart == "*" {
		return likeMatch(dbPart, db)
	}
	return dbPart == db && strings.EqualFold(tablePart, table)
}

// splitObject splits `db`.`table` or `db`.* into its unquoted parts.
func splitObject(object string) (db, table string, ok bool) {
	parts := []string{}
	rest := strings.TrimSpace(object)
	for {
		var part string
		switch {
		case strings.HasPrefix(rest, "`"):
			i, b := 1, strings.Builder{}
			for ; i < len(rest); i++ {
				if rest[i] == '`' {
					if i+1 < len(rest) && rest[i+1] == '`' {
						b.WriteByte('`')
						i++
						continue
					}
					break
				}
				b.WriteByte(rest[i])
			}
			if i >= len(rest) {
				return "", "", false
			}
			part, rest = b.String(), rest[i+1:]
		default:
			j := strings.IndexByte(rest, '.')
			if j < 0 {
				j = len(rest)
			}
			part, rest = rest[:j], rest[j:]
		}
		parts = append(parts, part)
		if rest == "" {
			break
		}
		if rest[0] != '.' {
			return "", "", false
		}
		rest = rest[1:]
	}
	if len(parts) != 2 {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// likeMatch matches s against a LIKE pattern (%: any run, _: any one
// character, \: the next character literally).
func likeMatch(pattern, s string) bool {
	p, r := []rune(pattern), []rune(s)
	var match func(i, j int) bool
	match = func(i, j int) bool {
		for i < len(p) {
			switch p[i] {
			case '%':
				for k := j; k <= len(r); k++ {
					if match(i+1, k) {
						return true
					}
				}
				return false
			case '_':
				if j >= len(r) {
					return false
				}
			case '\\':
				if i+1 < len(p) {
					i++
				}
				fallthrough
			default:
				if j >= len(r) || p[i] != r[j] {
					return false
				}
			}
			i++
			j++
		}
		return j == len(r)
	}
	return match(0, 0)
}
