package mysql

import (
	"fmt"
	"slices"
	"strings"
)

// grantKind tells the forms of a SHOW GRANTS line apart.
type grantKind int

const (
	grantPrivileges grantKind = iota // GRANT <privileges> ON <object> TO <account>
	grantProxy                       // GRANT PROXY ON <account> TO <account>
	grantRoles                       // GRANT <role>[, <role>] TO <account>
	defaultRole                      // SET DEFAULT ROLE <role> FOR <account> (MariaDB)
)

// grantLine is one line of SHOW GRANTS, cut into the parts a replay needs.
// Object, privilege and role texts are kept exactly as the server printed
// them, so a replay never re-escapes a `%` or `_` in a database name. The
// account and everything after it (IDENTIFIED BY PASSWORD, REQUIRE, resource
// limits) are dropped: attributes are copied separately, passwords never.
type grantLine struct {
	kind        grantKind
	privText    string   // verbatim privilege list (grantPrivileges)
	privs       []string // normalized privilege tokens, one per column for column privileges
	object      string   // verbatim object (grantPrivileges, grantProxy)
	roles       []string // verbatim role names (grantRoles, defaultRole)
	grantOption bool     // WITH GRANT OPTION, or WITH ADMIN OPTION for roles
}

type tokKind int

const (
	tokWord tokKind = iota
	tokIdent
	tokString
	tokPunct
)

type token struct {
	kind       tokKind
	text       string
	start, end int // byte offsets in the line
}

// lexGrant splits a SHOW GRANTS line into words, backquoted identifiers,
// quoted strings and punctuation, so that keywords inside names or strings
// (a database called `TO`, an ISSUER '... GRANT OPTION ...') are never taken
// for syntax.
func lexGrant(line string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(line) {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '`':
			j := i + 1
			for {
				k := strings.IndexByte(line[j:], '`')
				if k < 0 {
					return nil, fmt.Errorf("unterminated identifier at offset %d", i)
				}
				j += k + 1
				if j < len(line) && line[j] == '`' {
					j++
					continue
				}
				break
			}
			toks = append(toks, token{tokIdent, line[i:j], i, j})
			i = j
		case c == '\'' || c == '"':
			j := i + 1
			for {
				if j >= len(line) {
					return nil, fmt.Errorf("unterminated string at offset %d", i)
				}
				if line[j] == '\\' {
					j += 2
					continue
				}
				if line[j] == c {
					if j+1 < len(line) && line[j+1] == c {
						j += 2
						continue
					}
					j++
					break
				}
				j++
			}
			toks = append(toks, token{tokString, line[i:j], i, j})
			i = j
		case isWordByte(c):
			j := i
			for j < len(line) && isWordByte(line[j]) {
				j++
			}
			toks = append(toks, token{tokWord, line[i:j], i, j})
			i = j
		default:
			toks = append(toks, token{tokPunct, line[i : i+1], i, i + 1})
			i++
		}
	}
	return toks, nil
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isKeyword(t token, kw string) bool { return t.kind == tokWord && strings.EqualFold(t.text, kw) }

// findTop returns the index of the first word kw at parenthesis depth 0 at
// or after from, or -1.
func findTop(toks []token, from int, kw string) int {
	depth := 0
	for i := from; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.kind == tokPunct && t.text == "(":
			depth++
		case t.kind == tokPunct && t.text == ")":
			depth--
		case depth == 0 && isKeyword(t, kw):
			return i
		}
	}
	return -1
}

// hasPair reports whether the words a b follow each other in toks.
func hasPair(toks []token, a, b string) bool {
	for i := 0; i+1 < len(toks); i++ {
		if isKeyword(toks[i], a) && isKeyword(toks[i+1], b) {
			return true
		}
	}
	return false
}

// parseGrantLine parses one line of SHOW GRANTS output from MariaDB 10.x or
// MySQL 5.7/8.
func parseGrantLine(line string) (grantLine, error) {
	toks, err := lexGrant(line)
	if err != nil {
		return grantLine{}, fmt.Errorf("parse SHOW GRANTS line: %w", err)
	}
	bad := func(why string) (grantLine, error) {
		return grantLine{}, fmt.Errorf("parse SHOW GRANTS line: %s; grant it in a form SHOW GRANTS prints as GRANT ... TO", why)
	}
	if len(toks) >= 4 && isKeyword(toks[0], "SET") && isKeyword(toks[1], "DEFAULT") && isKeyword(toks[2], "ROLE") {
		f := findTop(toks, 3, "FOR")
		if f < 0 {
			return bad("SET DEFAULT ROLE without FOR")
		}
		return grantLine{kind: defaultRole, roles: []string{strings.TrimSpace(line[toks[3].start:toks[f].start])}}, nil
	}
	if len(toks) < 3 || !isKeyword(toks[0], "GRANT") {
		return bad("it does not start with GRANT")
	}
	to := findTop(toks, 1, "TO")
	if to < 0 {
		return bad("no TO")
	}
	tail := toks[to+1:]
	on := findTop(toks[:to], 1, "ON")
	if on < 0 {
		g := grantLine{kind: grantRoles, grantOption: hasPair(tail, "ADMIN", "OPTION"), roles: splitTop(line[toks[1].start:toks[to].start])}
		if len(g.roles) == 0 {
			return bad("a role grant names no role")
		}
		return g, nil
	}
	if on == 1 {
		return bad("no privilege before ON")
	}
	g := grantLine{
		privText:    strings.TrimSpace(line[toks[1].start:toks[on].start]),
		object:      strings.TrimSpace(line[toks[on].end:toks[to].start]),
		grantOption: hasPair(tail, "GRANT", "OPTION"),
	}
	if g.object == "" {
		return bad("no object after ON")
	}
	if strings.EqualFold(g.privText, "PROXY") {
		g.kind = grantProxy
		return g, nil
	}
	g.kind = grantPrivileges
	for _, item := range splitTop(g.privText) {
		name, cols, hasCols := strings.Cut(item, "(")
		name = strings.ToUpper(strings.Join(strings.Fields(name), " "))
		if !hasCols {
			g.privs = append(g.privs, name)
			continue
		}
		cols = strings.TrimSuffix(strings.TrimSpace(cols), ")")
		for _, col := range splitTop(cols) {
			g.privs = append(g.privs, name+" ("+col+")")
		}
	}
	return g, nil
}

// splitTop splits s at commas outside parentheses, backquotes and quotes,
// trimming each part.
func splitTop(s string) []string {
	toks, err := lexGrant(s)
	if err != nil {
		return []string{strings.TrimSpace(s)}
	}
	var parts []string
	depth, start := 0, 0
	for _, t := range toks {
		if t.kind != tokPunct {
			continue
		}
		switch t.text {
		case "(":
			depth++
		case ")":
			depth--
		case ",":
			if depth == 0 {
				parts = append(parts, strings.TrimSpace(s[start:t.start]))
				start = t.end
			}
		}
	}
	if last := strings.TrimSpace(s[start:]); last != "" {
		parts = append(parts, last)
	}
	return parts
}

// grantPlan is the statements that make the clone's grants equal the base
// user's: grants first (additive, so the clone never loses a privilege it
// keeps), then revokes of what the base user no longer has, then the grants
// again when a revoke may have taken a kept privilege with it (REVOKE ALL).
type grantPlan struct {
	grants  []string
	revokes []string
}

func (p grantPlan) statements() []string {
	out := slices.Clone(p.grants)
	if len(p.revokes) > 0 {
		out = append(out, p.revokes...)
		out = append(out, p.grants...)
	}
	return out
}

// planGrantSync computes the statements that give acct (the clone's quoted
// account name) exactly the base user's grants, given both users' SHOW
// GRANTS lines.
func planGrantSync(base, clone []grantLine, acct string) grantPlan {
	var p grantPlan
	privs := map[string]map[string]bool{} // object -> privilege tokens of the base user
	grantOpt := map[string]bool{}         // object -> base has GRANT OPTION
	proxies := map[string]bool{}
	roles := map[string]bool{}
	var defRole string
	for _, g := range base {
		switch g.kind {
		case grantPrivileges:
			set := privs[g.object]
			if set == nil {
				set = map[string]bool{}
				privs[g.object] = set
			}
			for _, t := range g.privs {
				set[t] = true
			}
			if g.grantOption {
				grantOpt[g.object] = true
			}
			if isUsageOnly(g) && !g.grantOption {
				continue
			}
			stmt := "GRANT " + g.privText + " ON " + g.object + " TO " + acct
			if g.grantOption {
				stmt += " WITH GRANT OPTION"
			}
			p.grants = append(p.grants, stmt)
		case grantProxy:
			proxies[g.object] = true
			stmt := "GRANT PROXY ON " + g.object + " TO " + acct
			if g.grantOption {
				stmt += " WITH GRANT OPTION"
			}
			p.grants = append(p.grants, stmt)
		case grantRoles:
			for _, r := range g.roles {
				roles[r] = true
				stmt := "GRANT " + r + " TO " + acct
				if g.grantOption {
					stmt += " WITH ADMIN OPTION"
				}
				p.grants = append(p.grants, stmt)
			}
		case defaultRole:
			defRole = g.roles[0]
		}
	}
	cloneDefRole := ""
	for _, g := range clone {
		switch g.kind {
		case grantPrivileges:
			var extra []string
			for _, t := range g.privs {
				if t != "USAGE" && !privs[g.object][t] {
					extra = append(extra, t)
				}
			}
			if len(extra) > 0 {
				p.revokes = append(p.revokes, "REVOKE "+strings.Join(extra, ", ")+" ON "+g.object+" FROM "+acct)
			}
			if g.grantOption && !grantOpt[g.object] {
				p.revokes = append(p.revokes, "REVOKE GRANT OPTION ON "+g.object+" FROM "+acct)
			}
		case grantProxy:
			if !proxies[g.object] {
				p.revokes = append(p.revokes, "REVOKE PROXY ON "+g.object+" FROM "+acct)
			}
		case grantRoles:
			for _, r := range g.roles {
				if !roles[r] {
					p.revokes = append(p.revokes, "REVOKE "+r+" FROM "+acct)
				}
			}
		case defaultRole:
			cloneDefRole = g.roles[0]
		}
	}
	switch {
	case defRole != "" && defRole != cloneDefRole:
		p.grants = append(p.grants, "SET DEFAULT ROLE "+defRole+" FOR "+acct)
	case defRole == "" && cloneDefRole != "":
		p.revokes = append(p.revokes, "SET DEFAULT ROLE NONE FOR "+acct)
	}
	return p
}

func isUsageOnly(g grantLine) bool { return len(g.privs) == 1 && g.privs[0] == "USAGE" }
