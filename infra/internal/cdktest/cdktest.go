// Package cdktest holds what the infra tests share: the Node.js that CDK
// synthesis needs, CDK assertions turned into test errors, and fake
// function packages.
package cdktest

import (
	"archive/zip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// SilenceNodeBanner re-executes the test binary with
// JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 when it is missing: jsii
// captures the environment for node while packages initialize, so setting it
// in a test would be too late. Call it first in TestMain. If the re-exec
// fails, the tests run with Node 20's end-of-life banner.
func SilenceNodeBanner() {
	const key = "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"
	if os.Getenv(key) != "" {
		return
	}
	if err := os.Setenv(key, "20"); err != nil {
		return
	}
	if exe, err := os.Executable(); err == nil {
		_ = syscall.Exec(exe, os.Args, os.Environ())
	}
}

// RequireNode skips the test when Node.js, which jsii runs the CDK in, is
// not installed, and fails it when CI=true.
func RequireNode(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CDK synthesis needs Node.js (jsii): %v", err)
		}
		t.Skipf("CDK synthesis needs Node.js (jsii): %v", err)
	}
}

// Check runs a CDK assertion; the Go bindings panic when one fails, which
// becomes a test error carrying the assertion's message.
func Check(t testing.TB, what string, assertion func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: %v", what, r)
		}
	}()
	assertion()
}

// WriteFakeDist writes, in dir, a <type>.zip holding a dummy `bootstrap`
// for each type, as `make build` would.
func WriteFakeDist(dir string, types ...string) error {
	for _, typ := range types {
		if err := writeZip(filepath.Join(dir, typ+".zip"), typ); err != nil {
			return fmt.Errorf("fake package %s: %w", typ, err)
		}
	}
	return nil
}

func writeZip(path, typ string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	zw := zip.NewWriter(f)
	w, err := zw.Create("bootstrap")
	if err == nil {
		_, err = fmt.Fprintf(w, "#!/bin/sh\necho %s\n", typ)
	}
	if err == nil {
		err = zw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
