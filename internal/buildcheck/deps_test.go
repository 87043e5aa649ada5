package buildcheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// deps lists the packages pkg links, itself included.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// TestProductionBinariesDoNotLinkTesting: no function and not the operator
// CLI links the testing package (test fixtures live under internal/ with
// their testing helpers in packages of their own).
func TestProductionBinariesDoNotLinkTesting(t *testing.T) {
	out, err := exec.Command("go", "list", "../../functions/...", "../../cmd/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	mains := strings.Fields(string(out))
	if len(mains) < 2 {
		t.Fatalf("found only %v: the check would prove nothing", mains)
	}
	for _, m := range mains {
		d := deps(t, m)
		if slices.Contains(d, "testing") {
			var via []string
			for _, p := range d {
				if strings.HasPrefix(p, "github.com/rotary-secrets/rotary/") {
					via = append(via, p)
				}
			}
			t.Errorf("%s links the testing package; it links these packages of ours: %v", m, via)
		}
	}
}

// TestLocalSecretsManagerIsNotTheEngine: pkg/smlocal, the local Secrets
// Manager, shares only leaf packages with the engine: it imports no part of
// pkg/rotation, so it does not link the Lambda runtime either.
func TestLocalSecretsManagerIsNotTheEngine(t *testing.T) {
	for _, p := range deps(t, "github.com/rotary-secrets/rotary/pkg/smlocal") {
		if p == "github.com/rotary-secrets/rotary/pkg/rotation" || strings.HasPrefix(p, "github.com/aws/aws-lambda-go") {
			t.Errorf("pkg/smlocal links %s", p)
		}
	}
}

// TestEngineNamesNoDatabaseField: the engine (pkg/rotation, outside its
// tests) knows no field of any credential type's secret; a type declares
// its public fields itself (rotation.PublicFielder).
func TestEngineNamesNoDatabaseField(t *testing.T) {
	files, err := filepath.Glob("../../pkg/rotation/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no engine sources found (%v)", err)
	}
	fields := []string{"engine", "host", "port", "username", "dbname", "masterarn", "ssl", "dbInstanceIdentifier", "dbClusterIdentifier", "proxyHost"}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, field := range fields {
			if strings.Contains(string(b), `"`+field+`"`) {
				t.Errorf("%s names the secret field %q: the engine must not know a credential type's fields", filepath.Base(f), field)
			}
		}
	}
}
