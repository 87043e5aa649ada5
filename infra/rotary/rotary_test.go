package rotary

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/jsii-runtime-go"

	"github.com/rotary-secrets/rotary/infra/internal/cdktest"
	"github.com/rotary-secrets/rotary/pkg/registry"
)

func TestMain(m *testing.M) {
	cdktest.SilenceNodeBanner()
	os.Exit(m.Run())
}

const (
	topicARN = "arn:aws:sns:us-west-2:210987654321:platform-alarms"
	secretA  = "arn:aws:secretsmanager:us-west-2:210987654321:secret:svc/a-AAAAAA"
	secretB  = "arn:aws:secretsmanager:us-west-2:210987654321:secret:svc/b-BBBBBB"
	dbSG     = "sg-0123456789abcdef0"
	// ecUserARN and ecGroupARN are an ElastiCache user and replication group.
	ecUserARN  = "arn:aws:elasticache:us-west-2:210987654321:user:svc-a"
	ecGroupARN = "arn:aws:elasticache:us-west-2:210987654321:replicationgroup:svc"
)

// check turns a panicking CDK assertion into a test error with its message.
var check = cdktest.Check

// fakeDist writes a dist directory with a dummy package for each type.
func fakeDist(t *testing.T, types ...FunctionType) string {
	t.Helper()
	dir := t.TempDir()
	names := []string{registry.Watch.Name, registry.Issuer.Name}
	for _, typ := range types {
		names = append(names, string(typ))
	}
	if err := cdktest.WriteFakeDist(dir, names...); err != nil {
		t.Fatal(err)
	}
	return dir
}

type env struct {
	stack awscdk.Stack
	vpc   awsec2.IVpc
	dist  string
}

func newEnv(t *testing.T) env {
	t.Helper()
	cdktest.RequireNode(t)
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	stack := awscdk.NewStack(app, jsii.String("TeamStack"), &awscdk.StackProps{
		Env: &awscdk.Environment{Account: jsii.String("210987654321"), Region: jsii.String("us-west-2")},
	})
	vpc := awsec2.Vpc_FromVpcAttributes(stack, jsii.String("Vpc"), &awsec2.VpcAttributes{
		VpcId:             jsii.String("vpc-0123456789abcdef0"),
		AvailabilityZones: jsii.Strings("us-west-2a"),
		PrivateSubnetIds:  jsii.Strings("subnet-0123456789abcdef0"),
	})
	return env{stack: stack, vpc: vpc, dist: fakeDist(t, FunctionTypes()...)}
}

var (
	standaloneOnce sync.Once
	standaloneTmpl assertions.Template
	standaloneErr  error
)

// standalone uses the construct the way a team's own CDK app would: its
// own topic, an imported VPC, two secrets of one type on one database.
func standalone(t *testing.T) assertions.Template {
	t.Helper()
	standaloneOnce.Do(func() {
		e := newEnv(t)
		suite, err := NewSuite(e.stack, jsii.String("Rotation"), &SuiteProps{
			DistDir:    jsii.String(e.dist),
			Vpc:        e.vpc,
			AlarmTopic: awssns.Topic_FromTopicArn(e.stack, jsii.String("Topic"), jsii.String(topicARN)),
			MemorySize: jsii.Number(384),
		})
		if err != nil {
			standaloneErr = err
			return
		}
		db := &DatabaseTarget{
			SecurityGroup: awsec2.SecurityGroup_FromSecurityGroupId(e.stack, jsii.String("Db"), jsii.String(dbSG), &awsec2.SecurityGroupImportOptions{Mutable: jsii.Bool(true)}),
			Port:          jsii.Number(3306),
		}
		for i, arn := range []string{secretA, secretB} {
			_, err := suite.RotateSecret(jsii.String([]string{"A", "B"}[i]), &RotateSecretProps{
				Secret:   awssecretsmanager.Secret_FromSecretCompleteArn(e.stack, jsii.String("S"+arn[len(arn)-6:]), jsii.String(arn)),
				Type:     MySQLSingleUser,
				Schedule: jsii.String("rate(10 days)"),
				Database: db,
			})
			if err != nil {
				standaloneErr = err
				return
			}
		}
		standaloneTmpl = assertions.Template_FromStack(e.stack, nil)
	})
	if standaloneErr != nil {
		t.Fatalf("build standalone stack: %v", standaloneErr)
	}
	return standaloneTmpl
}

func TestStandaloneSharesOneFunctionPerType(t *testing.T) {
	tmpl := standalone(t)
	check(t, "one function, one role, one security group", func() {
		tmpl.ResourceCountIs(jsii.String("AWS::Lambda::Function"), jsii.Number(1))
		tmpl.ResourceCountIs(jsii.String("AWS::IAM::Role"), jsii.Number(1))
		tmpl.ResourceCountIs(jsii.String("AWS::EC2::SecurityGroup"), jsii.Number(1))
	})
	check(t, "memory from props", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), &map[string]any{"MemorySize": 384, "Runtime": "provided.al2023"})
	})
	check(t, "role rotates exactly both secrets", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::IAM::Policy"), &map[string]any{
			"PolicyDocument": assertions.Match_ObjectLike(&map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
				map[string]any{"Sid": SidRotateSecrets, "Effect": "Allow", "Action": RotateActions, "Resource": []any{secretA, secretB}},
			})}),
		})
	})
	check(t, "one ingress rule for the shared database", func() {
		tmpl.ResourceCountIs(jsii.String("AWS::EC2::SecurityGroupIngress"), jsii.Number(1))
		tmpl.HasResourceProperties(jsii.String("AWS::EC2::SecurityGroupIngress"), &map[string]any{"GroupId": dbSG, "FromPort": 3306, "ToPort": 3306, "IpProtocol": "tcp"})
	})
	check(t, "alarms go to the team's topic, no topic created", func() {
		tmpl.ResourceCountIs(jsii.String("AWS::SNS::Topic"), jsii.Number(0))
		tmpl.AllResourcesProperties(jsii.String("AWS::CloudWatch::Alarm"), &map[string]any{"AlarmActions": []any{topicARN}})
		tmpl.AllResourcesProperties(jsii.String("AWS::Events::Rule"), &map[string]any{
			"Targets": []any{assertions.Match_ObjectLike(&map[string]any{"Arn": topicARN})},
		})
	})
	check(t, "default window 2h", func() {
		tmpl.AllResourcesProperties(jsii.String("AWS::SecretsManager::RotationSchedule"), &map[string]any{
			"RotationRules": map[string]any{"ScheduleExpression": "rate(10 days)", "Duration": "2h"},
		})
	})
	// No KMS grant: neither secret names a customer-managed key.
	b, err := json.Marshal(tmpl.ToJSON())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "kms:") {
		t.Error("KMS permissions granted though no customer-managed key is in use")
	}
}

func TestConstructRejectsBadProps(t *testing.T) {
	tests := []struct {
		name  string
		props func(e env, s *Suite) *RotateSecretProps
		want  string
	}{
		{"unknown type", func(e env, s *Suite) *RotateSecretProps {
			return &RotateSecretProps{Secret: imported(e, secretA), Type: "oracle", Schedule: jsii.String("rate(1 day)")}
		}, "field Type"},
		{"multi-user without master", func(e env, s *Suite) *RotateSecretProps {
			return &RotateSecretProps{Secret: imported(e, secretA), Type: PostgresMultiUser, Schedule: jsii.String("rate(1 day)"), Database: target(e)}
		}, "field MasterSecret is required"},
		{"single-user with master", func(e env, s *Suite) *RotateSecretProps {
			return &RotateSecretProps{Secret: imported(e, secretA), Type: PostgresSingleUser, Schedule: jsii.String("rate(1 day)"), Database: target(e), MasterSecret: imported(e, secretB)}
		}, "field MasterSecret"},
		{"database type without database", func(e env, s *Suite) *RotateSecretProps {
			return &RotateSecretProps{Secret: imported(e, secretA), Type: MySQLSingleUser, Schedule: jsii.String("rate(1 day)")}
		}, "field Database"},
		{"window too long", func(e env, s *Suite) *RotateSecretProps {
			return &RotateSecretProps{Secret: imported(e, secretA), Type: RandomSecret, Schedule: jsii.String("rate(1 day)"), Window: awscdk.Duration_Hours(jsii.Number(30))}
		}, "field Window"},
		{"window not whole hours", func(e env, s *Suite) *RotateSecretProps {
			return &RotateSecretProps{Secret: imported(e, secretA), Type: RandomSecret, Schedule: jsii.String("rate(1 day)"), Window: awscdk.Duration_Minutes(jsii.Number(90))}
		}, "field Window"},
		{"schedule not an expression", func(e env, s *Suite) *RotateSecretProps {
			return &RotateSecretProps{Secret: imported(e, secretA), Type: RandomSecret, Schedule: jsii.String("daily")}
		}, "field Schedule"},
		{"elasticache-user without user arn", func(e env, s *Suite) *RotateSecretProps {
			return &RotateSecretProps{Secret: imported(e, secretA), Type: ElastiCacheUser, Schedule: jsii.String("rate(1 day)"), Database: target(e), ReplicationGroupArn: jsii.String(ecGroupARN)}
		}, "field ElastiCacheUserArn is required"},
		{"elasticache-user without group arn", func(e env, s *Suite) *RotateSecretProps {
			return &RotateSecretProps{Secret: imported(e, secretA), Type: ElastiCacheUser, Schedule: jsii.String("rate(1 day)"), Database: target(e), ElastiCacheUserArn: jsii.String(ecUserARN)}
		}, "field ReplicationGroupArn is required"},
		{"elasticache-user with a group arn as user arn", func(e env, s *Suite) *RotateSecretProps {
			return &RotateSecretProps{Secret: imported(e, secretA), Type: ElastiCacheUser, Schedule: jsii.String("rate(1 day)"), Database: target(e), ElastiCacheUserArn: jsii.String(ecGroupARN), ReplicationGroupArn: jsii.String(ecGroupARN)}
		}, "field ElastiCacheUserArn: \"" + ecGroupARN + "\" is not the ARN of an ElastiCache user"},
		{"elasticache-user with a user arn as group arn", func(e env, s *Suite) *RotateSecretProps {
			return &RotateSecretProps{Secret: imported(e, secretA), Type: ElastiCacheUser, Schedule: jsii.String("rate(1 day)"), Database: target(e), ElastiCacheUserArn: jsii.String(ecUserARN), ReplicationGroupArn: jsii.String(ecUserARN)}
		}, "field ReplicationGroupArn: \"" + ecUserARN + "\" is not the ARN of an ElastiCache replication group"},
		{"elasticache arns on another type", func(e env, s *Suite) *RotateSecretProps {
			return &RotateSecretProps{Secret: imported(e, secretA), Type: MySQLSingleUser, Schedule: jsii.String("rate(1 day)"), Database: target(e), ElastiCacheUserArn: jsii.String(ecUserARN), ReplicationGroupArn: jsii.String(ecGroupARN)}
		}, "type mysql-single-user changes no ElastiCache user"},
		{"no secret", func(e env, s *Suite) *RotateSecretProps {
			return &RotateSecretProps{Type: RandomSecret, Schedule: jsii.String("rate(1 day)")}
		}, "field Secret"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			s, err := NewSuite(e.stack, jsii.String("Rotation"), &SuiteProps{DistDir: jsii.String(e.dist), Vpc: e.vpc})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.RotateSecret(jsii.String("R"), tc.props(e, s))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("RotateSecret error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestConstructRejectsASecretRotatedTwice(t *testing.T) {
	e := newEnv(t)
	s, err := NewSuite(e.stack, jsii.String("Rotation"), &SuiteProps{DistDir: jsii.String(e.dist), Vpc: e.vpc})
	if err != nil {
		t.Fatal(err)
	}
	secret := imported(e, secretA)
	props := func(typ FunctionType) *RotateSecretProps {
		return &RotateSecretProps{Secret: secret, Type: typ, Schedule: jsii.String("rate(1 day)")}
	}
	if _, err := s.RotateSecret(jsii.String("First"), props(RandomSecret)); err != nil {
		t.Fatal(err)
	}
	_, err = s.RotateSecret(jsii.String("Second"), props(RandomSecret))
	if err == nil || !strings.Contains(err.Error(), "field Secret") || !strings.Contains(err.Error(), "RotateSecret First") {
		t.Errorf("second RotateSecret of one secret: error = %v, want one naming field Secret and the first rotation", err)
	}
}

func TestSuiteRequiresDistAndVpc(t *testing.T) {
	e := newEnv(t)
	if _, err := NewSuite(e.stack, jsii.String("NoDist"), &SuiteProps{}); err == nil || !strings.Contains(err.Error(), "DistDir") {
		t.Errorf("missing DistDir: %v", err)
	}
	if _, err := NewSuite(e.stack, jsii.String("NoVpc"), &SuiteProps{DistDir: jsii.String(e.dist), SecretsManagerEndpoint: jsii.Bool(true)}); err == nil || !strings.Contains(err.Error(), "Vpc") {
		t.Errorf("endpoint without Vpc: %v", err)
	}
	s, err := NewSuite(e.stack, jsii.String("Suite"), &SuiteProps{DistDir: jsii.String(e.dist)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Function(PostgresSingleUser); err == nil || !strings.Contains(err.Error(), "Vpc") {
		t.Errorf("database function without Vpc: %v", err)
	}
	empty, err := NewSuite(e.stack, jsii.String("Empty"), &SuiteProps{DistDir: jsii.String(t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	_, err = empty.Function(RandomSecret)
	if !errors.Is(err, ErrMissingPackage) || !strings.Contains(err.Error(), "random-secret.zip") || !strings.Contains(err.Error(), "run make build") {
		t.Errorf("missing zip: %v", err)
	}
}

func TestFunctionTypes(t *testing.T) {
	tests := []struct {
		typ         FunctionType
		db, master  bool
		constructID string
	}{
		{RandomSecret, false, false, "RandomSecret"},
		{PostgresSingleUser, true, false, "PostgresSingleUser"},
		{PostgresMultiUser, true, true, "PostgresMultiUser"},
		{MySQLSingleUser, true, false, "MySQLSingleUser"},
		{MySQLMultiUser, true, true, "MySQLMultiUser"},
	}
	for _, tc := range tests {
		t.Run(string(tc.typ), func(t *testing.T) {
			if !tc.typ.Valid() || tc.typ.NeedsDatabase() != tc.db || tc.typ.NeedsMaster() != tc.master || tc.typ.constructID() != tc.constructID {
				t.Errorf("%s: valid=%v db=%v master=%v id=%s", tc.typ, tc.typ.Valid(), tc.typ.NeedsDatabase(), tc.typ.NeedsMaster(), tc.typ.constructID())
			}
		})
	}
	if FunctionType("oracle").Valid() || FunctionType("oracle").NeedsDatabase() {
		t.Error("unknown type accepted")
	}
}

func imported(e env, arn string) awssecretsmanager.ISecret {
	return awssecretsmanager.Secret_FromSecretCompleteArn(e.stack, jsii.String("I"+arn[len(arn)-6:]), jsii.String(arn))
}

func target(e env) *DatabaseTarget {
	return &DatabaseTarget{
		SecurityGroup: awsec2.SecurityGroup_FromSecurityGroupId(e.stack, jsii.String("Db"), jsii.String(dbSG), &awsec2.SecurityGroupImportOptions{Mutable: jsii.Bool(true)}),
		Port:          jsii.Number(5432),
	}
}
