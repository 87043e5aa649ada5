package app

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/rotary-secrets/rotary/infra/config"
	"github.com/rotary-secrets/rotary/infra/rotary"
)

// The tests below evaluate the synthesized policies and rules the way AWS
// documents it, for the few operators the app writes: IAM's Deny with
// ArnNotLike, BoolIfExists and StringNotEquals (a negated operator is true
// when the key is absent), and EventBridge's exact values, exists,
// anything-but (a list, or {"wildcard": [...]}) and $or, where a pattern
// value matches an event array when any element does. A value that is a
// CloudFormation reference ({"Ref": ...}, {"Fn::GetAtt": ...}) stands for
// itself: the tests put the same reference in the request.

// glob matches IAM's and EventBridge's * (any run of characters, '/'
// included; no other character is special) on strings, and compares
// references by their JSON.
func glob(pattern, value any) bool {
	p, ps := pattern.(string)
	v, vs := value.(string)
	if !ps || !vs {
		return canon(pattern) == canon(value)
	}
	parts := strings.Split(p, "*")
	if len(parts) == 1 {
		return p == v
	}
	if !strings.HasPrefix(v, parts[0]) {
		return false
	}
	v = v[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, part := range parts[1 : len(parts)-1] {
		j := strings.Index(v, part)
		if j < 0 {
			return false
		}
		v = v[j+len(part):]
	}
	return len(v) >= len(last) && strings.HasSuffix(v, last)
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		p, v string
		want bool
	}{
		{"a", "a", true}, {"a", "ab", false}, {"a*", "ab/c", true}, {"*c", "ab/c", true}, {"a*c", "ac", true},
		{"a*b*c", "a/b/c", true}, {"a*b*c", "acb", false}, {"ab*ba", "aba", false}, {"role/x-*", "role/x", false},
	} {
		if got := glob(tc.p, tc.v); got != tc.want {
			t.Errorf("glob(%q, %q) = %v, want %v", tc.p, tc.v, got, tc.want)
		}
	}
}

// request is one call as IAM sees it.
type request struct {
	principal any // aws:PrincipalArn (a role's ARN for its sessions), nil for a service principal
	service   bool
	vpce      any // aws:SourceVpce, nil when not through an endpoint
	action    string
	lambda    any // secretsmanager:RotationLambdaARN, nil when the request names none
}

// denied reports whether a Deny statement of the policy applies. A
// BatchGetSecretValue returns a secret only when GetSecretValue on it is
// allowed, so the secret's denies of GetSecretValue apply to it.
func denied(policy map[string]any, r request) (bool, string) {
	if r.action == "secretsmanager:BatchGetSecretValue" {
		if d, sid := denied(policy, request{principal: r.principal, service: r.service, vpce: r.vpce, action: "secretsmanager:GetSecretValue", lambda: r.lambda}); d {
			return d, sid
		}
	}
	for _, st := range list(policy["Statement"]) {
		s := st.(map[string]any)
		if s["Effect"] != "Deny" || canon(s["Principal"]) != canon(map[string]any{"AWS": "*"}) {
			continue
		}
		acts := false
		for _, a := range list(s["Action"]) {
			acts = acts || a == r.action
		}
		if !acts {
			continue
		}
		all := true
		for op, kv := range s["Condition"].(map[string]any) {
			for key, want := range kv.(map[string]any) {
				all = all && condition(op, key, want, r)
			}
		}
		if all {
			return true, fmt.Sprint(s["Sid"])
		}
	}
	return false, ""
}

func condition(op, key string, want any, r request) bool {
	switch op + " " + key {
	case "ArnNotLike aws:PrincipalArn":
		if r.principal == nil {
			return true
		}
		for _, p := range list(want) {
			if glob(pseudo(p), r.principal) {
				return false
			}
		}
		return true
	case "Null secretsmanager:RotationLambdaARN":
		return fmt.Sprint(r.lambda == nil) == want
	case "ArnNotEquals secretsmanager:RotationLambdaARN":
		return r.lambda == nil || canon(r.lambda) != canon(want)
	case "BoolIfExists aws:PrincipalIsAWSService":
		return fmt.Sprint(r.service) == want
	case "StringNotEquals aws:SourceVpce":
		return r.vpce == nil || canon(r.vpce) != canon(want)
	}
	panic("the test evaluates no condition " + op + " " + key)
}

// pseudo resolves an {"Fn::Sub": ...} of a string whose only variable is
// ${AWS::Partition} (the deploy role's ARN, as the synthesizer writes it)
// to its value in the commercial partition; any other value stands for
// itself.
func pseudo(v any) any {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return v
	}
	s, ok := m["Fn::Sub"].(string)
	if !ok {
		return v
	}
	s = strings.ReplaceAll(s, "${AWS::Partition}", "aws")
	if strings.Contains(s, "${") {
		return v
	}
	return s
}

// policyOf returns the resource policy attached to the secret (its ARN or reference).
func (f *fixture) policyOf(t *testing.T, secret any) map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range f.resources("AWS::SecretsManager::ResourcePolicy") {
		if canon(props(r)["SecretId"]) == canon(secret) {
			out = append(out, props(r))
		}
	}
	if len(out) != 1 {
		t.Fatalf("secret %s has %d resource policies, want 1", canon(secret), len(out))
	}
	if out[0]["BlockPublicPolicy"] != true {
		t.Errorf("secret %s: BlockPublicPolicy = %v, want true", canon(secret), out[0]["BlockPublicPolicy"])
	}
	return out[0]["ResourcePolicy"].(map[string]any)
}

// secretRefOf is the secret's ARN, or the reference of a created secret.
func (f *fixture) secretRefOf(t *testing.T, name string) any {
	t.Helper()
	s, ok := f.cfg.Secret(name)
	if !ok {
		t.Fatalf("no secret %s", name)
	}
	if s.Create != nil {
		return ref(f.createdSecret(t, name))
	}
	return s.ARN
}

func (f *fixture) roleArn(t *testing.T, typ rotary.FunctionType) any {
	return getAtt(f.roleID(t, typ), "Arn")
}

// allowedByIdentity reports whether the role's own policy allows action on
// secret. BatchGetSecretValue is authorized as AWS documents it: the
// action itself (Resource "*": it has no resource-level permissions) and
// GetSecretValue on each secret of the batch.
func (f *fixture) allowedByIdentity(t *testing.T, roleID string, secret any, action string) bool {
	if action == "secretsmanager:BatchGetSecretValue" {
		return f.allowedOn(t, roleID, "*", action) && f.allowedByIdentity(t, roleID, secret, "secretsmanager:GetSecretValue")
	}
	return f.allowedOn(t, roleID, secret, action)
}

// allowedOn reports whether an Allow statement of the role's policy names
// action on resource (or on "*").
func (f *fixture) allowedOn(t *testing.T, roleID string, secret any, action string) bool {
	for _, s := range f.statements(t, roleID) {
		if s["Effect"] != "Allow" {
			continue
		}
		act, res := false, false
		for _, a := range list(s["Action"]) {
			act = act || a == action
		}
		for _, r := range list(s["Resource"]) {
			res = res || canon(r) == canon(secret) || r == "*"
		}
		if act && res {
			return true
		}
	}
	return false
}

// secretsManagerActions are the actions of Secrets Manager (its service
// authorization reference), to find what a role may do on a secret.
var secretsManagerActions = []string{"BatchGetSecretValue", "CancelRotateSecret", "CreateSecret", "DeleteResourcePolicy", "DeleteSecret", "DescribeSecret",
	"GetRandomPassword", "GetResourcePolicy", "GetSecretValue", "ListSecretVersionIds", "ListSecrets", "PutResourcePolicy", "PutSecretValue",
	"RemoveRegionsFromReplication", "ReplicateSecretToRegions", "RestoreSecret", "RotateSecret", "StopReplicationToReplica", "TagResource",
	"UntagResource", "UpdateSecret", "UpdateSecretVersionStage", "ValidateResourcePolicy"}

func TestEverySecretHasAResourcePolicy(t *testing.T) {
	for name, lf := range map[string]*lazyFixture{"example": example, "minimal": minimal, "fleet": fleet} {
		t.Run(name, func(t *testing.T) {
			f := lf.get(t)
			if got, want := len(f.resources("AWS::SecretsManager::ResourcePolicy")), len(f.cfg.Secrets); got != want {
				t.Errorf("%d resource policies for %d secrets", got, want)
			}
			for _, s := range f.cfg.Secrets {
				f.policyOf(t, f.secretRefOf(t, s.Name))
			}
		})
	}
}

// TestRotationRoleMayDoExactlyItsCallsUnderThePolicy: under its secret's
// policy and its own, the rotation role may make exactly the calls the
// engine makes (pkg/rotation: DescribeSecret, GetSecretValue,
// PutSecretValue, UpdateSecretVersionStage, and ListSecretVersionIds for
// probeSecret and recoverSecret; BatchGetSecretValue for the types that
// read AWSCURRENT and the master in one call), so the rotation keeps
// working, and nothing else on the secret.
func TestRotationRoleMayDoExactlyItsCallsUnderThePolicy(t *testing.T) {
	f := example.get(t)
	for _, s := range f.cfg.Secrets {
		t.Run(s.Name, func(t *testing.T) {
			secret := f.secretRefOf(t, s.Name)
			policy := f.policyOf(t, secret)
			typ := rotary.FunctionType(s.Type)
			// A function in the VPC reaches Secrets Manager through the endpoint.
			var vpce any
			if f.cfg.LogsInToDatabase(s.Type) {
				vpce = ref(f.only(t, "AWS::EC2::VPCEndpoint", func(map[string]any) bool { return true }))
			}
			var got []string
			for _, a := range secretsManagerActions {
				action := "secretsmanager:" + a
				if d, sid := denied(policy, request{principal: f.roleArn(t, typ), vpce: vpce, action: action}); d {
					if f.allowedByIdentity(t, f.roleID(t, typ), secret, action) {
						t.Errorf("the policy (%s) denies %s to the rotation role, which needs it", sid, action)
					}
					continue
				}
				if f.allowedByIdentity(t, f.roleID(t, typ), secret, action) {
					got = append(got, action)
				}
			}
			want := append([]string{}, rotary.RotateActions...)
			if typ.BatchReads() {
				want = append(want, rotary.BatchReadActions...)
			}
			sort.Strings(got)
			sort.Strings(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("the rotation role may %v on its secret, want exactly %v", got, want)
			}
		})
	}
}

// TestBatchReadsReachOnlyTheRolesSecrets: BatchGetSecretValue is granted
// on "*", yet under each secret's policy and the role's GetSecretValue a
// batch of a multi-user function returns exactly its own secrets and its
// masters, no other secret of the suite; the other roles may not batch.
func TestBatchReadsReachOnlyTheRolesSecrets(t *testing.T) {
	f := example.get(t)
	endpoint := ref(f.only(t, "AWS::EC2::VPCEndpoint", func(map[string]any) bool { return true }))
	for _, typ := range f.cfg.TypesInUse() {
		typ := rotary.FunctionType(typ)
		t.Run(string(typ), func(t *testing.T) {
			var vpce any
			if f.cfg.LogsInToDatabase(string(typ)) {
				vpce = endpoint
			}
			var got, want []string
			for _, s := range f.cfg.Secrets {
				secret := f.secretRefOf(t, s.Name)
				r := request{principal: f.roleArn(t, typ), vpce: vpce, action: "secretsmanager:BatchGetSecretValue"}
				if d, _ := denied(f.policyOf(t, secret), r); !d && f.allowedByIdentity(t, f.roleID(t, typ), secret, r.action) {
					got = append(got, s.Name)
				}
				if !typ.BatchReads() {
					continue
				}
				if s.Type == string(typ) {
					want = append(want, s.Name)
				}
				for _, o := range f.cfg.Secrets {
					if o.Type == string(typ) && o.MasterSecret == s.Name && !slices.Contains(want, s.Name) {
						want = append(want, s.Name)
					}
				}
			}
			sort.Strings(got)
			sort.Strings(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("a batch read by %s returns %v, want %v", typ, got, want)
			}
		})
	}
}

func TestPolicyDeniesReadsAndWritesByOthers(t *testing.T) {
	f := example.get(t)
	const (
		get    = "secretsmanager:GetSecretValue"
		put    = "secretsmanager:PutSecretValue"
		mv     = "secretsmanager:UpdateSecretVersionStage"
		update = "secretsmanager:UpdateSecret"
		putRP  = "secretsmanager:PutResourcePolicy"
		delRP  = "secretsmanager:DeleteResourcePolicy"
		del    = "secretsmanager:DeleteSecret"
		cancel = "secretsmanager:CancelRotateSecret"
		rotate = "secretsmanager:RotateSecret"
	)
	role := func(name string) string { return "arn:aws:iam::" + exampleAccount + ":role/" + name }
	deployer := bootstrapRole(exampleAccount, exampleRegion)
	otherLambda := "arn:aws:lambda:" + exampleRegion + ":" + exampleAccount + ":function:someone-elses"
	mysqlFn := getAtt(f.functionID(t, mySQLSingleUser), "Arn")
	outsider := role("someone-else")
	watch := getAtt(f.watchRoleID(t), "Arn")
	sso := role("aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_DatabaseAdmin_0123456789abcdef")
	issuer := getAtt(f.issuerRoleID(t), "Arn")
	tests := []struct {
		secret string
		r      request
		want   bool // denied
	}{
		// Readers read; a role covers its sessions, wildcards as IAM matches them.
		{"billing-app", request{principal: role("billing-api"), action: get}, false},
		{"orders-app", request{principal: role("orders-api-task"), vpce: "ENDPOINT", action: get}, false},
		{"orders-app", request{principal: role("orders-worker-7"), vpce: "ENDPOINT", action: get}, false},
		{"webhook-signing-key", request{principal: role("webhooks-sender"), action: get}, false},
		{"billing-reporting", request{principal: "arn:aws:iam::" + exampleAccount + ":user/reporting-etl", action: get}, false},
		// Everyone else is refused, the watch and other functions of the suite too.
		{"billing-app", request{principal: outsider, action: get}, true},
		{"billing-app", request{principal: role("billing-api-old"), action: get}, true},
		{"billing-app", request{principal: "arn:aws:iam::" + exampleAccount + ":user/billing-api", action: get}, true},
		{"billing-app", request{principal: "arn:aws:iam::" + exampleAccount + ":root", action: get}, true},
		{"billing-app", request{principal: watch, action: get}, true},
		{"billing-app", request{principal: f.roleArn(t, postgresSingleUser), action: get}, true},
		{"billing-reporting", request{principal: "arn:aws:iam::" + exampleAccount + ":user/reporting-etl-2", action: get}, true},
		// A master is read by the functions whose secrets name it, whenever they are rotated.
		{"orders-admin", request{principal: f.roleArn(t, postgresMultiUser), action: get}, false},
		{"orders-admin", request{principal: f.roleArn(t, mySQLMultiUser), action: get}, true},
		// The issuer reads its roles' masters (through the endpoint), nothing else, and writes nothing.
		{"orders-admin", request{principal: issuer, vpce: "ENDPOINT", action: get}, false},
		{"orders-admin", request{principal: issuer, vpce: "ENDPOINT", action: put}, true},
		{"orders-admin", request{principal: issuer, vpce: "ENDPOINT", action: mv}, true},
		{"orders-reporting", request{principal: issuer, vpce: "ENDPOINT", action: get}, true},
		{"billing-app", request{principal: issuer, vpce: "ENDPOINT", action: get}, true},
		{"orders-reporting", request{principal: f.roleArn(t, postgresExpiring), vpce: "ENDPOINT", action: get}, false},
		{"orders-admin", request{principal: f.roleArn(t, postgresExpiring), vpce: "ENDPOINT", action: get}, false},
		// Admins may read and write; the root user when listed.
		{"orders-admin", request{principal: sso, action: get}, false},
		{"orders-admin", request{principal: sso, action: put}, false},
		{"orders-master", request{principal: "arn:aws:iam::" + exampleAccount + ":root", action: mv}, false},
		// Only the rotation function and admins write versions or move labels.
		{"billing-app", request{principal: role("billing-api"), action: put}, true},
		{"billing-app", request{principal: role("billing-api"), action: mv}, true},
		{"billing-app", request{principal: watch, action: mv}, true},
		{"orders-admin", request{principal: f.roleArn(t, postgresMultiUser), action: put}, true},
		{"billing-app", request{principal: f.roleArn(t, mySQLSingleUser), action: mv}, false},
		// UpdateSecret (a SecretString writes AWSCURRENT), the policy's own
		// replacement or removal, deleting the secret and turning its
		// rotation off: only admins and the deploy role.
		{"billing-app", request{principal: role("billing-api"), action: update}, true},
		{"billing-app", request{principal: role("billing-api"), action: putRP}, true},
		{"billing-app", request{principal: role("billing-api"), action: delRP}, true},
		{"billing-app", request{principal: role("billing-api"), action: del}, true},
		{"billing-app", request{principal: role("billing-api"), action: cancel}, true},
		{"billing-app", request{principal: outsider, action: putRP}, true},
		{"billing-app", request{principal: "arn:aws:iam::" + exampleAccount + ":root", action: delRP}, true},
		{"billing-app", request{principal: f.roleArn(t, mySQLSingleUser), action: update}, true},
		{"billing-app", request{principal: f.roleArn(t, mySQLSingleUser), action: putRP}, true},
		{"billing-app", request{principal: watch, action: update}, true},
		{"orders-admin", request{principal: issuer, vpce: "ENDPOINT", action: update}, true},
		{"orders-admin", request{principal: sso, action: update}, false},
		{"orders-admin", request{principal: sso, action: putRP}, false},
		{"orders-admin", request{principal: sso, action: delRP}, false},
		{"orders-admin", request{principal: sso, action: del}, false},
		{"orders-master", request{principal: "arn:aws:iam::" + exampleAccount + ":root", action: putRP}, false},
		{"billing-app", request{principal: deployer, action: update}, false},
		{"billing-app", request{principal: deployer, action: putRP}, false},
		{"billing-app", request{principal: deployer, action: delRP}, false},
		{"billing-app", request{principal: deployer, action: del}, false},
		{"billing-app", request{principal: deployer, action: cancel}, false},
		{"webhook-signing-key", request{principal: deployer, action: update}, false},
		// The deploy role does not read, write versions or move labels.
		{"billing-app", request{principal: deployer, action: get}, true},
		{"billing-app", request{principal: deployer, action: put}, true},
		{"billing-app", request{principal: deployer, action: mv}, true},
		// Another account's bootstrap role, or another qualifier's, is not the deploy role.
		{"billing-app", request{principal: "arn:aws:iam::" + exampleAccount + ":role/cdk-other-cfn-exec-role-" + exampleAccount + "-" + exampleRegion, action: putRP}, true},
		// RotateSecret stays IAM's to allow (operators rotate by hand),
		// with the secret's own function; naming another function is
		// for admins and the deploy role only.
		{"billing-app", request{principal: role("ops"), action: rotate}, false},
		{"billing-app", request{principal: role("ops"), action: rotate, lambda: mysqlFn}, false},
		{"billing-app", request{principal: role("ops"), action: rotate, lambda: otherLambda}, true},
		{"billing-app", request{principal: role("billing-api"), action: rotate, lambda: getAtt(f.functionID(t, postgresSingleUser), "Arn")}, true},
		{"billing-app", request{principal: deployer, action: rotate, lambda: otherLambda}, false},
		{"orders-admin", request{principal: sso, action: rotate, lambda: otherLambda}, false},
		// AWS services acting as themselves are not in the policy's way.
		{"billing-app", request{service: true, action: get}, false},
		{"billing-app", request{service: true, action: putRP}, false},
		{"billing-app", request{service: true, action: put}, false},
		// requireVpcEndpoint: readers must come through the suite's endpoint.
		{"orders-app", request{principal: role("orders-api-task"), action: get}, true},
		{"orders-app", request{principal: role("orders-api-task"), vpce: "vpce-0123456789abcdef0", action: get}, true},
		{"orders-app", request{principal: f.roleArn(t, postgresMultiUser), vpce: "ENDPOINT", action: get}, false},
	}
	endpoint := ref(f.only(t, "AWS::EC2::VPCEndpoint", func(map[string]any) bool { return true }))
	for _, tc := range tests {
		r := tc.r
		if r.vpce == "ENDPOINT" {
			r.vpce = endpoint
		}
		name := fmt.Sprintf("%s %s by %s via %s", tc.secret, r.action, canon(r.principal), canon(r.vpce))
		t.Run(name, func(t *testing.T) {
			got, sid := denied(f.policyOf(t, f.secretRefOf(t, tc.secret)), r)
			if got != tc.want {
				t.Errorf("denied = %v (%s), want %v", got, sid, tc.want)
			}
		})
	}
}

// bootstrapRole is the CloudFormation execution role of the CDK bootstrap
// with the default qualifier, which deploys the stack.
func bootstrapRole(account, region string) string {
	return "arn:aws:iam::" + account + ":role/cdk-hnb659fds-cfn-exec-role-" + account + "-" + region
}

// TestDeployRoleMayChangeEverySecretAndPolicy: CloudFormation updates the
// secrets (UpdateSecret: description, KMS key), their policies
// (PutResourcePolicy, DeleteResourcePolicy), their rotation
// (RotateSecret, CancelRotateSecret) and deletes what it created, as the
// deploy role; no policy of any fixture may deny it, or the next deploy
// fails. A config's deployRoleArn replaces the bootstrap role.
func TestDeployRoleMayChangeEverySecretAndPolicy(t *testing.T) {
	actions := []string{"UpdateSecret", "PutResourcePolicy", "DeleteResourcePolicy", "DeleteSecret", "CancelRotateSecret", "RotateSecret", "TagResource", "UntagResource", "DescribeSecret"}
	for name, lf := range map[string]*lazyFixture{"example": example, "minimal": minimal, "rdsOnly": rdsOnly} {
		t.Run(name, func(t *testing.T) {
			f := lf.get(t)
			deployer, other := bootstrapRole(f.cfg.Account, f.cfg.Region), f.cfg.DeployRoleArn
			if f.cfg.DeployRoleArn != "" {
				deployer, other = other, deployer
			}
			for _, s := range f.cfg.Secrets {
				policy := f.policyOf(t, f.secretRefOf(t, s.Name))
				for _, a := range actions {
					r := request{principal: deployer, action: "secretsmanager:" + a}
					if a == "RotateSecret" {
						r.lambda = getAtt(f.functionID(t, rotary.FunctionType(s.Type)), "Arn")
					}
					if d, sid := denied(policy, r); d {
						t.Errorf("%s: the policy (%s) denies %s to the deploy role %s", s.Name, sid, a, deployer)
					}
				}
				if other == "" {
					continue
				}
				if d, _ := denied(policy, request{principal: other, action: "secretsmanager:PutResourcePolicy"}); !d {
					t.Errorf("%s: %s may replace the policy, though deployRoleArn is %s", s.Name, other, f.cfg.DeployRoleArn)
				}
			}
		})
	}
}

// match is EventBridge's matching of pattern against event.
func match(pattern, event map[string]any) bool {
	for k, pv := range pattern {
		if k == "$or" {
			matched := false
			for _, alt := range pv.([]any) {
				matched = matched || match(alt.(map[string]any), event)
			}
			if !matched {
				return false
			}
			continue
		}
		ev, present := event[k]
		if sub, ok := pv.(map[string]any); ok {
			em, ok := ev.(map[string]any)
			if !present || !ok || !match(sub, em) {
				return false
			}
			continue
		}
		if !matchValue(pv.([]any), ev, present) {
			return false
		}
	}
	return true
}

func matchValue(alts []any, ev any, present bool) bool {
	values := []any{ev}
	if l, ok := ev.([]any); ok {
		values = l
	}
	for _, alt := range alts {
		if m, ok := alt.(map[string]any); ok {
			if e, isExists := m["exists"]; isExists {
				if e == present {
					return true
				}
				continue
			}
			if ab, isAB := m["anything-but"]; isAB && present {
				for _, v := range values {
					if !anythingBut(ab, v) {
						continue
					}
					return true
				}
				continue
			}
			if isRef(m) {
				for _, v := range values {
					if present && canon(v) == canon(m) {
						return true
					}
				}
			}
			continue
		}
		for _, v := range values {
			if present && canon(v) == canon(alt) {
				return true
			}
		}
	}
	return false
}

func isRef(m map[string]any) bool {
	_, r := m["Ref"]
	_, g := m["Fn::GetAtt"]
	return r || g
}

// anythingBut: the value is none of the list, or matches none of the wildcards.
func anythingBut(ab any, v any) bool {
	if m, ok := ab.(map[string]any); ok && !isRef(m) {
		for _, w := range list(m["wildcard"]) {
			if glob(w, v) {
				return false
			}
		}
		return true
	}
	for _, x := range list(ab) {
		if canon(x) == canon(v) {
			return false
		}
	}
	return true
}

// cloudTrailEvent is an EventBridge event of a CloudTrail record, in the
// shape AWS documents.
func cloudTrailEvent(detailType, eventName string, secretID any, who map[string]any, extra map[string]any) map[string]any {
	detail := map[string]any{
		"eventVersion": "1.09", "eventTime": "2026-12-01T10:00:00Z", "eventSource": "secretsmanager.amazonaws.com",
		"eventName": eventName, "awsRegion": exampleRegion, "sourceIPAddress": "10.0.1.23", "userAgent": "aws-sdk-go-v2/1.30.0",
		"userIdentity": who, "readOnly": eventName == "GetSecretValue", "managementEvent": true, "eventType": "AwsApiCall",
	}
	if detailType == "AWS API Call via CloudTrail" {
		detail["requestParameters"] = map[string]any{"secretId": secretID}
	} else {
		detail["eventType"] = "AwsServiceEvent"
		detail["additionalEventData"] = map[string]any{"SecretId": secretID}
	}
	for k, v := range extra {
		detail[k] = v
	}
	return map[string]any{"version": "0", "source": "aws.secretsmanager", "detail-type": detailType, "account": exampleAccount, "region": exampleRegion, "detail": detail}
}

func session(roleArn any) map[string]any {
	return map[string]any{
		"type": "AssumedRole", "principalId": "AROAEXAMPLE:session", "arn": "arn:aws:sts::" + exampleAccount + ":assumed-role/role/session",
		"accountId": exampleAccount, "sessionContext": map[string]any{"sessionIssuer": map[string]any{"type": "Role", "arn": roleArn, "accountId": exampleAccount}},
	}
}

func iamUser(name string) map[string]any {
	return map[string]any{"type": "IAMUser", "arn": "arn:aws:iam::" + exampleAccount + ":user/" + name, "accountId": exampleAccount, "userName": name}
}

var rootUser = map[string]any{"type": "Root", "arn": "arn:aws:iam::" + exampleAccount + ":root", "accountId": exampleAccount}

// firing returns the alert kinds (construct IDs without their number)
// whose rules match the event.
func (f *fixture) firing(t *testing.T, event map[string]any) []string {
	t.Helper()
	var out []string
	for id, r := range f.resources("AWS::Events::Rule") {
		p, ok := props(r)["EventPattern"].(map[string]any)
		if !ok || !strings.HasPrefix(id, "RotaryAlerts") {
			continue
		}
		if match(p, event) {
			kind := strings.TrimPrefix(id, "RotaryAlerts")
			out = append(out, strings.TrimRight(kind[:len(kind)-8], "0123456789"))
		}
	}
	sort.Strings(out)
	return out
}

func TestAlertRulesFireOnWhatTheyAreFor(t *testing.T) {
	f := example.get(t)
	api, svc := "AWS API Call via CloudTrail", "AWS Service Event via CloudTrail"
	role := func(name string) string { return "arn:aws:iam::" + exampleAccount + ":role/" + name }
	endpoint := ref(f.only(t, "AWS::EC2::VPCEndpoint", func(map[string]any) bool { return true }))
	denied := map[string]any{"errorCode": "AccessDenied", "errorMessage": "User is not authorized"}
	tests := []struct {
		name  string
		event map[string]any
		want  []string
	}{
		{"reader reads", cloudTrailEvent(api, "GetSecretValue", billingAppARN, session(role("billing-api")), nil), nil},
		{"reader reads by name", cloudTrailEvent(api, "GetSecretValue", "billing-app", session(role("billing-api")), nil), nil},
		{"rotation function reads and writes", cloudTrailEvent(api, "PutSecretValue", billingAppARN, session(f.roleArn(t, mySQLSingleUser)), nil), nil},
		{"rotation function moves a label", cloudTrailEvent(api, "UpdateSecretVersionStage", billingAppARN, session(f.roleArn(t, mySQLSingleUser)), nil), nil},
		{"stranger reads (policy gone)", cloudTrailEvent(api, "GetSecretValue", billingAppARN, session(role("someone-else")), nil), []string{rotary.AlertUnexpectedRead}},
		{"stranger reads by name", cloudTrailEvent(api, "GetSecretValue", "billing-app", session(role("someone-else")), nil), []string{rotary.AlertUnexpectedRead}},
		{"stranger denied", cloudTrailEvent(api, "GetSecretValue", billingAppARN, session(role("someone-else")), denied), []string{rotary.AlertAccessDenied}},
		{"another secret's reader", cloudTrailEvent(api, "GetSecretValue", billingRepARN, session(role("billing-api")), nil), []string{rotary.AlertUnexpectedRead}},
		{"reader user reads", cloudTrailEvent(api, "GetSecretValue", billingRepARN, iamUser("reporting-etl"), nil), nil},
		{"other user reads", cloudTrailEvent(api, "GetSecretValue", billingRepARN, iamUser("intern"), nil), []string{rotary.AlertUnexpectedRead}},
		{"root reads, not an admin", cloudTrailEvent(api, "GetSecretValue", billingAppARN, rootUser, nil), []string{rotary.AlertUnexpectedRead}},
		{"root reads, an admin", cloudTrailEvent(api, "GetSecretValue", ordersMasterARN, rootUser, nil), nil},
		{"wildcard reader", cloudTrailEvent(api, "GetSecretValue", "orders-app", session(role("orders-worker-3")), map[string]any{"vpcEndpointId": endpoint}), nil},
		{"reader outside the endpoint", cloudTrailEvent(api, "GetSecretValue", "orders-app", session(role("orders-api-task")), nil), []string{rotary.AlertOutsideEndpoint}},
		{"reader through another endpoint", cloudTrailEvent(api, "GetSecretValue", "orders-app", session(role("orders-api-task")), map[string]any{"vpcEndpointId": "vpce-0123456789abcdef0"}), []string{rotary.AlertOutsideEndpoint}},
		{"admin writes a version", cloudTrailEvent(api, "PutSecretValue", ordersAdminARN, session(role("aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_DatabaseAdmin_0123456789abcdef")), nil), []string{rotary.AlertManualOverride}},
		{"reader moves a label (allowed by a policy gone)", cloudTrailEvent(api, "UpdateSecretVersionStage", billingAppARN, session(role("billing-api")), nil), []string{rotary.AlertManualOverride}},
		{"policy deleted", cloudTrailEvent(api, "DeleteResourcePolicy", billingAppARN, iamUser("ops"), nil), []string{rotary.AlertManualOverride}},
		{"policy replaced", cloudTrailEvent(api, "PutResourcePolicy", "billing-app", rootUser, nil), []string{rotary.AlertManualOverride}},
		{"rotation cancelled", cloudTrailEvent(api, "CancelRotateSecret", billingAppARN, session(role("ops")), nil), []string{rotary.AlertManualOverride}},
		{"secret deleted", cloudTrailEvent(api, "DeleteSecret", billingAppARN, session(role("ops")), nil), []string{rotary.AlertManualOverride}},
		{"write denied", cloudTrailEvent(api, "PutSecretValue", billingAppARN, session(role("billing-api")), denied), []string{rotary.AlertAccessDenied}},
		{"rotation failed", cloudTrailEvent(svc, "RotationFailed", billingAppARN, map[string]any{"accountId": exampleAccount, "invokedBy": "secretsmanager.amazonaws.com"}, nil), []string{rotary.AlertRotationFailed}},
		{"rotation abandoned", cloudTrailEvent(svc, "RotationAbandoned", billingAppARN, map[string]any{"accountId": exampleAccount, "invokedBy": "secretsmanager.amazonaws.com"}, nil), []string{rotary.AlertRotationAbandon}},
		{"created secret abandoned", cloudTrailEvent(svc, "RotationAbandoned", f.secretRefOf(t, "webhook-signing-key"), map[string]any{"accountId": exampleAccount}, nil), []string{rotary.AlertRotationAbandon}},
		{"someone else's secret", cloudTrailEvent(api, "GetSecretValue", "arn:aws:secretsmanager:eu-west-1:111122223333:secret:other-Zz99Zz", session(role("someone-else")), nil), nil},
		// The issuer reads its roles' masters on every request; a write by it is an override.
		{"issuer reads a master", cloudTrailEvent(api, "GetSecretValue", ordersAdminARN, session(getAtt(f.issuerRoleID(t), "Arn")), map[string]any{"vpcEndpointId": endpoint}), nil},
		{"issuer writes a master", cloudTrailEvent(api, "PutSecretValue", ordersAdminARN, session(getAtt(f.issuerRoleID(t), "Arn")), nil), []string{rotary.AlertManualOverride}},
		{"expiring rotation writes its secret", cloudTrailEvent(api, "PutSecretValue", ordersReportARN, session(f.roleArn(t, postgresExpiring)), nil), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := f.firing(t, tc.event); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("rules firing %v, want %v", got, tc.want)
			}
		})
	}
}

// TestAlertRulesCoverEverySecretWithinEventBridgeLimits: every secret is
// in exactly one rule of each kind that applies to it, the read rules see
// read-only events, and every pattern fits EventBridge's default size
// even with every deploy-time value at its longest.
func TestAlertRulesCoverEverySecretWithinEventBridgeLimits(t *testing.T) {
	for name, lf := range map[string]*lazyFixture{"example": example, "minimal": minimal, "fleet": fleet} {
		t.Run(name, func(t *testing.T) {
			f := lf.get(t)
			covered := map[string]map[string]int{} // kind -> secret id -> rules
			for id, r := range f.resources("AWS::Events::Rule") {
				if !strings.HasPrefix(id, "RotaryAlerts") {
					continue
				}
				p := props(r)
				kind := strings.TrimPrefix(id, "RotaryAlerts")
				kind = strings.TrimRight(kind[:len(kind)-8], "0123456789")
				b, _ := json.Marshal(worstCase(p["EventPattern"]))
				if len(b) > rotary.AlertPatternBudget {
					t.Errorf("rule %s: pattern of %d characters at worst, over EventBridge's %d", id, len(b), rotary.AlertPatternBudget)
				}
				readOnly := kind == rotary.AlertAccessDenied || kind == rotary.AlertUnexpectedRead || kind == rotary.AlertOutsideEndpoint
				if want := map[bool]string{true: rotary.RuleStateWithReadOnly, false: "ENABLED"}[readOnly]; p["State"] != want {
					t.Errorf("rule %s: state %v, want %s", id, p["State"], want)
				}
				detail := p["EventPattern"].(map[string]any)["detail"].(map[string]any)
				var ids []any
				if a, ok := detail["additionalEventData"].(map[string]any); ok {
					ids = list(a["SecretId"])
				} else {
					ids = list(detail["requestParameters"].(map[string]any)["secretId"])
				}
				if covered[kind] == nil {
					covered[kind] = map[string]int{}
				}
				for _, v := range ids {
					covered[kind][canon(v)]++
				}
			}
			for _, s := range f.cfg.Secrets {
				kinds := []string{rotary.AlertRotationFailed, rotary.AlertRotationAbandon, rotary.AlertAccessDenied, rotary.AlertManualOverride, rotary.AlertUnexpectedRead}
				if s.RequireVpcEndpoint {
					kinds = append(kinds, rotary.AlertOutsideEndpoint)
				}
				for _, k := range kinds {
					if n := covered[k][canon(f.secretRefOf(t, s.Name))]; n != 1 {
						t.Errorf("secret %s is in %d %s rules, want 1", s.Name, n, k)
					}
				}
			}
		})
	}
}

// worstCase replaces every reference by a string of the longest value it
// may resolve to.
func worstCase(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if _, role := x["Fn::GetAtt"]; role {
			// Only role ARNs: a role name has at most 64 characters.
			return strings.Repeat("r", 102)
		}
		if isRef(x) {
			return strings.Repeat("x", 140)
		}
		out := map[string]any{}
		for k, e := range x {
			out[k] = worstCase(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = worstCase(e)
		}
		return out
	}
	return v
}

func TestReservedConcurrencyPerFunction(t *testing.T) {
	f := example.get(t)
	for _, typ := range f.cfg.TypesInUse() {
		t.Run(typ, func(t *testing.T) {
			p := props(f.resources("AWS::Lambda::Function")[f.functionID(t, rotary.FunctionType(typ))])
			got, set := p["ReservedConcurrentExecutions"]
			want := f.cfg.ReservedConcurrencyFor(typ)
			switch {
			case typ == string(postgresMultiUser) && want != 4:
				t.Errorf("functions.postgres-multi-user.reservedConcurrency: 4 became %d", want)
			case typ == string(randomSecret) && want != config.Unreserved:
				t.Errorf("random-secret logs in to nothing, yet its reservation is %d", want)
			case typ == string(postgresSingleUser) && want != config.DefaultReservedConcurrency:
				t.Errorf("postgres-single-user's reservation is %d, want the default %d", want, config.DefaultReservedConcurrency)
			}
			if want == config.Unreserved {
				if set {
					t.Errorf("ReservedConcurrentExecutions = %v, want none", got)
				}
				return
			}
			if got != float64(want) {
				t.Errorf("ReservedConcurrentExecutions = %v, want %d", got, want)
			}
		})
	}
}

// TestRedisACLReadsItsMasterSecret: a redis-acl secret with a master gets
// GetSecretValue (and DescribeSecret) on that master only.
func TestRedisACLReadsItsMasterSecret(t *testing.T) {
	f := example.get(t)
	s, _ := f.cfg.Secret("sessions-cache")
	master := bySid(f.statements(t, f.roleID(t, redisACL)), rotary.SidReadMasterSecrets)
	if master == nil {
		t.Fatal("redis-acl with masterSecretArn may not read its master secret")
	}
	if got := canon(list(master["Resource"])); got != canon([]any{s.MasterSecretARN}) {
		t.Errorf("redis-acl reads masters %s, want only %s", got, s.MasterSecretARN)
	}
	if got := canonSet(list(master["Action"])); !reflect.DeepEqual(got, canonSet(toAny(rotary.MasterActions))) {
		t.Errorf("master actions %v, want %v", got, rotary.MasterActions)
	}
}
