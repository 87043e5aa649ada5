package config

import (
	"errors"
	"strings"
	"testing"
)

// expiringYAML has one secret of each expiring type (SCHED, WINDOW and
// TTLS are replaced) and the issuer (ISSUER).
const expiringYAML = `
account: "111122223333"
region: eu-west-1
vpc:
  id: vpc-0a1b2c3d4e5f60718
  subnets:
    - {id: subnet-0a1b2c3d4e5f60001, availabilityZone: eu-west-1a}
databases:
  - {name: pg, securityGroupId: sg-0a1b2c3d4e5f60101, port: 5432}
  - {name: my, securityGroupId: sg-0a1b2c3d4e5f60102, port: 3306}
TTLS
secrets:
  - name: admin
    type: postgres-single-user
    arn: arn:aws:secretsmanager:eu-west-1:111122223333:secret:admin-Ab12Cd
    database: pg
    schedule: rate(30 days)
    readers: []
  - name: reports
    type: postgres-expiring-user
    arn: arn:aws:secretsmanager:eu-west-1:111122223333:secret:reports-Ab12Cd
    masterSecret: admin
    database: pg
    schedule: SCHED
    window: WINDOW
    readers: []
  - name: batch
    type: mysql-expiring-user
    arn: arn:aws:secretsmanager:eu-west-1:111122223333:secret:batch-Ab12Cd
    masterSecretArn: arn:aws:secretsmanager:eu-west-1:111122223333:secret:mymaster-Ab12Cd
    database: my
    schedule: rate(1 day)
    readers: []
ISSUER
`

const okTTLs = `functions:
  postgres-expiring-user: {credentialTtl: 400h}
  mysql-expiring-user: {credentialTtl: 60h, mysqlMarkerDatabase: rotary_marks, reapKeepSessions: true}`

func expiringConfig(sched, window, ttls, issuer string) (*Config, error) {
	src := strings.NewReplacer("SCHED", sched, "WINDOW", window, "TTLS", ttls, "ISSUER", issuer).Replace(expiringYAML)
	return Parse([]byte(src), ".")
}

// TestCredentialTTLMustOutliveTheSchedule: the app refuses a TTL that is
// not longer than the schedule's longest interval plus the window, naming
// the secret and the field, and accepts one that is.
func TestCredentialTTLMustOutliveTheSchedule(t *testing.T) {
	c, err := expiringConfig("rate(7 days)", "3h", okTTLs, "")
	if err != nil {
		t.Fatalf("400h for rate(7 days) + 3h: %v", err)
	}
	if got := c.FunctionFor("mysql-expiring-user"); got.CredentialTTL != "60h" || got.MySQLMarkerDatabase != "rotary_marks" || got.ReapKeepSessions == nil || !*got.ReapKeepSessions {
		t.Errorf("mysql-expiring-user fields %+v", got)
	}
	for _, tc := range []struct {
		name, sched, window, ttls string
		want                      []string
	}{
		{"equal to interval plus window", "rate(7 days)", "3h", "functions: {postgres-expiring-user: {credentialTtl: 171h}, mysql-expiring-user: {credentialTtl: 60h}}",
			[]string{"secrets[1] (reports): field credentialTtl", "functions.postgres-expiring-user.credentialTtl is 171h0m0s", "168h0m0s", "3h0m0s", "set functions.postgres-expiring-user.credentialTtl above 171h0m0s"}},
		{"shorter than the interval", "rate(7 days)", "2h", "functions: {postgres-expiring-user: {credentialTtl: 24h}, mysql-expiring-user: {credentialTtl: 60h}}",
			[]string{"secrets[1] (reports): field credentialTtl", "not longer than the schedule rate(7 days)"}},
		// The 1st of the month: 31 days at most, not 30.
		{"cron's longest gap", "cron(0 2 1 * ? *)", "4h", "functions: {postgres-expiring-user: {credentialTtl: 724h}, mysql-expiring-user: {credentialTtl: 60h}}",
			[]string{"secrets[1] (reports): field credentialTtl", "(744h0m0s) plus its window (4h0m0s) = 748h0m0s"}},
		{"the default in function", "rate(7 days)", "3h", "function: {credentialTtl: 100h}",
			[]string{"secrets[1] (reports): field credentialTtl: function.credentialTtl is 100h0m0s"}},
		{"missing", "rate(7 days)", "3h", "functions: {mysql-expiring-user: {credentialTtl: 60h}}",
			[]string{"secrets[1] (reports): field credentialTtl: type postgres-expiring-user needs", "functions.postgres-expiring-user.credentialTtl"}},
		{"not a duration", "rate(7 days)", "3h", "function: {credentialTtl: a week}",
			[]string{"function: field credentialTtl", "a week"}},
		{"on a type without expiring users", "rate(7 days)", "3h", okTTLs + "\n  postgres-single-user: {credentialTtl: 400h}",
			[]string{"functions.postgres-single-user: field credentialTtl", "creates no expiring users"}},
		{"marker on postgres", "rate(7 days)", "3h", okTTLs + "\n  postgres-multi-user: {mysqlMarkerDatabase: x}",
			[]string{"functions.postgres-multi-user: field mysqlMarkerDatabase"}},
		{"bad marker", "rate(7 days)", "3h", "functions: {postgres-expiring-user: {credentialTtl: 400h}, mysql-expiring-user: {credentialTtl: 60h, mysqlMarkerDatabase: 'a;b'}}",
			[]string{"functions.mysql-expiring-user: field mysqlMarkerDatabase", "a;b"}},
		{"TTL in the environment", "rate(7 days)", "3h", okTTLs + "\nfunction: {environment: {ROTARY_CREDENTIAL_TTL: 400h}}",
			[]string{"ROTARY_CREDENTIAL_TTL is set by the app: set credentialTtl"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := expiringConfig(tc.sched, tc.window, tc.ttls, "")
			if err == nil {
				t.Fatal("config accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// A created expiring secret cannot hold the base user's password.
	src := strings.Replace(strings.NewReplacer("SCHED", "rate(7 days)", "WINDOW", "3h", "TTLS", okTTLs, "ISSUER", "").Replace(expiringYAML),
		"    arn: arn:aws:secretsmanager:eu-west-1:111122223333:secret:reports-Ab12Cd\n", "    create: {template: {engine: postgres, username: app}}\n", 1)
	if _, err := Parse([]byte(src), "."); err == nil || !strings.Contains(err.Error(), "secrets[1] (reports): field create") {
		t.Errorf("created expiring secret: %v", err)
	}
}

// TestStaggeredScheduleIsTheOneChecked: stagger: host turns rate(14 days)
// into the 1st and the 15th, up to 17 days apart; the TTL is checked
// against that.
func TestStaggeredScheduleIsTheOneChecked(t *testing.T) {
	src := strings.NewReplacer("SCHED", "rate(14 days)", "WINDOW", "2h", "TTLS", "stagger: host\nfunctions: {postgres-expiring-user: {credentialTtl: 340h}, mysql-expiring-user: {credentialTtl: 60h}}", "ISSUER", "").Replace(expiringYAML)
	src = strings.Replace(src, "    schedule: rate(30 days)\n", "    schedule: rate(30 days)\n    host: db1\n", 1)
	src = strings.Replace(src, "    schedule: rate(14 days)\n", "    schedule: rate(14 days)\n    host: db1\n", 1)
	_, err := Parse([]byte(src), ".")
	if err == nil || !strings.Contains(err.Error(), "secrets[1] (reports): field credentialTtl") || !strings.Contains(err.Error(), "stagger: host made it cron(") || !strings.Contains(err.Error(), "(408h0m0s)") {
		t.Errorf("340h for a staggered rate(14 days): %v, want a refusal against 17 days", err)
	}
}

const issuerYAML = `issuer:
  roles:
    - {name: reader, engine: postgres, masterSecret: admin, database: pg, baseUser: app_ro, dbname: app, defaultTtl: 30m, maxTtl: 2h}
    - {name: ops, engine: mysql, masterSecretArn: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:mymaster-Ab12Cd', database: my, baseUser: ops}
  allowedCallers: [arn:aws:iam::111122223333:role/analyst, arn:aws:iam::444455556666:user/ci]
  operators: [arn:aws:iam::111122223333:role/oncall]`

func TestIssuerConfig(t *testing.T) {
	c, err := expiringConfig("rate(7 days)", "3h", okTTLs, issuerYAML)
	if err != nil {
		t.Fatalf("issuer: %v", err)
	}
	if c.Issuer.FunctionName != DefaultIssuerName || c.Issuer.ReapInterval != DefaultIssuerReap {
		t.Errorf("defaults: name %q, reap %q", c.Issuer.FunctionName, c.Issuer.ReapInterval)
	}
	if c.ReservedConcurrencyFor(IssuerFunction) != DefaultReservedConcurrency {
		t.Errorf("the issuer logs in to databases: reservation %d, want %d", c.ReservedConcurrencyFor(IssuerFunction), DefaultReservedConcurrency)
	}
	def, maxTTL, err := c.Issuer.Roles[1].TTLs()
	if err != nil || def.String() != "1h0m0s" || maxTTL.String() != "12h0m0s" {
		t.Errorf("default TTLs %v %v %v, want 1h and 12h", def, maxTTL, err)
	}
	for _, tc := range []struct {
		name    string
		replace [2]string
		want    []string
	}{
		{"caller wildcard", [2]string{"role/analyst", "role/analyst-*"}, []string{"issuer: field allowedCallers[0]", "wildcard"}},
		{"caller session", [2]string{"arn:aws:iam::111122223333:role/analyst", "arn:aws:sts::111122223333:assumed-role/analyst/bob"}, []string{"issuer: field allowedCallers[0]", "assumed-role"}},
		{"caller group", [2]string{"user/ci", "group/ci"}, []string{"issuer: field allowedCallers[1]", "not an IAM role or user ARN"}},
		{"operator", [2]string{"role/oncall", "root"}, []string{"issuer: field operators[0]"}},
		{"no callers field", [2]string{"  allowedCallers: [arn:aws:iam::111122223333:role/analyst, arn:aws:iam::444455556666:user/ci]\n", ""}, []string{"issuer: field allowedCallers: required"}},
		{"engine", [2]string{"engine: mysql", "engine: oracle"}, []string{"issuer.roles[1] (ops): field engine", "oracle"}},
		{"unknown master", [2]string{"masterSecret: admin", "masterSecret: root"}, []string{"issuer.roles[0] (reader): field masterSecret", "root"}},
		{"master in another region", [2]string{"secretsmanager:eu-west-1:111122223333:secret:mymaster-Ab12Cd'", "secretsmanager:us-east-1:111122223333:secret:mymaster-Ab12Cd'"}, []string{"issuer.roles[1] (ops): field masterSecretArn", "us-east-1"}},
		{"no database", [2]string{"database: my, ", ""}, []string{"issuer.roles[1] (ops): field database: required"}},
		{"unknown database", [2]string{"database: pg, baseUser", "database: nope, baseUser"}, []string{"issuer.roles[0] (reader): field database", "nope"}},
		{"long base", [2]string{"baseUser: app_ro", "baseUser: " + strings.Repeat("a", 46)}, []string{"issuer.roles[0] (reader): field baseUser", "at most 45"}},
		{"default above max", [2]string{"defaultTtl: 30m", "defaultTtl: 3h"}, []string{"issuer.roles[0] (reader): field defaultTtl"}},
		{"max above a week", [2]string{"maxTtl: 2h", "maxTtl: 200h"}, []string{"issuer.roles[0] (reader): field maxTtl"}},
		{"duplicate role", [2]string{"name: ops", "name: reader"}, []string{"issuer.roles[1] (reader): field name: another role"}},
		{"bad reap", [2]string{"  operators:", "  reapInterval: 30s\n  operators:"}, []string{"issuer: field reapInterval"}},
		{"bad name", [2]string{"  operators:", "  functionName: 'my issuer'\n  operators:"}, []string{"issuer: field functionName"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(issuerYAML, tc.replace[0]) {
				t.Fatalf("test setup: %q not in the issuer", tc.replace[0])
			}
			_, err := expiringConfig("rate(7 days)", "3h", okTTLs, strings.Replace(issuerYAML, tc.replace[0], tc.replace[1], 1))
			if err == nil {
				t.Fatal("config accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// Reap off, and the issuer's function settings.
	c, err = expiringConfig("rate(7 days)", "3h", okTTLs+"\n  credential-issuer: {reservedConcurrency: 3, reapKeepSessions: true, mysqlMarkerDatabase: marks}", issuerYAML+"\n  reapInterval: \"off\"")
	if err != nil {
		t.Fatalf("reap off: %v", err)
	}
	if c.Issuer.ReapInterval != IssuerReapOff || c.ReservedConcurrencyFor(IssuerFunction) != 3 || c.FunctionFor(IssuerFunction).MySQLMarkerDatabase != "marks" {
		t.Errorf("reap %q, reservation %d, marker %q", c.Issuer.ReapInterval, c.ReservedConcurrencyFor(IssuerFunction), c.FunctionFor(IssuerFunction).MySQLMarkerDatabase)
	}
	if _, err := expiringConfig("rate(7 days)", "3h", okTTLs+"\n  credential-issuer: {environment: {ROTARY_ISSUER_ROLES: '{}'}}", issuerYAML); err == nil || !strings.Contains(err.Error(), "ROTARY_ISSUER_ROLES is set by the app from issuer.roles") {
		t.Errorf("roles in the environment: %v", err)
	}
	// The issuer logs in to databases: it needs the VPC.
	if _, err := Parse([]byte(`{"account":"111122223333","region":"eu-west-1","secrets":[{"name":"tok","type":"random-secret","create":{},"schedule":"rate(1 day)","readers":[]},
{"name":"m","type":"random-secret","create":{},"schedule":"rate(1 day)","readers":[]}],
"issuer":{"roles":[{"name":"r","engine":"postgres","masterSecret":"m","database":"pg","baseUser":"u"}],"allowedCallers":[]}}`), "."); err == nil || !strings.Contains(err.Error(), "field vpc: required") {
		t.Errorf("issuer without a VPC: %v", err)
	}
	if _, err := expiringConfig("rate(7 days)", "3h", okTTLs+"\n  credential-issuer: {memoryMB: 512}", ""); err == nil || !strings.Contains(err.Error(), "functions.credential-issuer: there is no issuer section") {
		t.Errorf("issuer settings without an issuer: %v", err)
	}
}
