package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// roleSetting is one row of pg_db_role_setting: the settings of a role,
// for one database ("" for all databases).
type roleSetting struct {
	db     string
	config []string // "name=value"
}

func readSettings(ctx context.Context, tx pgx.Tx, role string) ([]roleSetting, error) {
	rows, err := tx.Query(ctx, `SELECT coalesce(d.datname, ''), s.setconfig FROM pg_db_role_setting s
		JOIN pg_roles r ON r.oid = s.setrole LEFT JOIN pg_database d ON d.oid = s.setdatabase
		WHERE r.rolname = $1 ORDER BY 1`, role)
	if err != nil {
		return nil, fmt.Errorf("read the settings of role %q: %w", role, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (roleSetting, error) {
		var s roleSetting
		err := row.Scan(&s.db, &s.config)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the settings of role %q: %w", role, err)
	}
	return out, nil
}

// copySettings makes the clone's role-level settings (ALTER ROLE ... SET)
// those of the base role, plus role = base so that its sessions start as
// the base role. PostgreSQL applies the settings of the login role, not of
// the role a session switches to, so without the copy the clone would miss
// (say) the base user's search_path. A setting the master may not set (a
// superuser-only parameter) is skipped and stays as it was on the clone.
// The values are only ever SQL literals: the master's own session settings
// are never changed.
func copySettings(ctx context.Context, tx pgx.Tx, base, clone string) error {
	baseSettings, err := readSettings(ctx, tx, base)
	if err != nil {
		return err
	}
	cloneSettings, err := readSettings(ctx, tx, clone)
	if err != nil {
		return err
	}
	inDB := func(db string) string {
		if db == "" {
			return ""
		}
		return " IN DATABASE " + QuoteIdentifier(db)
	}
	for _, s := range cloneSettings {
		if _, err := tx.Exec(ctx, "ALTER ROLE "+QuoteIdentifier(clone)+inDB(s.db)+" RESET ALL"); err != nil {
			return fmt.Errorf("reset the settings of %q: %w", clone, err)
		}
	}
	for _, s := range baseSettings {
		for _, kv := range s.config {
			name, value, ok := strings.Cut(kv, "=")
			if !ok || strings.EqualFold(name, "role") || strings.EqualFold(name, "session_authorization") {
				continue
			}
			if err := copySetting(ctx, tx, clone, inDB(s.db), name, value); err != nil {
				return err
			}
		}
	}
	if _, err := tx.Exec(ctx, "ALTER ROLE "+QuoteIdentifier(clone)+" SET role = "+quoteLiteral(base)); err != nil {
		return fmt.Errorf("make sessions of %q start as %q: %w", clone, base, err)
	}
	return nil
}

// listQuoteSettings are the parameters PostgreSQL stores as a list of
// quoted identifiers (GUC_LIST_QUOTE): their value must be given back as
// one literal per element.
var listQuoteSettings = map[string]bool{
	"search_path": true, "temp_tablespaces": true,
	"session_preload_libraries": true, "local_preload_libraries": true, "shared_preload_libraries": true,
}

func copySetting(ctx context.Context, tx pgx.Tx, clone, inDB, name, value string) error {
	var parts []string
	for _, p := range strings.Split(name, ".") {
		parts = append(parts, QuoteIdentifier(p))
	}
	var literals []string
	if listQuoteSettings[strings.ToLower(name)] {
		for _, e := range splitQuotedList(value) {
			literals = append(literals, quoteLiteral(e))
		}
	} else {
		literals = []string{quoteLiteral(value)}
	}
	if len(literals) == 0 {
		literals = []string{"''"}
	}
	sp, err := tx.Begin(ctx) // a savepoint: a refused setting must not abort the transaction
	if err != nil {
		return fmt.Errorf("copy setting %s to %q: %w", name, clone, err)
	}
	_, err = sp.Exec(ctx, "ALTER ROLE "+QuoteIdentifier(clone)+inDB+" SET "+strings.Join(parts, ".")+" TO "+strings.Join(literals, ", "))
	if err == nil {
		err = sp.Commit(ctx)
	} else {
		err = sp.Rollback(ctx)
	}
	if err != nil {
		return fmt.Errorf("copy setting %s to %q: %w", name, clone, err)
	}
	return nil
}

// splitQuotedList splits a list the way PostgreSQL writes it for a
// GUC_LIST_QUOTE parameter: elements separated by commas, each a bare word
// or a double-quoted identifier with "" for a quote.
func splitQuotedList(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		for i < len(s) && (s[i] == ' ' || s[i] == ',') {
			i++
		}
		if i >= len(s) {
			break
		}
		var b strings.Builder
		if s[i] == '"' {
			i++
			for i < len(s) {
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						b.WriteByte('"')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
		} else {
			for i < len(s) && s[i] != ',' {
				b.WriteByte(s[i])
				i++
			}
		}
		out = append(out, strings.TrimSpace(b.String()))
	}
	return out
}
