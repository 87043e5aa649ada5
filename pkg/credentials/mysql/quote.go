package mysql

import "strings"

// quoteIdent quotes a MySQL identifier (database, table, column) with
// backquotes, doubling any backquote inside. Backquoted identifiers are not
// affected by sql_mode's backslash handling.
func quoteIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

// quoteString quotes s as a MySQL string literal for a session whose
// sql_mode has NO_BACKSLASH_ESCAPES set or not. It is the only way Rotary
// writes a value into SQL text, used where the server takes no placeholder
// (ALTER USER ... IDENTIFIED BY, REQUIRE ISSUER, account names). s must not
// contain a NUL byte when noBackslashEscapes is set: callers reject those
// values first (dbsecret refuses NUL in passwords, validUsername in names).
func quoteString(s string, noBackslashEscapes bool) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			b.WriteString("''")
		case noBackslashEscapes:
			b.WriteByte(c)
		case c == '\\':
			b.WriteString(`\\`)
		case c == 0:
			b.WriteString(`\0`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == 0x1a:
			b.WriteString(`\Z`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
