package postgres

import (
	"strings"
)

// QuoteIdentifier quotes a PostgreSQL identifier (a role name): it wraps it
// in double quotes and doubles every double quote inside. It is the only way
// this package puts a name into SQL text. Names with a NUL byte are refused
// by parse before they get here.
func QuoteIdentifier(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// quoteLiteral quotes a standard-conforming string literal. It is used only
// for SCRAM verifiers and role names in ALTER ROLE ... SET role, never for a
// password.
func quoteLiteral(s string) string {
	return `'` + strings.ReplaceAll(s, `'`, `''`) + `'`
}
