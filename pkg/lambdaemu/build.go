package lambdaemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// emulatorTool is the tool name go.mod pins for the emulator.
const emulatorTool = "aws-lambda-rie"

// emulatorPaths caches EmulatorPath's answer per module root for the life of
// the process, so that tests starting many functions ask the go command once.
var emulatorPaths struct {
	sync.Mutex
	byRoot map[string]string
}

// ModuleRoot returns the directory of the nearest go.mod at or above the
// working directory (tests run in their package's directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	for d := dir; ; {
		if fi, err := os.Stat(filepath.Join(d, "go.mod")); err == nil && !fi.IsDir() {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("find module root: no go.mod in %s or any parent; run from inside the rotary module", dir)
		}
		d = parent
	}
}

// EmulatorPath returns the path of the AWS Lambda Runtime Interface Emulator
// binary that moduleRoot's go.mod pins as a tool, building it if needed
// (`go tool -n aws-lambda-rie`, which leaves it in the Go build cache). The
// answer is cached for the life of the process.
func EmulatorPath(ctx context.Context, moduleRoot string) (string, error) {
	root, err := filepath.Abs(moduleRoot)
	if err != nil {
		return "", fmt.Errorf("emulator path: module root %q: %w", moduleRoot, err)
	}
	emulatorPaths.Lock()
	defer emulatorPaths.Unlock()
	if p, ok := emulatorPaths.byRoot[root]; ok {
		return p, nil
	}
	out, err := runGo(ctx, root, nil, "tool", "-n", emulatorTool)
	if err != nil {
		return "", fmt.Errorf("emulator path: build the %s tool pinned in %s/go.mod (is the tool line there and go.sum complete?): %w",
			emulatorTool, root, err)
	}
	p := strings.TrimSpace(out)
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		return "", fmt.Errorf("emulator path: go tool -n %s printed %q, which is not a file", emulatorTool, p)
	}
	if emulatorPaths.byRoot == nil {
		emulatorPaths.byRoot = make(map[string]string)
	}
	emulatorPaths.byRoot[root] = p
	return p, nil
}

// BuildFunction builds the function ./functions/<pkg> of the module at
// moduleRoot for the host (it runs locally, under the emulator), with
// `-tags lambda.norpc -trimpath` and CGO_ENABLED=0, into outDir/bootstrap,
// and returns that path. outDir is created if missing.
func BuildFunction(ctx context.Context, moduleRoot, pkg, outDir string) (string, error) {
	if pkg == "" || strings.ContainsAny(pkg, `/\`) || pkg == "." || pkg == ".." {
		return "", fmt.Errorf("build function: pkg %q must be the name of one directory under functions/, like \"postgres\"", pkg)
	}
	return buildBootstrap(ctx, moduleRoot, "./functions/"+pkg, outDir)
}

// buildBootstrap builds the Go main package pkgPath (relative to moduleRoot,
// "./..." form, or an import path) as outDir/bootstrap for the host.
func buildBootstrap(ctx context.Context, moduleRoot, pkgPath, outDir string) (string, error) {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", fmt.Errorf("build %s: create output directory: %w", pkgPath, err)
	}
	out, err := filepath.Abs(filepath.Join(outDir, "bootstrap"))
	if err != nil {
		return "", fmt.Errorf("build %s: output path: %w", pkgPath, err)
	}
	env := []string{"CGO_ENABLED=0", "GOOS=" + runtime.GOOS, "GOARCH=" + runtime.GOARCH}
	if _, err := runGo(ctx, moduleRoot, env, "build", "-tags", "lambda.norpc", "-trimpath", "-o", out, pkgPath); err != nil {
		return "", fmt.Errorf("build %s: %w", pkgPath, err)
	}
	return out, nil
}

// runGo runs the go command in dir with extra environment and returns its
// standard output; on failure the error carries its standard error.
func runGo(ctx context.Context, dir string, extraEnv []string, args ...string) (string, error) {
	goBin, err := goCommand()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 4000 {
			msg = "..." + msg[len(msg)-4000:]
		}
		return "", fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}

// goCommand finds the go command: on PATH, else in $GOROOT/bin.
func goCommand() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("find the go command: not on PATH and not in GOROOT/bin; install Go or add it to PATH")
}
