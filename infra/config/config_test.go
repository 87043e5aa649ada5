package config

import (
	"errors"
	"github.com/rotary-secrets/rotary/pkg/registry"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const validYAML = `
account: "111122223333"
region: eu-west-1
vpc:
  id: vpc-0a1b2c3d4e5f60718
  subnets:
    - {id: subnet-0a1b2c3d4e5f60001, availabilityZone: eu-west-1a}
databases:
  - {name: pg, securityGroupId: sg-0a1b2c3d4e5f60101, port: 5432}
secrets:
  - name: admin
    type: postgres-single-user
    arn: arn:aws:secretsmanager:eu-west-1:111122223333:secret:admin-Ab12Cd
    database: pg
    schedule: rate(30 days)
    readers: []
  - name: app
    type: postgres-multi-user
    create: {template: {engine: postgres, username: app}}
    masterSecret: admin
    database: pg
    schedule: cron(0 4 ? * SUN *)
    readers: []
    window: 3h
`

func TestExampleConfigIsValid(t *testing.T) {
	c, err := Load("../rotary.example.yaml")
	if err != nil {
		t.Fatalf("the example config `make synth` uses is invalid: %v", err)
	}
	if got := c.TypesInUse(); len(got) != len(registry.Names()) {
		t.Errorf("example uses types %v, want all of %v so synth exercises every function", got, registry.Names())
	}
	if !strings.HasSuffix(c.DistPath(), filepath.Join("infra", "..", "dist")) && !strings.HasSuffix(c.DistPath(), "/dist") {
		t.Errorf("DistPath %q is not the repository's dist/", c.DistPath())
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(validYAML), "/cfg")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"stackName", c.StackName, "Rotary"},
		{"distDir", c.DistPath(), "/cfg/dist"},
		{"logRetentionDays", c.LogRetentionDays, 90},
		{"memoryMB", c.Function.MemoryMB, 256},
		{"timeout", c.Function.Timeout, "2m"},
		{"window", c.Secrets[0].Window, "2h"},
		{"explicit window", c.Secrets[1].Window, "3h"},
	}
	for _, tc := range checks {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
			}
		})
	}
}

func TestJSONIsAccepted(t *testing.T) {
	js := `{"account":"111122223333","region":"us-east-1","secrets":[{"name":"tok","type":"random-secret","create":{},"schedule":"rate(4 hours)","readers":[]}]}`
	c, err := Parse([]byte(js), ".")
	if err != nil {
		t.Fatalf("JSON config: %v", err)
	}
	if c.Vpc != nil || len(c.TypesInUse()) != 1 {
		t.Errorf("unexpected parse: %+v", c)
	}
}

func TestFunctionForMergesOverrides(t *testing.T) {
	c, err := Parse([]byte(validYAML+`
function:
  environment: {PASSWORD_LENGTH: "40", ROTARY_CONNECT_TIMEOUT: 5s}
functions:
  postgres-multi-user:
    memoryMB: 512
    environment: {PASSWORD_LENGTH: "24"}
`), ".")
	if err != nil {
		t.Fatal(err)
	}
	f := c.FunctionFor("postgres-multi-user")
	if f.MemoryMB != 512 || f.Timeout != "2m" || f.Environment["PASSWORD_LENGTH"] != "24" || f.Environment["ROTARY_CONNECT_TIMEOUT"] != "5s" {
		t.Errorf("merged %+v", f)
	}
	if g := c.FunctionFor("postgres-single-user"); g.MemoryMB != 256 || g.Environment["PASSWORD_LENGTH"] != "40" {
		t.Errorf("override leaked into another type: %+v", g)
	}
}

// TestErrorsNameEntryAndField: every config mistake is reported with the
// entry and the field to fix, and wraps ErrInvalid.
func TestErrorsNameEntryAndField(t *testing.T) {
	tests := []struct {
		name    string
		replace [2]string // applied to validYAML
		append  string
		want    []string
	}{
		{"bad account", [2]string{`"111122223333"`, `"12345"`}, "", []string{"field account"}},
		{"bad region", [2]string{"region: eu-west-1", "region: europe"}, "", []string{"field region"}},
		{"deploy role a user", [2]string{"region: eu-west-1", "region: eu-west-1\ndeployRoleArn: arn:aws:iam::111122223333:user/deployer"}, "", []string{"field deployRoleArn", "not an IAM role ARN"}},
		{"deploy role wildcard", [2]string{"region: eu-west-1", "region: eu-west-1\ndeployRoleArn: arn:aws:iam::111122223333:role/cdk-*"}, "", []string{"field deployRoleArn", "no wildcards"}},
		{"deploy role elsewhere", [2]string{"region: eu-west-1", "region: eu-west-1\ndeployRoleArn: arn:aws:iam::444455556666:role/deployer"}, "", []string{"field deployRoleArn", "444455556666"}},
		{"unknown field", [2]string{"region: eu-west-1", "region: eu-west-1\nregoin: x"}, "", []string{"regoin"}},
		{"unknown type", [2]string{"type: postgres-single-user", "type: oracle"}, "", []string{"secrets[0] (admin)", "field type", "oracle"}},
		{"partial arn", [2]string{"secret:admin-Ab12Cd", "secret:admin"}, "", []string{"secrets[0] (admin)", "field arn", "complete"}},
		{"arn in another region", [2]string{"secretsmanager:eu-west-1:111122223333:secret:admin", "secretsmanager:us-east-1:111122223333:secret:admin"}, "", []string{"secrets[0] (admin)", "field arn", "region"}},
		{"bad schedule", [2]string{"rate(30 days)", "every month"}, "", []string{"secrets[0] (admin)", "field schedule"}},
		{"rate too short", [2]string{"rate(30 days)", "rate(2 hours)"}, "", []string{"secrets[0] (admin)", "field schedule", "4 hours"}},
		{"bad window", [2]string{"window: 3h", "window: 90m"}, "", []string{"secrets[1] (app)", "field window"}},
		{"window too long", [2]string{"window: 3h", "window: 25h"}, "", []string{"secrets[1] (app)", "field window"}},
		{"unknown database", [2]string{"database: pg\n    schedule: rate", "database: nope\n    schedule: rate"}, "", []string{"secrets[0] (admin)", "field database", "nope"}},
		{"missing master", [2]string{"    masterSecret: admin\n", ""}, "", []string{"secrets[1] (app)", "field masterSecret"}},
		{"unknown master", [2]string{"masterSecret: admin", "masterSecret: root"}, "", []string{"secrets[1] (app)", "field masterSecret", "root"}},
		{"password in template", [2]string{"username: app}", "username: app, password: hunter2}"}, "", []string{"secrets[1] (app)", "field create.template"}},
		{"bad subnet", [2]string{"subnet-0a1b2c3d4e5f60001", "sn-1"}, "", []string{"vpc.subnets[0]", "field id"}},
		{"az of other region", [2]string{"availabilityZone: eu-west-1a", "availabilityZone: us-east-1a"}, "", []string{"vpc.subnets[0]", "field availabilityZone"}},
		{"bad db port", [2]string{"port: 5432", "port: 70000"}, "", []string{"databases[0] (pg)", "field port"}},
		{"bad db sg", [2]string{"sg-0a1b2c3d4e5f60101", "default"}, "", []string{"databases[0] (pg)", "field securityGroupId"}},
		{"bad retention", [2]string{}, "logRetentionDays: 42\n", []string{"field logRetentionDays"}},
		{"bad timeout", [2]string{}, "function: {timeout: 20m}\n", []string{"function", "field timeout"}},
		{"bad env duration", [2]string{}, "function: {environment: {ROTARY_CONNECT_TIMEOUT: soon}}\n", []string{"function", "ROTARY_CONNECT_TIMEOUT"}},
		{"reserved env", [2]string{}, "functions: {random-secret: {environment: {AWS_REGION: x}}}\n", []string{"functions.random-secret", "AWS_REGION"}},
		{"unknown function type", [2]string{}, "functions: {oracle: {memoryMB: 512}}\n", []string{"functions.oracle"}},
		{"created single-user database secret", [2]string{"    arn: arn:aws:secretsmanager:eu-west-1:111122223333:secret:admin-Ab12Cd\n", "    create: {template: {engine: postgres}}\n"}, "", []string{"secrets[0] (admin)", "field create", "set arn"}},
		{"same arn twice", [2]string{"    create: {template: {engine: postgres, username: app}}\n", "    arn: arn:aws:secretsmanager:eu-west-1:111122223333:secret:admin-Ab12Cd\n"}, "", []string{"secrets[1] (app)", "field arn", "same secret as entry admin"}},
		{"duplicate secret", [2]string{"name: app\n", "name: admin\n"}, "", []string{"secrets[1] (admin)", "duplicate"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := validYAML
			if tc.replace[0] != "" {
				if !strings.Contains(src, tc.replace[0]) {
					t.Fatalf("test setup: %q not in the valid config", tc.replace[0])
				}
				src = strings.Replace(src, tc.replace[0], tc.replace[1], 1)
			}
			src += tc.append
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

func TestEndpointNeedsVpc(t *testing.T) {
	src := `{"account":"111122223333","region":"us-east-1","secretsManagerEndpoint":{"enabled":true},
"secrets":[{"name":"tok","type":"random-secret","create":{},"schedule":"rate(4 hours)","readers":[]}]}`
	_, err := Parse([]byte(src), ".")
	if err == nil || !strings.Contains(err.Error(), "field secretsManagerEndpoint.enabled") {
		t.Errorf("endpoint without vpc: got %v", err)
	}
}

func TestErrorsDoNotEchoTemplateValues(t *testing.T) {
	src := strings.Replace(validYAML, "username: app}", "username: app, password: s3cr3t-value}", 1)
	_, err := Parse([]byte(src), ".")
	if err == nil {
		t.Fatal("password in template accepted")
	}
	if strings.Contains(err.Error(), "s3cr3t-value") {
		t.Errorf("error echoes a secret value from the template")
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(p, []byte("account: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("Load error %v does not name the file", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || errors.Is(err, ErrInvalid) {
		t.Errorf("a missing file should be a read error, got %v", err)
	}
}

func TestValidateSchedule(t *testing.T) {
	tests := []struct {
		expr string
		ok   bool
	}{
		{"rate(4 hours)", true},
		{"rate(1 day)", true},
		{"rate(30 days)", true},
		{"rate(1000 days)", true},
		{"rate(1001 days)", false},
		{"rate(3 hours)", false},
		{"rate(1 days)", false},
		{"rate(2 day)", false},
		{"rate(5 minutes)", false},
		{"cron(0 4 ? * SUN *)", true},
		{"cron(0 4 * *)", false},
		{"", false},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			err := ValidateSchedule(tc.expr)
			if (err == nil) != tc.ok {
				t.Errorf("ValidateSchedule(%q) = %v, want ok=%v", tc.expr, err, tc.ok)
			}
		})
	}
}

// elastiCacheYAML adds an elasticache-user secret to validYAML.
const elastiCacheYAML = validYAML + `  - name: cache
    type: elasticache-user
    arn: arn:aws:secretsmanager:eu-west-1:111122223333:secret:cache-Ab12Cd
    database: pg
    elasticacheUserArn: arn:aws:elasticache:eu-west-1:111122223333:user:app-id
    replicationGroupArn: arn:aws:elasticache:eu-west-1:111122223333:replicationgroup:orders
    schedule: rate(30 days)
    readers: []
`

// TestElastiCacheArns: elasticache-user needs the ARNs of its user and
// replication group, in the stack's account and region; other types
// refuse them.
func TestElastiCacheArns(t *testing.T) {
	c, err := Parse([]byte(elastiCacheYAML), ".")
	if err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	s, _ := c.Secret("cache")
	if s.ElastiCacheUserARN != "arn:aws:elasticache:eu-west-1:111122223333:user:app-id" || s.ReplicationGroupARN != "arn:aws:elasticache:eu-west-1:111122223333:replicationgroup:orders" {
		t.Errorf("ARNs not parsed: %+v", s)
	}
	const userLine = "    elasticacheUserArn: arn:aws:elasticache:eu-west-1:111122223333:user:app-id\n"
	const groupLine = "    replicationGroupArn: arn:aws:elasticache:eu-west-1:111122223333:replicationgroup:orders\n"
	tests := []struct {
		name    string
		replace [2]string
		want    string // the whole error line
	}{
		{"no user arn", [2]string{userLine, ""},
			"secrets[2] (cache): field elasticacheUserArn: required for type elasticache-user; set the ARN of an ElastiCache user (arn:aws:elasticache:<region>:<account>:user:<user id>): the secret's user_arn, the user whose passwords it holds"},
		{"no group arn", [2]string{groupLine, ""},
			"secrets[2] (cache): field replicationGroupArn: required for type elasticache-user; set the ARN of an ElastiCache replication group (arn:aws:elasticache:<region>:<account>:replicationgroup:<id>): the group of the secret's replication_group_id"},
		{"user arn is a group", [2]string{":user:app-id", ":replicationgroup:orders"},
			`secrets[2] (cache): field elasticacheUserArn: "arn:aws:elasticache:eu-west-1:111122223333:replicationgroup:orders" is not the ARN of an ElastiCache user (arn:aws:elasticache:<region>:<account>:user:<user id>)`},
		{"group arn is a user", [2]string{":replicationgroup:orders", ":user:app-id"},
			`secrets[2] (cache): field replicationGroupArn: "arn:aws:elasticache:eu-west-1:111122223333:user:app-id" is not the ARN of an ElastiCache replication group (arn:aws:elasticache:<region>:<account>:replicationgroup:<id>)`},
		{"user id only", [2]string{"arn:aws:elasticache:eu-west-1:111122223333:user:app-id", "app-id"},
			`secrets[2] (cache): field elasticacheUserArn: "app-id" is not the ARN of an ElastiCache user`},
		{"group in another region", [2]string{"elasticache:eu-west-1:111122223333:replicationgroup", "elasticache:us-east-1:111122223333:replicationgroup"},
			`secrets[2] (cache): field replicationGroupArn: "arn:aws:elasticache:us-east-1:111122223333:replicationgroup:orders" is in 111122223333/us-east-1 but the stack deploys to 111122223333/eu-west-1; the function calls the ElastiCache API of its own account and region`},
		{"user in another account", [2]string{"elasticache:eu-west-1:111122223333:user", "elasticache:eu-west-1:444455556666:user"},
			`secrets[2] (cache): field elasticacheUserArn: "arn:aws:elasticache:eu-west-1:444455556666:user:app-id" is in 444455556666/eu-west-1`},
		{"user arn on another type", [2]string{"    database: pg\n    schedule: rate(30 days)\n    readers: []\n  - name: app", "    database: pg\n" + userLine + "    schedule: rate(30 days)\n    readers: []\n  - name: app"},
			"secrets[0] (admin): field elasticacheUserArn: type postgres-single-user changes no ElastiCache user through the ElastiCache API; remove elasticacheUserArn"},
		{"group arn on another type", [2]string{"    database: pg\n    schedule: rate(30 days)\n    readers: []\n  - name: app", "    database: pg\n" + groupLine + "    schedule: rate(30 days)\n    readers: []\n  - name: app"},
			"secrets[0] (admin): field replicationGroupArn: type postgres-single-user changes no ElastiCache user through the ElastiCache API; remove replicationGroupArn"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(elastiCacheYAML, tc.replace[0]) {
				t.Fatalf("test setup: %q not in the config", tc.replace[0])
			}
			_, err := Parse([]byte(strings.Replace(elastiCacheYAML, tc.replace[0], tc.replace[1], 1)), ".")
			if err == nil {
				t.Fatal("config accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\ndoes not say %q", err, tc.want)
			}
		})
	}
}
