// Command rotary is Rotary's operator tool: it rotates, inspects, rolls back,
// revokes and unsticks secrets in AWS Secrets Manager or on the local stack,
// runs the local stack, and runs the demo.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: rotary <command> [flags] [arguments]

commands:
  status   [SECRET...] [--all] [--json]   rotation state, schedule, age; flags overdue, stuck and locked-out secrets
           [--verify | --no-probe]        probe every secret's credentials, or none (default: stuck ones)
  probe    SECRET [--version ID] [--json] which versions' credentials log in (through the rotation function)
  history  SECRET [--json]                every version with labels and dates (never values)
  rotate   SECRET [--wait] [--function ARN]  start a rotation; with --wait follow it step by step
  rollback SECRET [--to VERSION] [--yes]  make an earlier credential current again, downstream too
  revoke   SECRET [--yes]                 rotate, then invalidate every credential but the new one
           --leases ROLE [--yes]          drop every user the credential issuer handed out for ROLE, ending their sessions
  issue    ROLE [--ttl 1h] [--url URL]    get your own short-lived database user from the credential issuer (prints its password)
  leases   [ROLE] [--json]                the live users the credential issuer handed out, per role, and their expiry
  unstick  SECRET [--force] [--min-age D]  heal a failed rotation or a lockout from what the probes show
  audit    SECRET [--since 7d] [--until T] [--readers ARN,...] [--json]
                                          who read or changed the secret (CloudTrail); flags reads by non-readers
  incident SECRET [--yes] [--out DIR]     write an evidence bundle, then revoke, then record what was invalidated
  local    [--state FILE] [--addr ADDR]   run the local stack (Secrets Manager + functions) until Ctrl-C
  demo                                    start the local stack and show rotations, rollback and revoke

flags every AWS command takes:
  --region REGION     AWS region (default: the SDK's, from AWS_REGION or the profile)
  --profile NAME      shared config profile
  --endpoint URL      Secrets Manager, Lambda and CloudTrail endpoint, such as the local stack's
                      (or export the lines that 'rotary local' prints)

Run 'rotary <command> -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks an error caused by how rotary was called.
var errUsage = errors.New("usage")

type command func(ctx context.Context, args []string, stdout io.Writer) error

var commands map[string]command

func init() {
	// Set in init: the demo runs the other commands through this table.
	commands = map[string]command{
		"demo":     runDemo,
		"status":   runStatus,
		"probe":    runProbe,
		"history":  runHistory,
		"rotate":   runRotate,
		"rollback": runRollback,
		"revoke":   runRevoke,
		"unstick":  runUnstick,
		"local":    runLocal,
		"issue":    runIssue,
		"leases":   runLeases,
		"audit":    runAudit,
		"incident": runIncident,
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "rotary: unknown command %q\n%s", args[0], usage)
		return 2
	}
	err := cmd(ctx, args[1:], stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}

	if err != nil {
		fmt.Fprintf(stderr, "rotary %s: %v\n", args[0], err)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

// parseArgs parses flags that may come before, between or after the
// positional arguments ("rotary rotate my/secret --wait"), and returns the
// positional ones. Help output goes to stdout.
func parseArgs(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(stdout, "usage: rotary %s\n\nflags:\n", fs.Name())
				fs.SetOutput(stdout)
				fs.PrintDefaults()
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v; run 'rotary %s -h'", errUsage, err, fs.Name())
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// openSecret is how every command about one secret starts: it parses the
// flags and exactly one SECRET argument, runs check (flag validation; may be
// nil) before anything touches the network, connects and describes the
// secret.
func openSecret(ctx context.Context, fs *flag.FlagSet, af *awsFlags, args []string, stdout io.Writer, check func() error) (*clients, *secretState, error) {
	pos, err := parseArgs(fs, args, stdout)
	if err != nil {
		return nil, nil, err
	}
	return openParsed(ctx, fs, af, pos, check)
}

// openParsed is openSecret after the flags were parsed into pos.
func openParsed(ctx context.Context, fs *flag.FlagSet, af *awsFlags, pos []string, check func() error) (*clients, *secretState, error) {
	if len(pos) != 1 {
		return nil, nil, fmt.Errorf("%w: give exactly one SECRET (name or ARN), got %d arguments; run 'rotary %s -h'", errUsage, len(pos), fs.Name())
	}
	if check != nil {
		if err := check(); err != nil {
			return nil, nil, err
		}
	}
	c, err := af.connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	s, err := c.describe(ctx, pos[0])
	if err != nil {
		return nil, nil, err
	}
	return c, s, nil
}
