package rotary

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// The alert rules. Each kind of alert is one EventBridge rule for many
// secrets (their ARNs and names listed in the pattern), not one per
// secret: CloudFormation allows 500 resources per stack, and every secret
// already costs its invoke permission, rotation schedule and resource
// policy. A rule takes secrets until its pattern would pass
// AlertPatternBudget; then the kind starts another rule.
const (
	// AlertPatternBudget is EventBridge's default quota on the size of an
	// event pattern, in characters.
	AlertPatternBudget = 2048
	// RuleStateWithReadOnly makes a rule see read-only management events
	// too (GetSecretValue): EventBridge leaves them out of rules in the
	// plain ENABLED state.
	RuleStateWithReadOnly = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
)

// OverrideEvents are the calls on a secret that only the suite makes (or
// a break-glass admin): each by anyone else alerts as a manual override.
var OverrideEvents = []string{"PutSecretValue", "UpdateSecretVersionStage", "PutResourcePolicy", "DeleteResourcePolicy", "DeleteSecret", "UpdateSecret", "CancelRotateSecret"}

// DeniedErrorCodes are CloudTrail's error codes of a denied call.
var DeniedErrorCodes = []string{"AccessDenied", "AccessDeniedException"}

// Construct IDs (prefixes, numbered from 1) of the alert rules, under the
// suite's "Alerts" scope.
const (
	AlertRotationFailed  = "RotationFailed"
	AlertRotationAbandon = "RotationAbandoned"
	AlertAccessDenied    = "AccessDenied"
	AlertManualOverride  = "ManualOverride"
	AlertUnexpectedRead  = "UnexpectedRead"
	AlertOutsideEndpoint = "ReadOutsideEndpoint"
)

// alertKind is one kind of alert rule.
type alertKind struct {
	id          string
	description string
	// readOnly rules must see read-only management events (reads).
	readOnly bool
	// pattern builds the rule's pattern for secrets; suite are the role
	// ARNs of the suite's rotation functions.
	pattern func(g *alertGroup, secrets []alertSecret, suite []any) map[string]any
	message func() awsevents.RuleTargetInput
}

// alertGroup is the rules of one kind for secrets that share what the
// pattern says besides their ids (readers and admins, the endpoint).
type alertGroup struct {
	kind   *alertKind
	allow  []string // readers and admins (UnexpectedRead), admins (ReadOutsideEndpoint)
	vpce   *string
	rules  []*alertRule
	suite  *Suite
	number *int // next rule number of the kind
}

type alertRule struct {
	rule    awsevents.Rule
	secrets []alertSecret
}

type alertSecret struct {
	arn  string
	name string // "" when unknown
}

func (a alertSecret) ids(withName bool) []any {
	out := []any{a.arn}
	if withName && a.name != "" {
		out = append(out, a.name)
	}
	return out
}

func allIDs(secrets []alertSecret, withNames bool) []any {
	var out []any
	for _, s := range secrets {
		out = append(out, s.ids(withNames)...)
	}
	return out
}

const (
	serviceEvent = "AWS Service Event via CloudTrail"
	apiCall      = "AWS API Call via CloudTrail"
)

func cloudTrail(detailType string, detail map[string]any) map[string]any {
	detail["eventSource"] = []any{"secretsmanager.amazonaws.com"}
	return map[string]any{"source": []any{"aws.secretsmanager"}, "detail-type": []any{detailType}, "detail": detail}
}

// notSuite matches a caller that is none of the suite's rotation roles.
// An assumed-role session's arn is arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION,
// so roles are matched on the session's issuer, which is the role's ARN.
func notSuite(suite []any) map[string]any {
	return map[string]any{"$or": []any{
		map[string]any{"type": []any{map[string]any{"anything-but": []any{"AssumedRole"}}}},
		map[string]any{"type": []any{"AssumedRole"}, "sessionContext": map[string]any{"sessionIssuer": map[string]any{"arn": []any{map[string]any{"anything-but": suite}}}}},
	}}
}

// outside matches a caller that is none of allow (role and user ARN
// patterns, IAM wildcards, the account root) and none of the suite's
// roles. AWS services acting as themselves are left out, as the policy
// leaves them out.
func outside(allow []string, suite []any) map[string]any {
	roles := append([]any{}, suite...)
	var users []any
	others := []any{"AssumedRole", "IAMUser", "AWSService"}
	for _, p := range allow {
		switch {
		case strings.Contains(p, ":role/"):
			roles = append(roles, p)
		case strings.Contains(p, ":user/"):
			users = append(users, p)
		case strings.HasSuffix(p, ":root"):
			others = append(others, "Root")
		}
	}
	user := map[string]any{"type": []any{"IAMUser"}}
	if len(users) > 0 {
		user["arn"] = []any{map[string]any{"anything-but": map[string]any{"wildcard": users}}}
	}
	return map[string]any{"$or": []any{
		map[string]any{"type": []any{"AssumedRole"}, "sessionContext": map[string]any{"sessionIssuer": map[string]any{"arn": []any{map[string]any{"anything-but": map[string]any{"wildcard": roles}}}}}},
		user,
		map[string]any{"type": []any{map[string]any{"anything-but": others}}},
	}}
}

func field(path string) string { return *awsevents.EventField_FromPath(jsii.String(path)) }

func text(format string, args ...any) awsevents.RuleTargetInput {
	return awsevents.RuleTargetInput_FromText(jsii.String(fmt.Sprintf(format, args...)))
}

// callMessage describes an API call: what, on which secret, by whom, from where, when.
func callMessage(headline, advice string, withError bool) func() awsevents.RuleTargetInput {
	return func() awsevents.RuleTargetInput {
		failed := ""
		if withError {
			failed = " failed with " + field("$.detail.errorCode")
		}
		return text("Rotary: %s: %s on secret %s by %s (from %s, VPC endpoint %s, user agent %s) at %s%s. %s",
			headline, field("$.detail.eventName"), field("$.detail.requestParameters.secretId"), field("$.detail.userIdentity.arn"),
			field("$.detail.sourceIPAddress"), field("$.detail.vpcEndpointId"), field("$.detail.userAgent"), field("$.detail.eventTime"),
			failed, advice)
	}
}

var alertKinds = []*alertKind{
	{
		id:          AlertRotationFailed,
		description: "Rotary: Secrets Manager reports RotationFailed for these secrets",
		pattern: func(_ *alertGroup, secrets []alertSecret, _ []any) map[string]any {
			return cloudTrail(serviceEvent, map[string]any{"eventName": []any{"RotationFailed"}, "additionalEventData": map[string]any{"SecretId": allIDs(secrets, false)}})
		},
		message: func() awsevents.RuleTargetInput {
			return text("Rotary: the rotation of secret %s FAILED (Secrets Manager RotationFailed at %s in %s). AWSCURRENT is unchanged and Secrets Manager retries; the rotation function's log group says which step failed and why. Check with: rotary status SECRET --verify.",
				field("$.detail.additionalEventData.SecretId"), field("$.detail.eventTime"), field("$.detail.awsRegion"))
		},
	},
	{
		id:          AlertRotationAbandon,
		description: "Rotary: manual override: Secrets Manager abandoned a rotation of these secrets (RotationAbandoned)",
		pattern: func(_ *alertGroup, secrets []alertSecret, _ []any) map[string]any {
			return cloudTrail(serviceEvent, map[string]any{"eventName": []any{"RotationAbandoned"}, "additionalEventData": map[string]any{"SecretId": allIDs(secrets, false)}})
		},
		message: func() awsevents.RuleTargetInput {
			return text("Rotary: MANUAL OVERRIDE of secret %s: Secrets Manager abandoned its rotation at %s (RotationAbandoned: someone wrote a version or moved AWSCURRENT by hand while a rotation ran). This is not a rotation failure. Find who with: rotary audit SECRET.",
				field("$.detail.additionalEventData.SecretId"), field("$.detail.eventTime"))
		},
	},
	{
		id:          AlertAccessDenied,
		description: "Rotary: a Secrets Manager call on these secrets was denied (CloudTrail AccessDenied)",
		readOnly:    true,
		pattern: func(_ *alertGroup, secrets []alertSecret, _ []any) map[string]any {
			return cloudTrail(apiCall, map[string]any{"errorCode": toAny(DeniedErrorCodes), "requestParameters": map[string]any{"secretId": allIDs(secrets, true)}})
		},
		message: callMessage("DENIED call",
			"A principal lacks a permission, or tried what the secret's policy forbids: reads by anyone but its readers, admins and the suite; version writes by anyone but its rotation function and admins (infra/README.md, Access). Investigate with: rotary audit SECRET.", true),
	},
	{
		id:          AlertManualOverride,
		description: "Rotary: manual override: a version, label, policy or the rotation of these secrets was changed by someone other than the suite",
		pattern: func(_ *alertGroup, secrets []alertSecret, suite []any) map[string]any {
			return cloudTrail(apiCall, map[string]any{
				"eventName":         toAny(OverrideEvents),
				"errorCode":         []any{map[string]any{"exists": false}},
				"requestParameters": map[string]any{"secretId": allIDs(secrets, true)},
				"userIdentity":      notSuite(suite),
			})
		},
		message: callMessage("MANUAL OVERRIDE",
			"Only the rotation function writes versions and moves labels; a deploy that changes readers or admins writes the policy (PutResourcePolicy by CloudFormation). If this was no planned change, investigate with: rotary audit SECRET.", false),
	},
	{
		id:          AlertUnexpectedRead,
		description: "Rotary: a secret was read by a principal outside its readers, admins and the suite",
		readOnly:    true,
		pattern: func(g *alertGroup, secrets []alertSecret, suite []any) map[string]any {
			return cloudTrail(apiCall, map[string]any{
				"eventName":         []any{"GetSecretValue"},
				"errorCode":         []any{map[string]any{"exists": false}},
				"requestParameters": map[string]any{"secretId": allIDs(secrets, true)},
				"userIdentity":      outside(g.allow, suite),
			})
		},
		message: callMessage("UNEXPECTED READ",
			"The caller is none of the secret's readers, admins or the suite's functions, and the secret's policy did not stop it: check the policy (was it changed or deleted?) and treat the value as leaked: rotary incident SECRET.", false),
	},
	{
		id:          AlertOutsideEndpoint,
		description: "Rotary: a secret that requires the suite's VPC endpoint was read without it",
		readOnly:    true,
		pattern: func(g *alertGroup, secrets []alertSecret, suite []any) map[string]any {
			return cloudTrail(apiCall, map[string]any{
				"eventName":         []any{"GetSecretValue"},
				"errorCode":         []any{map[string]any{"exists": false}},
				"requestParameters": map[string]any{"secretId": allIDs(secrets, true)},
				"$or": []any{
					map[string]any{"vpcEndpointId": []any{map[string]any{"exists": false}}},
					map[string]any{"vpcEndpointId": []any{map[string]any{"anything-but": []any{*g.vpce}}}},
				},
				"userIdentity": outside(g.allow, suite),
			})
		},
		message: callMessage("READ OUTSIDE THE VPC ENDPOINT",
			"The secret may only be read through the suite's Secrets Manager endpoint, and its policy did not stop this read: check the policy and treat the value as leaked: rotary incident SECRET.", false),
	},
}

func kindOf(id string) *alertKind {
	for _, k := range alertKinds {
		if k.id == id {
			return k
		}
	}
	panic("rotary: no alert kind " + id)
}

// alertOn adds the secret to the alert rules of every kind that applies.
func (s *Suite) alertOn(props *RotateSecretProps, fn *Function) error {
	sec := alertSecret{arn: *props.Secret.SecretArn()}
	if props.SecretName != nil {
		sec.name = *props.SecretName
	}
	add := func(kind string, allow []string, vpce *string) error {
		return s.alertGroupFor(kind, allow, vpce).add(sec)
	}
	for _, k := range []string{AlertRotationFailed, AlertRotationAbandon, AlertAccessDenied, AlertManualOverride} {
		if err := add(k, nil, nil); err != nil {
			return err
		}
	}
	if a := props.Access; a != nil {
		if err := add(AlertUnexpectedRead, append(append([]string{}, a.Readers...), a.Admins...), nil); err != nil {
			return fmt.Errorf("field Access: %w", err)
		}
		if a.RequireVpcEndpoint {
			if err := add(AlertOutsideEndpoint, append([]string{}, a.Admins...), s.endpoint.VpcEndpointId()); err != nil {
				return fmt.Errorf("field Access: %w", err)
			}
		}
	}
	return nil
}

func (s *Suite) alertGroupFor(kind string, allow []string, vpce *string) *alertGroup {
	sorted := append([]string{}, allow...)
	sort.Strings(sorted)
	key := kind + "|" + strings.Join(sorted, ",")
	if g, ok := s.alerts[key]; ok {
		return g
	}
	numbers := map[string]*int{}
	for _, g := range s.alerts {
		numbers[g.kind.id] = g.number
	}
	n := numbers[kind]
	if n == nil {
		n = new(int)
	}
	g := &alertGroup{kind: kindOf(kind), allow: sorted, vpce: vpce, suite: s, number: n}
	s.alerts[key] = g
	return g
}

// add puts the secret in the group's last rule, or in a new one when the
// pattern would pass the budget.
func (g *alertGroup) add(sec alertSecret) error {
	if n := len(g.rules); n > 0 {
		last := g.rules[n-1]
		if g.estimate(append(append([]alertSecret{}, last.secrets...), sec)) <= AlertPatternBudget {
			last.secrets = append(last.secrets, sec)
			return nil
		}
	}
	if size := g.estimate([]alertSecret{sec}); size > AlertPatternBudget {
		return fmt.Errorf("the %s alert rule for secret %s alone would have a pattern of about %d characters, over EventBridge's %d: list fewer readers or admins (wildcards such as arn:aws:iam::ACCOUNT:role/app-* cover many roles)", g.kind.id, sec.arn, size, AlertPatternBudget)
	}
	r := &alertRule{secrets: []alertSecret{sec}}
	g.rules = append(g.rules, r)
	*g.number++
	r.rule = g.suite.newAlertRule(g, r, fmt.Sprintf("%s%d", g.kind.id, *g.number))
	return nil
}

// Worst-case lengths of values only known at deploy time: a role ARN
// (a CloudFormation role name has at most 64 characters) and any other
// token (a secret ARN, an endpoint id).
const (
	estimatedRoleArn  = 102
	estimatedTokenLen = 140
)

// estimate is the pattern's length with every token at its worst case
// and the suite at its largest: one role per function type.
func (g *alertGroup) estimate(secrets []alertSecret) int {
	var suite []any
	// One role per function type, and the issuer's.
	for range len(FunctionTypes()) + 1 {
		suite = append(suite, strings.Repeat("r", estimatedRoleArn))
	}
	b, err := json.Marshal(worstCase(g.kind.pattern(g, secrets, suite)))
	if err != nil {
		panic(err)
	}
	return len(b)
}

func worstCase(v any) any {
	switch x := v.(type) {
	case map[string]any:
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
	case string:
		if *awscdk.Token_IsUnresolved(jsii.String(x)) {
			return strings.Repeat("t", estimatedTokenLen)
		}
		return x
	case *string:
		return worstCase(*x)
	}
	return v
}

// suiteRoles are the role ARNs of the suite's rotation functions, at synth.
func (s *Suite) suiteRoles() []any {
	var out []any
	for _, f := range s.Functions() {
		out = append(out, *f.Role.RoleArn())
	}
	return out
}

type lazyPattern struct {
	g *alertGroup
	r *alertRule
}

func (p *lazyPattern) Produce() interface{} {
	roles := p.g.suite.suiteRoles()
	if p.g.kind.readOnly && p.g.suite.issuer != nil {
		// The issuer reads its roles' master secrets on every request; it
		// writes nothing, so the override rules keep it outside.
		roles = append(roles, *p.g.suite.issuer.Role.RoleArn())
	}
	return p.g.kind.pattern(p.g, p.r.secrets, roles)
}

func (s *Suite) newAlertRule(g *alertGroup, r *alertRule, id string) awsevents.Rule {
	if s.alertsScope == nil {
		s.alertsScope = constructs.NewConstruct(s.Construct, jsii.String("Alerts"))
	}
	rule := awsevents.NewRule(s.alertsScope, jsii.String(id), &awsevents.RuleProps{
		Description: jsii.String(g.kind.description),
		// Replaced below by the pattern of the rule's secrets, written at
		// synth: secrets join the rule after it is made.
		EventPattern: &awsevents.EventPattern{Source: jsii.Strings("aws.secretsmanager")},
		Targets:      &[]awsevents.IRuleTarget{awseventstargets.NewSnsTopic(s.topic, &awseventstargets.SnsTopicProps{Message: g.kind.message()})},
	})
	cfn := rule.Node().DefaultChild().(awsevents.CfnRule)
	cfn.AddPropertyOverride(jsii.String("EventPattern"), awscdk.Lazy_Any(&lazyPattern{g: g, r: r}, nil))
	if g.kind.readOnly {
		cfn.AddPropertyOverride(jsii.String("State"), jsii.String(RuleStateWithReadOnly))
	}
	return rule
}
