package rotary

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// SecretAccess says who, besides the suite, may use a secret. RotateSecret
// attaches a resource policy built from it to the secret, and the alert
// rules compare CloudTrail's callers with it.
//
// The policy only denies: a principal in Readers still needs an IAM
// policy of its own that allows secretsmanager:GetSecretValue on the
// secret (and kms:Decrypt through Secrets Manager on its customer-managed
// key). A deny-only policy cannot grant anything, so a mistake in it can
// lock a reader out but never let a stranger in, and it is never "public"
// for BlockPublicPolicy.
type SecretAccess struct {
	// Readers are IAM role and user ARNs (IAM's * wildcard allowed, as
	// aws:PrincipalArn with ArnLike matches them) that may read the value.
	// Empty: only the suite (and Admins) may. A role covers all of its
	// sessions: an assumed-role session's aws:PrincipalArn is its role's ARN.
	Readers []string
	// Admins are break-glass principals: role or user ARNs, or the account
	// root user (arn:aws:iam::ACCOUNT:root). They may read, write versions,
	// move labels, update, delete and change the policy of the secret;
	// every write alerts as a manual override.
	Admins []string
	// RequireVpcEndpoint denies reads that do not come through the suite's
	// Secrets Manager endpoint (SuiteProps.SecretsManagerEndpoint), except
	// by Admins and by the suite's functions that run outside the VPC.
	RequireVpcEndpoint bool
}

// Statement IDs of a secret's resource policy.
const (
	SidDenyRead           = "DenyReadExceptReadersAdminsAndSuite"
	SidDenyVersionWrite   = "DenyVersionWritesExceptRotationAndAdmins"
	SidDenySecretChange   = "DenySecretAndPolicyChangesExceptAdminsAndDeployer"
	SidDenyRotationTarget = "DenyOtherRotationFunctionExceptAdminsAndDeployer"
	SidDenyReadOutside    = "DenyReadOutsideVpcEndpoint"
)

// ReadActions are what the policy denies to everyone but the readers,
// admins and the suite's functions that use the secret.
// BatchGetSecretValue needs GetSecretValue on each secret, so the deny
// covers it.
var ReadActions = []string{"secretsmanager:GetSecretValue"}

// VersionWriteActions are what the policy denies to everyone but the
// secret's rotation function and admins: writing a version, moving labels.
var VersionWriteActions = []string{"secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"}

// SecretChangeActions are what the policy denies to everyone but admins
// and the principal that deploys the stack (CloudFormation updates the
// secret and its policy with it): UpdateSecret (with a SecretString it
// writes a new AWSCURRENT version, and it can change the KMS key),
// PutResourcePolicy and DeleteResourcePolicy (either would remove these
// denies), DeleteSecret (an application cannot log in with a deleted
// secret), and CancelRotateSecret (it turns rotation off, so a leaked
// password would stay valid).
var SecretChangeActions = []string{"secretsmanager:UpdateSecret", "secretsmanager:PutResourcePolicy", "secretsmanager:DeleteResourcePolicy",
	"secretsmanager:DeleteSecret", "secretsmanager:CancelRotateSecret"}

// RotateAction stays governed by IAM alone (operators start a rotation by
// hand during an incident), except that the policy denies naming another
// rotation function than the secret's: RotateSecret with a
// RotationLambdaARN would hand the next password to that function.
const RotateAction = "secretsmanager:RotateSecret"

// PrincipalArnOK reports whether arn is what SecretAccess accepts: an IAM
// role or user ARN (with * wildcards, single ones, as EventBridge refuses
// **), or, when root is true, an account root user.
func PrincipalArnOK(arn string, root bool) bool {
	if strings.Contains(arn, "**") {
		return false
	}
	return principalArnRe.MatchString(arn) || (root && rootArnRe.MatchString(arn))
}

var (
	principalArnRe = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/[A-Za-z0-9+=,.@_/*-]+$`)
	rootArnRe      = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:root$`)
)

// secretAccess is the access state of one rotated secret with a policy.
type secretAccess struct {
	access SecretAccess
	fn     *Function
	policy awssecretsmanager.CfnResourcePolicy
}

// readExempt lists who the read deny spares: readers, admins, the
// secret's rotation function and every function that reads it as a
// master. Resolved at synth, since a secret may become a master of secrets
// rotated after it.
func (s *Suite) readExempt(arn string) []any {
	a := s.access[arn]
	var out []any
	for _, p := range a.access.Readers {
		out = append(out, p)
	}
	for _, p := range a.access.Admins {
		out = append(out, p)
	}
	out = append(out, *a.fn.Role.RoleArn())
	for _, f := range s.masterReaders[arn] {
		if f != a.fn {
			out = append(out, *f.Role.RoleArn())
		}
	}
	if s.issuerMasters[arn] && s.issuer != nil {
		out = append(out, *s.issuer.Role.RoleArn())
	}
	return dedupe(out)
}

// outsideEndpointExempt lists who may read without the endpoint: admins,
// and the secret's rotation function when it runs outside the VPC (it
// cannot reach the endpoint).
func (s *Suite) outsideEndpointExempt(arn string) []any {
	a := s.access[arn]
	out := toAny(a.access.Admins)
	if !a.fn.inVpc {
		out = append(out, *a.fn.Role.RoleArn())
	}
	return dedupe(out)
}

func dedupe(vs []any) []any {
	seen := map[string]bool{}
	var out []any
	for _, v := range vs {
		k := fmt.Sprint(v)
		if !seen[k] {
			seen[k] = true
			out = append(out, v)
		}
	}
	return out
}

// lazyList is a value computed when the template is written.
type lazyList struct{ produce func() []any }

func (l *lazyList) Produce() interface{} { return l.produce() }

func lazy(f func() []any) awscdk.IResolvable {
	return awscdk.Lazy_Any(&lazyList{produce: f}, &awscdk.LazyAnyValueOptions{OmitEmptyArray: jsii.Bool(false)})
}

// notAWSService spares AWS services acting as themselves (their service
// principal has no aws:PrincipalArn, which a negated condition would
// count as "not listed"); services acting for a caller (forward access
// sessions) carry the caller's aws:PrincipalArn and stay covered.
var notAWSService = map[string]any{"aws:PrincipalIsAWSService": "false"}

// attachPolicy attaches the secret's resource policy (one per secret:
// Secrets Manager holds one policy per secret, so this replaces one set by
// hand).
func (s *Suite) attachPolicy(scope constructs.Construct, where string, arn *string, fn *Function, access *SecretAccess) error {
	for i, p := range access.Readers {
		if !PrincipalArnOK(p, false) {
			return fmt.Errorf("%s: field Access.Readers[%d]: %q is not an IAM role or user ARN (arn:aws:iam::ACCOUNT:role/NAME, arn:aws:iam::ACCOUNT:user/NAME; single * wildcards)", where, i, p)
		}
	}
	for i, p := range access.Admins {
		if !PrincipalArnOK(p, true) {
			return fmt.Errorf("%s: field Access.Admins[%d]: %q is not an IAM role or user ARN, or the account root user (arn:aws:iam::ACCOUNT:root)", where, i, p)
		}
	}
	if access.RequireVpcEndpoint && s.endpoint == nil {
		return fmt.Errorf("%s: field Access.RequireVpcEndpoint needs the suite's endpoint: set SuiteProps.SecretsManagerEndpoint", where)
	}
	deployer, err := s.deployRole()
	if err != nil {
		return fmt.Errorf("%s: field Access: %w", where, err)
	}
	s.access[*arn] = &secretAccess{access: *access, fn: fn}
	key := *arn
	adminsAndDeployer := dedupe(append(toAny(access.Admins), deployer))
	stmts := []awsiam.PolicyStatement{
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String(SidDenyRead),
			Effect:     awsiam.Effect_DENY,
			Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
			Actions:    jsii.Strings(ReadActions...),
			Resources:  jsii.Strings("*"),
			Conditions: &map[string]any{
				"ArnNotLike":   map[string]any{"aws:PrincipalArn": lazy(func() []any { return s.readExempt(key) })},
				"BoolIfExists": notAWSService,
			},
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String(SidDenyVersionWrite),
			Effect:     awsiam.Effect_DENY,
			Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
			Actions:    jsii.Strings(VersionWriteActions...),
			Resources:  jsii.Strings("*"),
			Conditions: &map[string]any{
				"ArnNotLike":   map[string]any{"aws:PrincipalArn": dedupe(append(toAny(access.Admins), *fn.Role.RoleArn()))},
				"BoolIfExists": notAWSService,
			},
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String(SidDenySecretChange),
			Effect:     awsiam.Effect_DENY,
			Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
			Actions:    jsii.Strings(SecretChangeActions...),
			Resources:  jsii.Strings("*"),
			Conditions: &map[string]any{
				"ArnNotLike":   map[string]any{"aws:PrincipalArn": adminsAndDeployer},
				"BoolIfExists": notAWSService,
			},
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String(SidDenyRotationTarget),
			Effect:     awsiam.Effect_DENY,
			Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
			Actions:    jsii.Strings(RotateAction),
			Resources:  jsii.Strings("*"),
			Conditions: &map[string]any{
				// Only a call that names a function: a RotateSecret
				// without one rotates with the secret's own.
				"Null":         map[string]any{"secretsmanager:RotationLambdaARN": "false"},
				"ArnNotEquals": map[string]any{"secretsmanager:RotationLambdaARN": *fn.Function.FunctionArn()},
				"ArnNotLike":   map[string]any{"aws:PrincipalArn": adminsAndDeployer},
				"BoolIfExists": notAWSService,
			},
		}),
	}
	if access.RequireVpcEndpoint {
		conds := map[string]any{
			"StringNotEquals": map[string]any{"aws:SourceVpce": s.endpoint.VpcEndpointId()},
			"BoolIfExists":    notAWSService,
		}
		// Every function that reads a master runs in the VPC, so the
		// exemptions are known now; with none, every read outside the
		// endpoint is denied.
		if e := s.outsideEndpointExempt(key); len(e) > 0 {
			conds["ArnNotLike"] = map[string]any{"aws:PrincipalArn": e}
		}
		stmts = append(stmts, awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String(SidDenyReadOutside),
			Effect:     awsiam.Effect_DENY,
			Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
			Actions:    jsii.Strings(ReadActions...),
			Resources:  jsii.Strings("*"),
			Conditions: &conds,
		}))
	}
	s.access[key].policy = awssecretsmanager.NewCfnResourcePolicy(scope, jsii.String("ResourcePolicy"), &awssecretsmanager.CfnResourcePolicyProps{
		SecretId:          arn,
		ResourcePolicy:    awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &stmts}),
		BlockPublicPolicy: jsii.Bool(true),
	})
	return nil
}

// deployRole is the ARN of the principal that deploys the stack, which
// the policy lets update the secret and its policy: SuiteProps.DeployRoleArn,
// or the CloudFormation execution role of the stack's DefaultStackSynthesizer
// (the bootstrap's cdk-QUALIFIER-cfn-exec-role-ACCOUNT-REGION).
func (s *Suite) deployRole() (arn any, err error) {
	if s.props.DeployRoleArn != nil && *s.props.DeployRoleArn != "" {
		return *s.props.DeployRoleArn, nil
	}
	if d, ok := s.stack.Synthesizer().(awscdk.DefaultStackSynthesizer); ok {
		// A subclass that has no execution role throws in the getter.
		defer func() {
			if recover() != nil {
				arn, err = nil, errors.New("the stack's synthesizer has no CloudFormation execution role; set SuiteProps.DeployRoleArn to the role CloudFormation deploys the stack with (the policy lets it update the secret and the policy)")
			}
		}()
		// The synthesizer leaves ${AWS::Partition} (and an unknown
		// account or region) as placeholders, which Fn::Sub resolves.
		return awscdk.Fn_Sub(d.CloudFormationExecutionRoleArn(), nil), nil
	}
	return nil, fmt.Errorf("the stack's synthesizer is no DefaultStackSynthesizer, so the suite does not know who deploys it; set SuiteProps.DeployRoleArn to the role CloudFormation deploys the stack with (the policy lets it update the secret and the policy)")
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, v := range ss {
		out[i] = v
	}
	return out
}
