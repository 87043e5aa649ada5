package rotary

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

func TestConstructRejectsBadAccess(t *testing.T) {
	tests := []struct {
		name   string
		access SecretAccess
		want   string
	}{
		{"reader not an ARN", SecretAccess{Readers: []string{"orders-api"}}, "field Access.Readers[0]"},
		{"reader is root", SecretAccess{Readers: []string{"arn:aws:iam::210987654321:root"}}, "field Access.Readers[0]"},
		{"reader with **", SecretAccess{Readers: []string{"arn:aws:iam::210987654321:role/a**"}}, "field Access.Readers[0]"},
		{"admin a policy", SecretAccess{Admins: []string{"arn:aws:iam::210987654321:policy/x"}}, "field Access.Admins[0]"},
		{"endpoint without endpoint", SecretAccess{RequireVpcEndpoint: true}, "field Access.RequireVpcEndpoint"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			s, err := NewSuite(e.stack, jsii.String("Rotation"), &SuiteProps{DistDir: jsii.String(e.dist), Vpc: e.vpc})
			if err != nil {
				t.Fatal(err)
			}
			a := tc.access
			_, err = s.RotateSecret(jsii.String("R"), &RotateSecretProps{Secret: imported(e, secretA), Type: RandomSecret, Schedule: jsii.String("rate(1 day)"), Access: &a})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("RotateSecret error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// TestOutsideEndpointDenySparesFunctionsOutsideTheVpc: a random-secret
// function runs outside the VPC and cannot use the endpoint, so a secret
// that requires the endpoint still lets its own rotation function read it;
// without admins a database function in the VPC is not spared (it uses
// the endpoint).
func TestOutsideEndpointDenySparesFunctionsOutsideTheVpc(t *testing.T) {
	e := newEnv(t)
	s, err := NewSuite(e.stack, jsii.String("Rotation"), &SuiteProps{DistDir: jsii.String(e.dist), Vpc: e.vpc, SecretsManagerEndpoint: jsii.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	access := &SecretAccess{Readers: []string{"arn:aws:iam::210987654321:role/app"}, RequireVpcEndpoint: true}
	if _, err := s.RotateSecret(jsii.String("Token"), &RotateSecretProps{Secret: imported(e, secretA), Type: RandomSecret, Schedule: jsii.String("rate(1 day)"), Access: access}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateSecret(jsii.String("Db"), &RotateSecretProps{Secret: imported(e, secretB), Type: PostgresSingleUser, Schedule: jsii.String("rate(1 day)"), Database: target(e), Access: access}); err != nil {
		t.Fatal(err)
	}
	tmpl := assertions.Template_FromStack(e.stack, nil)
	for secret, wantExempt := range map[string]bool{secretA: true, secretB: false} {
		var found bool
		for _, p := range resourceProps(tmpl, "AWS::SecretsManager::ResourcePolicy") {
			if p["SecretId"] != secret {
				continue
			}
			found = true
			for _, st := range p["ResourcePolicy"].(map[string]any)["Statement"].([]any) {
				stmt := st.(map[string]any)
				if stmt["Sid"] != SidDenyReadOutside {
					continue
				}
				cond := stmt["Condition"].(map[string]any)
				_, exempt := cond["ArnNotLike"]
				if exempt != wantExempt {
					b, _ := json.Marshal(cond)
					t.Errorf("%s: outside-endpoint deny %s; want its function spared: %v", secret, b, wantExempt)
				}
			}
		}
		if !found {
			t.Errorf("no resource policy on %s", secret)
		}
	}
}

// TestPolicySparesTheDeployRole: the denies of secret and policy changes
// spare the role CloudFormation deploys with: the default synthesizer's
// execution role (the CDK bootstrap's, partition left to Fn::Sub),
// DeployRoleArn when set; with another synthesizer the suite cannot know
// it and says which field to set.
func TestPolicySparesTheDeployRole(t *testing.T) {
	bootstrap := map[string]any{"Fn::Sub": "arn:${AWS::Partition}:iam::210987654321:role/cdk-hnb659fds-cfn-exec-role-210987654321-us-west-2"}
	pipeline := "arn:aws:iam::210987654321:role/pipeline/deploy"
	for _, tc := range []struct {
		name     string
		legacy   bool
		deployer *string
		want     any
	}{
		{"default synthesizer", false, nil, bootstrap},
		{"DeployRoleArn", false, jsii.String(pipeline), pipeline},
		{"DeployRoleArn with another synthesizer", true, jsii.String(pipeline), pipeline},
		{"another synthesizer", true, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.legacy {
				e.stack = awscdk.NewStack(awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())}), jsii.String("Legacy"), &awscdk.StackProps{
					Env:         &awscdk.Environment{Account: jsii.String("210987654321"), Region: jsii.String("us-west-2")},
					Synthesizer: awscdk.NewLegacyStackSynthesizer(),
				})
			}
			s, err := NewSuite(e.stack, jsii.String("Rotation"), &SuiteProps{DistDir: jsii.String(e.dist), DeployRoleArn: tc.deployer})
			if err != nil {
				t.Fatal(err)
			}
			admin := "arn:aws:iam::210987654321:role/breakglass"
			_, err = s.RotateSecret(jsii.String("R"), &RotateSecretProps{Secret: imported(e, secretA), Type: RandomSecret, Schedule: jsii.String("rate(1 day)"),
				Access: &SecretAccess{Readers: []string{}, Admins: []string{admin}}})
			if tc.want == nil {
				if err == nil || !strings.Contains(err.Error(), "DeployRoleArn") {
					t.Errorf("RotateSecret error = %v, want one naming DeployRoleArn", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ps := resourceProps(assertions.Template_FromStack(e.stack, nil), "AWS::SecretsManager::ResourcePolicy")
			if len(ps) != 1 {
				t.Fatalf("%d resource policies, want 1", len(ps))
			}
			seen := map[string]bool{}
			for _, st := range ps[0]["ResourcePolicy"].(map[string]any)["Statement"].([]any) {
				stmt := st.(map[string]any)
				sid, _ := stmt["Sid"].(string)
				seen[sid] = true
				got, _ := json.Marshal(stmt["Condition"].(map[string]any)["ArnNotLike"].(map[string]any)["aws:PrincipalArn"])
				want, _ := json.Marshal([]any{admin, tc.want})
				switch sid {
				case SidDenySecretChange, SidDenyRotationTarget:
					if string(got) != string(want) {
						t.Errorf("%s spares %s, want %s", sid, got, want)
					}
				default:
					if strings.Contains(string(got), "cfn-exec-role") || strings.Contains(string(got), "pipeline") {
						t.Errorf("%s spares the deploy role: %s", sid, got)
					}
				}
			}
			for _, sid := range []string{SidDenyRead, SidDenyVersionWrite, SidDenySecretChange, SidDenyRotationTarget} {
				if !seen[sid] {
					t.Errorf("no statement %s", sid)
				}
			}
		})
	}
}

func TestRDSMasterLoginModeIsOneModePerSuite(t *testing.T) {
	e := newEnv(t)
	s, err := NewSuite(e.stack, jsii.String("Rotation"), &SuiteProps{DistDir: jsii.String(e.dist), Vpc: e.vpc})
	if err != nil {
		t.Fatal(err)
	}
	rds := func(id, secret, db string, target *DatabaseTarget) error {
		_, err := s.RotateSecret(jsii.String(id), &RotateSecretProps{Secret: imported(e, secret), Type: "rds-master", Schedule: jsii.String("rate(1 day)"),
			RDSDatabaseArn: jsii.String("arn:aws:rds:us-west-2:210987654321:db:" + db), Database: target})
		return err
	}
	if err := rds("A", secretA, "a", target(e)); err != nil {
		t.Fatal(err)
	}
	if err := rds("B", secretB, "b", nil); err == nil || !strings.Contains(err.Error(), "logs in for every secret or for none") {
		t.Errorf("rds-master without a database after one with: %v", err)
	}
	tmpl := assertions.Template_FromStack(e.stack, nil)
	check(t, "login mode: in the VPC, switch on, reserved", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), &map[string]any{
			"Environment":                  map[string]any{"Variables": map[string]any{EnvRDSMasterLogin: "true"}},
			"VpcConfig":                    assertions.Match_ObjectLike(&map[string]any{"SubnetIds": []any{"subnet-0123456789abcdef0"}}),
			"ReservedConcurrentExecutions": DefaultReservedConcurrency,
		})
		tmpl.HasResourceProperties(jsii.String("AWS::EC2::SecurityGroupIngress"), &map[string]any{"GroupId": dbSG, "FromPort": 5432, "ToPort": 5432})
	})
}

func TestReservedConcurrencyOptions(t *testing.T) {
	e := newEnv(t)
	fo := map[FunctionType]*FunctionOptions{
		MySQLSingleUser: {ReservedConcurrency: jsii.Number(Unreserved)},
		RandomSecret:    {ReservedConcurrency: jsii.Number(3)},
	}
	s, err := NewSuite(e.stack, jsii.String("Rotation"), &SuiteProps{DistDir: jsii.String(e.dist), Vpc: e.vpc, Functions: &fo})
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []FunctionType{PostgresSingleUser, MySQLSingleUser, RandomSecret} {
		if _, err := s.Function(typ); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]any{"postgres-single-user": float64(DefaultReservedConcurrency), "mysql-single-user": nil, "random-secret": float64(3)}
	tmpl := assertions.Template_FromStack(e.stack, nil)
	seen := 0
	for _, p := range resourceProps(tmpl, "AWS::Lambda::Function") {
		for typ, w := range want {
			if !strings.Contains(p["Description"].(string), "rotates "+typ+" ") {
				continue
			}
			seen++
			if p["ReservedConcurrentExecutions"] != w {
				t.Errorf("%s: ReservedConcurrentExecutions = %v, want %v", typ, p["ReservedConcurrentExecutions"], w)
			}
		}
	}
	if seen != len(want) {
		t.Errorf("found %d of the %d functions", seen, len(want))
	}
	bad := map[FunctionType]*FunctionOptions{RandomSecret: {ReservedConcurrency: jsii.Number(0)}}
	s2, err := NewSuite(e.stack, jsii.String("Bad"), &SuiteProps{DistDir: jsii.String(e.dist), Functions: &bad})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Function(RandomSecret); err == nil || !strings.Contains(err.Error(), "ReservedConcurrency") {
		t.Errorf("reservation 0 (which stops a function): %v", err)
	}
}

// resourceProps returns the properties of every resource of typ.
func resourceProps(tmpl assertions.Template, typ string) []map[string]any {
	b, err := json.Marshal(tmpl.FindResources(jsii.String(typ), nil))
	if err != nil {
		panic(err)
	}
	var rs map[string]map[string]any
	if err := json.Unmarshal(b, &rs); err != nil {
		panic(err)
	}
	var out []map[string]any
	for _, r := range rs {
		p, _ := r["Properties"].(map[string]any)
		out = append(out, p)
	}
	return out
}
