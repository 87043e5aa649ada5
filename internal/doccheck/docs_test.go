package doccheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/rotary-secrets/rotary/pkg/registry"
)

// mains are the programs Rotary ships, per module directory: every function
// and the operator CLI in the root module, the CDK app in infra/ (its own
// module). The code they link is what "the code reads" means below.
var mains = map[string][]string{
	".":     {"./functions/...", "./cmd/rotary"},
	"infra": {"./cmd/rotary-app"},
}

// module prefixes the import paths of both modules.
const module = "github.com/rotary-secrets/rotary"

// productionFiles returns the non-test Go files of this repository that the
// shipped programs link.
func productionFiles(t *testing.T) []string {
	t.Helper()
	seen := map[string]bool{}
	var files []string
	for dir, pkgs := range mains {
		args := append([]string{"list", "-deps", "-f", "{{.ImportPath}}\t{{.Dir}}\t{{join .GoFiles \",\"}}"}, pkgs...)
		cmd := exec.Command("go", args...)
		cmd.Dir = filepath.Join(root, dir)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %v in %s: %v", pkgs, dir, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Split(line, "\t")
			if len(f) != 3 || (f[0] != module && !strings.HasPrefix(f[0], module+"/")) || f[2] == "" {
				continue
			}
			for _, name := range strings.Split(f[2], ",") {
				if p := filepath.Join(f[1], name); !seen[p] {
					seen[p] = true
					files = append(files, p)
				}
			}
		}
	}
	if len(files) < 20 {
		t.Fatalf("found only %d Go files linked by %v: the check would prove nothing", len(files), mains)
	}
	return files
}

// envName is what an environment variable's name looks like.
var envName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*[A-Z0-9]$`)

// isEnvReader reports whether a call's function reads the environment:
// os.Getenv, os.LookupEnv, or a getenv func(string) string passed in (as
// the credential types' ConfigFromEnv take).
func isEnvReader(fun ast.Expr) bool {
	var name string
	switch f := fun.(type) {
	case *ast.Ident:
		name = f.Name
	case *ast.SelectorExpr:
		name = f.Sel.Name
	}
	switch name {
	case "Getenv", "LookupEnv", "getenv", "lookupEnv":
		return true
	}
	return false
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// envReads scans Go files for the environment variables they read, and
// returns each name with where it is read. It finds:
//   - a string literal, or a constant, passed to an environment reader;
//   - every constant named Env... whose value is a variable's name (the
//     code's convention for the variables a package reads);
//   - a func Env...For(x) returning EnvConst + "_" + ..., as the name
//     EnvConst's value + "_<x>" (pgcluster.EnvBinDirFor: ROTARY_PG_BIN_<major>);
//   - in a function that reads a computed name (getenv(f.name)), every
//     variable-like string literal of its composite literals: the table
//     it loops over.
func envReads(t *testing.T, files []string) map[string][]string {
	t.Helper()
	fset := token.NewFileSet()
	var parsed []*ast.File
	consts := map[string]string{}      // constant name -> value, across packages
	constPos := map[string]token.Pos{} // where it is declared
	for _, path := range files {
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, f)
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						if s, ok := stringLit(vs.Values[i]); ok {
							consts[n.Name] = s
							constPos[n.Name] = n.Pos()
						}
					}
				}
			}
		}
	}
	reads := map[string][]string{}
	absRoot, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	add := func(name string, pos token.Pos) {
		p := fset.Position(pos)
		rel, err := filepath.Rel(absRoot, p.Filename)
		if err != nil {
			rel = p.Filename
		}
		reads[name] = append(reads[name], rel+":"+strconv.Itoa(p.Line))
	}
	resolve := func(e ast.Expr) (string, bool) {
		if s, ok := stringLit(e); ok {
			return s, true
		}
		var id string
		switch x := e.(type) {
		case *ast.Ident:
			id = x.Name
		case *ast.SelectorExpr:
			id = x.Sel.Name
		}
		s, ok := consts[id]
		return s, ok
	}
	for name, value := range consts {
		if strings.HasPrefix(name, "Env") && envName.MatchString(value) {
			add(value, constPos[name])
		}
	}
	for _, f := range parsed {
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			if strings.HasPrefix(fn.Name.Name, "Env") && strings.HasSuffix(fn.Name.Name, "For") && len(fn.Type.Params.List) == 1 {
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					ret, ok := n.(*ast.ReturnStmt)
					if !ok || len(ret.Results) != 1 {
						return true
					}
					left := ret.Results[0]
					for {
						b, ok := left.(*ast.BinaryExpr)
						if !ok {
							break
						}
						left = b.X
					}
					if s, ok := resolve(left); ok {
						add(s+"_<"+fn.Type.Params.List[0].Names[0].Name+">", ret.Pos())
					}
					return true
				})
			}
			computed := false
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || !isEnvReader(call.Fun) || len(call.Args) != 1 {
					return true
				}
				if s, ok := resolve(call.Args[0]); ok {
					add(s, call.Pos())
				} else if _, isCall := call.Args[0].(*ast.CallExpr); !isCall {
					computed = true
				}
				return true
			})
			if !computed {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				lit, ok := n.(*ast.CompositeLit)
				if !ok {
					return true
				}
				ast.Inspect(lit, func(n ast.Node) bool {
					if e, ok := n.(ast.Expr); ok {
						if s, ok := stringLit(e); ok && envName.MatchString(s) {
							add(s, e.Pos())
						}
					}
					return true
				})
				return false
			})
		}
	}
	return reads
}

// section returns the text of doc from the heading that matches heading
// (a line starting with it), the heading included, to the next heading of
// the same or a higher level.
func section(t *testing.T, docName, doc, heading string) string {
	t.Helper()
	lines := strings.Split(doc, "\n")
	level := strings.IndexByte(heading, ' ')
	for i, l := range lines {
		if !strings.HasPrefix(l, heading) {
			continue
		}
		out := []string{l}
		for _, m := range lines[i+1:] {
			if h := strings.IndexByte(m, ' '); strings.HasPrefix(m, "#") && h > 0 && h <= level && strings.Trim(m[:h], "#") == "" {
				break
			}
			out = append(out, m)
		}
		return strings.Join(out, "\n")
	}
	t.Fatalf("%s has no heading %q; the doc tests look for it there", docName, heading)
	return ""
}

// tableNames returns the variable names in the first column of the first
// table in text: every `NAME` in backticks there.
func tableNames(text string) map[string]bool {
	names := map[string]bool{}
	code := regexp.MustCompile("`([A-Z][A-Z0-9_]*(?:<[a-z]+>)?)`")
	inTable := false
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		cells := strings.Split(l, "|")
		if len(cells) < 3 {
			continue
		}
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			names[m[1]] = true
		}
	}
	return names
}

// TestEnvironmentVariablesDocumented: every environment variable the
// shipped code reads is in docs/operations.md's table, and every variable
// in the table is read by that code.
func TestEnvironmentVariablesDocumented(t *testing.T) {
	const doc = "docs/operations.md"
	table := tableNames(section(t, doc, readDoc(t, doc), "## Environment variables"))
	reads := envReads(t, productionFiles(t))
	if len(reads) < 10 {
		t.Fatalf("found only %d variables read by the code (%v): the scan is broken", len(reads), reads)
	}
	var missing, stale []string
	for name, where := range reads {
		if !table[name] {
			missing = append(missing, name+" (read at "+strings.Join(where, ", ")+")")
		}
	}
	for name := range table {
		if _, ok := reads[name]; !ok {
			stale = append(stale, name)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	for _, m := range missing {
		t.Errorf("the code reads %s, but %s's \"Environment variables\" table does not list it: add a row saying what it does and its default", m, doc)
	}
	for _, s := range stale {
		t.Errorf("%s's \"Environment variables\" table lists %s, which no function, the CLI or the CDK app reads: remove the row, or move it to the list of variables the AWS SDK or the tests read", doc, s)
	}
	t.Logf("%d variables read by the code", len(reads))
}

// TestTestOnlyVariablesExist: each variable that docs/operations.md says
// only the AWS SDK or the tests read is named somewhere in the Go code or
// the scripts (the SDK's own are named by the code that relies on them).
func TestTestOnlyVariablesExist(t *testing.T) {
	const doc = "docs/operations.md"
	text := section(t, doc, readDoc(t, doc), "### Read by the tests only")
	names := regexp.MustCompile("`([A-Z][A-Z0-9_]{2,})`").FindAllStringSubmatch(text, -1)
	if len(names) == 0 {
		t.Fatalf("%s lists no test-only variables under \"Read by the tests only\"", doc)
	}
	var all strings.Builder
	for _, dir := range []string{"pkg", "internal", "integration", "cmd", "infra", "scripts", ".ci"} {
		_ = filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() && d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			if !d.IsDir() && (strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".sh") || d.Name() == "run") {
				b, _ := os.ReadFile(path)
				all.Write(b)
			}
			return nil
		})
	}
	for _, m := range names {
		if !strings.Contains(all.String(), m[1]) {
			t.Errorf("%s says the tests read %s, but no code or script names it: remove it from the list", doc, m[1])
		}
	}
}

// cliCommands returns the commands of cmd/rotary's dispatch table (the
// commands map in main.go) and, for each, the flags its run function
// defines, with those of the add...Flags helpers it calls.
func cliCommands(t *testing.T) (cmds map[string][]string, shared map[string][]string) {
	t.Helper()
	dir := filepath.Join(root, "cmd", "rotary")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	funcs := map[string]*ast.FuncDecl{}
	runOf := map[string]string{} // command -> run function
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil {
				continue
			}
			funcs[fn.Name.Name] = fn
			if fn.Name.Name != "init" {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				kv, ok := n.(*ast.KeyValueExpr)
				if !ok {
					return true
				}
				if name, ok := stringLit(kv.Key); ok {
					if id, ok := kv.Value.(*ast.Ident); ok {
						runOf[name] = id.Name
					}
				}
				return true
			})
		}
	}
	if len(runOf) == 0 {
		t.Fatal("found no commands in cmd/rotary's commands map (main.go init): the check would prove nothing")
	}
	flagMethods := map[string]bool{"Bool": true, "BoolVar": true, "String": true, "StringVar": true, "Int": true, "IntVar": true,
		"Duration": true, "DurationVar": true, "Var": true, "Func": true, "Uint": true, "Float64": true}
	// flagsOf returns the flags fn defines itself, and the helpers it calls.
	flagsOf := func(fn *ast.FuncDecl) (own, helpers []string) {
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			switch f := call.Fun.(type) {
			case *ast.SelectorExpr:
				if flagMethods[f.Sel.Name] {
					for _, a := range call.Args {
						if s, ok := stringLit(a); ok {
							own = append(own, s)
							break
						}
					}
				}
			case *ast.Ident:
				if strings.HasPrefix(f.Name, "add") && strings.HasSuffix(f.Name, "Flags") {
					helpers = append(helpers, f.Name)
				}
			}
			return true
		})
		return own, helpers
	}
	cmds = map[string][]string{}
	shared = map[string][]string{}
	for name, run := range runOf {
		fn, ok := funcs[run]
		if !ok {
			t.Fatalf("command %s runs %s, which is not in cmd/rotary", name, run)
		}
		own, helpers := flagsOf(fn)
		cmds[name] = own
		for _, h := range helpers {
			if hf, ok := funcs[h]; ok {
				hown, _ := flagsOf(hf)
				shared[h] = hown
				if h != "addAWSFlags" {
					cmds[name] = append(cmds[name], hown...)
				}
			}
		}
	}
	return cmds, shared
}

// TestCLICommandsDocumented: every command of the rotary CLI has a section
// in docs/cli.md that names each of its flags, every section is for a
// command that exists, the usage text lists every command, and the flags
// every AWS command takes are in docs/cli.md's table of them.
// docFlag is a command-line flag as the docs write it: --name, ending
// where the name does (so --to is not --token).
var docFlag = regexp.MustCompile(`(?:^|[^A-Za-z0-9-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)`)

// crossReference returns the command a flag mention belongs to when the
// text just before it names that command ("rotate --wait", "rotary unstick
// SECRET --force"): another command's flag, cited in passing.
func crossReference(before, flag string, cmds map[string][]string) string {
	if len(before) > 40 {
		before = before[len(before)-40:]
	}
	for name, flags := range cmds {
		if slices.Contains(flags, flag) && regexp.MustCompile(`\b`+name+`\b[^.\n]*$`).MatchString(before) {
			return name
		}
	}
	return ""
}

func TestCLICommandsDocumented(t *testing.T) {
	const doc = "docs/cli.md"
	text := readDoc(t, doc)
	cmds, shared := cliCommands(t)
	heading := regexp.MustCompile("(?m)^## `rotary ([a-z-]+)")
	documented := map[string]bool{}
	for _, m := range heading.FindAllStringSubmatch(text, -1) {
		documented[m[1]] = true
		if _, ok := cmds[m[1]]; !ok {
			t.Errorf("%s has a section for 'rotary %s', which cmd/rotary does not have (main.go's commands map): remove the section or add the command", doc, m[1])
		}
	}
	main, err := os.ReadFile(filepath.Join(root, "cmd", "rotary", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(cmds))
	for name := range cmds {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !regexp.MustCompile(`(?m)^  ` + name + ` `).Match(main) {
			t.Errorf("cmd/rotary/main.go's usage text does not list the command %s: add a line for it", name)
		}
		if !documented[name] {
			t.Errorf("%s has no section for 'rotary %s': add a heading \"## `rotary %s ...`\" saying what it does and its flags", doc, name, name)
			continue
		}
		body := section(t, doc, text, "## `rotary "+name)
		mentioned := map[string]bool{}
		for _, m := range docFlag.FindAllStringSubmatchIndex(body, -1) {
			fl := body[m[2]:m[3]]
			if other := crossReference(body[:m[2]], fl, cmds); other != "" && other != name {
				continue // "rotary unstick SECRET --force" in another command's section
			}
			mentioned[fl] = true
		}
		for _, fl := range cmds[name] {
			if !mentioned[fl] {
				t.Errorf("%s's section on 'rotary %s' does not mention its flag --%s: document what it does", doc, name, fl)
			}
			delete(mentioned, fl)
		}
		for _, fl := range shared["addAWSFlags"] {
			delete(mentioned, fl)
		}
		for fl := range mentioned {
			t.Errorf("%s's section on 'rotary %s' mentions --%s, which the command does not have: remove it or add the flag", doc, name, fl)
		}
	}
	aws := shared["addAWSFlags"]
	if len(aws) == 0 {
		t.Error("found no flags in addAWSFlags: the check of the shared flags proves nothing")
	}
	for _, fl := range aws {
		if !regexp.MustCompile("(?m)^\\| `--" + fl + "[ `]").MatchString(text) {
			t.Errorf("%s's table of the flags every AWS command takes has no row for --%s", doc, fl)
		}
	}
	t.Logf("commands: %v", names)
}

// TestCredentialTypePages: every function under functions/ is a registered
// type or another function of the registry (registry.Functions), and every one's Doc page exists under
// docs/ and names the function.
func TestCredentialTypePages(t *testing.T) {
	dirs, err := os.ReadDir(filepath.Join(root, "functions"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		_, isType := registry.Lookup(d.Name())
		_, isFunction := registry.LookupFunction(d.Name())
		if d.IsDir() && !isType && !isFunction {
			t.Errorf("functions/%s is not in pkg/registry, so it has no documentation page: add its entry with Doc set", d.Name())
		}
	}
	pages := registry.All()
	for _, fn := range registry.Functions() {
		pages = append(pages, registry.Type{Name: fn.Name, Doc: fn.Doc})
	}
	for _, ty := range pages {
		if ty.Doc == "" || !strings.HasPrefix(ty.Doc, "docs/") || !strings.HasSuffix(ty.Doc, ".md") {
			t.Errorf("pkg/registry: %s has Doc %q; set it to its page, docs/<page>.md", ty.Name, ty.Doc)
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, ty.Doc))
		if err != nil {
			t.Errorf("pkg/registry says %s is documented in %s, which cannot be read (%v): write the page or fix Doc", ty.Name, ty.Doc, err)
			continue
		}
		if !strings.Contains(string(b), "`"+ty.Name+"`") && !strings.Contains(string(b), "# "+ty.Name) {
			t.Errorf("%s, the page pkg/registry gives for %s, never names the function (as `%s`): say which function the page is about", ty.Doc, ty.Name, ty.Name)
		}
	}
}

// docPages returns README.md and every docs/*.md.
func docPages(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil || len(pages) == 0 {
		t.Fatalf("no docs/*.md pages (%v)", err)
	}
	out := []string{"README.md"}
	for _, p := range pages {
		out = append(out, filepath.ToSlash(strings.TrimPrefix(p, root+string(filepath.Separator))))
	}
	return out
}

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// slug is the anchor GitHub gives a heading.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func anchors(text string) map[string]bool {
	out := map[string]bool{}
	inCode := false
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "```") {
			inCode = !inCode
		}
		if !inCode && strings.HasPrefix(l, "#") {
			out[slug(strings.TrimLeft(l, "#"))] = true
		}
	}
	return out
}

// TestDocLinks: every docs/*.md page is linked from README.md, and every
// relative link in README.md and docs/*.md points to a file that exists
// (and, with a #fragment, to a heading of that page).
func TestDocLinks(t *testing.T) {
	pages := docPages(t)
	readme := readDoc(t, "README.md")
	for _, p := range pages[1:] {
		if !strings.Contains(readme, "]("+p+")") && !strings.Contains(readme, "]("+p+"#") {
			t.Errorf("README.md does not link %s: add it to the README's list of documentation", p)
		}
	}
	for _, p := range pages {
		text := readDoc(t, p)
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			target, frag, _ := strings.Cut(link, "#")
			file := p
			if target != "" {
				file = filepath.ToSlash(filepath.Join(filepath.Dir(p), target))
			}
			info, err := os.Stat(filepath.Join(root, file))
			if err != nil {
				t.Errorf("%s links %s, but %s does not exist: fix the link or add the file", p, link, file)
				continue
			}
			if frag != "" && !info.IsDir() && strings.HasSuffix(file, ".md") && !anchors(readDoc(t, file))[frag] {
				t.Errorf("%s links %s, but %s has no heading with the anchor #%s: fix the link or the heading", p, link, file, frag)
			}
		}
	}
}

// TestReadmeForNewcomers: README.md stays short, and states the two
// commands a newcomer runs on a fresh machine.
func TestReadmeForNewcomers(t *testing.T) {
	const maxLines = 150
	readme := readDoc(t, "README.md")
	if n := strings.Count(readme, "\n"); n > maxLines {
		t.Errorf("README.md has %d lines, more than %d: move the detail to a page under docs/ and link it", n, maxLines)
	}
	for _, cmd := range []string{"make demo", "make test"} {
		if !strings.Contains(readme, "`"+cmd+"`") && !regexp.MustCompile(`(?m)^`+cmd+`\b`).MatchString(readme) {
			t.Errorf("README.md does not state %q, a command a newcomer runs first: say what it does", cmd)
		}
	}
}

// TestReadmeListsFunctionsAndCommands: the README's table of functions has
// a row for every functions/ directory and none for anything else, and its
// layout line for cmd/rotary names every command.
func TestReadmeListsFunctionsAndCommands(t *testing.T) {
	readme := readDoc(t, "README.md")
	dirs, err := os.ReadDir(filepath.Join(root, "functions"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z0-9-]+)` \\|").FindAllStringSubmatch(readme, -1) {
		rows[m[1]] = true
	}
	for _, d := range dirs {
		if d.IsDir() && !rows[d.Name()] {
			t.Errorf("README.md's table of functions has no row for functions/%s: add \"| `%s` | what it does | its page |\"", d.Name(), d.Name())
		}
		delete(rows, d.Name())
	}
	for name := range rows {
		t.Errorf("README.md's table of functions has a row for %s, which is not a directory under functions/: remove the row", name)
	}
	layout := regexp.MustCompile(`(?m)^cmd/rotary/\s+.*$`).FindString(readme)
	if layout == "" {
		t.Fatal("README.md's layout has no line for cmd/rotary/: add one listing its commands")
	}
	cmds, _ := cliCommands(t)
	for name := range cmds {
		if !regexp.MustCompile(`\b` + name + `\b`).MatchString(layout) {
			t.Errorf("README.md's layout line for cmd/rotary/ does not name the command %s: add it", name)
		}
	}
}

// TestTypePagesEnvironmentVariables: every environment variable a credential
// type's page lists in a table is one the code reads (a row of
// docs/operations.md's table, which TestEnvironmentVariablesDocumented
// checks against the code).
func TestTypePagesEnvironmentVariables(t *testing.T) {
	const ops = "docs/operations.md"
	text := readDoc(t, ops)
	known := tableNames(section(t, ops, text, "## Environment variables"))
	// And those the SDK reads, which operations.md names in prose.
	for _, m := range regexp.MustCompile("`(AWS_[A-Z0-9_]+)`").FindAllStringSubmatch(section(t, ops, text, "### Read by the AWS SDK"), -1) {
		known[m[1]] = true
	}
	row := regexp.MustCompile("(?m)^\\| `([A-Z][A-Z0-9_]*[A-Z0-9])` \\|")
	pages := map[string]bool{}
	for _, ty := range registry.All() {
		pages[ty.Doc] = true
	}
	n := 0
	for page := range pages {
		for _, m := range row.FindAllStringSubmatch(readDoc(t, page), -1) {
			n++
			if !known[m[1]] {
				t.Errorf("%s lists the environment variable %s, which is not in %s's table of what the code reads: fix the name, or remove the row if nothing reads it", page, m[1], ops)
			}
		}
	}
	if n < 5 {
		t.Errorf("found only %d environment variables in the type pages' tables: the check proves nothing", n)
	}
}
