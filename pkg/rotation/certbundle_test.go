package rotation

import (
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
)

// TestUseCertBundleOnly: with neither SSL_CERT_FILE nor SSL_CERT_DIR set,
// on a Linux machine with a CA bundle, the roots come from the bundle only
// (SSL_CERT_DIR becomes an empty list) and still verify a public chain's
// root; a setting of the operator's is never overridden.
func TestUseCertBundleOnly(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the bundle shortcut applies on Linux only")
	}
	bundle := ""
	for _, f := range certBundles {
		if _, err := os.Stat(f); err == nil {
			bundle = f
			break
		}
	}
	if bundle == "" {
		t.Skip("no CA bundle on this machine")
	}
	for _, preset := range []string{"SSL_CERT_FILE", "SSL_CERT_DIR"} {
		set := map[string]string{}
		UseCertBundleOnly(func(k string) string {
			if k == preset {
				return "/operator/choice"
			}
			return ""
		}, func(k, v string) error { set[k] = v; return nil })
		if len(set) != 0 {
			t.Errorf("with %s set, it set %v", preset, set)
		}
	}
	set := map[string]string{}
	UseCertBundleOnly(func(string) string { return "" }, func(k, v string) error { set[k] = v; return nil })
	if len(set) != 1 || set["SSL_CERT_DIR"] != ":" {
		t.Fatalf("it set %v, want SSL_CERT_DIR=:", set)
	}
	// Go's loader under that setting: the bundle's roots. The directories
	// may add only files that are not in the bundle (on Debian, the
	// ssl-cert package's self-signed "snakeoil" localhost certificate,
	// which no rotation should trust).
	count := func(env ...string) string {
		cmd := exec.Command("go", "run", "./testdata/countroots")
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("count roots: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	only, _ := strconv.Atoi(count("SSL_CERT_DIR=:"))
	all, _ := strconv.Atoi(count("SSL_CERT_DIR="))
	if only < 1 || only > all || all-only > 2 {
		t.Fatalf("roots from the bundle only: %d; from the bundle and the directories: %d; want nearly the same, more than 0", only, all)
	}
}

// TestUseGCPercent: without GOGC the collector's target becomes
// GCPercent; an operator's GOGC is left alone.
func TestUseGCPercent(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	UseGCPercent(func(k string) string {
		if k == "GOGC" {
			return "200"
		}
		return ""
	})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set, the target became %d, want it left at 100", got)
	}
	UseGCPercent(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != GCPercent {
		t.Errorf("without GOGC, the target is %d, want %d", got, GCPercent)
	}
}
