package mysql

import (
	"slices"
	"testing"
)

// TestParseGrantLine covers the SHOW GRANTS forms of MariaDB 10.11 and
// MySQL 8 (MySQL's lines are taken from its documentation and servers, as
// the tests have no MySQL 8 server to run against).
func TestParseGrantLine(t *testing.T) {
	tests := []struct {
		name string
		line string
		want grantLine
	}{
		{
			name: "MariaDB usage line with password, REQUIRE and limits",
			line: "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*2B60' REQUIRE ISSUER '/CN=GRANT OPTION' WITH MAX_QUERIES_PER_HOUR 10",
			want: grantLine{kind: grantPrivileges, privText: "USAGE", privs: []string{"USAGE"}, object: "*.*"},
		},
		{
			name: "MariaDB global privileges with grant option and limits",
			line: "GRANT RELOAD, PROCESS ON *.* TO `app`@`10.0.%` IDENTIFIED BY PASSWORD '*2B60' WITH GRANT OPTION MAX_USER_CONNECTIONS 3",
			want: grantLine{kind: grantPrivileges, privText: "RELOAD, PROCESS", privs: []string{"RELOAD", "PROCESS"}, object: "*.*", grantOption: true},
		},
		{
			name: "escaped underscore and wildcard kept verbatim",
			line: "GRANT SELECT, INSERT ON `my\\_db`.* TO `app`@`%`",
			want: grantLine{kind: grantPrivileges, privText: "SELECT, INSERT", privs: []string{"SELECT", "INSERT"}, object: "`my\\_db`.*"},
		},
		{
			name: "keywords inside identifiers",
			line: "GRANT SELECT ON `TO`.`ON` TO `app`@`%` WITH GRANT OPTION",
			want: grantLine{kind: grantPrivileges, privText: "SELECT", privs: []string{"SELECT"}, object: "`TO`.`ON`", grantOption: true},
		},
		{
			name: "column privileges, one token per column",
			line: "GRANT SELECT (`id`, `a,b`), UPDATE (`id`) ON `db`.`t` TO `app`@`%`",
			want: grantLine{kind: grantPrivileges, privText: "SELECT (`id`, `a,b`), UPDATE (`id`)", privs: []string{"SELECT (`id`)", "SELECT (`a,b`)", "UPDATE (`id`)"}, object: "`db`.`t`"},
		},
		{
			name: "routine",
			line: "GRANT EXECUTE, ALTER ROUTINE ON PROCEDURE `db`.`p` TO `app`@`%`",
			want: grantLine{kind: grantPrivileges, privText: "EXECUTE, ALTER ROUTINE", privs: []string{"EXECUTE", "ALTER ROUTINE"}, object: "PROCEDURE `db`.`p`"},
		},
		{
			name: "MariaDB role",
			line: "GRANT `reader` TO `app`@`%`",
			want: grantLine{kind: grantRoles, roles: []string{"`reader`"}},
		},
		{
			name: "MySQL 8 roles with hosts and admin option",
			line: "GRANT `r1`@`%`,`r2`@`localhost` TO `app`@`%` WITH ADMIN OPTION",
			want: grantLine{kind: grantRoles, roles: []string{"`r1`@`%`", "`r2`@`localhost`"}, grantOption: true},
		},
		{
			name: "MySQL 8 dynamic privileges",
			line: "GRANT BACKUP_ADMIN,XA_RECOVER_ADMIN ON *.* TO `app`@`%`",
			want: grantLine{kind: grantPrivileges, privText: "BACKUP_ADMIN,XA_RECOVER_ADMIN", privs: []string{"BACKUP_ADMIN", "XA_RECOVER_ADMIN"}, object: "*.*"},
		},
		{
			name: "proxy",
			line: "GRANT PROXY ON ''@'%' TO 'app'@'%' WITH GRANT OPTION",
			want: grantLine{kind: grantProxy, privText: "PROXY", object: "''@'%'", grantOption: true},
		},
		{
			name: "MariaDB default role",
			line: "SET DEFAULT ROLE `reader` FOR `app`@`%`",
			want: grantLine{kind: defaultRole, roles: []string{"`reader`"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseGrantLine(tc.line)
			if err != nil {
				t.Fatal(err)
			}
			if got.kind != tc.want.kind || got.privText != tc.want.privText || got.object != tc.want.object ||
				got.grantOption != tc.want.grantOption || !slices.Equal(got.privs, tc.want.privs) || !slices.Equal(got.roles, tc.want.roles) {
				t.Fatalf("parse %q:\n got %+v\nwant %+v", tc.line, got, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "REVOKE SELECT ON *.* FROM `a`@`%`", "GRANT SELECT ON", "GRANT SELECT ON `unterminated TO `a`@`%`"} {
		if _, err := parseGrantLine(bad); err == nil {
			t.Errorf("parse %q: no error", bad)
		}
	}
}

// TestPlanGrantSync: grants first, then revokes of what the base user no
// longer has, then the grants again so a REVOKE ALL cannot take a kept one.
func TestPlanGrantSync(t *testing.T) {
	parse := func(lines ...string) []grantLine {
		var out []grantLine
		for _, l := range lines {
			g, err := parseGrantLine(l)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, g)
		}
		return out
	}
	acct := "'app_clone'@'%'"
	tests := []struct {
		name        string
		base, clone []grantLine
		want        []string
	}{
		{
			name:  "in sync",
			base:  parse("GRANT USAGE ON *.* TO `app`@`%`", "GRANT SELECT ON `db`.* TO `app`@`%`"),
			clone: parse("GRANT USAGE ON *.* TO `app_clone`@`%`", "GRANT SELECT ON `db`.* TO `app_clone`@`%`"),
			want:  []string{"GRANT SELECT ON `db`.* TO " + acct},
		},
		{
			name:  "revoked from the base user",
			base:  parse("GRANT SELECT ON `db`.* TO `app`@`%`", "GRANT `r1` TO `app`@`%`"),
			clone: parse("GRANT ALL PRIVILEGES ON `db`.* TO `app_clone`@`%` WITH GRANT OPTION", "GRANT SELECT (`c`) ON `db`.`t` TO `app_clone`@`%`", "GRANT `r1` TO `app_clone`@`%`", "GRANT `r2` TO `app_clone`@`%`", "SET DEFAULT ROLE `r2` FOR `app_clone`@`%`"),
			want: []string{
				"GRANT SELECT ON `db`.* TO " + acct,
				"GRANT `r1` TO " + acct,
				"REVOKE ALL PRIVILEGES ON `db`.* FROM " + acct,
				"REVOKE GRANT OPTION ON `db`.* FROM " + acct,
				"REVOKE SELECT (`c`) ON `db`.`t` FROM " + acct,
				"REVOKE `r2` FROM " + acct,
				"SET DEFAULT ROLE NONE FOR " + acct,
				"GRANT SELECT ON `db`.* TO " + acct,
				"GRANT `r1` TO " + acct,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := planGrantSync(tc.base, tc.clone, acct).statements(); !slices.Equal(got, tc.want) {
				t.Fatalf("plan:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestRedactLiterals: the test helpers' failure messages never show a
// quoted value, which may be a password.
func TestRedactLiterals(t *testing.T) {
	tests := []struct{ in, want string }{
		{`CREATE USER 'u'@'%' IDENTIFIED BY 'p@ss''w\'d'`, `CREATE USER '…'@'…' IDENTIFIED BY '…'`},
		{"GRANT SELECT ON `db`.* TO 'u'@'%'", "GRANT SELECT ON `db`.* TO '…'@'…'"},
		{`ALTER USER 'u'@'%' IDENTIFIED BY 'unterminated`, "(statement withheld: it may hold a password)"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := redactLiterals(tt.in); got != tt.want {
				t.Fatalf("redactLiterals = %s, want %s", got, tt.want)
			}
		})
	}
}
