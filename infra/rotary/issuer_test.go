package rotary

import (
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/jsii-runtime-go"
)

const (
	pgExpiring    FunctionType = "postgres-expiring-user"
	mysqlExpiring FunctionType = "mysql-expiring-user"
)

func (e env) secret(id, arn string) awssecretsmanager.ISecret {
	return awssecretsmanager.Secret_FromSecretCompleteArn(e.stack, jsii.String(id), jsii.String(arn))
}

func (e env) db(id string, port float64) *DatabaseTarget {
	return &DatabaseTarget{
		SecurityGroup: awsec2.SecurityGroup_FromSecurityGroupId(e.stack, jsii.String(id), jsii.String(dbSG), &awsec2.SecurityGroupImportOptions{Mutable: jsii.Bool(true)}),
		Port:          jsii.Number(port),
	}
}

// TestExpiringTTLMustOutliveTheSchedule: RotateSecret of an expiring type
// refuses a schedule whose longest interval plus window the function's
// CredentialTTL does not outlive, and the function needs a TTL; other
// types refuse one.
func TestExpiringTTLMustOutliveTheSchedule(t *testing.T) {
	e := newEnv(t)
	ttl := awscdk.Duration_Hours(jsii.Number(31 * 24))
	suite, err := NewSuite(e.stack, jsii.String("Suite"), &SuiteProps{DistDir: jsii.String(e.dist), Vpc: e.vpc,
		Functions: &map[FunctionType]*FunctionOptions{pgExpiring: {CredentialTTL: ttl}, MySQLSingleUser: {CredentialTTL: ttl}}})
	if err != nil {
		t.Fatal(err)
	}
	db, master := e.db("Db", 5432), e.secret("Master", secretB)
	// The 1st of each month: up to 31 days apart, plus the 2h window.
	_, err = suite.RotateSecret(jsii.String("Monthly"), &RotateSecretProps{Secret: e.secret("S1", secretA), Type: pgExpiring,
		Schedule: jsii.String("cron(0 2 1 * ? *)"), MasterSecret: master, Database: db})
	if !errors.Is(err, ErrCredentialTTL) || !strings.Contains(err.Error(), "RotateSecret Monthly: field Schedule") || !strings.Contains(err.Error(), "(744h0m0s, cron(0 2 1 * ? *)) plus its window (2h0m0s) = 746h0m0s") {
		t.Errorf("744h for a monthly cron: %v, want ErrCredentialTTL naming the rotation, the schedule and the sum", err)
	}
	if _, err := suite.RotateSecret(jsii.String("Weekly"), &RotateSecretProps{Secret: e.secret("S2", secretA), Type: pgExpiring,
		Schedule: jsii.String("rate(7 days)"), Window: awscdk.Duration_Hours(jsii.Number(24)), MasterSecret: master, Database: db}); err != nil {
		t.Errorf("744h for rate(7 days) + 24h: %v", err)
	}
	_, err = suite.RotateSecret(jsii.String("NoTTL"), &RotateSecretProps{Secret: e.secret("S3", "arn:aws:secretsmanager:us-west-2:210987654321:secret:svc/c-CCCCCC"), Type: mysqlExpiring,
		Schedule: jsii.String("rate(1 day)"), MasterSecret: master, Database: e.db("Db3", 3306)})
	if err == nil || !strings.Contains(err.Error(), "field CredentialTTL is required") {
		t.Errorf("an expiring type without a TTL: %v", err)
	}
	_, err = suite.RotateSecret(jsii.String("Single"), &RotateSecretProps{Secret: e.secret("S4", "arn:aws:secretsmanager:us-west-2:210987654321:secret:svc/d-DDDDDD"), Type: MySQLSingleUser,
		Schedule: jsii.String("rate(1 day)"), Database: e.db("Db4", 3306)})
	if err == nil || !strings.Contains(err.Error(), "field CredentialTTL: type mysql-single-user creates no expiring users") {
		t.Errorf("a TTL on a single-user type: %v", err)
	}
	tmpl := assertions.Template_FromStack(e.stack, nil)
	check(t, "the TTL in the function's environment", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), &map[string]any{
			"Description": assertions.Match_StringLikeRegexp(jsii.String("postgres-expiring-user")),
			"Environment": map[string]any{"Variables": assertions.Match_ObjectLike(&map[string]any{EnvCredentialTTL: "744h0m0s"})},
		})
	})
}

func TestIssuerRejectsBadProps(t *testing.T) {
	e := newEnv(t)
	suite, err := NewSuite(e.stack, jsii.String("Suite"), &SuiteProps{DistDir: jsii.String(e.dist), Vpc: e.vpc})
	if err != nil {
		t.Fatal(err)
	}
	m, db := e.secret("M", secretA), e.db("Db", 5432)
	role := func() IssuerRole {
		return IssuerRole{Name: "r", Engine: "postgres", MasterSecret: m, BaseUser: "app", Database: db}
	}
	for _, tc := range []struct {
		name   string
		change func(p *IssuerProps)
		want   string
	}{
		{"no roles", func(p *IssuerProps) { p.Roles = nil }, "field Roles: list at least one role"},
		{"bad name", func(p *IssuerProps) { p.Roles[0].Name = "a b" }, "field Roles[0] (a b): field Name"},
		{"engine", func(p *IssuerProps) { p.Roles[0].Engine = "oracle" }, "field Engine"},
		{"no master", func(p *IssuerProps) { p.Roles[0].MasterSecret = nil }, "field MasterSecret is required"},
		{"no base", func(p *IssuerProps) { p.Roles[0].BaseUser = "" }, "field BaseUser is required"},
		{"no database", func(p *IssuerProps) { p.Roles[0].Database = nil }, "field Database"},
		{"max over a week", func(p *IssuerProps) { p.Roles[0].MaxTTL = awscdk.Duration_Hours(jsii.Number(169)) }, "field MaxTTL"},
		{"default over max", func(p *IssuerProps) {
			p.Roles[0].MaxTTL = awscdk.Duration_Hours(jsii.Number(1))
			p.Roles[0].DefaultTTL = awscdk.Duration_Hours(jsii.Number(2))
		}, "field DefaultTTL"},
		{"caller wildcard", func(p *IssuerProps) { p.AllowedCallers = []string{"arn:aws:iam::210987654321:role/app-*"} }, "field AllowedCallers[0]"},
		{"caller account", func(p *IssuerProps) { p.AllowedCallers = []string{"210987654321"} }, "field AllowedCallers[0]"},
		{"operator session", func(p *IssuerProps) {
			p.Operators = []string{"arn:aws:sts::210987654321:assumed-role/ops/bob"}
		}, "field Operators[0]"},
		{"function name", func(p *IssuerProps) { p.FunctionName = jsii.String("my issuer") }, "field FunctionName"},
		{"reap interval", func(p *IssuerProps) { p.ReapInterval = awscdk.Duration_Seconds(jsii.Number(30)) }, "field ReapInterval"},
		{"roles in the environment", func(p *IssuerProps) { p.Environment = &map[string]*string{IssuerVarRoles: jsii.String("{}")} }, "ROTARY_ISSUER_ROLES is set by the suite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &IssuerProps{Roles: []IssuerRole{role()}}
			tc.change(p)
			_, err := suite.NewIssuer(jsii.String("Issuer"+strings.ReplaceAll(tc.name, " ", "")), p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	noVpc, _ := NewSuite(e.stack, jsii.String("NoVpc"), &SuiteProps{DistDir: jsii.String(e.dist)})
	if _, err := noVpc.NewIssuer(jsii.String("I"), &IssuerProps{Roles: []IssuerRole{role()}}); err == nil || !strings.Contains(err.Error(), "needs field Vpc") {
		t.Errorf("issuer without a VPC: %v", err)
	}
	if _, err := suite.NewIssuer(jsii.String("First"), &IssuerProps{Roles: []IssuerRole{role()}}); err != nil {
		t.Fatalf("a valid issuer: %v", err)
	}
	if _, err := suite.NewIssuer(jsii.String("Second"), &IssuerProps{Roles: []IssuerRole{role()}}); err == nil || !strings.Contains(err.Error(), "has an issuer already") {
		t.Errorf("a second issuer: %v", err)
	}
}

// TestIssuerWithoutEndpointReadsACreatedMaster: without the endpoint the
// issuer reaches Secrets Manager over HTTPS; a master the suite created is
// decrypted with the suite's key (its key policy names the issuer, through
// Secrets Manager only), the master's resource policy spares the issuer,
// and without a reap schedule there is none.
func TestIssuerWithoutEndpointReadsACreatedMaster(t *testing.T) {
	e := newEnv(t)
	suite, err := NewSuite(e.stack, jsii.String("Suite"), &SuiteProps{DistDir: jsii.String(e.dist), Vpc: e.vpc})
	if err != nil {
		t.Fatal(err)
	}
	master, err := suite.NewSecret(jsii.String("Master"), &NewSecretProps{SecretName: jsii.String("admin"), Template: map[string]any{"engine": "postgres"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := suite.RotateSecret(jsii.String("Admin"), &RotateSecretProps{Secret: master, SecretName: jsii.String("admin"), Type: RandomSecret, Schedule: jsii.String("rate(30 days)"),
		Access: &SecretAccess{}}); err != nil {
		t.Fatal(err)
	}
	is, err := suite.NewIssuer(jsii.String("Issuer"), &IssuerProps{
		Roles:          []IssuerRole{{Name: "reader", Engine: "postgres", MasterSecret: master, BaseUser: "app", Database: e.db("Db", 5432)}},
		AllowedCallers: []string{"arn:aws:iam::210987654321:role/analyst"},
		NoReapSchedule: jsii.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	if is.ReapSchedule != nil || is.SchedulerRole != nil {
		t.Error("NoReapSchedule made a schedule")
	}
	tmpl := assertions.Template_FromStack(e.stack, nil)
	check(t, "no schedule", func() { tmpl.ResourceCountIs(jsii.String("AWS::Scheduler::Schedule"), jsii.Number(0)) })
	check(t, "HTTPS to Secrets Manager without the endpoint", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::EC2::SecurityGroup"), &map[string]any{
			"GroupDescription":    assertions.Match_StringLikeRegexp(jsii.String("credential-issuer")),
			"SecurityGroupEgress": []any{assertions.Match_ObjectLike(&map[string]any{"CidrIp": "0.0.0.0/0", "FromPort": 443, "ToPort": 443, "IpProtocol": "tcp"})},
		})
	})
	roleArn := e.stack.Resolve(is.Role.RoleArn())
	check(t, "the suite key's policy names the issuer via Secrets Manager", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::KMS::Key"), &map[string]any{
			"KeyPolicy": assertions.Match_ObjectLike(&map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
				"Sid": SidKeyPolicyFunctions + "CredentialIssuer", "Action": "kms:Decrypt", "Principal": map[string]any{"AWS": roleArn},
				"Condition": assertions.Match_ObjectLike(&map[string]any{"StringEquals": assertions.Match_ObjectLike(&map[string]any{"kms:CallerAccount": "210987654321"})}),
			})})}),
		})
	})
	check(t, "the master's policy spares the issuer", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::SecretsManager::ResourcePolicy"), &map[string]any{
			"ResourcePolicy": assertions.Match_ObjectLike(&map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
				"Sid":       SidDenyRead,
				"Condition": assertions.Match_ObjectLike(&map[string]any{"ArnNotLike": map[string]any{"aws:PrincipalArn": assertions.Match_ArrayWith(&[]any{roleArn})}}),
			})})}),
		})
	})
	check(t, "URL and its two caller permissions", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::Lambda::Url"), &map[string]any{"AuthType": "AWS_IAM"})
		tmpl.HasResourceProperties(jsii.String("AWS::Lambda::Permission"), &map[string]any{"Action": "lambda:InvokeFunctionUrl", "FunctionUrlAuthType": "AWS_IAM", "Principal": "arn:aws:iam::210987654321:role/analyst"})
		tmpl.HasResourceProperties(jsii.String("AWS::Lambda::Permission"), &map[string]any{"Action": "lambda:InvokeFunction", "InvokedViaFunctionUrl": true, "Principal": "arn:aws:iam::210987654321:role/analyst"})
	})
}
