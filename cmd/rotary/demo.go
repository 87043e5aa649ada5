package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5"

	"github.com/rotary-secrets/rotary/internal/pgcluster"
	"github.com/rotary-secrets/rotary/pkg/localstack"
)

// demoSubject is what the demo rotates: a PostgreSQL user that really
// checks passwords, or a random-secret API key when no PostgreSQL is there.
type demoSubject struct {
	function, secretName, initial string
	what                          string // one line: what rotates, what is kept
	// rotated proves a rotation from replaced to current.
	rotated func(ctx context.Context, replaced, current string) (string, error)
	// works and refused prove, for a database, that a value logs in or not.
	works, refused func(ctx context.Context, value string) error
}

func runDemo(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	rotations := fs.Int("rotations", 3, "how many rotations to run")
	kind := fs.String("type", "auto", "postgres (a throwaway PostgreSQL cluster), random (the random-secret type) or auto (postgres when its binaries are there)")
	if _, err := parseArgs(fs, args, out); err != nil {
		return err
	}
	if *kind != "auto" && *kind != "postgres" && *kind != "random" {
		return fmt.Errorf("%w: --type %q: use postgres, random or auto", errUsage, *kind)
	}
	if *rotations < 1 {
		return fmt.Errorf("%w: --rotations must be at least 1 (the rollback needs an earlier credential)", errUsage)
	}
	t0 := time.Now()
	fmt.Fprintln(out, "Rotary demo")
	var subject *demoSubject
	var env []string
	if *kind != "random" {
		fmt.Fprintln(out, "Starting a throwaway PostgreSQL cluster (scram-sha-256 over verified TLS: it checks every password)...")
		c, err := pgcluster.Start(ctx, pgcluster.Options{TLS: true})
		switch {
		case err != nil && *kind == "postgres":
			return fmt.Errorf("start PostgreSQL: %w", err)
		case err != nil:
			fmt.Fprintf(out, "  no PostgreSQL here (%v)\n  so the demo runs the same story on the random-secret type instead.\n\n", err)
		default:
			defer c.Close()
			fmt.Fprintf(out, "  PostgreSQL 15 on %s:%d\n", c.Host, c.Port)
			if subject, err = postgresSubject(ctx, c); err != nil {
				return err
			}
			env = []string{"ROTARY_CA_BUNDLE=" + c.CAFile}
		}
	}
	if subject == nil {
		subject = randomSubject()
	}
	fmt.Fprintf(out, "Building the %s function and starting the local stack...\n", subject.function)
	stack, err := localstack.Start(ctx, localstack.Config{
		Functions:   []string{subject.function},
		Env:         env,
		FunctionEnv: map[string][]string{"random-secret": {"ROTATE_FIELDS=apiKey:40:alnum,signingKey:64:hex"}},
		Principals:  demoPrincipals,
	})
	if err != nil {
		return err
	}
	defer stack.Close()
	fmt.Fprintf(out, "  local stack            %s (Secrets Manager and Lambda Invoke)\n", stack.Endpoint)
	fmt.Fprintf(out, "  rotation function      %s (functions/%s under the Lambda Runtime Interface Emulator)\n", localstack.FunctionARN(subject.function), subject.function)
	fmt.Fprintf(out, "  ready in               %s\n\n", time.Since(t0).Round(time.Millisecond))

	sm := stack.Client
	name := fmt.Sprintf("%s-%d", subject.secretName, time.Now().Unix())
	created, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(subject.initial)})
	if err != nil {
		return fmt.Errorf("create the demo secret: %w", err)
	}
	arn := aws.ToString(created.ARN)
	fmt.Fprintf(out, "Created secret %s\n  %s\n  %s\n", name, arn, subject.what)
	if err := printVersions(ctx, out, sm, arn); err != nil {
		return err
	}
	cli := func(args ...string) error {
		fmt.Fprintf(out, "\n$ rotary %s\n", strings.Join(args, " "))
		cmd := commands[args[0]]
		return cmd(ctx, append(args[1:], "--endpoint", stack.Endpoint), out)
	}

	valid := []string{subject.initial} // every value that logged in at some point
	for i := 1; i <= *rotations; i++ {
		_, before, err := current(ctx, sm, arn)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\nRotation %d of %d", i, *rotations)
		args := []string{"rotate", name, "--wait"}
		if i == 1 {
			args = append(args, "--function", localstack.FunctionARN(subject.function))
		}
		if err := cli(args...); err != nil {
			return fmt.Errorf("rotation %d: %w", i, err)
		}
		_, after, err := current(ctx, sm, arn)
		if err != nil {
			return err
		}
		proof, err := subject.rotated(ctx, before, after)
		if err != nil {
			return fmt.Errorf("rotation %d: %w", i, err)
		}
		if err := noPending(ctx, sm, arn); err != nil {
			return fmt.Errorf("rotation %d: %w", i, err)
		}
		valid = append(valid, after)
		fmt.Fprintf(out, "  checked: %s, AWSPENDING gone\n", proof)
		if err := printVersions(ctx, out, sm, arn); err != nil {
			return err
		}
	}

	// Rollback: the credential from before the last rotation comes back.
	_, replaced, err := current(ctx, sm, arn)
	if err != nil {
		return err
	}
	earlier := valid[len(valid)-2]
	if err := cli("rollback", name, "--yes"); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	_, now, err := current(ctx, sm, arn)
	if err != nil {
		return err
	}
	if now != earlier {
		return fmt.Errorf("rollback: AWSCURRENT holds %s, not the earlier value %s", fingerprint(now), fingerprint(earlier))
	}
	proof := "AWSCURRENT holds the earlier value again, as a new version"
	if subject.works != nil {
		if err := subject.works(ctx, earlier); err != nil {
			return fmt.Errorf("rollback: the earlier password does not log in: %w", err)
		}
		if err := subject.refused(ctx, replaced); err != nil {
			return fmt.Errorf("rollback: %w", err)
		}
		proof = "the earlier password logs in again and AWSCURRENT holds it (a new version); the replaced one is refused"
	}
	fmt.Fprintf(out, "  checked: %s\n", proof)
	if err := printVersions(ctx, out, sm, arn); err != nil {
		return err
	}

	// Revoke: after it, nothing that was ever valid logs in but AWSCURRENT.
	if err := cli("revoke", name, "--yes"); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	_, cur, err := current(ctx, sm, arn)
	if err != nil {
		return err
	}
	proof = "AWSCURRENT is a new value; random-secret has nothing downstream to invalidate"
	if subject.works != nil {
		if err := subject.works(ctx, cur); err != nil {
			return fmt.Errorf("revoke: AWSCURRENT does not log in: %w", err)
		}
		for _, v := range valid {
			if err := subject.refused(ctx, v); err != nil {
				return fmt.Errorf("revoke: %w", err)
			}
		}
		proof = fmt.Sprintf("none of the %d passwords used before logs in; AWSCURRENT does", len(valid))
	}
	fmt.Fprintf(out, "  checked: %s\n", proof)

	// Who read it: the application, and someone who should not have.
	if err := demoIncident(ctx, out, stack, subject, name, arn, append(valid, cur), cli); err != nil {
		return err
	}
	if err := cli("history", name); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nDone in %s: %d rotations, a rollback, a revoke, an audit and an incident; %d Secrets Manager calls in all. Values are shown as sha256 fingerprints, never in full.\n",
		time.Since(t0).Round(time.Millisecond), *rotations, sumCalls(stack.SM.Calls()))
	return nil
}

func randomSubject() *demoSubject {
	return &demoSubject{
		function: "random-secret", secretName: "demo/payments-api",
		initial: `{"apiKey":"` + strings.Repeat("0", 40) + `","signingKey":"` + strings.Repeat("0", 64) + `","clientId":"payments-web","endpoint":"https://api.example.com"}`,
		what:    "rotates apiKey (40 alphanumerics) and signingKey (64 hex digits); keeps clientId and endpoint",
		rotated: func(_ context.Context, before, after string) (string, error) {
			return "apiKey and signingKey are new, clientId and endpoint kept", proveRotated(before, after)
		},
	}
}

// postgresSubject creates the demo's user on the throwaway cluster.
func postgresSubject(ctx context.Context, c *pgcluster.Cluster) (*demoSubject, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	user, pw := "orders_app", "Demo-"+hex.EncodeToString(b[:])
	if err := c.CreateRole(ctx, user, pw, ""); err != nil {
		return nil, fmt.Errorf("create the demo user: %w", err)
	}
	initial, _ := json.Marshal(map[string]any{"engine": "postgres", "host": c.Host, "port": c.Port, "username": user, "password": pw, "dbname": "postgres", "team": "orders"})
	login := func(ctx context.Context, value string) error { return pgLogin(ctx, c, value) }
	refused := func(ctx context.Context, value string) error {
		if login(ctx, value) == nil {
			return fmt.Errorf("the password %s still logs in", fingerprint(value))
		}
		return nil
	}
	return &demoSubject{
		function: "postgres-single-user", secretName: "demo/orders-db", initial: string(initial),
		what: fmt.Sprintf("PostgreSQL user %s on %s:%d; the function changes its password; every other field is kept", user, c.Host, c.Port),
		rotated: func(ctx context.Context, before, after string) (string, error) {
			if err := login(ctx, after); err != nil {
				return "", fmt.Errorf("AWSCURRENT does not log in: %w", err)
			}
			if err := refused(ctx, before); err != nil {
				return "", err
			}
			return "AWSCURRENT logs in, the replaced password is refused", nil
		},
		works: login, refused: refused,
	}, nil
}

// pgLogin logs in to the cluster's postgres database with the username and
// password of a secret value, over verified TLS, and runs a query, all
// within 10 seconds.
func pgLogin(ctx context.Context, c *pgcluster.Cluster, value string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var s struct{ Username, Password string }
	if err := json.Unmarshal([]byte(value), &s); err != nil {
		return fmt.Errorf("the secret value is not a JSON object with username and password: %w", err)
	}
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database = c.Host, uint16(c.Port), s.Username, s.Password, "postgres"
	cfg.TLSConfig, cfg.Fallbacks = c.TLSConfig(c.Host), nil
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

func noPending(ctx context.Context, sm *secretsmanager.Client, arn string) error {
	d, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	if err != nil {
		return fmt.Errorf("describe secret: %w", err)
	}
	for v, labels := range d.VersionIdsToStages {
		for _, l := range labels {
			if l == labelPending {
				return fmt.Errorf("AWSPENDING is still on version %s", v)
			}
		}
	}
	return nil
}

// current returns the AWSCURRENT version id and value.
func current(ctx context.Context, sm *secretsmanager.Client, arn string) (string, string, error) {
	v, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return "", "", fmt.Errorf("read AWSCURRENT: %w", err)
	}
	return aws.ToString(v.VersionId), aws.ToString(v.SecretString), nil
}

// proveRotated checks a random-secret rotation: the rotated fields changed,
// the others were kept.
func proveRotated(before, after string) error {
	var b, a map[string]any
	if json.Unmarshal([]byte(before), &b) != nil || json.Unmarshal([]byte(after), &a) != nil {
		return errors.New("a version is not a JSON object")
	}
	for _, f := range []string{"apiKey", "signingKey"} {
		if b[f] == a[f] {
			return fmt.Errorf("field %s did not change", f)
		}
	}
	for _, f := range []string{"clientId", "endpoint"} {
		if b[f] != a[f] {
			return fmt.Errorf("field %s was not kept", f)
		}
	}
	return nil
}

func printVersions(ctx context.Context, out io.Writer, sm *secretsmanager.Client, arn string) error {
	vs, err := sm.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(arn), IncludeDeprecated: aws.Bool(true)})
	if err != nil {
		return fmt.Errorf("list versions: %w", err)
	}
	sort.Slice(vs.Versions, func(i, j int) bool {
		return aws.ToTime(vs.Versions[i].CreatedDate).After(aws.ToTime(vs.Versions[j].CreatedDate))
	})
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  VERSION\tLABELS\tVALUE")
	for _, v := range vs.Versions {
		val, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionId: v.VersionId})
		fp := "(no value)"
		if err == nil {
			fp = fingerprint(aws.ToString(val.SecretString))
		}
		labels := strings.Join(v.VersionStages, ",")
		if labels == "" {
			labels = "(deprecated)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", aws.ToString(v.VersionId), labels, fp)
	}
	return tw.Flush()
}

func sumCalls(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
