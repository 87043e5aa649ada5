package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rotary-secrets/rotary/pkg/dbsecret"
	"github.com/rotary-secrets/rotary/pkg/lambdaemu"
	"github.com/rotary-secrets/rotary/pkg/localstack"
	"github.com/rotary-secrets/rotary/pkg/registry"
	"github.com/rotary-secrets/rotary/pkg/smlocal"
	"github.com/rotary-secrets/rotary/pkg/watch"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func runLocal(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	state := fs.String("state", filepath.Join(".rotary", "local-state.json"), "file that keeps the local Secrets Manager's state across restarts")
	addr := fs.String("addr", "127.0.0.1:4597", "loopback address to serve on (port 0 picks a free one)")
	logPath := fs.String("log", "", "file for the functions' output (default: local.log next to the state file)")
	tick := fs.Duration("tick", time.Minute, "how often the scheduler starts rotations that are due and the watch checks every secret")
	only := fs.String("functions", "", "comma-separated functions to run (default: every credential type of the registry, the watch and the credential issuer)")
	concurrency := fs.Int("concurrency", 1, "instances of each function, as Lambda runs several execution environments at once (each an emulator and a function process)")
	servicesFile := fs.String("services", "", "JSON file of the RDS databases and ElastiCache replication groups and users the local RDS and ElastiCache APIs report (docs/cli.md)")
	var env listFlag
	fs.Var(&env, "env", "KEY=VALUE environment for every function, e.g. ROTARY_CA_BUNDLE=/path/ca.pem (repeatable)")
	pf := addPrincipalFlags(fs)
	pos, err := parseArgs(fs, args, out)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: local takes no arguments, got %q", errUsage, pos)
	}
	for _, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("%w: --env %q: write KEY=VALUE", errUsage, kv)
		}
	}
	if *concurrency < 1 || *concurrency > 64 {
		return fmt.Errorf("%w: --concurrency %d: give 1 to 64 instances per function", errUsage, *concurrency)
	}
	principals, err := pf.parse()
	if err != nil {
		return err
	}
	root, err := lambdaemu.ModuleRoot()
	if err != nil {
		return fmt.Errorf("%w; run rotary local from inside the rotary checkout (it builds the functions from source)", err)
	}
	functions, err := localFunctions(root, *only)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*state), 0o700); err != nil {
		return fmt.Errorf("create the state directory: %w", err)
	}
	if *logPath == "" {
		*logPath = filepath.Join(filepath.Dir(*state), "local.log")
	}
	logFile, err := os.OpenFile(*logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open the log file (--log): %w", err)
	}
	defer logFile.Close()

	services, err := loadLocalServices(*servicesFile)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	defer services.close()
	fmt.Fprintf(out, "Building %s and starting the local stack...\n", strings.Join(functions, ", "))
	t0 := time.Now()
	// The watch runs at every tick: its interval is the tick (at least the minute it accepts).
	functionEnv := map[string][]string{registry.Watch.Name: {watch.EnvInterval + "=" + max(*tick, time.Minute).String()}}
	for name, defaults := range expiringDefaults(env) {
		functionEnv[name] = defaults
	}
	stack, err := localstack.Start(ctx, localstack.Config{
		ModuleRoot: root, Functions: functions, Addr: *addr, StateFile: *state, Env: env, Log: logFile, Concurrency: *concurrency,
		FunctionEnv: functionEnv,
		Retry:       smlocal.DefaultRetryPolicy(),
		Principals:  principals,
		Services:    services.handlers(),
	})
	if err != nil {
		return fmt.Errorf("start the local stack: %w", err)
	}
	defer stack.Close()
	fmt.Fprintf(out, "Local stack ready in %s\n", time.Since(t0).Round(time.Millisecond))
	fmt.Fprintf(out, "  endpoint   %s (Secrets Manager, Lambda Invoke, SNS, RDS, ElastiCache and CloudTrail LookupEvents)\n", stack.Endpoint)
	fmt.Fprintf(out, "  services   %s\n", services.summary)
	fmt.Fprintf(out, "  state      %s\n  trail      %s\n  log        %s\n", *state, stack.SM.TrailFile(), *logPath)
	fmt.Fprintf(out, "  operator   %s is %s\n", smlocal.LocalAccessKeyID, localstack.OperatorPrincipalARN())
	for _, p := range principals {
		fmt.Fprintf(out, "  principal  %s is %s\n", p.AccessKeyID, p.ARN)
	}
	for i, fn := range functions {
		label := ""
		if i == 0 {
			label = "functions"
		}
		fmt.Fprintf(out, "  %-10s %s\n", label, localstack.FunctionARN(fn))
	}
	for _, fn := range functions {
		if u, ok := stack.FunctionURL(fn); ok {
			fmt.Fprintf(out, "  %-10s %s (%s, AWS_IAM: sign with a --principal key or the local one)\n", "url", u, fn)
		}
	}
	fmt.Fprintf(out, "\nIn another shell, run these, then use rotary (or the AWS CLI) as against AWS:\n")
	for _, kv := range [][2]string{
		{"AWS_ENDPOINT_URL_SECRETS_MANAGER", stack.Endpoint},
		{"AWS_ENDPOINT_URL_LAMBDA", stack.Endpoint},
		{"AWS_ENDPOINT_URL_CLOUDTRAIL", stack.Endpoint},
		{"AWS_ACCESS_KEY_ID", smlocal.LocalAccessKeyID},
		{"AWS_SECRET_ACCESS_KEY", smlocal.LocalSecretAccessKey},
		{"AWS_REGION", localstack.Region},
	} {
		fmt.Fprintf(out, "export %s=%s\n", kv[0], kv[1])
	}
	watching := slices.Contains(functions, registry.Watch.Name)
	if watching {
		fmt.Fprintf(out, "\nEvery %s the watch checks every secret rotated by a local function (its lines go to the log), then scheduled rotations that are due start. Press Ctrl-C to stop.\n", *tick)
	} else {
		fmt.Fprintf(out, "\nScheduled rotations run every %s when due. Press Ctrl-C to stop.\n", *tick)
	}
	go runTicks(ctx, stack, *tick, watching, logFile)
	<-ctx.Done()
	fmt.Fprintln(out, "Stopping the local stack...")
	if err := stack.Close(); err != nil {
		return fmt.Errorf("stop the local stack: %w", err)
	}
	fmt.Fprintf(out, "Stopped; state kept in %s\n", *state)
	return nil
}

// runTicks is the local stack's schedule: at every tick the watch (when
// the stack runs it) checks every secret with a local rotation function at
// the local Secrets Manager's time, then the rotations that are due start.
// The watch runs first, so that a rotation it sees unfinished had a whole
// tick to finish.
func runTicks(ctx context.Context, stack *localstack.Stack, tick time.Duration, watching bool, log io.Writer) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		if watching {
			if err := localWatch(ctx, stack); err != nil && ctx.Err() == nil {
				fmt.Fprintf(log, "{\"msg\":\"rotary local: the watch did not run\",\"error\":%q}\n", err.Error())
			}
		}
		stack.SM.Tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// localWatch runs the watch once over the stack's secrets.
func localWatch(ctx context.Context, stack *localstack.Stack) error {
	ev, err := stack.WatchEvent(ctx)
	if err != nil {
		return err
	}
	_, err = stack.RunWatch(ctx, ev)
	return err
}

// expiringTypes are the functions that need a credential lifetime to start.
var expiringTypes = []string{"postgres-expiring-user", "mysql-expiring-user"}

// expiringDefaults gives the expiring-user functions the local stack's
// lifetime settings, unless --env sets them: a day's TTL, and a minimum of
// one second (instead of the 5h a deployed function insists on), so that
// --env ROTARY_CREDENTIAL_TTL=2m shows a credential expiring within
// minutes (docs/expiring-users.md).
func expiringDefaults(env []string) map[string][]string {
	set := map[string]bool{}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	var defaults []string
	for _, kv := range [][2]string{{dbsecret.EnvCredentialTTL, "24h"}, {dbsecret.EnvCredentialMinTTL, "1s"}} {
		if !set[kv[0]] {
			defaults = append(defaults, kv[0]+"="+kv[1])
		}
	}
	out := map[string][]string{}
	for _, name := range expiringTypes {
		out[name] = defaults
	}
	return out
}

// localFunctions lists the functions to run: every credential type of the
// registry and its other functions (the watch, the issuer), or those named
// by only.
func localFunctions(root, only string) ([]string, error) {
	all := registry.Names()
	for _, fn := range registry.Functions() {
		all = append(all, fn.Name)
	}
	for _, name := range all {
		if _, err := os.Stat(filepath.Join(root, "functions", name, "main.go")); err != nil {
			return nil, fmt.Errorf("the registry names function %s, but %s has no functions/%s/main.go: %w", name, root, name, err)
		}
	}
	sort.Strings(all)
	if only == "" {
		return all, nil
	}
	var picked []string
	for _, name := range strings.Split(only, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		_, isType := registry.Lookup(name)
		if _, isFunction := registry.LookupFunction(name); !isType && !isFunction {
			return nil, fmt.Errorf("%w: --functions: no function %q; the functions are %s", errUsage, name, strings.Join(all, ", "))
		}
		picked = append(picked, name)
	}
	return picked, nil
}
