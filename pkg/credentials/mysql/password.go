package mysql

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strings"
)

// nativeHash is the mysql_native_password hash of pw as MariaDB and MySQL
// store it: '*' and the upper-case hex of SHA1(SHA1(pw)).
func nativeHash(pw string) string {
	h1 := sha1.Sum([]byte(pw))
	h2 := sha1.Sum(h1[:])
	return "*" + strings.ToUpper(hex.EncodeToString(h2[:]))
}

// isNative reports whether an authentication plugin name is
// mysql_native_password (an empty plugin means it on old servers).
func isNative(plugin string) bool {
	return plugin == "" || strings.EqualFold(plugin, "mysql_native_password")
}

// identifiedBy returns the IDENTIFIED clause of CREATE USER or ALTER USER
// that gives an account using plugin the password pw, keeping the plugin.
// MariaDB writes a plaintext password into its general and slow query logs
// as sent, so for a mysql_native_password account on MariaDB the hash is
// sent instead and the password itself never appears in SQL text. Other
// MariaDB plugins (ed25519) are named explicitly, since a bare IDENTIFIED BY
// would switch the account to mysql_native_password. MySQL keeps the
// account's plugin on ALTER USER and rewrites passwords out of its logs.
func (s *session) identifiedBy(plugin, pw string) (string, error) {
	switch {
	case !s.mariadb:
		return "IDENTIFIED BY " + s.str(pw), nil
	case isNative(plugin):
		return "IDENTIFIED BY PASSWORD " + s.str(nativeHash(pw)), nil
	case validPluginName(plugin):
		return "IDENTIFIED VIA " + plugin + " USING PASSWORD(" + s.str(pw) + ")", nil
	}
	return "", fmt.Errorf("the account's authentication plugin %q is not a plain name; Rotary cannot set its password", plugin)
}

// validPluginName reports whether a plugin name read from mysql.user can be
// written into SQL as is.
func validPluginName(p string) bool {
	if p == "" {
		return false
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// plugin returns the authentication plugin of user@host from mysql.user.
func (s *session) plugin(ctx context.Context, user, host string) (string, error) {
	var p string
	if err := s.queryRow(ctx, "SELECT plugin FROM mysql.user WHERE User = ? AND Host = ?", user, host).Scan(&p); err != nil {
		return "", fmt.Errorf("read the authentication plugin of %q@%q from mysql.user: %w", user, host, err)
	}
	return p, nil
}

// ownPasswordIsNative reports whether the logged-in account uses
// mysql_native_password, from its own SHOW GRANTS (which any user may run,
// unlike reading mysql.user): MariaDB prints IDENTIFIED BY PASSWORD '<hash>'
// for such accounts.
func (s *session) ownPasswordIsNative(ctx context.Context) (bool, error) {
	lines, err := s.queryStrings(ctx, "SHOW GRANTS")
	if err != nil {
		return false, fmt.Errorf("SHOW GRANTS for the current user: %w", err)
	}
	for _, l := range lines {
		toks, err := lexGrant(l)
		if err != nil {
			continue
		}
		for i := 0; i+3 < len(toks); i++ {
			if isKeyword(toks[i], "IDENTIFIED") {
				return isKeyword(toks[i+1], "BY") && isKeyword(toks[i+2], "PASSWORD") && toks[i+3].kind == tokString, nil
			}
		}
	}
	return false, nil
}
