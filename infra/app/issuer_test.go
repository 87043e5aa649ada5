package app

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/aws/jsii-runtime-go"

	"github.com/rotary-secrets/rotary/infra/config"
	"github.com/rotary-secrets/rotary/infra/rotary"
)

// TestExpiringTypesGetTheirTTLAndSettings: the expiring-user functions get
// ROTARY_CREDENTIAL_TTL from credentialTtl (as a Go duration), the MySQL
// one its marker database and reap setting, and no other function gets
// them.
func TestExpiringTypesGetTheirTTLAndSettings(t *testing.T) {
	f := example.get(t)
	want := map[rotary.FunctionType]map[string]any{
		postgresExpiring: {config.EnvCredentialTTL: "360h0m0s"},
		mySQLExpiring:    {config.EnvCredentialTTL: "50h0m0s", config.EnvReapKeepSessions: "false", config.EnvMySQLMarkerDB: "rotary"},
	}
	for _, typ := range f.cfg.TypesInUse() {
		typ := rotary.FunctionType(typ)
		t.Run(string(typ), func(t *testing.T) {
			env := props(f.resources("AWS::Lambda::Function")[f.functionID(t, typ)])["Environment"].(map[string]any)["Variables"].(map[string]any)
			got := map[string]any{}
			for _, k := range []string{config.EnvCredentialTTL, config.EnvReapKeepSessions, config.EnvMySQLMarkerDB} {
				if v, ok := env[k]; ok {
					got[k] = v
				}
			}
			w := want[typ]
			if w == nil {
				w = map[string]any{}
			}
			if !reflect.DeepEqual(got, w) {
				t.Errorf("expiring-user settings %v, want %v", got, w)
			}
		})
	}
}

// TestExampleRefusesATTLARotationWouldNotOutlive: the example with a TTL
// equal to its weekly schedule plus the window is refused, naming the
// secret and the field (the construct's own check: infra/rotary).
func TestExampleRefusesATTLARotationWouldNotOutlive(t *testing.T) {
	b, err := os.ReadFile("../rotary.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(string(b), "credentialTtl: 360h", "credentialTtl: 171h", 1)
	_, err = config.Parse([]byte(src), "..")
	if err == nil || !strings.Contains(err.Error(), "secrets[7] (orders-reporting): field credentialTtl: functions.postgres-expiring-user.credentialTtl is 171h0m0s, not longer than the schedule rate(7 days)'s longest interval (168h0m0s) plus its window (3h0m0s)") {
		t.Fatalf("171h for rate(7 days) + 3h: %v", err)
	}
}

// TestIssuerURLIsIAMOnlyForTheCallers: the function URL's auth type is
// AWS_IAM; its resource policy holds, per allowed caller, exactly
// InvokeFunctionUrl with the AWS_IAM auth type and InvokeFunction through
// the URL, per operator InvokeFunction, and nothing for anyone else (no
// "*" principal, no public URL).
func TestIssuerURLIsIAMOnlyForTheCallers(t *testing.T) {
	f := example.get(t)
	fn := getAtt(f.issuerFunctionID(t), "Arn")
	urls := f.resources("AWS::Lambda::Url")
	if len(urls) != 1 {
		t.Fatalf("%d function URLs, want the issuer's", len(urls))
	}
	for _, u := range urls {
		p := props(u)
		if p["AuthType"] != "AWS_IAM" || canon(p["TargetFunctionArn"]) != canon(fn) || p["Cors"] != nil {
			t.Errorf("function URL %s, want AWS_IAM on the issuer, no CORS", canon(p))
		}
	}
	var got []string
	for id, r := range f.resources("AWS::Lambda::Permission") {
		p := props(r)
		if canon(p["FunctionName"]) != canon(fn) {
			continue
		}
		if p["Principal"] == "*" || strings.Contains(fmt.Sprint(p["Principal"]), "*") {
			t.Errorf("permission %s is open to %v", id, p["Principal"])
		}
		if p["SourceArn"] != nil || p["SourceAccount"] != nil {
			t.Errorf("permission %s has a source condition %s", id, canon(p))
		}
		got = append(got, fmt.Sprintf("%v %v auth=%v viaUrl=%v", p["Principal"], p["Action"], p["FunctionUrlAuthType"], p["InvokedViaFunctionUrl"]))
	}
	var want []string
	for _, c := range *f.cfg.Issuer.AllowedCallers {
		want = append(want, c+" lambda:InvokeFunctionUrl auth=AWS_IAM viaUrl=<nil>", c+" lambda:InvokeFunction auth=<nil> viaUrl=true")
	}
	for _, o := range f.cfg.Issuer.Operators {
		want = append(want, o+" lambda:InvokeFunction auth=<nil> viaUrl=<nil>")
	}
	sort.Strings(got)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("issuer's resource policy\n got %v\nwant %v", got, want)
	}
	// The callers are exactly the config's: a caller of another account too.
	if !hasPrefix(got, "arn:aws:iam::444455556666:role/data-platform/notebook lambda:InvokeFunctionUrl") {
		t.Error("the caller of another account is not in the URL's policy")
	}
	check(t, "outputs", func() {
		f.template.HasOutput(jsii.String("IssuerFunctionName"), &map[string]any{"Value": ref(f.issuerFunctionID(t))})
	})
	var urlID string
	for id := range urls {
		urlID = id
	}
	check(t, "URL output", func() {
		f.template.HasOutput(jsii.String("IssuerFunctionUrl"), &map[string]any{"Value": getAtt(urlID, "FunctionUrl")})
	})
}

func hasPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// TestIssuerRoleReadsOnlyItsMasters: the issuer's policy is its log group,
// GetSecretValue on its roles' master secrets (no DescribeSecret, no
// write, no other secret), kms:Decrypt through Secrets Manager on their
// keys, and the VPC network-interface actions; the watch may not invoke it
// and it invokes nothing.
func TestIssuerRoleReadsOnlyItsMasters(t *testing.T) {
	f := example.get(t)
	fn := props(f.resources("AWS::Lambda::Function")[f.issuerFunctionID(t)])
	lg := fn["LoggingConfig"].(map[string]any)["LogGroup"].(map[string]any)["Ref"].(string)
	want := []map[string]any{
		{"Sid": rotary.SidWriteLogs, "Effect": "Allow", "Action": []any{"logs:CreateLogStream", "logs:PutLogEvents"}, "Resource": getAtt(lg, "Arn")},
		{"Sid": rotary.SidIssuerReadMasters, "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": []any{ordersAdminARN, billingMstARN}},
		{"Sid": rotary.SidIssuerUseKeys, "Effect": "Allow", "Action": "kms:Decrypt", "Resource": ordersAdminKey,
			"Condition": map[string]any{"StringEquals": map[string]any{"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com", "kms:CallerAccount": exampleAccount}}},
		{"Sid": rotary.SidDescribeENIs, "Effect": "Allow", "Action": []any{"ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"}, "Resource": "*"},
		{"Sid": rotary.SidManageENIs, "Effect": "Allow", "Action": []any{"ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"}, "Resource": "*"},
	}
	if got, w := normStatements(f.statements(t, f.issuerRoleID(t))), normStatements(want); !reflect.DeepEqual(got, w) {
		t.Errorf("issuer policy\n got %v\nwant %v", got, w)
	}
	// Under each secret's policy: the issuer reads exactly its masters.
	endpoint := ref(f.only(t, "AWS::EC2::VPCEndpoint", func(map[string]any) bool { return true }))
	var reads []string
	for _, s := range f.cfg.Secrets {
		secret := f.secretRefOf(t, s.Name)
		for _, a := range secretsManagerActions {
			action := "secretsmanager:" + a
			if d, _ := denied(f.policyOf(t, secret), request{principal: getAtt(f.issuerRoleID(t), "Arn"), vpce: endpoint, action: action}); !d && f.allowedByIdentity(t, f.issuerRoleID(t), secret, action) {
				reads = append(reads, s.Name+" "+a)
			}
		}
	}
	if !reflect.DeepEqual(reads, []string{"orders-admin GetSecretValue"}) {
		t.Errorf("the issuer may %v on the suite's secrets, want only GetSecretValue on orders-admin", reads)
	}
	watchInvoke := bySid(f.statements(t, f.watchRoleID(t)), rotary.SidWatchInvokeFunctions)
	if strings.Contains(canon(watchInvoke), f.issuerFunctionID(t)) {
		t.Errorf("the watch may invoke the issuer: %s", canon(watchInvoke))
	}
	for _, s := range f.statements(t, f.issuerRoleID(t)) {
		if strings.Contains(canon(s["Action"]), "lambda:") {
			t.Errorf("the issuer may call Lambda: %s", canon(s))
		}
	}
}

// TestIssuerFunction: arm64 on AL2023 in the VPC with the endpoint, its
// roles in ROTARY_ISSUER_ROLES as pkg/issuer reads them, its own log group
// with the retention, a reserved concurrency, the reap schedule with its
// own role, and alarms on errors and throttles.
func TestIssuerFunction(t *testing.T) {
	f := example.get(t)
	id := f.issuerFunctionID(t)
	fn := props(f.resources("AWS::Lambda::Function")[id])
	for k, v := range map[string]any{"FunctionName": "rotary-credential-issuer", "Runtime": "provided.al2023", "Handler": "bootstrap", "MemorySize": float64(256), "Timeout": float64(120), "ReservedConcurrentExecutions": float64(5)} {
		if canon(fn[k]) != canon(v) {
			t.Errorf("%s = %v, want %v", k, fn[k], v)
		}
	}
	if canon(fn["Architectures"]) != canon([]any{"arm64"}) {
		t.Errorf("architectures %v", fn["Architectures"])
	}
	if vpc, ok := fn["VpcConfig"].(map[string]any); !ok || canon(vpc["SubnetIds"]) != canon([]any{"subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"}) {
		t.Errorf("issuer VPC config %v", fn["VpcConfig"])
	}
	lg := f.resources("AWS::Logs::LogGroup")[fn["LoggingConfig"].(map[string]any)["LogGroup"].(map[string]any)["Ref"].(string)]
	if lg == nil || props(lg)["RetentionInDays"] != float64(90) || lg["DeletionPolicy"] != "Retain" {
		t.Errorf("issuer log group %v, want retention 90 days, retained", canon(lg))
	}
	env := fn["Environment"].(map[string]any)["Variables"].(map[string]any)
	if !strings.Contains(canon(env["SECRETS_MANAGER_ENDPOINT"]), `"https://"`) {
		t.Errorf("SECRETS_MANAGER_ENDPOINT = %v", env["SECRETS_MANAGER_ENDPOINT"])
	}
	for _, k := range []string{"PASSWORD_LENGTH", "ROTARY_CONNECT_TIMEOUT"} {
		if env[k] == nil {
			t.Errorf("the issuer lacks %s from function.environment", k)
		}
	}
	raw, ok := env[rotary.IssuerVarRoles].(string)
	if !ok {
		t.Fatalf("%s = %s, want a JSON string", rotary.IssuerVarRoles, canon(env[rotary.IssuerVarRoles]))
	}
	var roles map[string]map[string]any
	if err := json.Unmarshal([]byte(raw), &roles); err != nil {
		t.Fatalf("%s is not JSON: %v", rotary.IssuerVarRoles, err)
	}
	wantRoles := map[string]map[string]any{
		"orders-read": {"engine": "postgres", "masterarn": ordersAdminARN, "baseUser": "orders_ro", "dbname": "orders", "defaultTtl": "1h0m0s", "maxTtl": "12h0m0s"},
		"billing-ops": {"engine": "mysql", "masterarn": billingMstARN, "baseUser": "billing_ops", "defaultTtl": "1h0m0s", "maxTtl": "2h0m0s"},
	}
	if !reflect.DeepEqual(roles, wantRoles) {
		t.Errorf("%s\n got %v\nwant %v", rotary.IssuerVarRoles, roles, wantRoles)
	}
	// The reap schedule: every 5 minutes, {"rotary":"reap"}, its own role
	// that may invoke the issuer only, assumed by the scheduler of this account.
	var reap map[string]any
	for _, s := range f.resources("AWS::Scheduler::Schedule") {
		if canon(props(s)["Target"].(map[string]any)["Arn"]) == canon(getAtt(id, "Arn")) {
			reap = props(s)
		}
	}
	if reap == nil {
		t.Fatal("no reap schedule")
	}
	target := reap["Target"].(map[string]any)
	if reap["ScheduleExpression"] != "rate(5 minutes)" || target["Input"] != rotary.IssuerReapEvent {
		t.Errorf("reap schedule %s", canon(reap))
	}
	schedRole := target["RoleArn"].(map[string]any)["Fn::GetAtt"].([]any)[0].(string)
	if schedRole == f.schedulerRoleID(t) {
		t.Error("the reap schedule shares the watch's scheduler role")
	}
	wantSched := []map[string]any{{"Sid": rotary.SidIssuerSchedule, "Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": getAtt(id, "Arn")}}
	if got, w := normStatements(f.statements(t, schedRole)), normStatements(wantSched); !reflect.DeepEqual(got, w) {
		t.Errorf("reap scheduler policy\n got %v\nwant %v", got, w)
	}
	for _, m := range []string{"Errors", "Throttles"} {
		check(t, "alarm on "+m, func() {
			f.template.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), &map[string]any{
				"Namespace": "AWS/Lambda", "MetricName": m, "Dimensions": []any{map[string]any{"Name": "FunctionName", "Value": ref(id)}},
				"Threshold": 1, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
			})
		})
	}
}
