package buildcheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rotary-secrets/rotary/pkg/registry"
)

const module = "github.com/rotary-secrets/rotary/"

// deps lists the packages pkg links, itself included, as the release build
// makes the functions (make build: linux/arm64, -tags lambda.norpc).
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-tags", "lambda.norpc", pkg)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// ours lists the packages of this module that pkg links, pkg excluded.
func ours(t *testing.T, pkg string) []string {
	var out []string
	for _, p := range deps(t, pkg) {
		if strings.HasPrefix(p, module) && p != pkg {
			out = append(out, strings.TrimPrefix(p, module))
		}
	}
	return out
}

// TestEngineImportsOnlyLeafPackages: the engine links, of this module, only
// the leaf packages, and they link only each other (docs/architecture.md).
func TestEngineImportsOnlyLeafPackages(t *testing.T) {
	leaves := []string{"pkg/password", "pkg/recovery", "pkg/jsontext", "pkg/envflag", "pkg/emf"}
	got := ours(t, module+"pkg/rotation")
	if len(got) == 0 {
		t.Fatal("pkg/rotation links no package of this module: the check proves nothing")
	}
	for _, p := range got {
		if !slices.Contains(leaves, p) {
			t.Errorf("pkg/rotation links %s, which is not a leaf package (%v): move what it needs into one, or the dependency the other way", p, leaves)
		}
	}
	for _, leaf := range leaves {
		for _, p := range ours(t, module+leaf) {
			if !slices.Contains(leaves, p) {
				t.Errorf("the leaf package %s links %s: a leaf imports only other leaves of Rotary", leaf, p)
			}
		}
	}
}

// TestRegistryImportsNothing: pkg/registry links only the standard
// library, so every layer, the CDK app's module included, may read it.
func TestRegistryImportsNothing(t *testing.T) {
	for _, p := range deps(t, module+"pkg/registry") {
		if first, _, _ := strings.Cut(p, "/"); strings.Contains(first, ".") && p != module+"pkg/registry" {
			t.Errorf("pkg/registry links %s; it may import only the standard library", p)
		}
	}
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

// TestOnlyMultiUserFunctionsLinkRDS: the RDS client costs about 2 MB of
// peak memory and 1.7 ms of every cold start (its package init), and only
// RDS-managed master secrets need it: the functions whose master may be one
// (the registry's RDSRead: alternating and expiring users) link it through
// pkg/dbsecret/rdsendpoint (so their main sets NewRDS, without which such
// master secrets are refused, though the CDK app grants the RDS read), and
// the single-user functions do not link it at all.
func TestOnlyMultiUserFunctionsLinkRDS(t *testing.T) {
	const rds = "github.com/aws/aws-sdk-go-v2/service/rds"
	want := map[string]bool{"postgres-single-user": false, "mysql-single-user": false, "random-secret": false}
	for _, typ := range registry.All() {
		if typ.RDSRead {
			want[typ.Name] = true
		}
	}
	if len(want) < 5 {
		t.Fatalf("the registry names %d RDSRead types, want at least the two alternating-users ones", len(want)-3)
	}
	for fn, want := range want {
		d := deps(t, module+"functions/"+fn)
		if got := slices.Contains(d, rds); got != want {
			t.Errorf("functions/%s links the RDS client: %v, want %v", fn, got, want)
		}
		if got := slices.Contains(d, module+"pkg/dbsecret/rdsendpoint"); got != want {
			t.Errorf("functions/%s links pkg/dbsecret/rdsendpoint: %v, want %v (it sets the configuration's NewRDS)", fn, got, want)
		}
	}
}

// TestAWSClientsWithoutSchemas: from service/rds v1.133.0 and
// service/elasticache v1.65.0 (both 2026-11-10) the SDK (de)serializes
// these services with schemas that the package init builds for every
// shape of the service, whether or not a call uses it: about 3,900 for
// RDS, 1.3 MB of heap held for the life of the process, 0.9 MB more
// binary, and about 1,700 for ElastiCache. go.mod keeps the releases just
// before (rds v1.132.2, elasticache v1.64.5), which make the same calls
// the same way, so that the functions that link them stay under their
// peak-memory budget (docs/performance.md). An upgrade fails this test:
// measure the peak (BenchmarkPeakRSSServiceRotation and
// BenchmarkPeakRSSDatabaseRotation in internal/coldstart) and decide then.
func TestAWSClientsWithoutSchemas(t *testing.T) {
	const sdk = "github.com/aws/aws-sdk-go-v2/service/"
	for fn, svc := range map[string]string{"rds-master": "rds", "postgres-multi-user": "rds", "mysql-expiring-user": "rds", "elasticache-user": "elasticache", "redis-acl": "elasticache"} {
		d := deps(t, module+"functions/"+fn)
		if !slices.Contains(d, sdk+svc) {
			t.Errorf("functions/%s does not link %s%s: the check proves nothing for it", fn, sdk, svc)
		}
		if slices.Contains(d, sdk+svc+"/schemas") {
			t.Errorf("functions/%s links %s%s/schemas: that SDK release builds every shape's schema at start-up (see this test's comment)", fn, sdk, svc)
		}
	}
}
