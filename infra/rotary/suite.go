// Package rotary is a reusable CDK construct that deploys Rotary's rotation
// functions and attaches rotation schedules, least-privilege permissions,
// network rules and alarms to the secrets they rotate.
package rotary

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsconfig"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/rotary-secrets/rotary/pkg/registry"
)

// FunctionType names a rotation function: a credential type of the
// registry (pkg/registry), such as "postgres-single-user"; it is also the
// name of its package, dist/<type>.zip, that `make build` writes.
type FunctionType string

// FunctionTypes lists every function type in the registry's order.
func FunctionTypes() []FunctionType {
	var out []FunctionType
	for _, n := range registry.Names() {
		out = append(out, FunctionType(n))
	}
	return out
}

// Valid reports whether t is a type of the registry.
func (t FunctionType) Valid() bool {
	_, ok := registry.Lookup(string(t))
	return ok
}

// NeedsDatabase reports whether functions of this type run in the VPC and
// connect to a database.
func (t FunctionType) NeedsDatabase() bool {
	r, ok := registry.Lookup(string(t))
	return ok && r.Database()
}

// NeedsMaster reports whether this type reads a master secret.
func (t FunctionType) NeedsMaster() bool {
	r, ok := registry.Lookup(string(t))
	return ok && r.Master
}

// MayHaveMaster reports whether this type may read a master secret
// without needing one (redis-acl's optional masterarn).
func (t FunctionType) MayHaveMaster() bool {
	r, ok := registry.Lookup(string(t))
	return ok && r.OptionalMaster
}

// NeedsRDSRead reports whether this type may look up RDS instances and
// clusters (for an RDS-managed master secret).
func (t FunctionType) NeedsRDSRead() bool {
	r, ok := registry.Lookup(string(t))
	return ok && r.RDSRead
}

// NeedsRDSMasterPassword reports whether this type sets the master
// password of an RDS instance or cluster through the RDS API (rds-master).
func (t FunctionType) NeedsRDSMasterPassword() bool {
	r, ok := registry.Lookup(string(t))
	return ok && r.RDSMasterPassword
}

// NeedsElastiCacheUser reports whether this type changes an ElastiCache
// user's passwords through the ElastiCache API (elasticache-user).
func (t FunctionType) NeedsElastiCacheUser() bool {
	r, ok := registry.Lookup(string(t))
	return ok && r.ElastiCacheUser
}

// ExpiringUsers reports whether this type creates a new user per rotation
// that expires after FunctionOptions.CredentialTTL (ROTARY_CREDENTIAL_TTL).
func (t FunctionType) ExpiringUsers() bool {
	r, ok := registry.Lookup(string(t))
	return ok && r.ExpiringUsers
}

// BatchReads reports whether this type reads AWSCURRENT and its master
// secret in one secretsmanager:BatchGetSecretValue call.
func (t FunctionType) BatchReads() bool {
	r, ok := registry.Lookup(string(t))
	return ok && r.BatchRead
}

// constructID turns "postgres-single-user" into "PostgresSingleUser".
func (t FunctionType) constructID() string {
	var b strings.Builder
	for _, part := range strings.Split(string(t), "-") {
		if part == "" {
			continue
		}
		if part == "mysql" {
			b.WriteString("MySQL")
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

// ErrMissingPackage is wrapped when dist/<type>.zip does not exist.
var ErrMissingPackage = errors.New("rotation function package missing")

// MetricNamespace, MetricStepFailed and MetricStepDuration name the
// CloudWatch embedded-metric-format metrics the engine writes per step.
const (
	MetricNamespace    = "Rotary"
	MetricStepFailed   = "StepFailed"
	MetricStepDuration = "StepDurationMs"
)

// FunctionOptions overrides the size and environment of one function type.
type FunctionOptions struct {
	// MemorySize in MiB. Default: SuiteProps.MemorySize.
	MemorySize *float64
	// Timeout of one invocation. Default: SuiteProps.Timeout.
	Timeout awscdk.Duration
	// Environment adds or overrides variables for this type only.
	Environment *map[string]*string
	// ReservedConcurrency caps the function's concurrent invocations
	// (Lambda reserved concurrency), a whole number >= 1, or Unreserved.
	// Default: DefaultReservedConcurrency for functions that log in to a
	// database, Unreserved for the others.
	ReservedConcurrency *float64
	// CredentialTTL is the lifetime of each user an expiring-users type
	// creates (ROTARY_CREDENTIAL_TTL), whole seconds. Required for those
	// types, refused for others. RotateSecret refuses a secret whose
	// schedule's longest interval plus its window is not shorter: its
	// AWSCURRENT would expire before the next rotation replaced it.
	CredentialTTL awscdk.Duration
}

// SuiteProps configures a Suite.
type SuiteProps struct {
	// DistDir holds <type>.zip for every type used (each a zip with a
	// linux/arm64 `bootstrap`). Required.
	DistDir *string
	// Vpc the database functions run in. Required when a database type is used.
	Vpc awsec2.IVpc
	// VpcSubnets for the database functions and the endpoint. Default: the
	// VPC's private subnets.
	VpcSubnets *awsec2.SubnetSelection
	// SecurityGroups are extra, existing groups attached to every database
	// function besides the one the suite creates for it.
	SecurityGroups *[]awsec2.ISecurityGroup
	// SecretsManagerEndpoint creates an interface VPC endpoint for Secrets
	// Manager and points the database functions at it. Default: false, the
	// functions reach the public endpoint (HTTPS egress through your NAT).
	SecretsManagerEndpoint *bool
	// EndpointPrivateDns enables private DNS on the endpoint. Default: true.
	EndpointPrivateDns *bool
	// MemorySize of every function in MiB. Default: 256.
	MemorySize *float64
	// Timeout of every function. Default: 2 minutes.
	Timeout awscdk.Duration
	// LogRetention of every function's log group. Default: three months.
	LogRetention awslogs.RetentionDays
	// Environment for every function (PASSWORD_LENGTH, EXCLUDE_CHARACTERS,
	// ROTARY_CONNECT_TIMEOUT, ...).
	Environment *map[string]*string
	// Functions holds per-type overrides, keyed by FunctionType.
	Functions *map[FunctionType]*FunctionOptions
	// AlarmTopic receives alarms and events. Default: the suite creates a
	// KMS-encrypted, TLS-only topic.
	AlarmTopic awssns.ITopic
	// AlarmEmails are subscribed to the created topic.
	AlarmEmails *[]*string
	// StaleRotationCheck adds the AWS Config managed rule
	// SECRETSMANAGER_SCHEDULED_ROTATION_SUCCESS_CHECK (for the secrets of
	// this account and region) and alerts the topic when a secret becomes
	// NON_COMPLIANT, i.e. its rotation did not happen as scheduled. Needs an
	// AWS Config recorder in the account. Default: false.
	StaleRotationCheck *bool
	// DeployRoleArn is the role CloudFormation deploys the stack with. A
	// secret's resource policy lets only it and the secret's admins
	// update or delete the secret, change its policy or cancel its
	// rotation, so later deploys keep working. Default: the CloudFormation
	// execution role of the stack's DefaultStackSynthesizer (the CDK
	// bootstrap's); required with another synthesizer.
	DeployRoleArn *string
}

// Suite is the set of rotation functions one team deploys, with the alarm
// topic and (optionally) the Secrets Manager VPC endpoint they share.
// Functions are created on first use by RotateSecret or Function.
type Suite struct {
	constructs.Construct

	props     SuiteProps
	stack     awscdk.Stack
	topic     awssns.ITopic
	topicKey  awskms.Key
	secretKey awskms.Key

	endpoint   awsec2.InterfaceVpcEndpoint
	endpointSG awsec2.SecurityGroup

	functions map[FunctionType]*Function
	// ours holds the ARNs (tokens) of secrets the suite created, encrypted by secretKey.
	ours map[string]bool
	// dbRules dedupes security-group rules: "type|sg|port".
	dbRules map[string]bool
	// rotated maps each rotated secret's ARN (or token) to its RotateSecret id.
	rotated map[string]string
	// watched lists the rotated secrets in RotateSecret order, for the watch.
	watched []watchedSecret
	watch   *Watch
	// access holds, by secret ARN (or token), the secrets with a policy.
	access map[string]*secretAccess
	// masterReaders lists, by master secret ARN, the functions that read it.
	masterReaders map[string][]*Function
	// issuer is the credential issuer, and issuerMasters the ARNs of its
	// roles' master secrets, which their policies spare.
	issuer        *Issuer
	issuerMasters map[string]bool
	// alerts holds the shared alert rules, by kind and group.
	alerts      map[string]*alertGroup
	alertsScope constructs.Construct
}

// NewSuite creates the suite's shared resources: the alarm topic (unless
// given) and the Secrets Manager endpoint (if asked for).
func NewSuite(scope constructs.Construct, id *string, props *SuiteProps) (*Suite, error) {
	if props == nil || props.DistDir == nil || *props.DistDir == "" {
		return nil, errors.New("rotary suite: field DistDir is required: set it to the directory `make build` writes the function zips to (dist/)")
	}
	endpoint := props.SecretsManagerEndpoint != nil && *props.SecretsManagerEndpoint
	if endpoint && props.Vpc == nil {
		return nil, errors.New("rotary suite: field SecretsManagerEndpoint needs field Vpc: set Vpc or turn the endpoint off")
	}
	s := &Suite{
		Construct: constructs.NewConstruct(scope, id),
		props:     *props,
		functions: map[FunctionType]*Function{},
		ours:      map[string]bool{},
		dbRules:   map[string]bool{},
		rotated:   map[string]string{},

		access:        map[string]*secretAccess{},
		masterReaders: map[string][]*Function{},
		issuerMasters: map[string]bool{},
		alerts:        map[string]*alertGroup{},
	}
	s.stack = awscdk.Stack_Of(s.Construct)
	if s.props.MemorySize == nil {
		s.props.MemorySize = jsii.Number(256)
	}
	if s.props.Timeout == nil {
		s.props.Timeout = awscdk.Duration_Minutes(jsii.Number(2))
	}
	if s.props.LogRetention == "" {
		s.props.LogRetention = awslogs.RetentionDays_THREE_MONTHS
	}
	if s.props.AlarmTopic != nil {
		s.topic = s.props.AlarmTopic
	} else {
		s.newTopic()
	}
	if s.props.StaleRotationCheck != nil && *s.props.StaleRotationCheck {
		s.newStaleRotationCheck()
	}
	if endpoint {
		s.newEndpoint()
	}
	return s, nil
}

// Topic is where alarms and rotation events are sent.
func (s *Suite) Topic() awssns.ITopic { return s.topic }

// Endpoint is the Secrets Manager interface endpoint, or nil.
func (s *Suite) Endpoint() awsec2.InterfaceVpcEndpoint { return s.endpoint }

// Functions returns the functions created so far, in FunctionTypes order.
func (s *Suite) Functions() []*Function {
	var out []*Function
	for _, t := range FunctionTypes() {
		if f, ok := s.functions[t]; ok {
			out = append(out, f)
		}
	}
	return out
}

func (s *Suite) newTopic() {
	s.topicKey = awskms.NewKey(s.Construct, jsii.String("AlarmTopicKey"), &awskms.KeyProps{
		Description:       jsii.String("Encrypts the Rotary alarm topic"),
		EnableKeyRotation: jsii.Bool(true),
	})
	// CloudWatch alarms publish to the encrypted topic, so they need the
	// data key, from this account only. (The EventBridge target adds its own
	// statement for events.amazonaws.com.)
	s.topicKey.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("AllowCloudWatchAlarms"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("kms:Decrypt", "kms:GenerateDataKey*"),
		Resources:  jsii.Strings("*"),
		Conditions: &map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": s.stack.Account()}},
	}), jsii.Bool(false))
	topic := awssns.NewTopic(s.Construct, jsii.String("AlarmTopic"), &awssns.TopicProps{
		DisplayName: jsii.String("Rotary rotation alarms"),
		MasterKey:   s.topicKey,
		EnforceSSL:  jsii.Bool(true),
	})
	topic.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("AllowCloudWatchAlarms"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("sns:Publish"),
		Resources:  &[]*string{topic.TopicArn()},
		Conditions: &map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": s.stack.Account()}},
	}))
	if s.props.AlarmEmails != nil {
		for _, e := range *s.props.AlarmEmails {
			topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(e, nil))
		}
	}
	s.topic = topic
}

// newStaleRotationCheck alerts when Secrets Manager reports that a secret's
// scheduled rotation is not occurring (a missed or stuck schedule that
// produces no RotationFailed event).
func (s *Suite) newStaleRotationCheck() {
	rule := awsconfig.NewManagedRule(s.Construct, jsii.String("ScheduledRotationCheck"), &awsconfig.ManagedRuleProps{
		Identifier:  awsconfig.ManagedRuleIdentifiers_SECRETSMANAGER_SCHEDULED_ROTATION_SUCCESS_CHECK(),
		Description: jsii.String("Rotary: secrets whose rotation does not happen as scheduled are NON_COMPLIANT"),
		RuleScope:   awsconfig.RuleScope_FromResources(&[]awsconfig.ResourceType{awsconfig.ResourceType_SECRETS_MANAGER_SECRET()}),
	})
	rule.OnComplianceChange(jsii.String("StaleRotationRule"), &awsevents.OnEventOptions{
		Description: jsii.String("Rotary: a secret's scheduled rotation did not succeed on time (AWS Config)"),
		EventPattern: &awsevents.EventPattern{
			Detail: &map[string]any{"newEvaluationResult": map[string]any{"complianceType": []any{"NON_COMPLIANT"}}},
		},
		Target: awseventstargets.NewSnsTopic(s.topic, &awseventstargets.SnsTopicProps{
			Message: text("Rotary: AWS Config finds secret %s NON_COMPLIANT with SECRETSMANAGER_SCHEDULED_ROTATION_SUCCESS_CHECK (at %s): its scheduled rotation did not succeed on time. Check with: rotary status SECRET --verify.",
				field("$.detail.resourceId"), field("$.time")),
		}),
	})
}

func (s *Suite) newEndpoint() {
	s.endpointSG = awsec2.NewSecurityGroup(s.Construct, jsii.String("SecretsManagerEndpointSecurityGroup"), &awsec2.SecurityGroupProps{
		Vpc:              s.props.Vpc,
		Description:      jsii.String("Rotary Secrets Manager endpoint: HTTPS from the rotation functions only"),
		AllowAllOutbound: jsii.Bool(false),
	})
	privateDNS := true
	if s.props.EndpointPrivateDns != nil {
		privateDNS = *s.props.EndpointPrivateDns
	}
	s.endpoint = awsec2.NewInterfaceVpcEndpoint(s.Construct, jsii.String("SecretsManagerEndpoint"), &awsec2.InterfaceVpcEndpointProps{
		Vpc:               s.props.Vpc,
		Service:           awsec2.InterfaceVpcEndpointAwsService_SECRETS_MANAGER(),
		Subnets:           s.props.VpcSubnets,
		SecurityGroups:    &[]awsec2.ISecurityGroup{s.endpointSG},
		PrivateDnsEnabled: jsii.Bool(privateDNS),
		// Open would allow HTTPS from the whole VPC CIDR; only the functions get in.
		Open: jsii.Bool(false),
	})
}

// endpointURL is https:// plus the endpoint's regional DNS name (the first
// DNS entry, "zone:name").
func (s *Suite) endpointURL() *string {
	first := awscdk.Fn_Select(jsii.Number(0), s.endpoint.VpcEndpointDnsEntries())
	name := awscdk.Fn_Select(jsii.Number(1), awscdk.Fn_Split(jsii.String(":"), first, nil))
	return awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("https://"), name})
}

// EncryptionKey is the customer-managed key (rotation on) that encrypts the
// secrets the suite creates. Created on first use.
func (s *Suite) EncryptionKey() awskms.Key {
	if s.secretKey == nil {
		s.secretKey = awskms.NewKey(s.Construct, jsii.String("SecretsKey"), &awskms.KeyProps{
			Description:       jsii.String("Encrypts the secrets Rotary creates; functions may use it only through Secrets Manager"),
			EnableKeyRotation: jsii.Bool(true),
			RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
		})
	}
	return s.secretKey
}

// Function returns the function of type t, creating it on first use.
func (s *Suite) Function(t FunctionType) (*Function, error) {
	if f, ok := s.functions[t]; ok {
		return f, nil
	}
	if !t.Valid() {
		return nil, fmt.Errorf("rotary suite: function type %q is unknown: use one of %v", t, FunctionTypes())
	}
	f, err := s.newFunction(t, false)
	if err != nil {
		return nil, err
	}
	s.functions[t] = f
	return f, nil
}

// functionFor returns the function of type t, creating it on first use in
// rds-master's login mode when login is set; a function exists in one mode.
func (s *Suite) functionFor(t FunctionType, login bool) (*Function, error) {
	if f, ok := s.functions[t]; ok {
		if f.login != login {
			return nil, fmt.Errorf("rotary suite: the %s function logs in for every secret or for none (%s is a setting of the function): give every %s rotation a Database, or none", t, EnvRDSMasterLogin, t)
		}
		return f, nil
	}
	if !t.Valid() {
		return nil, fmt.Errorf("rotary suite: function type %q is unknown: use one of %v", t, FunctionTypes())
	}
	f, err := s.newFunction(t, login)
	if err != nil {
		return nil, err
	}
	s.functions[t] = f
	return f, nil
}

// zipPath checks that the function package exists.
func (s *Suite) zipPath(t string) (string, error) {
	p := filepath.Join(*s.props.DistDir, t+".zip")
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("%w: %s not found: run make build (it builds functions/%s into dist/%s.zip), or point distDir at the directory that holds it: %w", ErrMissingPackage, p, t, t, err)
	}
	if st.IsDir() {
		return "", fmt.Errorf("%w: %s is a directory, want the zip `make build` writes: run make build", ErrMissingPackage, p)
	}
	return p, nil
}

// alarm creates an alarm that fires on any datapoint >= 1 and notifies the topic.
func (s *Suite) alarm(scope constructs.Construct, id, description string, m awscloudwatch.IMetric) awscloudwatch.Alarm {
	a := awscloudwatch.NewAlarm(scope, jsii.String(id), &awscloudwatch.AlarmProps{
		Metric:             m,
		AlarmDescription:   jsii.String(description),
		Threshold:          jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		EvaluationPeriods:  jsii.Number(1),
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	a.AddAlarmAction(awscloudwatchactions.NewSnsAction(s.topic))
	return a
}

// alarmRuns is alarm over several periods: it fires when the metric is >= 1
// in each of them.
func (s *Suite) alarmRuns(scope constructs.Construct, id, description string, m awscloudwatch.IMetric, periods float64) awscloudwatch.Alarm {
	a := awscloudwatch.NewAlarm(scope, jsii.String(id), &awscloudwatch.AlarmProps{
		Metric:             m,
		AlarmDescription:   jsii.String(description),
		Threshold:          jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		EvaluationPeriods:  jsii.Number(periods),
		DatapointsToAlarm:  jsii.Number(periods),
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	a.AddAlarmAction(awscloudwatchactions.NewSnsAction(s.topic))
	return a
}

// alarmBelow creates an alarm that fires when the metric is < 1 and notifies the topic.
func (s *Suite) alarmBelow(scope constructs.Construct, id, description string, m awscloudwatch.IMetric, missing awscloudwatch.TreatMissingData, periods float64) awscloudwatch.Alarm {
	a := awscloudwatch.NewAlarm(scope, jsii.String(id), &awscloudwatch.AlarmProps{
		Metric:             m,
		AlarmDescription:   jsii.String(description),
		Threshold:          jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD,
		EvaluationPeriods:  jsii.Number(periods),
		DatapointsToAlarm:  jsii.Number(periods),
		TreatMissingData:   missing,
	})
	a.AddAlarmAction(awscloudwatchactions.NewSnsAction(s.topic))
	return a
}
