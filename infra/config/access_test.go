package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestReadersAndAdminsAreValidated: a reader or admin that is not an IAM
// role or user ARN of the stack's account is refused with the entry, the
// field (with its index) and what to write instead.
func TestReadersAndAdminsAreValidated(t *testing.T) {
	const reader = "    readers: []\n  - name: app"
	tests := []struct {
		name, replace string
		want          []string
	}{
		{"readers missing", "", []string{"secrets[0] (admin): field readers: required", "readers: []"}},
		{"not an ARN", "    readers: [orders-api]\n", []string{"secrets[0] (admin): field readers[0]", `"orders-api" is not an IAM role or user ARN`}},
		{"service principal", "    readers: [ecs-tasks.amazonaws.com]\n", []string{"field readers[0]", "is not an IAM role or user ARN"}},
		{"assumed-role session", "    readers: ['arn:aws:sts::111122223333:assumed-role/app/i-0abc']\n", []string{"field readers[0]", "assumed-role session", "arn:aws:iam::111122223333:role/NAME"}},
		{"group", "    readers: ['arn:aws:iam::111122223333:group/devs']\n", []string{"field readers[0]", "IAM group"}},
		{"question mark", "    readers: ['arn:aws:iam::111122223333:role/app-?']\n", []string{"field readers[0]", "single * wildcards"}},
		{"double star", "    readers: ['arn:aws:iam::111122223333:role/app**']\n", []string{"field readers[0]", "single * wildcards"}},
		{"other account", "    readers: ['arn:aws:iam::444455556666:role/app']\n", []string{"field readers[0]", "in account 444455556666, not 111122223333"}},
		{"root as reader", "    readers: ['arn:aws:iam::111122223333:root']\n", []string{"field readers[0]", "is not an IAM role or user ARN"}},
		{"second reader bad", "    readers: ['arn:aws:iam::111122223333:role/app', 'role/x']\n", []string{"field readers[1]"}},
		{"bad admin", "    readers: []\n    admins: ['arn:aws:iam::111122223333:policy/x']\n", []string{"secrets[0] (admin): field admins[0]", "or the account's root user"}},
		{"endpoint not enabled", "    readers: []\n    requireVpcEndpoint: true\n", []string{"secrets[0] (admin): field requireVpcEndpoint", "secretsManagerEndpoint.enabled"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(validYAML, reader) {
				t.Fatal("test setup: the valid config changed")
			}
			src := strings.Replace(validYAML, reader, tc.replace+"  - name: app", 1)
			_, err := Parse([]byte(src), ".")
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
}

func TestReadersAndAdminsAccepted(t *testing.T) {
	src := strings.Replace(validYAML, "    readers: []\n  - name: app", `    readers:
      - arn:aws:iam::111122223333:role/orders-api
      - arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Dev_*
      - arn:aws:iam::111122223333:user/etl
    admins: [arn:aws:iam::111122223333:root, arn:aws:iam::111122223333:role/breakglass]
  - name: app`, 1)
	c, err := Parse([]byte(src), ".")
	if err != nil {
		t.Fatal(err)
	}
	if got := *c.Secrets[0].Readers; len(got) != 3 || len(c.Secrets[0].Admins) != 2 {
		t.Errorf("readers %v, admins %v", got, c.Secrets[0].Admins)
	}
	if c.Secrets[1].Readers == nil || len(*c.Secrets[1].Readers) != 0 {
		t.Errorf("readers: [] = %v, want an empty list (only the suite reads)", c.Secrets[1].Readers)
	}
}

const rdsMasterYAML = `
account: "111122223333"
region: eu-west-1
vpc:
  id: vpc-0a1b2c3d4e5f60718
  subnets: [{id: subnet-0a1b2c3d4e5f60001, availabilityZone: eu-west-1a}]
databases:
  - {name: pg, securityGroupId: sg-0a1b2c3d4e5f60101, port: 5432}
secrets:
  - {name: m1, type: rds-master, arn: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:m1-Ab12Cd', rdsDatabaseArn: 'arn:aws:rds:eu-west-1:111122223333:db:one', DB1 schedule: rate(30 days), readers: []}
  - {name: m2, type: rds-master, arn: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:m2-Ab12Cd', rdsDatabaseArn: 'arn:aws:rds:eu-west-1:111122223333:cluster:two', DB2 schedule: rate(30 days), readers: []}
`

func TestRDSMasterLoginModeIsAllOrNothing(t *testing.T) {
	parse := func(db1, db2 string) (*Config, error) {
		src := strings.NewReplacer("DB1", db1, "DB2", db2).Replace(rdsMasterYAML)
		return Parse([]byte(src), ".")
	}
	c, err := parse("database: pg,", "database: pg,")
	if err != nil {
		t.Fatalf("login mode for every rds-master secret: %v", err)
	}
	if !c.LogsInToDatabase("rds-master") || c.ReservedConcurrencyFor("rds-master") != DefaultReservedConcurrency {
		t.Errorf("login mode: LogsInToDatabase %v, reservation %d; want true, %d", c.LogsInToDatabase("rds-master"), c.ReservedConcurrencyFor("rds-master"), DefaultReservedConcurrency)
	}
	c, err = parse("", "")
	if err != nil {
		t.Fatalf("no login mode: %v", err)
	}
	if c.LogsInToDatabase("rds-master") || c.ReservedConcurrencyFor("rds-master") != Unreserved {
		t.Errorf("without databases rds-master logs in (%v) or is reserved (%d)", c.LogsInToDatabase("rds-master"), c.ReservedConcurrencyFor("rds-master"))
	}
	_, err = parse("database: pg,", "")
	if err == nil || !strings.Contains(err.Error(), "secrets[0] (m1): field database") || !strings.Contains(err.Error(), "secrets[1] (m2) names no database") {
		t.Errorf("one secret in login mode, one not: %v, want the error naming both", err)
	}
	_, err = parse("database: nope,", "database: nope,")
	if err == nil || !strings.Contains(err.Error(), `field database: no databases entry is named "nope"`) {
		t.Errorf("unknown database: %v", err)
	}
	_, err = Parse([]byte(strings.NewReplacer("DB1", "", "DB2", "").Replace(rdsMasterYAML)+"function: {environment: {ROTARY_RDS_MASTER_LOGIN: 'true'}}\n"), ".")
	if err == nil || !strings.Contains(err.Error(), "ROTARY_RDS_MASTER_LOGIN is set by the app") {
		t.Errorf("login switch in the environment: %v", err)
	}
	for _, k := range []string{EnvRDSBindings, EnvElastiCacheBindings} {
		_, err = Parse([]byte(strings.NewReplacer("DB1", "", "DB2", "").Replace(rdsMasterYAML)+"function: {environment: {"+k+": '{}'}}\n"), ".")
		if err == nil || !strings.Contains(err.Error(), k+" is set by the app from each") {
			t.Errorf("bindings in the environment: %v", err)
		}
	}
}

// TestBindingsFitLambdasEnvironment: the secrets of one rds-master
// function are bound in one variable; a config that would take the
// function's environment over Lambda's 4 KB is refused, naming the fix.
func TestBindingsFitLambdasEnvironment(t *testing.T) {
	src := func(n int) string {
		var b strings.Builder
		b.WriteString("account: \"111122223333\"\nregion: eu-west-1\nsecrets:\n")
		for i := range n {
			fmt.Fprintf(&b, "  - {name: master-%02d, type: rds-master, arn: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:master-%02d-Ab12Cd', rdsDatabaseArn: 'arn:aws:rds:eu-west-1:111122223333:db:database-%02d', schedule: rate(30 days), readers: []}\n", i, i, i)
		}
		return b.String()
	}
	if _, err := Parse([]byte(src(20)), "."); err != nil {
		t.Fatalf("20 rds-master secrets: %v", err)
	}
	_, err := Parse([]byte(src(40)), ".")
	if err == nil || !strings.Contains(err.Error(), "the rds-master function would serve 40 secrets") || !strings.Contains(err.Error(), "over Lambda's 4096") {
		t.Fatalf("40 rds-master secrets: %v, want the environment refused as too large", err)
	}
}

func TestRedisACLMayNameAMaster(t *testing.T) {
	base := `
account: "111122223333"
region: eu-west-1
vpc:
  id: vpc-0a1b2c3d4e5f60718
  subnets: [{id: subnet-0a1b2c3d4e5f60001, availabilityZone: eu-west-1a}]
databases:
  - {name: redis, securityGroupId: sg-0a1b2c3d4e5f60101, port: 6379}
secrets:
  - {name: admin, type: redis-acl, arn: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:admin-Ab12Cd', database: redis, schedule: rate(30 days), readers: []}
  - {name: app, type: redis-acl, arn: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:app-Ab12Cd', database: redis, schedule: rate(30 days), readers: [], MASTER}
`
	for _, master := range []string{"masterSecret: admin", "masterSecretArn: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:other-Ab12Cd'", "masterSecret: ''"} {
		if _, err := Parse([]byte(strings.Replace(base, "MASTER", master, 1)), "."); err != nil {
			t.Errorf("redis-acl with %s: %v", master, err)
		}
	}
	for master, want := range map[string]string{
		"masterSecret: nope":                        `secrets[1] (app): field masterSecret: no secrets entry is named "nope"`,
		"masterSecret: app":                         "cannot be its own master",
		"masterSecretArn: 'arn:aws:secretsmanager'": "field masterSecretArn",
	} {
		_, err := Parse([]byte(strings.Replace(base, "MASTER", master, 1)), ".")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("redis-acl with %s: %v, want %q", master, err, want)
		}
	}
	other := strings.Replace(strings.Replace(base, "MASTER", "masterSecret: admin", 1), "name: app, type: redis-acl", "name: app, type: elasticache-user", 1)
	if _, err := Parse([]byte(other), "."); err == nil || !strings.Contains(err.Error(), "type elasticache-user uses no master secret") {
		t.Errorf("elasticache-user with a master: %v", err)
	}
}

func TestReservedConcurrency(t *testing.T) {
	c, err := Parse([]byte(validYAML+`
functions:
  postgres-multi-user: {reservedConcurrency: 3}
`), ".")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ReservedConcurrencyFor("postgres-single-user"); got != DefaultReservedConcurrency {
		t.Errorf("default for a database type = %d, want %d", got, DefaultReservedConcurrency)
	}
	if got := c.ReservedConcurrencyFor("postgres-multi-user"); got != 3 {
		t.Errorf("functions.postgres-multi-user.reservedConcurrency = %d, want 3", got)
	}
	if got := c.ReservedConcurrencyFor("random-secret"); got != Unreserved {
		t.Errorf("random-secret reaches no database, so it is unreserved; got %d", got)
	}
	c, err = Parse([]byte(validYAML+"function: {reservedConcurrency: unreserved}\n"), ".")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ReservedConcurrencyFor("postgres-single-user"); got != Unreserved {
		t.Errorf("function.reservedConcurrency: unreserved = %d, want Unreserved", got)
	}
	for _, bad := range []string{"0", "-1", "1001", "many", "2.5"} {
		_, err := Parse([]byte(validYAML+"function: {reservedConcurrency: "+bad+"}\n"), ".")
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "reservedConcurrency") || !strings.Contains(err.Error(), "unreserved") {
			t.Errorf("reservedConcurrency %s: %v, want an error naming the field and its forms", bad, err)
		}
	}
}
