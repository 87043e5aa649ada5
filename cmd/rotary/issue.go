package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/rotary-secrets/rotary/pkg/issuer"
	"github.com/rotary-secrets/rotary/pkg/registry"
)

// envIssuerURL names the issuer's function URL when --url is not given.
const envIssuerURL = "ROTARY_ISSUER_URL"

// defaultIssuer is the issuer function's name in the local stack (and the
// name to give it on AWS for the defaults to work).
var defaultIssuer = "rotary-" + registry.Issuer.Name

// issuerFlags are the flags of the commands that talk to the issuer.
type issuerFlags struct {
	function string
}

func addIssuerFlags(fs *flag.FlagSet) *issuerFlags {
	f := &issuerFlags{}
	fs.StringVar(&f.function, "issuer", defaultIssuer, "name or ARN of the credential-issuer function")
	return f
}

// runIssue asks the issuer's function URL for a credential, signing the
// request as the caller (the AWS credentials of the usual chain), and prints
// it to stdout: the one place rotary prints a password, because the caller
// asked for it. Nothing of it goes to stderr or a log.
func runIssue(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("issue", flag.ContinueOnError)
	af := addAWSFlags(fs)
	inf := addIssuerFlags(fs)
	ttl := fs.String("ttl", "", "the credential's lifetime, a Go duration such as 15m or 1h (default: the role's)")
	urlFlag := fs.String("url", "", "the issuer's function URL (default: $"+envIssuerURL+", else asked of Lambda with GetFunctionUrlConfig)")
	format := fs.String("format", "json", "json, or env: shell lines (PGHOST=... or MYSQL_HOST=...) to eval")
	pos, err := parseArgs(fs, args, out)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: give exactly one ROLE, got %d arguments; run 'rotary issue -h'", errUsage, len(pos))
	}
	if *format != "json" && *format != "env" {
		return fmt.Errorf("%w: --format %q: use json or env", errUsage, *format)
	}
	if *ttl != "" {
		if d, err := time.ParseDuration(*ttl); err != nil || d <= 0 {
			return fmt.Errorf("%w: --ttl %q: give a positive Go duration such as 15m or 1h", errUsage, *ttl)
		}
	}
	c, err := af.connect(ctx)
	if err != nil {
		return err
	}
	target := *urlFlag
	if target == "" {
		target = os.Getenv(envIssuerURL)
	}
	if target == "" {
		u, err := c.lambda.GetFunctionUrlConfig(ctx, &lambda.GetFunctionUrlConfigInput{FunctionName: aws.String(inf.function)})
		if err != nil {
			return fmt.Errorf("find the function URL of %s: %w; pass --url (or set %s), or --issuer with the function's name", inf.function, err, envIssuerURL)
		}
		target = aws.ToString(u.FunctionUrl)
	}
	cred, err := c.issue(ctx, target, issuer.Request{Role: pos[0], TTL: *ttl})
	if err != nil {
		return err
	}
	if *format == "env" {
		_, err = io.WriteString(out, envLines(cred))
		return err
	}
	b, err := json.MarshalIndent(cred, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", b)
	return err
}

// issue POSTs the request to the function URL, signed with SigV4 for the
// service "lambda" as AWS_IAM auth demands.
func (c *clients) issue(ctx context.Context, target string, req issuer.Request) (*issuer.Credential, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%w: the issuer URL %q is not an http(s) URL", errUsage, target)
	}
	if u.Scheme == "http" && !isLoopback(target) {
		return nil, fmt.Errorf("%w: the issuer URL %q is plain http on a host that is not loopback; a function URL is https", errUsage, target)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	if c.cfg.Credentials == nil {
		return nil, errors.New("no AWS credentials to sign the request with: configure them (--profile, AWS_ACCESS_KEY_ID, SSO) as for the AWS CLI")
	}
	creds, err := c.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("get your AWS credentials to sign the request: %w; check --profile and your AWS configuration", err)
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, creds, hr, hex.EncodeToString(sum[:]), "lambda", urlRegion(u, c.cfg.Region), time.Now()); err != nil {
		return nil, fmt.Errorf("sign the request: %w", err)
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("call the issuer at %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read the issuer's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message  string `json:"message"`
			Message2 string `json:"Message"`
		}
		_ = json.Unmarshal(data, &e)
		msg := e.Message
		if msg == "" {
			msg = e.Message2
		}
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		hint := ""
		if resp.StatusCode == http.StatusForbidden {
			hint = "; AWS refused the signed request: check the credentials you sign with (--profile), and that your policy allows lambda:InvokeFunctionUrl and lambda:InvokeFunction (with lambda:InvokedViaFunctionUrl) on the issuer"
		}
		return nil, fmt.Errorf("the issuer refused the request for role %q (HTTP %d): %s%s", req.Role, resp.StatusCode, msg, hint)
	}
	var cred issuer.Credential
	if err := json.Unmarshal(data, &cred); err != nil || cred.Username == "" || cred.Password == "" {
		return nil, fmt.Errorf("the issuer answered HTTP 200 without a credential: is %s the credential-issuer's URL?", u.Redacted())
	}
	return &cred, nil
}

// urlRegion is the region of a function URL (https://ID.lambda-url.REGION.on.aws/),
// else def.
func urlRegion(u *url.URL, def string) string {
	parts := strings.Split(u.Hostname(), ".")
	if len(parts) == 5 && parts[1] == "lambda-url" && parts[3] == "on" && parts[4] == "aws" {
		return parts[2]
	}
	return def
}

// envLines prints the credential as shell assignments for the engine's
// client (libpq's PG* variables, the mysql client's MYSQL_*), and
// ROTARY_EXPIRES_AT.
func envLines(c *issuer.Credential) string {
	var kv [][2]string
	if strings.Contains(c.Engine, "postgres") {
		kv = [][2]string{{"PGHOST", c.Host}, {"PGPORT", strconv.Itoa(c.Port)}, {"PGUSER", c.Username}, {"PGPASSWORD", c.Password}, {"PGDATABASE", c.DBName}}
	} else {
		kv = [][2]string{{"MYSQL_HOST", c.Host}, {"MYSQL_TCP_PORT", strconv.Itoa(c.Port)}, {"MYSQL_USER", c.Username}, {"MYSQL_PWD", c.Password}, {"MYSQL_DATABASE", c.DBName}}
	}
	kv = append(kv, [2]string{"ROTARY_EXPIRES_AT", c.ExpiresAt.UTC().Format(time.RFC3339)})
	var b strings.Builder
	for _, p := range kv {
		if p[1] == "" {
			continue
		}
		fmt.Fprintf(&b, "export %s=%s\n", p[0], shellQuote(p[1]))
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// operate sends an operator event to the issuer (a direct invocation,
// lambda:InvokeFunction, which the function URL's callers are not given).
func (c *clients) operate(ctx context.Context, function string, ev issuer.OperatorEvent) (*issuer.OperatorResult, error) {
	payload, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	out, err := c.lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(function), Payload: payload})
	if err != nil {
		return nil, fmt.Errorf("invoke %s (%s): %w; check that you may call lambda:InvokeFunction on it and that --region (or --endpoint) is where it runs, or pass --issuer", function, ev.Rotary, err)
	}
	if out.FunctionError != nil {
		var fe struct {
			ErrorMessage string `json:"errorMessage"`
		}
		if json.Unmarshal(out.Payload, &fe) != nil || fe.ErrorMessage == "" {
			fe.ErrorMessage = "function error " + aws.ToString(out.FunctionError)
		}
		return nil, fmt.Errorf("the issuer %s failed %s: %s", function, ev.Rotary, fe.ErrorMessage)
	}
	var res issuer.OperatorResult
	if err := json.Unmarshal(out.Payload, &res); err != nil || res.Action != ev.Rotary {
		return nil, fmt.Errorf("%s answered %s without its result: is it the credential-issuer function?", function, ev.Rotary)
	}
	return &res, nil
}

// runLeases lists the live issued users of a role (or every role) and
// their expiry.
func runLeases(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("leases", flag.ContinueOnError)
	af := addAWSFlags(fs)
	inf := addIssuerFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseArgs(fs, args, out)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("%w: give at most one ROLE, got %d arguments", errUsage, len(pos))
	}
	role := ""
	if len(pos) == 1 {
		role = pos[0]
	}
	c, err := af.connect(ctx)
	if err != nil {
		return err
	}
	res, err := c.operate(ctx, inf.function, issuer.OperatorEvent{Rotary: issuer.ActionLeases, Role: role})
	if err != nil {
		return err
	}
	if *asJSON {
		b, err := json.MarshalIndent(res.Leases, "", "  ")
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(out, "%s\n", b); err != nil {
			return err
		}
		return rolesFailed(res)
	}
	printLeases(out, res.Leases, time.Now())
	return rolesFailed(res)
}

// rolesFailed is the error of an operator action over every role when some failed.
func rolesFailed(res *issuer.OperatorResult) error {
	if len(res.Errors) == 0 {
		return nil
	}
	return fmt.Errorf("%d roles could not be read; the others are listed:\n  %s", len(res.Errors), strings.Join(res.Errors, "\n  "))
}

func printLeases(out io.Writer, leases []issuer.Lease, now time.Time) {
	if len(leases) == 0 {
		fmt.Fprintln(out, "No issued users.")
		return
	}
	sort.SliceStable(leases, func(i, j int) bool { return leases[i].Role < leases[j].Role })
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tUSER\tCREATED\tEXPIRES\tSTATE")
	for _, l := range leases {
		state := "live, " + fmtAge(l.ExpiresAt.Sub(now)) + " left"
		if l.Expired || !l.ExpiresAt.After(now) {
			state = "expired " + fmtAge(now.Sub(l.ExpiresAt)) + " ago (not yet reaped)"
		}
		created, expires := l.CreatedAt, l.ExpiresAt
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.Role, l.Username, fmtTime(&created), fmtTime(&expires), state)
	}
	_ = tw.Flush()
}

// revokeLeases drops every issued user of a role, ending their sessions
// (rotary revoke --leases ROLE).
func revokeLeases(ctx context.Context, af *awsFlags, inf *issuerFlags, role string, yes bool, out io.Writer) error {
	c, err := af.connect(ctx)
	if err != nil {
		return err
	}
	if err := confirm(out, yes, fmt.Sprintf("Revoke every credential the issuer %s handed out for role %s: drop their users and end their open sessions.\n"+
		"Anything still using one will fail; callers get a new one with 'rotary issue %s'.", inf.function, role, role)); err != nil {
		return err
	}
	res, err := c.operate(ctx, inf.function, issuer.OperatorEvent{Rotary: issuer.ActionRevokeLeases, Role: role})
	if err != nil {
		return fmt.Errorf("%w\nSome credentials of role %s may still work; fix the cause and run 'rotary revoke --leases %s' again", err, role, role)
	}
	if len(res.Leases) == 0 {
		fmt.Fprintf(out, "Role %s had no issued users; nothing to revoke.\n", role)
		return nil
	}
	fmt.Fprintf(out, "Revoked %d credentials of role %s at %s (users dropped, sessions ended):\n", len(res.Leases), role, time.Now().UTC().Format(time.RFC3339))
	for _, l := range res.Leases {
		fmt.Fprintf(out, "  %s (expiring %s)\n", l.Username, l.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}
