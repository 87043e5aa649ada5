package registry_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rotary-secrets/rotary/pkg/registry"
)

// TestEveryFunctionIsRegistered: functions/<name>/main.go exists for every
// registered type and for the watch, and every function directory is a
// registered type or the watch (which is not a credential type).
func TestEveryFunctionIsRegistered(t *testing.T) {
	dirs, err := os.ReadDir("../../functions")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, d := range dirs {
		if d.IsDir() {
			found = append(found, d.Name())
		}
	}
	for _, ty := range registry.All() {
		if _, err := os.Stat(filepath.Join("../../functions", ty.Name, "main.go")); err != nil {
			t.Errorf("registered type %s has no functions/%s/main.go", ty.Name, ty.Name)
		}
		if ty.Database() != (ty.Port != 0) {
			t.Errorf("%s: a database type needs its default port, and only a database type has one", ty.Name)
		}
		if ty.RDSMasterPassword && (ty.Master || ty.RDSRead) {
			t.Errorf("%s: a type that sets a master password through the RDS API reads no master secret", ty.Name)
		}
		if ty.ElastiCacheUser && (ty.Family != registry.FamilyRedis || ty.Master || ty.RDSRead || ty.RDSMasterPassword) {
			t.Errorf("%s: a type that changes an ElastiCache user through the ElastiCache API is a Redis type with no master secret and no RDS permissions", ty.Name)
		}
		if ty.OptionalMaster && ty.Master {
			t.Errorf("%s: a master secret is either required (Master) or optional (OptionalMaster), not both", ty.Name)
		}
		if (ty.ExpiringUsers || ty.BatchRead) && !ty.Master {
			t.Errorf("%s: expiring users and batch reads are for types with a master secret", ty.Name)
		}
		if ty.RDSRead && !ty.Master {
			t.Errorf("%s: RDS lookups are for master secrets only", ty.Name)
		}
	}
	for _, fn := range registry.Functions() {
		if _, err := os.Stat(filepath.Join("../../functions", fn.Name, "main.go")); err != nil {
			t.Errorf("registry.Functions names functions/%s/main.go, which is missing", fn.Name)
		}
		if _, ok := registry.Lookup(fn.Name); ok {
			t.Errorf("%s is registered as a credential type too; it rotates nothing", fn.Name)
		}
	}
	for _, name := range found {
		_, isType := registry.Lookup(name)
		_, isFunction := registry.LookupFunction(name)
		if !isType && !isFunction {
			t.Errorf("functions/%s is not in the registry (pkg/registry): add its entry", name)
		}
	}
	if !slices.Equal(registry.Names(), func() []string {
		var n []string
		for _, ty := range registry.All() {
			n = append(n, ty.Name)
		}
		return n
	}()) {
		t.Error("Names and All disagree")
	}
}
