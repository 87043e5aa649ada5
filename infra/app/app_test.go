//lint:file-ignore SA1019 assertions.Annotations returns cxapi.SynthesisMessage, which CDK marks deprecated; it has no replacement in the Go bindings

package app

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/jsii-runtime-go"

	"github.com/rotary-secrets/rotary/infra/config"
	"github.com/rotary-secrets/rotary/infra/internal/cdktest"
	"github.com/rotary-secrets/rotary/infra/rotary"
)

const (
	exampleAccount   = "111122223333"
	exampleRegion    = "eu-west-1"
	ordersAdminARN   = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:orders-admin-Ab12Cd"
	ordersAdminKey   = "arn:aws:kms:eu-west-1:111122223333:key/0a1b2c3d-1111-2222-3333-444455556666"
	billingAppARN    = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:billing-app-Ef34Gh"
	billingRepARN    = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:billing-reporting-Ij56Kl"
	ordersMasterARN  = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:orders-master-Qr90St"
	ordersClusterARN = "arn:aws:rds:eu-west-1:111122223333:cluster:orders"
	billingMstARN    = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:billing-master-Mn78Op"
	ordersReportARN  = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:orders-reporting-Gh78Ij"
	billingBatchARN  = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:billing-batch-Kl90Mn"
	ordersPgSG       = "sg-0a1b2c3d4e5f60101"
	billingMySQLSG   = "sg-0a1b2c3d4e5f60102"
	sessionsRedisSG  = "sg-0a1b2c3d4e5f60103"
	ordersCacheSG    = "sg-0a1b2c3d4e5f60104"
	sessionsCacheARN = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:sessions-cache-Yz34Ab"
	ordersCacheARN   = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:orders-cache-Uv12Wx"
	ordersCacheUser  = "arn:aws:elasticache:eu-west-1:111122223333:user:orders-app-id"
	ordersCacheGroup = "arn:aws:elasticache:eu-west-1:111122223333:replicationgroup:orders"
)

// createdSecret is the logical ID of the secret the app created with name.
func (f *fixture) createdSecret(t *testing.T, name string) string {
	t.Helper()
	return f.only(t, "AWS::SecretsManager::Secret", func(p map[string]any) bool { return p["Name"] == name })
}

// secretsKey is the logical ID of the suite's key for created secrets.
func (f *fixture) secretsKey(t *testing.T) string {
	t.Helper()
	return f.only(t, "AWS::KMS::Key", func(p map[string]any) bool {
		return strings.HasPrefix(fmt.Sprint(p["Description"]), "Encrypts the secrets Rotary creates")
	})
}

func TestFunctionsArePackagedForAL2023OnArm64(t *testing.T) {
	f := example.get(t)
	n := float64(len(f.cfg.TypesInUse()) + 2)
	check(t, "one function per rotation type in use, the watch and the issuer", func() { f.template.ResourceCountIs(jsii.String("AWS::Lambda::Function"), jsii.Number(n)) })
	check(t, "log groups with retention", func() {
		f.template.ResourceCountIs(jsii.String("AWS::Logs::LogGroup"), jsii.Number(n))
		f.template.AllResourcesProperties(jsii.String("AWS::Logs::LogGroup"), &map[string]any{"RetentionInDays": 90})
	})
	tests := []struct {
		typ    rotary.FunctionType
		memory int
	}{
		{randomSecret, 256},
		{postgresSingleUser, 256},
		{postgresMultiUser, 512},
		{mySQLSingleUser, 256},
		{mySQLMultiUser, 256},
	}
	for _, tc := range tests {
		t.Run(string(tc.typ), func(t *testing.T) {
			id := f.functionID(t, tc.typ)
			fn := props(f.resources("AWS::Lambda::Function")[id])
			check(t, "runtime, architecture, size", func() {
				f.template.HasResourceProperties(jsii.String("AWS::Lambda::Function"), &map[string]any{
					"Description":   fn["Description"],
					"Runtime":       "provided.al2023",
					"Architectures": []any{"arm64"},
					"Handler":       "bootstrap",
					"MemorySize":    tc.memory,
					"Timeout":       120,
					"Code":          assertions.Match_ObjectLike(&map[string]any{"S3Key": assertions.Match_StringLikeRegexp(jsii.String(`\.zip$`))}),
				})
			})
			lg := fn["LoggingConfig"].(map[string]any)["LogGroup"].(map[string]any)["Ref"].(string)
			if _, ok := f.resources("AWS::Logs::LogGroup")[lg]; !ok {
				t.Errorf("function logs to %v, want an explicit AWS::Logs::LogGroup of the stack", lg)
			}
			env := fn["Environment"].(map[string]any)["Variables"].(map[string]any)
			for _, k := range []string{"PASSWORD_LENGTH", "EXCLUDE_CHARACTERS", "ROTARY_CONNECT_TIMEOUT", "ROTARY_STATEMENT_TIMEOUT"} {
				if _, ok := env[k]; !ok {
					t.Errorf("environment lacks %s from function.environment", k)
				}
			}
			if want := map[bool]string{true: "60s", false: "30s"}[tc.typ == postgresMultiUser]; env["ROTARY_STATEMENT_TIMEOUT"] != want {
				t.Errorf("ROTARY_STATEMENT_TIMEOUT = %v, want %s (postgres-multi-user overrides function.environment)", env["ROTARY_STATEMENT_TIMEOUT"], want)
			}
		})
	}
}

func TestDatabaseFunctionsRunInTheVpcAndUseTheEndpoint(t *testing.T) {
	f := example.get(t)
	endpoint := f.only(t, "AWS::EC2::VPCEndpoint", func(p map[string]any) bool { return true })
	check(t, "interface endpoint", func() {
		f.template.HasResourceProperties(jsii.String("AWS::EC2::VPCEndpoint"), &map[string]any{
			"ServiceName":       "com.amazonaws.eu-west-1.secretsmanager",
			"VpcEndpointType":   "Interface",
			"PrivateDnsEnabled": true,
			"VpcId":             "vpc-0a1b2c3d4e5f60718",
			"SubnetIds":         []any{"subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"},
		})
	})
	for _, typ := range rotary.FunctionTypes() {
		t.Run(string(typ), func(t *testing.T) {
			fn := props(f.resources("AWS::Lambda::Function")[f.functionID(t, typ)])
			env := fn["Environment"].(map[string]any)["Variables"].(map[string]any)
			vpc, inVpc := fn["VpcConfig"].(map[string]any)
			if !f.cfg.LogsInToDatabase(string(typ)) {
				if inVpc {
					t.Errorf("%s is VPC-placed (%v); it reaches no database", typ, canon(vpc))
				}
				if _, ok := env["SECRETS_MANAGER_ENDPOINT"]; ok {
					t.Errorf("%s runs outside the VPC but points at the VPC endpoint", typ)
				}
				return
			}
			if !inVpc {
				t.Fatalf("%s is not VPC-placed", typ)
			}
			if got := canon(vpc["SubnetIds"]); got != canon([]any{"subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"}) {
				t.Errorf("subnets = %s", got)
			}
			if got := len(list(vpc["SecurityGroupIds"])); got != 1 {
				t.Errorf("%d security groups, want the function's own one", got)
			}
			ep := canon(env["SECRETS_MANAGER_ENDPOINT"])
			if !strings.Contains(ep, `"https://"`) || !strings.Contains(ep, canon(getAtt(endpoint, "DnsEntries"))) {
				t.Errorf("SECRETS_MANAGER_ENDPOINT = %s, want https:// + the endpoint's DNS name", ep)
			}
		})
	}
}

func TestEndpointIsOptional(t *testing.T) {
	f := minimal.get(t)
	check(t, "no endpoint", func() { f.template.ResourceCountIs(jsii.String("AWS::EC2::VPCEndpoint"), jsii.Number(0)) })
	fn := props(f.resources("AWS::Lambda::Function")[f.functionID(t, postgresSingleUser)])
	if env, ok := fn["Environment"].(map[string]any); ok {
		if _, ok := env["Variables"].(map[string]any)["SECRETS_MANAGER_ENDPOINT"]; ok {
			t.Error("SECRETS_MANAGER_ENDPOINT set without an endpoint")
		}
	}
	// Without the endpoint the function reaches Secrets Manager over HTTPS only.
	sg := props(f.resources("AWS::EC2::SecurityGroup")[sgOf(t, f, postgresSingleUser)])
	found := false
	for _, e := range list(sg["SecurityGroupEgress"]) {
		r := e.(map[string]any)
		if r["CidrIp"] == "0.0.0.0/0" {
			found = true
			if fmt.Sprint(r["FromPort"]) != "443" || fmt.Sprint(r["ToPort"]) != "443" || r["IpProtocol"] != "tcp" {
				t.Errorf("egress to the internet beyond HTTPS: %s", canon(r))
			}
		}
	}
	if !found {
		t.Error("no HTTPS egress to reach Secrets Manager without an endpoint")
	}
	check(t, "no RDS, no master", func() {
		for _, s := range f.allStatements() {
			if strings.Contains(canon(s["Action"]), "rds:") {
				t.Errorf("RDS actions granted without a multi-user type: %s", canon(s))
			}
		}
	})
}

// sgOf is the logical ID of the security group the suite created for typ.
func sgOf(t *testing.T, f *fixture, typ rotary.FunctionType) string {
	t.Helper()
	fn := props(f.resources("AWS::Lambda::Function")[f.functionID(t, typ)])
	ids := list(fn["VpcConfig"].(map[string]any)["SecurityGroupIds"])
	return ids[0].(map[string]any)["Fn::GetAtt"].([]any)[0].(string)
}

func TestOneRolePerFunctionAndNoManagedPolicies(t *testing.T) {
	for name, lf := range map[string]*lazyFixture{"example": example, "minimal": minimal} {
		t.Run(name, func(t *testing.T) {
			f := lf.get(t)
			roles := map[string]string{}
			for _, typ := range f.stack.Suite.Functions() {
				role := f.roleID(t, typ.Type)
				if other, dup := roles[role]; dup {
					t.Errorf("%s and %s share role %s", typ.Type, other, role)
				}
				roles[role] = string(typ.Type)
			}
			watchRole := f.watchRoleID(t)
			if other, dup := roles[watchRole]; dup {
				t.Errorf("the watch shares role %s with %s", watchRole, other)
			}
			roles[watchRole] = "watch"
			schedulers := map[string]bool{f.schedulerRoleID(t): true}
			if f.stack.Suite.Issuer() != nil {
				issuerRole := f.issuerRoleID(t)
				if other, dup := roles[issuerRole]; dup {
					t.Errorf("the issuer shares role %s with %s", issuerRole, other)
				}
				roles[issuerRole] = "issuer"
				for _, s := range f.resources("AWS::Scheduler::Schedule") {
					schedulers[props(s)["Target"].(map[string]any)["RoleArn"].(map[string]any)["Fn::GetAtt"].([]any)[0].(string)] = true
				}
			}
			check(t, "one role per function, and the schedulers'", func() {
				f.template.ResourceCountIs(jsii.String("AWS::IAM::Role"), jsii.Number(float64(len(roles)+len(schedulers))))
			})
			check(t, "no managed policies", func() {
				f.template.AllResourcesProperties(jsii.String("AWS::IAM::Role"), &map[string]any{"ManagedPolicyArns": assertions.Match_Absent()})
				f.template.ResourceCountIs(jsii.String("AWS::IAM::ManagedPolicy"), jsii.Number(0))
			})
			lambda := []any{map[string]any{"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": map[string]any{"Service": "lambda.amazonaws.com"}}}
			for id, r := range f.resources("AWS::IAM::Role") {
				got := canon(props(r)["AssumeRolePolicyDocument"].(map[string]any)["Statement"])
				want := canon(lambda)
				if schedulers[id] {
					want = canon([]any{map[string]any{"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": map[string]any{"Service": "scheduler.amazonaws.com"},
						"Condition": map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": f.cfg.Account}}}})
				}
				if got != want {
					t.Errorf("role %s may be assumed by %s, want %s", id, got, want)
				}
			}
		})
	}
}

func TestSecretsManagerAccessIsScopedToRotatedAndMasterSecrets(t *testing.T) {
	f := example.get(t)
	ordersApp := ref(f.createdSecret(t, "orders-app"))
	webhook := ref(f.createdSecret(t, "webhook-signing-key"))
	tests := []struct {
		typ     rotary.FunctionType
		rotates []any
		masters []any
	}{
		{randomSecret, []any{webhook}, nil},
		{postgresSingleUser, []any{ordersAdminARN}, nil},
		{postgresMultiUser, []any{ordersApp}, []any{ordersAdminARN}},
		{postgresExpiring, []any{ordersReportARN}, []any{ordersAdminARN}},
		{mySQLSingleUser, []any{billingAppARN}, nil},
		{mySQLMultiUser, []any{billingRepARN}, []any{billingMstARN}},
		{mySQLExpiring, []any{billingBatchARN}, []any{billingMstARN}},
	}
	for _, tc := range tests {
		t.Run(string(tc.typ), func(t *testing.T) {
			stmts := f.statements(t, f.roleID(t, tc.typ))
			// Alternating users read AWSCURRENT and the master in one
			// BatchGetSecretValue, which IAM authorizes on "*" only; each
			// secret of the batch still needs GetSecretValue above.
			batch := bySid(stmts, rotary.SidBatchRead)
			switch {
			case tc.typ.BatchReads() && batch == nil:
				t.Errorf("%s reads in batches but has no %s statement", tc.typ, rotary.SidBatchRead)
			case tc.typ.BatchReads():
				want := map[string]any{"Sid": rotary.SidBatchRead, "Effect": "Allow", "Action": "secretsmanager:BatchGetSecretValue", "Resource": "*"}
				if canon(batch) != canon(want) {
					t.Errorf("batch statement %s, want %s", canon(batch), canon(want))
				}
			case batch != nil:
				t.Errorf("%s reads no batch, yet may BatchGetSecretValue: %s", tc.typ, canon(batch))
			}
			rot := bySid(stmts, rotary.SidRotateSecrets)
			if rot == nil {
				t.Fatalf("no %s statement", rotary.SidRotateSecrets)
			}
			if got, want := canonSet(list(rot["Resource"])), canonSet(tc.rotates); !reflect.DeepEqual(got, want) {
				t.Errorf("rotates %v, want %v", got, want)
			}
			if got, want := canonSet(list(rot["Action"])), canonSet(toAny(rotary.RotateActions)); !reflect.DeepEqual(got, want) {
				t.Errorf("rotate actions %v, want %v", got, want)
			}
			master := bySid(stmts, rotary.SidReadMasterSecrets)
			switch {
			case tc.masters == nil && master != nil:
				t.Errorf("single-user type may read master secrets: %s", canon(master))
			case tc.masters != nil && master == nil:
				t.Errorf("multi-user type cannot read its master secret")
			case tc.masters != nil:
				if got, want := canonSet(list(master["Resource"])), canonSet(tc.masters); !reflect.DeepEqual(got, want) {
					t.Errorf("reads masters %v, want %v", got, want)
				}
				for _, a := range list(master["Action"]) {
					if a != "secretsmanager:GetSecretValue" && a != "secretsmanager:DescribeSecret" {
						t.Errorf("master secret action %v is not read-only", a)
					}
				}
			}
			for _, s := range stmts {
				if s["Sid"] == rotary.SidRotateSecrets || s["Sid"] == rotary.SidReadMasterSecrets || s["Sid"] == rotary.SidBatchRead {
					continue
				}
				if strings.Contains(canon(s["Action"]), "secretsmanager:") {
					t.Errorf("unexpected Secrets Manager grant: %s", canon(s))
				}
			}
		})
	}
}

// TestNoWildcardGrants is the negative check: no Secrets Manager or KMS
// action on Resource "*" but BatchGetSecretValue (which has no
// resource-level permissions, and returns only what GetSecretValue on each
// secret allows) in its own statement, no action wildcards, no Deny-less
// "*:*".
func TestNoWildcardGrants(t *testing.T) {
	for name, lf := range map[string]*lazyFixture{"example": example, "minimal": minimal, "fleet": fleet} {
		t.Run(name, func(t *testing.T) {
			f := lf.get(t)
			stmts := f.allStatements()
			if len(stmts) == 0 {
				t.Fatal("no IAM statements found")
			}
			for _, s := range stmts {
				star := false
				for _, r := range list(s["Resource"]) {
					if r == "*" {
						star = true
					}
				}
				for _, a := range list(s["Action"]) {
					act := fmt.Sprint(a)
					if strings.Contains(act, "*") {
						t.Errorf("action wildcard %s in %s", act, canon(s))
					}
					if star && act == "secretsmanager:BatchGetSecretValue" && s["Sid"] == rotary.SidBatchRead && len(list(s["Action"])) == 1 {
						continue
					}
					if star && (strings.HasPrefix(act, "secretsmanager:") || strings.HasPrefix(act, "kms:") || strings.HasPrefix(act, "rds:") || strings.HasPrefix(act, "elasticache:") || strings.HasPrefix(act, "logs:")) {
						t.Errorf("%s granted on Resource \"*\": %s", act, canon(s))
					}
					if star && !strings.HasPrefix(act, "ec2:") {
						t.Errorf("only the VPC network-interface actions may use Resource \"*\", got %s", act)
					}
				}
			}
		})
	}
}

func TestLogPermissionsAreScopedToTheOwnLogGroup(t *testing.T) {
	f := example.get(t)
	for _, typ := range rotary.FunctionTypes() {
		t.Run(string(typ), func(t *testing.T) {
			fn := props(f.resources("AWS::Lambda::Function")[f.functionID(t, typ)])
			lg := fn["LoggingConfig"].(map[string]any)["LogGroup"].(map[string]any)["Ref"].(string)
			stmts := f.statements(t, f.roleID(t, typ))
			logs := bySid(stmts, rotary.SidWriteLogs)
			if logs == nil {
				t.Fatal("no log permissions")
			}
			if got, want := canon(logs["Resource"]), canon(getAtt(lg, "Arn")); got != want {
				t.Errorf("logs on %s, want own log group %s", got, want)
			}
			if got := canonSet(list(logs["Action"])); !reflect.DeepEqual(got, canonSet([]any{"logs:CreateLogStream", "logs:PutLogEvents"})) {
				t.Errorf("log actions %v", got)
			}
		})
	}
}

func TestKMSIsUsedOnlyThroughSecretsManager(t *testing.T) {
	f := example.get(t)
	suiteKey := getAtt(f.secretsKey(t), "Arn")
	via := map[string]any{"StringEquals": map[string]any{
		"kms:ViaService":    "secretsmanager.eu-west-1.amazonaws.com",
		"kms:CallerAccount": exampleAccount,
	}}
	tests := []struct {
		typ  rotary.FunctionType
		keys []any // nil: no KMS statement at all (aws/secretsmanager)
	}{
		{randomSecret, []any{suiteKey}},
		{postgresSingleUser, []any{ordersAdminKey}},
		{postgresMultiUser, []any{suiteKey, ordersAdminKey}},
		{postgresExpiring, []any{ordersAdminKey}},
		{mySQLSingleUser, nil},
		{mySQLMultiUser, nil},
		{mySQLExpiring, nil},
	}
	for _, tc := range tests {
		t.Run(string(tc.typ), func(t *testing.T) {
			stmts := f.statements(t, f.roleID(t, tc.typ))
			k := bySid(stmts, rotary.SidUseKeys)
			if tc.keys == nil {
				if k != nil {
					t.Errorf("KMS granted though no secret of this type uses a customer-managed key: %s", canon(k))
				}
				return
			}
			if k == nil {
				t.Fatal("no KMS statement")
			}
			if got, want := canonSet(list(k["Resource"])), canonSet(tc.keys); !reflect.DeepEqual(got, want) {
				t.Errorf("keys %v, want %v", got, want)
			}
			if got, want := canon(k["Condition"]), canon(via); got != want {
				t.Errorf("condition %s, want %s", got, want)
			}
			for _, s := range stmts {
				if s["Sid"] != rotary.SidUseKeys && strings.Contains(canon(s["Action"]), "kms:") {
					t.Errorf("KMS granted outside %s: %s", rotary.SidUseKeys, canon(s))
				}
			}
		})
	}
	t.Run("created secrets use the rotating customer-managed key", func(t *testing.T) {
		check(t, "key rotation", func() {
			f.template.AllResourcesProperties(jsii.String("AWS::KMS::Key"), &map[string]any{"EnableKeyRotation": true})
		})
		for _, name := range []string{"orders-app", "webhook-signing-key"} {
			s := props(f.resources("AWS::SecretsManager::Secret")[f.createdSecret(t, name)])
			if canon(s["KmsKeyId"]) != canon(suiteKey) {
				t.Errorf("%s encrypted with %s, want the suite key", name, canon(s["KmsKeyId"]))
			}
		}
	})
	t.Run("key policy admits the functions only via Secrets Manager", func(t *testing.T) {
		key := props(f.resources("AWS::KMS::Key")[f.secretsKey(t)])
		var principals []any
		for _, st := range key["KeyPolicy"].(map[string]any)["Statement"].([]any) {
			s := st.(map[string]any)
			p, _ := s["Principal"].(map[string]any)
			aws := canon(p["AWS"])
			if !strings.Contains(aws, "Role") {
				continue
			}
			principals = append(principals, p["AWS"])
			if canon(s["Condition"]) != canon(via) {
				t.Errorf("function role in key policy without kms:ViaService: %s", canon(s))
			}
		}
		// random-secret and postgres-multi-user rotate created secrets.
		want := canonSet([]any{getAtt(f.roleID(t, randomSecret), "Arn"), getAtt(f.roleID(t, postgresMultiUser), "Arn")})
		if got := canonSet(principals); !reflect.DeepEqual(got, want) {
			t.Errorf("key policy names roles %v, want %v", got, want)
		}
	})
}

func TestRDSReadOnlyForMultiUserTypes(t *testing.T) {
	f := example.get(t)
	for _, typ := range rotary.FunctionTypes() {
		if typ.NeedsRDSMasterPassword() {
			continue // TestRDSMasterPasswordOnItsDatabaseOnly
		}
		t.Run(string(typ), func(t *testing.T) {
			stmts := f.statements(t, f.roleID(t, typ))
			var rds []map[string]any
			for _, s := range stmts {
				if strings.Contains(canon(s["Action"]), "rds:") {
					rds = append(rds, s)
				}
			}
			if !typ.NeedsMaster() {
				if len(rds) != 0 {
					t.Errorf("%s may call RDS: %s", typ, canon(rds))
				}
				return
			}
			if len(rds) != 1 {
				t.Fatalf("want one RDS statement, got %d", len(rds))
			}
			if got := canonSet(list(rds[0]["Action"])); !reflect.DeepEqual(got, canonSet([]any{"rds:DescribeDBInstances", "rds:DescribeDBClusters"})) {
				t.Errorf("RDS actions %v, want read-only describes", got)
			}
			if r := canon(rds[0]["Resource"]); !strings.Contains(r, ":rds:eu-west-1:111122223333:db:*") || !strings.Contains(r, ":rds:eu-west-1:111122223333:cluster:*") {
				t.Errorf("RDS resources %s not scoped to the account and region", r)
			}
		})
	}
}

// TestRDSMasterPasswordOnItsDatabaseOnly: the rds-master function may
// describe and modify the one cluster its secret names, nothing else in
// RDS, and runs outside the VPC with time to wait for RDS.
func TestRDSMasterPasswordOnItsDatabaseOnly(t *testing.T) {
	f := example.get(t)
	var rds []map[string]any
	for _, s := range f.statements(t, f.roleID(t, rdsMaster)) {
		if strings.Contains(canon(s["Action"]), "rds:") {
			rds = append(rds, s)
		}
	}
	if len(rds) != 1 {
		t.Fatalf("want one RDS statement, got %d: %s", len(rds), canon(rds))
	}
	if got := canonSet(list(rds[0]["Action"])); !reflect.DeepEqual(got, canonSet([]any{"rds:DescribeDBClusters", "rds:ModifyDBCluster"})) {
		t.Errorf("RDS actions %v, want DescribeDBClusters and ModifyDBCluster", got)
	}
	if r := canon(rds[0]["Resource"]); r != canon(ordersClusterARN) {
		t.Errorf("RDS resource %s, want only the secret's cluster %s", r, ordersClusterARN)
	}
	if e := rds[0]["Effect"]; e != "Allow" {
		t.Errorf("effect %v", e)
	}
	// The example's rds-master secret names its database: the login mode.
	p := props(f.resources("AWS::Lambda::Function")[f.functionID(t, rdsMaster)])
	if _, inVPC := p["VpcConfig"]; !inVPC {
		t.Error("rds-master in the login mode runs outside the VPC; it cannot reach the database")
	}
	if env := p["Environment"].(map[string]any)["Variables"].(map[string]any); env[rotary.EnvRDSMasterLogin] != "true" {
		t.Errorf("%s = %v, want true in the login mode", rotary.EnvRDSMasterLogin, env[rotary.EnvRDSMasterLogin])
	}
	if p["Timeout"] != float64(900) {
		t.Errorf("rds-master timeout %v, want 900 seconds", p["Timeout"])
	}
}

// TestRDSMasterWithoutLoginNeedsNoVpc: without a database the rds-master
// function runs outside the VPC, logs in to nothing, and may only describe
// and modify its databases.
func TestRDSMasterWithoutLoginNeedsNoVpc(t *testing.T) {
	f := rdsOnly.get(t)
	p := props(f.resources("AWS::Lambda::Function")[f.functionID(t, rdsMaster)])
	if _, inVPC := p["VpcConfig"]; inVPC {
		t.Error("rds-master without a database runs in the VPC")
	}
	if env, ok := p["Environment"].(map[string]any); ok {
		if v, set := env["Variables"].(map[string]any)[rotary.EnvRDSMasterLogin]; set {
			t.Errorf("%s = %v without the login mode", rotary.EnvRDSMasterLogin, v)
		}
	}
	if _, set := p["ReservedConcurrentExecutions"]; set {
		t.Errorf("rds-master without a login reaches no database, yet has a reservation %v", p["ReservedConcurrentExecutions"])
	}
	// Each secret is bound to its own database, and to nothing else.
	var bound map[string]string
	vars, _ := p["Environment"].(map[string]any)["Variables"].(map[string]any)
	if v, ok := vars[rotary.EnvRDSBindings].(string); !ok || json.Unmarshal([]byte(v), &bound) != nil {
		t.Fatalf("%s = %v, want a JSON object", rotary.EnvRDSBindings, vars[rotary.EnvRDSBindings])
	}
	if want := map[string]string{
		"arn:aws:secretsmanager:us-east-2:444455556666:secret:one-AbCdEf": "arn:aws:rds:us-east-2:444455556666:db:one",
		"arn:aws:secretsmanager:us-east-2:444455556666:secret:two-AbCdEf": "arn:aws:rds:us-east-2:444455556666:cluster:two",
	}; !reflect.DeepEqual(bound, want) {
		t.Errorf("%s\n got %v\nwant %v", rotary.EnvRDSBindings, bound, want)
	}
	if _, set := vars[rotary.EnvElastiCacheBindings]; set {
		t.Errorf("rds-master has %s", rotary.EnvElastiCacheBindings)
	}
	check(t, "no security groups", func() { f.template.ResourceCountIs(jsii.String("AWS::EC2::SecurityGroup"), jsii.Number(0)) })
	var got []string
	for _, s := range f.statements(t, f.roleID(t, rdsMaster)) {
		if strings.HasPrefix(fmt.Sprint(s["Sid"]), rotary.SidRDSMasterPassword) {
			got = append(got, canon(list(s["Action"]))+" on "+canon(s["Resource"]))
		}
		if strings.Contains(canon(s["Action"]), "ec2:") {
			t.Errorf("network interface actions without a VPC: %s", canon(s))
		}
	}
	sort.Strings(got)
	want := []string{
		canon([]any{"rds:DescribeDBClusters", "rds:ModifyDBCluster"}) + " on " + canon("arn:aws:rds:us-east-2:444455556666:cluster:two"),
		canon([]any{"rds:DescribeDBInstances", "rds:ModifyDBInstance"}) + " on " + canon("arn:aws:rds:us-east-2:444455556666:db:one"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("RDS statements\n got %v\nwant %v", got, want)
	}
}

// TestElastiCacheUserOnItsUserAndGroupOnly: the elasticache-user function
// may describe and modify the one user its secret names and describe that
// user's replication group, each on its ARN only; no other function may
// call ElastiCache.
func TestElastiCacheUserOnItsUserAndGroupOnly(t *testing.T) {
	f := example.get(t)
	for _, typ := range rotary.FunctionTypes() {
		t.Run(string(typ), func(t *testing.T) {
			var ec []map[string]any
			for _, s := range f.statements(t, f.roleID(t, typ)) {
				if strings.Contains(canon(s["Action"]), "elasticache:") {
					ec = append(ec, s)
				}
			}
			if typ != elastiCacheUser {
				if len(ec) != 0 {
					t.Errorf("%s may call ElastiCache: %s", typ, canon(ec))
				}
				return
			}
			want := []map[string]any{
				{"Sid": rotary.SidElastiCacheUser + "1", "Effect": "Allow", "Action": []any{"elasticache:DescribeUsers", "elasticache:ModifyUser"}, "Resource": ordersCacheUser},
				{"Sid": rotary.SidElastiCacheReplicationGroup + "1", "Effect": "Allow", "Action": "elasticache:DescribeReplicationGroups", "Resource": ordersCacheGroup},
			}
			if canon(ec) != canon(want) {
				t.Errorf("ElastiCache statements\n got %s\nwant %s", canon(ec), canon(want))
			}
		})
	}
}

func TestInvokePermissionNamesAccountAndSecret(t *testing.T) {
	f := example.get(t)
	tests := []struct {
		secret any
		typ    rotary.FunctionType
	}{
		{ordersAdminARN, postgresSingleUser},
		{ref(f.createdSecret(t, "orders-app")), postgresMultiUser},
		{billingAppARN, mySQLSingleUser},
		{billingRepARN, mySQLMultiUser},
		{ref(f.createdSecret(t, "webhook-signing-key")), randomSecret},
		{ordersMasterARN, rdsMaster},
		{sessionsCacheARN, redisACL},
		{ordersCacheARN, elastiCacheUser},
		{ordersReportARN, postgresExpiring},
		{billingBatchARN, mySQLExpiring},
	}
	issuer := canon(getAtt(f.issuerFunctionID(t), "Arn"))
	rotation := 0
	for _, p := range f.resources("AWS::Lambda::Permission") {
		if canon(props(p)["FunctionName"]) != issuer {
			rotation++
		}
	}
	if rotation != len(tests) {
		t.Errorf("%d rotation invoke permissions, want one per secret (%d)", rotation, len(tests))
	}
	for _, tc := range tests {
		t.Run(canon(tc.secret), func(t *testing.T) {
			check(t, "permission", func() {
				f.template.HasResourceProperties(jsii.String("AWS::Lambda::Permission"), &map[string]any{
					"Action":        "lambda:InvokeFunction",
					"Principal":     "secretsmanager.amazonaws.com",
					"SourceAccount": exampleAccount,
					"SourceArn":     tc.secret,
					"FunctionName":  getAtt(f.functionID(t, tc.typ), "Arn"),
				})
			})
		})
	}
	for id, p := range f.resources("AWS::Lambda::Permission") {
		if canon(props(p)["FunctionName"]) == issuer {
			continue // TestIssuerURLIsIAMOnlyForTheCallers
		}
		if props(p)["SourceArn"] == nil || props(p)["SourceAccount"] == nil {
			t.Errorf("permission %s lacks SourceArn or SourceAccount", id)
		}
	}
}

func TestSchedulesUseExpressionsAndWindows(t *testing.T) {
	f := example.get(t)
	tests := []struct {
		secret      any
		typ         rotary.FunctionType
		expr, dur   string
		immediately bool
	}{
		{ordersAdminARN, postgresSingleUser, "rate(30 days)", "4h", false},
		{ref(f.createdSecret(t, "orders-app")), postgresMultiUser, "cron(0 4 ? * SUN *)", "3h", true},
		{billingAppARN, mySQLSingleUser, "rate(7 days)", "2h", false},
		{billingRepARN, mySQLMultiUser, "rate(14 days)", "2h", false},
		{ref(f.createdSecret(t, "webhook-signing-key")), randomSecret, "rate(90 days)", "2h", false},
		{ordersMasterARN, rdsMaster, "rate(30 days)", "2h", false},
		{sessionsCacheARN, redisACL, "rate(30 days)", "2h", false},
		{ordersCacheARN, elastiCacheUser, "rate(30 days)", "2h", false},
		{ordersReportARN, postgresExpiring, "rate(7 days)", "3h", false},
		{billingBatchARN, mySQLExpiring, "rate(1 day)", "2h", false},
	}
	check(t, "one schedule per secret", func() {
		f.template.ResourceCountIs(jsii.String("AWS::SecretsManager::RotationSchedule"), jsii.Number(float64(len(tests))))
	})
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			check(t, "schedule", func() {
				f.template.HasResourceProperties(jsii.String("AWS::SecretsManager::RotationSchedule"), &map[string]any{
					"SecretId":                  tc.secret,
					"RotationLambdaARN":         getAtt(f.functionID(t, tc.typ), "Arn"),
					"RotationRules":             map[string]any{"ScheduleExpression": tc.expr, "Duration": tc.dur},
					"RotateImmediatelyOnUpdate": tc.immediately,
				})
			})
		})
	}
	// The schedule must wait for the invoke permission it relies on.
	for id, s := range f.resources("AWS::SecretsManager::RotationSchedule") {
		deps := canon(s["DependsOn"])
		found := false
		for pid := range f.resources("AWS::Lambda::Permission") {
			if strings.Contains(deps, `"`+pid+`"`) {
				found = true
			}
		}
		if !found {
			t.Errorf("schedule %s does not depend on its invoke permission (DependsOn %s)", id, deps)
		}
	}
}

func TestSecurityGroupsAllowOnlyDatabasePortsAndTheEndpoint(t *testing.T) {
	f := example.get(t)
	endpointSG := f.only(t, "AWS::EC2::SecurityGroup", func(p map[string]any) bool {
		return strings.Contains(fmt.Sprint(p["GroupDescription"]), "endpoint")
	})
	fnSGs := map[string]rotary.FunctionType{}
	for _, typ := range rotary.FunctionTypes() {
		if f.cfg.LogsInToDatabase(string(typ)) {
			fnSGs[sgOf(t, f, typ)] = typ
		}
	}
	// The issuer's group: its roles' two databases.
	issuerFn := props(f.resources("AWS::Lambda::Function")[f.issuerFunctionID(t)])
	issuerSG := list(issuerFn["VpcConfig"].(map[string]any)["SecurityGroupIds"])[0].(map[string]any)["Fn::GetAtt"].([]any)[0].(string)
	// No security group of the stack has inline ingress; the only ingress
	// rules are DB-port rules from function groups, and 443 into the endpoint.
	for id, sg := range f.resources("AWS::EC2::SecurityGroup") {
		if in := props(sg)["SecurityGroupIngress"]; in != nil {
			t.Errorf("security group %s has inline ingress %s", id, canon(in))
		}
	}
	wantIngress := map[string]bool{}
	wantEgress := map[string]bool{}
	dbOf := map[rotary.FunctionType][2]any{
		postgresSingleUser: {ordersPgSG, 5432}, postgresMultiUser: {ordersPgSG, 5432},
		mySQLSingleUser: {billingMySQLSG, 3306}, mySQLMultiUser: {billingMySQLSG, 3306},
		redisACL: {sessionsRedisSG, 6379}, elastiCacheUser: {ordersCacheSG, 6379},
		rdsMaster:        {ordersPgSG, 5432}, // the login mode
		postgresExpiring: {ordersPgSG, 5432}, mySQLExpiring: {billingMySQLSG, 3306},
	}
	for sg, typ := range fnSGs {
		db := dbOf[typ]
		wantIngress[canon([]any{db[0], getAtt(sg, "GroupId"), db[1]})] = true
		wantIngress[canon([]any{getAtt(endpointSG, "GroupId"), getAtt(sg, "GroupId"), 443})] = true
		wantEgress[canon([]any{getAtt(sg, "GroupId"), db[0], db[1]})] = true
		wantEgress[canon([]any{getAtt(sg, "GroupId"), getAtt(endpointSG, "GroupId"), 443})] = true
	}
	for _, db := range [][2]any{{ordersPgSG, 5432}, {billingMySQLSG, 3306}} {
		wantIngress[canon([]any{db[0], getAtt(issuerSG, "GroupId"), db[1]})] = true
		wantEgress[canon([]any{getAtt(issuerSG, "GroupId"), db[0], db[1]})] = true
	}
	wantIngress[canon([]any{getAtt(endpointSG, "GroupId"), getAtt(issuerSG, "GroupId"), 443})] = true
	wantEgress[canon([]any{getAtt(issuerSG, "GroupId"), getAtt(endpointSG, "GroupId"), 443})] = true
	// The issuer calls Secrets Manager only: through the endpoint, no other HTTPS.
	if e := list(props(f.resources("AWS::EC2::SecurityGroup")[issuerSG])["SecurityGroupEgress"]); len(e) != 0 {
		t.Errorf("the issuer's security group has extra egress %s", canon(e))
	}
	gotIngress := map[string]bool{}
	for id, r := range f.resources("AWS::EC2::SecurityGroupIngress") {
		p := props(r)
		if p["FromPort"] != p["ToPort"] || p["IpProtocol"] != "tcp" || p["CidrIp"] != nil {
			t.Errorf("ingress %s is not a single TCP port from a security group: %s", id, canon(p))
		}
		gotIngress[canon([]any{p["GroupId"], p["SourceSecurityGroupId"], p["FromPort"]})] = true
	}
	gotEgress := map[string]bool{}
	for id, r := range f.resources("AWS::EC2::SecurityGroupEgress") {
		p := props(r)
		if p["FromPort"] != p["ToPort"] || p["IpProtocol"] != "tcp" {
			t.Errorf("egress %s is not a single TCP port: %s", id, canon(p))
		}
		gotEgress[canon([]any{p["GroupId"], p["DestinationSecurityGroupId"], p["FromPort"]})] = true
	}
	// A function group's inline egress is empty (all rules are separate),
	// except HTTPS to the RDS API for multi-user types and to the
	// ElastiCache API for elasticache-user: the endpoint serves Secrets
	// Manager only, an RDS-managed master secret's host comes from
	// DescribeDBInstances/DescribeDBClusters, and elasticache-user calls
	// ModifyUser.
	for sg, typ := range fnSGs {
		e := list(props(f.resources("AWS::EC2::SecurityGroup")[sg])["SecurityGroupEgress"])
		api := ""
		switch {
		case typ.NeedsMaster() || typ == rdsMaster:
			api = "RDS API"
		case typ == elastiCacheUser:
			api = "ElastiCache API"
		}
		if api == "" {
			if len(e) != 0 {
				t.Errorf("function security group %s (%s) has extra egress %s", sg, typ, canon(e))
			}
			continue
		}
		if len(e) != 1 {
			t.Errorf("function security group %s (%s) egress %s; want only HTTPS to the %s", sg, typ, canon(e), api)
			continue
		}
		r := e[0].(map[string]any)
		if r["CidrIp"] != "0.0.0.0/0" || fmt.Sprint(r["FromPort"]) != "443" || fmt.Sprint(r["ToPort"]) != "443" || r["IpProtocol"] != "tcp" || !strings.HasPrefix(fmt.Sprint(r["Description"]), api) {
			t.Errorf("function security group %s (%s) egress %s; want only tcp 443 (%s)", sg, typ, canon(r), api)
		}
	}
	if !reflect.DeepEqual(gotIngress, wantIngress) {
		t.Errorf("ingress rules\n got %v\nwant %v", keys(gotIngress), keys(wantIngress))
	}
	if !reflect.DeepEqual(gotEgress, wantEgress) {
		t.Errorf("egress rules\n got %v\nwant %v", keys(gotEgress), keys(wantEgress))
	}
}

func TestAlertsReachTheEncryptedTLSOnlyTopic(t *testing.T) {
	f := example.get(t)
	topic := f.only(t, "AWS::SNS::Topic", func(p map[string]any) bool { return true })
	check(t, "topic encrypted with a CMK", func() {
		f.template.HasResourceProperties(jsii.String("AWS::SNS::Topic"), &map[string]any{
			"KmsMasterKeyId": assertions.Match_ObjectLike(&map[string]any{"Fn::GetAtt": assertions.Match_AnyValue()}),
		})
	})
	check(t, "TLS-only topic policy", func() {
		f.template.HasResourceProperties(jsii.String("AWS::SNS::TopicPolicy"), &map[string]any{
			"PolicyDocument": assertions.Match_ObjectLike(&map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
				assertions.Match_ObjectLike(&map[string]any{
					"Effect":    "Deny",
					"Action":    "sns:Publish",
					"Principal": "*",
					"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
				}),
			})}),
		})
	})
	check(t, "email subscription", func() {
		f.template.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), &map[string]any{
			"Protocol": "email", "Endpoint": "platform-oncall@example.com", "TopicArn": ref(topic),
		})
	})
	// Every alert rule goes to the topic with a readable message (an
	// input transformer): which call, on which secret, by whom, from where.
	for id, r := range f.resources("AWS::Events::Rule") {
		targets := list(props(r)["Targets"])
		if len(targets) != 1 || canon(targets[0].(map[string]any)["Arn"]) != canon(ref(topic)) {
			t.Errorf("rule %s targets %s, want the topic only", id, canon(targets))
			continue
		}
		tr, ok := targets[0].(map[string]any)["InputTransformer"].(map[string]any)
		if !ok || !strings.HasPrefix(fmt.Sprint(tr["InputTemplate"]), `"Rotary: `) {
			t.Errorf("rule %s sends no readable message: %s", id, canon(targets[0]))
		}
	}
	for _, typ := range rotary.FunctionTypes() {
		t.Run("alarms for "+string(typ), func(t *testing.T) {
			dims := []any{map[string]any{"Name": "FunctionName", "Value": ref(f.functionID(t, typ))}}
			for _, m := range [][2]string{{"AWS/Lambda", "Errors"}, {"AWS/Lambda", "Throttles"}, {rotary.MetricNamespace, rotary.MetricStepFailed}} {
				check(t, m[0]+"/"+m[1], func() {
					f.template.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), &map[string]any{
						"Namespace":          m[0],
						"MetricName":         m[1],
						"Dimensions":         dims,
						"Statistic":          "Sum",
						"Threshold":          1,
						"ComparisonOperator": "GreaterThanOrEqualToThreshold",
						"TreatMissingData":   "notBreaching",
						"AlarmActions":       []any{ref(topic)},
					})
				})
			}
		})
	}
	check(t, "outputs name the topic and the functions", func() {
		f.template.HasOutput(jsii.String("AlarmTopicArn"), &map[string]any{"Value": ref(topic)})
		for _, fn := range f.stack.Suite.Functions() {
			f.template.HasOutput(jsii.String(fn.OutputID()), &map[string]any{"Value": ref(f.functionID(t, fn.Type))})
		}
	})
}

func TestCdkNagReportsNoUnsuppressedFindings(t *testing.T) {
	for name, lf := range map[string]*lazyFixture{"example": example, "minimal": minimal, "fleet": fleet} {
		t.Run(name, func(t *testing.T) {
			f := lf.get(t)
			for _, level := range []struct {
				name string
				find func(*string, any) *[]*cxapi.SynthesisMessage
			}{
				{"error", f.annotations.FindError},
				{"warning", f.annotations.FindWarning},
			} {
				msgs := level.find(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*")))
				for _, m := range *msgs {
					t.Errorf("cdk-nag %s at %s: %v", level.name, *m.Id, firstLine(fmt.Sprint(m.Entry.Data)))
				}
			}
		})
	}
}

// TestCdkNagSuppressionsAreExactlyTheJustifiedOnes reads cdk-nag's report:
// every suppressed finding is one the construct explains, on the resource it
// explains it for, and each explained finding really occurs.
func TestCdkNagSuppressionsAreExactlyTheJustifiedOnes(t *testing.T) {
	f := example.get(t)
	path := filepath.Join(f.outdir, "AwsSolutions--"+f.cfg.StackName+"-NagReport.csv")
	file, err := os.Open(path)
	if err != nil {
		t.Fatalf("cdk-nag report: %v", err)
	}
	t.Cleanup(func() { file.Close() })
	rows, err := csv.NewReader(file).ReadAll()
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	got := map[string]bool{}
	for _, r := range rows[1:] {
		rule, resource, compliance, reason, level := r[0], r[1], r[2], r[3], r[4]
		switch compliance {
		case "Suppressed":
			got[rule+" "+resource+" "+reason] = true
		case "Non-Compliant":
			if level == "Error" {
				t.Errorf("unsuppressed %s on %s", rule, resource)
			}
		}
	}
	want := map[string]bool{}
	for _, fn := range f.stack.Suite.Functions() {
		policy := *fn.Role.Node().Path() + "/DefaultPolicy/Resource"
		if fn.InVpc() {
			reason := rotary.ReasonENIWildcard
			if fn.Type.BatchReads() {
				reason = rotary.ReasonENIAndBatchWildcard
			}
			want["AwsSolutions-IAM5 "+policy+" [Resource::*] "+reason] = true
		}
		if fn.Type.NeedsMaster() {
			for _, r := range []string{"db", "cluster"} {
				finding := "[Resource::arn:<AWS::Partition>:rds:" + exampleRegion + ":" + exampleAccount + ":" + r + ":*] "
				want["AwsSolutions-IAM5 "+policy+" "+finding+rotary.ReasonRDSDescribe] = true
			}
		}
	}
	// The issuer runs in the VPC; it reads no batch and calls no RDS.
	want["AwsSolutions-IAM5 "+*f.stack.Suite.Issuer().Role.Node().Path()+"/DefaultPolicy/Resource [Resource::*] "+rotary.ReasonENIWildcard] = true
	if !reflect.DeepEqual(got, want) {
		t.Errorf("suppressed findings\n got %v\nwant %v", keys(got), keys(want))
	}
	for _, r := range []string{rotary.ReasonENIWildcard, rotary.ReasonENIAndBatchWildcard, rotary.ReasonRDSDescribe} {
		if len(r) < 40 {
			t.Errorf("suppression reason %q is too short to explain anything", r)
		}
	}
}

func TestSynthIsDeterministic(t *testing.T) {
	f := example.get(t)
	cfg, err := config.Load("../rotary.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DistDir = f.cfg.DistDir
	out := t.TempDir()
	a := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(out)})
	if _, err := NewStack(a, cfg); err != nil {
		t.Fatal(err)
	}
	a.Synth(nil)
	name := cfg.StackName + ".template.json"
	first, err := os.ReadFile(filepath.Join(f.outdir, name))
	if err != nil {
		t.Fatal(err)
	}
	second, err := os.ReadFile(filepath.Join(out, name))
	if err != nil {
		t.Fatal(err)
	}
	if string(first) != string(second) {
		t.Errorf("two synths of the same config differ (%d vs %d bytes)", len(first), len(second))
	}
}

func TestMissingPackageSaysRunMakeBuild(t *testing.T) {
	cdktest.RequireNode(t)
	cfg, err := config.Parse([]byte(minimalYAML), ".")
	if err != nil {
		t.Fatal(err)
	}
	dist, err := fakeDist(randomSecret) // postgres-single-user.zip is missing
	if err != nil {
		t.Fatal(err)
	}
	cfg.DistDir = dist
	a := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	_, err = NewStack(a, cfg)
	if err == nil {
		t.Fatal("NewStack succeeded without postgres-single-user.zip")
	}
	if !errors.Is(err, rotary.ErrMissingPackage) {
		t.Errorf("error %v does not wrap rotary.ErrMissingPackage", err)
	}
	for _, want := range []string{"postgres-single-user.zip", "run make build", "app-db"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func toAny[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func TestStaleRotationIsReportedThroughAWSConfig(t *testing.T) {
	f := example.get(t)
	topic := f.only(t, "AWS::SNS::Topic", func(p map[string]any) bool { return true })
	rule := f.only(t, "AWS::Config::ConfigRule", func(p map[string]any) bool { return true })
	check(t, "managed rule on secrets", func() {
		f.template.HasResourceProperties(jsii.String("AWS::Config::ConfigRule"), &map[string]any{
			"Source": map[string]any{"Owner": "AWS", "SourceIdentifier": "SECRETSMANAGER_SCHEDULED_ROTATION_SUCCESS_CHECK"},
			"Scope":  map[string]any{"ComplianceResourceTypes": []any{"AWS::SecretsManager::Secret"}},
		})
	})
	check(t, "NON_COMPLIANT reaches the topic", func() {
		f.template.HasResourceProperties(jsii.String("AWS::Events::Rule"), &map[string]any{
			"EventPattern": assertions.Match_ObjectLike(&map[string]any{
				"source":      []any{"aws.config"},
				"detail-type": []any{"Config Rules Compliance Change"},
				"detail": map[string]any{
					"configRuleName":      []any{ref(rule)},
					"newEvaluationResult": map[string]any{"complianceType": []any{"NON_COMPLIANT"}},
				},
			}),
			"Targets": []any{assertions.Match_ObjectLike(&map[string]any{"Arn": ref(topic)})},
		})
	})
	m := minimal.get(t)
	check(t, "off unless asked for", func() {
		m.template.ResourceCountIs(jsii.String("AWS::Config::ConfigRule"), jsii.Number(0))
	})
}

// TestTemplateHasNoDependencyCycles: CloudFormation rejects a template whose
// resources depend on each other in a circle (e.g. a key policy naming a
// role whose policy names the key), and synth does not catch it.
func TestTemplateHasNoDependencyCycles(t *testing.T) {
	for name, lf := range map[string]*lazyFixture{"example": example, "minimal": minimal, "fleet": fleet} {
		t.Run(name, func(t *testing.T) {
			f := lf.get(t)
			res := f.json["Resources"].(map[string]any)
			deps := map[string][]string{}
			for id, r := range res {
				seen := map[string]bool{}
				var walk func(v any)
				walk = func(v any) {
					switch x := v.(type) {
					case map[string]any:
						if target, ok := x["Ref"].(string); ok && res[target] != nil {
							seen[target] = true
						}
						if ga, ok := x["Fn::GetAtt"].([]any); ok && len(ga) > 0 {
							if target, ok := ga[0].(string); ok && res[target] != nil {
								seen[target] = true
							}
						}
						for _, v := range x {
							walk(v)
						}
					case []any:
						for _, v := range x {
							walk(v)
						}
					}
				}
				rm := r.(map[string]any)
				walk(rm["Properties"])
				for _, d := range list(rm["DependsOn"]) {
					seen[d.(string)] = true
				}
				for d := range seen {
					deps[id] = append(deps[id], d)
				}
			}
			const (
				unvisited = iota
				visiting
				done
			)
			state := map[string]int{}
			var visit func(id string, path []string)
			visit = func(id string, path []string) {
				switch state[id] {
				case visiting:
					t.Errorf("dependency cycle: %s -> %s", strings.Join(path, " -> "), id)
					return
				case done:
					return
				}
				state[id] = visiting
				for _, d := range deps[id] {
					visit(d, append(path, id))
				}
				state[id] = done
			}
			for id := range res {
				visit(id, nil)
			}
		})
	}
}
