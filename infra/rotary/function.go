package rotary

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// Statement IDs of the function roles' policy, stable so that tests and
// auditors can find each grant.
const (
	SidWriteLogs         = "WriteOwnLogGroup"
	SidRotateSecrets     = "RotateOwnSecrets"
	SidReadMasterSecrets = "ReadMasterSecrets"
	SidUseKeys           = "UseSecretKeysViaSecretsManager"
	SidDescribeENIs      = "DescribeVpcNetworkInterfaces"
	SidManageENIs        = "ManageVpcNetworkInterfaces"
	SidReadRDSTopology   = "ReadRdsTopology"
	// SidRDSMasterPassword prefixes the statements (one per database,
	// numbered from 1) that let an rds-master function set its database's
	// master password.
	SidRDSMasterPassword = "SetRdsMasterPassword"
	// SidElastiCacheUser prefixes the statements (one per user, numbered
	// from 1) that let an elasticache-user function describe its user and
	// set its passwords; SidElastiCacheReplicationGroup those (one per
	// replication group) that let it describe the user's replication group.
	SidElastiCacheUser             = "ModifyElastiCacheUser"
	SidElastiCacheReplicationGroup = "DescribeElastiCacheReplicationGroup"
	SidKeyPolicyFunctions          = "AllowRotationFunctionsViaSecretsManager"
	// SidBatchRead lets a function read its secret's AWSCURRENT and its
	// master in one BatchGetSecretValue call.
	SidBatchRead = "BatchReadOwnAndMasterSecrets"
)

// BatchReadActions are what a BatchRead type may call on Resource "*":
// BatchGetSecretValue has no resource-level permissions, and returns only
// the secrets the role may GetSecretValue (RotateOwnSecrets,
// ReadMasterSecrets) and the secrets' policies do not deny.
var BatchReadActions = []string{"secretsmanager:BatchGetSecretValue"}

// EnvCredentialTTL is the lifetime of the users an expiring-users type
// creates (pkg/dbsecret), which the suite sets from
// FunctionOptions.CredentialTTL.
const EnvCredentialTTL = "ROTARY_CREDENTIAL_TTL"

// RotateActions are what a function may do on a secret it rotates: the
// four calls of a rotation, and ListSecretVersionIds (version ids, labels
// and dates, no values), with which its probeSecret and recoverSecret steps
// find the versions an unfinished rotation left unlabeled.
var RotateActions = []string{"secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage", "secretsmanager:ListSecretVersionIds"}

// MasterActions are what a multi-user function may do on a master secret.
var MasterActions = []string{"secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"}

// KeyActions are what a function may do with a secret's KMS key, through Secrets Manager only.
var KeyActions = []string{"kms:Decrypt", "kms:GenerateDataKey"}

// Function is one rotation function with its own role, log group and (for
// database types) security group.
type Function struct {
	Type          FunctionType
	Function      awslambda.Function
	Role          awsiam.Role
	LogGroup      awslogs.LogGroup
	SecurityGroup awsec2.SecurityGroup // nil for types outside the VPC

	// inVpc is true when the function runs in the VPC and logs in to
	// databases: the database types, and rds-master in its login mode.
	inVpc bool
	// login is rds-master's login mode (ROTARY_RDS_MASTER_LOGIN=true).
	login bool
	// credentialTTL is an expiring-users type's ROTARY_CREDENTIAL_TTL.
	credentialTTL time.Duration
	suite         *Suite
	scope         constructs.Construct
	rotate        awsiam.PolicyStatement
	master        awsiam.PolicyStatement
	kms           awsiam.PolicyStatement

	secrets, masters, keys map[string]bool
	rdsMasters             map[string]bool
	ecUsers, ecGroups      map[string]bool
	// bindings are the secret -> resource pairs of EnvRDSBindings or
	// EnvElastiCacheBindings, in RotateSecret order.
	bindings      []binding
	keyPolicyDone bool
}

// binding binds a secret (its ARN, a token for a secret the stack
// creates) to the one resource the function may change for it.
type binding struct {
	secret *string
	target string
}

// EnvRDSMasterLogin switches rds-master to its login mode
// (pkg/credentials/rdsmaster): testSecret also logs in, which needs a
// network path to the database.
const EnvRDSMasterLogin = "ROTARY_RDS_MASTER_LOGIN"

// EnvRDSBindings and EnvElastiCacheBindings bind each secret of an
// rds-master (elasticache-user) function to its database (user): a JSON
// object {"<secret ARN>": "<RDS database ARN>"} ({"<secret ARN>":
// "<ElastiCache user ARN>"}) the suite writes from each RotateSecret's
// RDSDatabaseArn (ElastiCacheUserArn). The function's role may modify
// the resources of all its secrets; with the bindings, the function
// refuses a secret whose fields name another of them
// (pkg/credentials/rdsmaster, pkg/credentials/redis).
const (
	EnvRDSBindings         = "ROTARY_RDS_BINDINGS"
	EnvElastiCacheBindings = "ROTARY_ELASTICACHE_BINDINGS"
)

// suiteEnv are the environment variables the suite writes itself, which
// SuiteProps.Environment and FunctionOptions.Environment may not set.
var suiteEnv = map[string]string{
	EnvRDSBindings:         "the suite writes it from each rds-master RotateSecret's RDSDatabaseArn",
	EnvElastiCacheBindings: "the suite writes it from each elasticache-user RotateSecret's ElastiCacheUserArn",
}

// bind records that the function may change target for the secret
// secretArn only, and (re)writes the function's env variable with every
// binding so far. The value is built with Fn::Join, as the ARN of a
// secret the stack creates is known only at deployment.
func (f *Function) bind(env string, secretArn *string, target string) {
	f.bindings = append(f.bindings, binding{secret: secretArn, target: target})
	quote := func(v string) *string {
		b, _ := json.Marshal(v)
		return jsii.String(string(b))
	}
	parts := []*string{jsii.String("{")}
	for i, b := range f.bindings {
		if i > 0 {
			parts = append(parts, jsii.String(","))
		}
		if *awscdk.Token_IsUnresolved(b.secret) {
			// A secret ARN holds no character JSON must escape.
			parts = append(parts, jsii.String(`"`), b.secret, jsii.String(`"`))
		} else {
			parts = append(parts, quote(*b.secret))
		}
		parts = append(parts, jsii.String(":"), quote(b.target))
	}
	parts = append(parts, jsii.String("}"))
	f.Function.AddEnvironment(jsii.String(env), awscdk.Fn_Join(jsii.String(""), &parts), nil)
}

// DefaultReservedConcurrency is the reserved concurrency of a function
// that logs in to a database, unless FunctionOptions.ReservedConcurrency
// says otherwise: each in-flight step holds at most two connections, so
// the function opens at most 20 at once on all its servers together
// (docs/scale.md).
const DefaultReservedConcurrency = 10

// Unreserved, as FunctionOptions.ReservedConcurrency, reserves nothing:
// the function shares the account's unreserved concurrency. (Lambda's
// reservation of 0 would stop the function.)
const Unreserved = -1.0

func (s *Suite) newFunction(t FunctionType, login bool) (*Function, error) {
	zip, err := s.zipPath(string(t))
	if err != nil {
		return nil, err
	}
	inVpc := t.NeedsDatabase() || login
	if inVpc && s.props.Vpc == nil {
		return nil, fmt.Errorf("rotary suite: function %s connects to a database and needs field Vpc: set SuiteProps.Vpc (and VpcSubnets)", t)
	}
	opts := FunctionOptions{}
	if s.props.Functions != nil {
		if o, ok := (*s.props.Functions)[t]; ok && o != nil {
			opts = *o
		}
	}
	memory := s.props.MemorySize
	if opts.MemorySize != nil {
		memory = opts.MemorySize
	}
	timeout := s.props.Timeout
	if opts.Timeout != nil {
		timeout = opts.Timeout
	} else if t.NeedsRDSMasterPassword() {
		// Each step may wait for RDS to apply a password change
		// (ROTARY_RDS_WAIT_TIMEOUT, 10 minutes by default).
		timeout = awscdk.Duration_Minutes(jsii.Number(15))
	}

	scope := constructs.NewConstruct(s.Construct, jsii.String(t.constructID()))
	f := &Function{Type: t, suite: s, scope: scope, inVpc: inVpc, login: login, secrets: map[string]bool{}, masters: map[string]bool{}, keys: map[string]bool{}}

	f.LogGroup = awslogs.NewLogGroup(scope, jsii.String("LogGroup"), &awslogs.LogGroupProps{
		Retention:     s.props.LogRetention,
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	f.Role = awsiam.NewRole(scope, jsii.String("Role"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String(fmt.Sprintf("Rotary %s rotation function (least privilege, no managed policies)", t)),
	})
	// Log permissions written out and scoped to this function's log group;
	// the group exists, so no logs:CreateLogGroup.
	f.Role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String(SidWriteLogs),
		Actions:   jsii.Strings("logs:CreateLogStream", "logs:PutLogEvents"),
		Resources: &[]*string{f.LogGroup.LogGroupArn()},
	}))

	env := map[string]*string{}
	if s.props.Environment != nil {
		for k, v := range *s.props.Environment {
			env[k] = v
		}
	}

	props := &awslambda.FunctionProps{
		Description:  jsii.String(fmt.Sprintf("Rotary: rotates %s secrets (Secrets Manager rotation protocol)", t)),
		Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture: awslambda.Architecture_ARM_64(),
		Handler:      jsii.String("bootstrap"),
		Code:         awslambda.Code_FromAsset(jsii.String(zip), nil),
		MemorySize:   memory,
		Timeout:      timeout,
		Role:         f.Role,
		LogGroup:     f.LogGroup,
	}
	if login {
		env[EnvRDSMasterLogin] = jsii.String("true")
	}
	if _, set := env[EnvCredentialTTL]; set {
		return nil, fmt.Errorf("rotary suite: function %s: field Environment: %s is set by the suite: use FunctionOptions.CredentialTTL", t, EnvCredentialTTL)
	}
	if opts.Environment != nil {
		if _, set := (*opts.Environment)[EnvCredentialTTL]; set {
			return nil, fmt.Errorf("rotary suite: function %s: field Environment: %s is set by the suite: use FunctionOptions.CredentialTTL", t, EnvCredentialTTL)
		}
	}
	for k, why := range suiteEnv {
		_, inSuite := env[k]
		inOpts := false
		if opts.Environment != nil {
			_, inOpts = (*opts.Environment)[k]
		}
		if inSuite || inOpts {
			return nil, fmt.Errorf("rotary suite: function %s: field Environment: %s is set by the suite: %s", t, k, why)
		}
	}
	switch {
	case t.ExpiringUsers() && opts.CredentialTTL == nil:
		return nil, fmt.Errorf("rotary suite: function %s: field CredentialTTL is required: the lifetime of each user the function creates, longer than any of its secrets' schedule interval plus window", t)
	case t.ExpiringUsers():
		ttl, err := goDuration(opts.CredentialTTL, 0)
		if err != nil || ttl <= 0 {
			return nil, fmt.Errorf("rotary suite: function %s: field CredentialTTL: want a positive whole number of seconds", t)
		}
		f.credentialTTL = ttl
		env[EnvCredentialTTL] = jsii.String(ttl.String())
	case opts.CredentialTTL != nil:
		return nil, fmt.Errorf("rotary suite: function %s: field CredentialTTL: type %s creates no expiring users; remove it", t, t)
	}
	reserved := opts.ReservedConcurrency
	if reserved == nil && inVpc {
		reserved = jsii.Number(DefaultReservedConcurrency)
	}
	if reserved != nil && *reserved != Unreserved {
		if *reserved < 1 || *reserved != math.Trunc(*reserved) {
			return nil, fmt.Errorf("rotary suite: function %s: field ReservedConcurrency: %v is not a whole number >= 1 (or Unreserved)", t, *reserved)
		}
		props.ReservedConcurrentExecutions = reserved
	}
	if inVpc {
		f.SecurityGroup = s.placeInVpc(scope, string(t), f.Role, env, props, func(sg awsec2.SecurityGroup, https awsec2.Port) {
			if s.endpoint != nil {
				if t.NeedsRDSRead() {
					// The endpoint serves Secrets Manager only. The host of an
					// RDS-managed master secret comes from the RDS API
					// (DescribeDBInstances/DescribeDBClusters), reached over HTTPS.
					sg.AddEgressRule(awsec2.Peer_AnyIpv4(), https, jsii.String("RDS API over HTTPS for RDS-managed master secrets (through the VPC's NAT)"), nil)
				} else if login {
					// Nor the RDS API, which sets the master password.
					sg.AddEgressRule(awsec2.Peer_AnyIpv4(), https, jsii.String("RDS API over HTTPS for ModifyDBInstance/ModifyDBCluster (through the VPC's NAT)"), nil)
				} else if t.NeedsElastiCacheUser() {
					// Nor does it serve ElastiCache: the function changes the
					// user's passwords through the ElastiCache API.
					sg.AddEgressRule(awsec2.Peer_AnyIpv4(), https, jsii.String("ElastiCache API over HTTPS for ModifyUser (through the VPC's NAT)"), nil)
				}
			} else if t.NeedsElastiCacheUser() {
				sg.AddEgressRule(awsec2.Peer_AnyIpv4(), https, jsii.String("Secrets Manager and ElastiCache public endpoints over HTTPS (through the VPC's NAT)"), nil)
			} else if login {
				sg.AddEgressRule(awsec2.Peer_AnyIpv4(), https, jsii.String("Secrets Manager and RDS public endpoints over HTTPS (through the VPC's NAT)"), nil)
			} else {
				sg.AddEgressRule(awsec2.Peer_AnyIpv4(), https, jsii.String("Secrets Manager (and RDS) public endpoints over HTTPS (through the VPC's NAT)"), nil)
			}
		})
	}
	if t.NeedsRDSRead() {
		// Multi-user types may look up the instance or cluster behind a secret.
		f.Role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:     jsii.String(SidReadRDSTopology),
			Actions: jsii.Strings("rds:DescribeDBInstances", "rds:DescribeDBClusters"),
			Resources: &[]*string{
				s.stack.FormatArn(&awscdk.ArnComponents{Service: jsii.String("rds"), Resource: jsii.String("db"), ResourceName: jsii.String("*"), ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME}),
				s.stack.FormatArn(&awscdk.ArnComponents{Service: jsii.String("rds"), Resource: jsii.String("cluster"), ResourceName: jsii.String("*"), ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME}),
			},
		}))
	}
	if t.BatchReads() {
		f.Role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String(SidBatchRead),
			Actions:   jsii.Strings(BatchReadActions...),
			Resources: jsii.Strings("*"),
		}))
	}
	if opts.Environment != nil {
		for k, v := range *opts.Environment {
			env[k] = v
		}
	}
	if len(env) > 0 {
		props.Environment = &env
	}
	f.Function = awslambda.NewFunction(scope, jsii.String("Function"), props)
	f.suppressNag()

	fnName := f.Function.FunctionName()
	period := awscdk.Duration_Minutes(jsii.Number(5))
	s.alarm(scope, "ErrorsAlarm", fmt.Sprintf("Rotary %s: the function failed (Lambda Errors >= 1 in 5 minutes)", t),
		f.Function.MetricErrors(&awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("Sum")}))
	s.alarm(scope, "ThrottlesAlarm", fmt.Sprintf("Rotary %s: invocations were throttled (Lambda Throttles >= 1 in 5 minutes)", t),
		f.Function.MetricThrottles(&awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("Sum")}))
	s.alarm(scope, "StepFailedAlarm", fmt.Sprintf("Rotary %s: a rotation step failed (engine metric %s/%s >= 1 in 5 minutes)", t, MetricNamespace, MetricStepFailed),
		awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace:     jsii.String(MetricNamespace),
			MetricName:    jsii.String(MetricStepFailed),
			DimensionsMap: &map[string]*string{"FunctionName": fnName},
			Statistic:     jsii.String("Sum"),
			Period:        period,
		}))
	return f, nil
}

// InVpc reports whether the function runs in the VPC and logs in to
// databases: the database types, and rds-master in its login mode.
func (f *Function) InVpc() bool { return f.inVpc }

// allowRotate lets the function rotate secretArn (once per ARN).
func (f *Function) allowRotate(secretArn *string) {
	if f.secrets[*secretArn] {
		return
	}
	f.secrets[*secretArn] = true
	if f.rotate == nil {
		f.rotate = awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:     jsii.String(SidRotateSecrets),
			Actions: jsii.Strings(RotateActions...),
		})
		f.Role.AddToPrincipalPolicy(f.rotate)
	}
	f.rotate.AddResources(secretArn)
}

// RDSResourceKind returns "db" or "cluster" for the ARN of an RDS DB
// instance or cluster, and "" for anything else.
func RDSResourceKind(arn string) string {
	m := rdsArnRe.FindStringSubmatch(arn)
	if m == nil {
		return ""
	}
	return m[1]
}

var rdsArnRe = regexp.MustCompile(`^arn:aws[a-z-]*:rds:[a-z0-9-]+:[0-9]{12}:(db|cluster):[a-zA-Z][a-zA-Z0-9-]*$`)

// RDSMasterActions are what an rds-master function may do on its
// database, by kind of ARN.
var RDSMasterActions = map[string][]string{
	"db":      {"rds:DescribeDBInstances", "rds:ModifyDBInstance"},
	"cluster": {"rds:DescribeDBClusters", "rds:ModifyDBCluster"},
}

// allowRDSMasterPassword lets the function describe the RDS instance or
// cluster arn and set its master password: one statement per database,
// on its ARN only.
func (f *Function) allowRDSMasterPassword(arn string) {
	if f.rdsMasters[arn] {
		return
	}
	if f.rdsMasters == nil {
		f.rdsMasters = map[string]bool{}
	}
	f.rdsMasters[arn] = true
	f.Role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String(fmt.Sprintf("%s%d", SidRDSMasterPassword, len(f.rdsMasters))),
		Actions:   jsii.Strings(RDSMasterActions[RDSResourceKind(arn)]...),
		Resources: jsii.Strings(arn),
	}))
}

// ElastiCacheUserActions are what an elasticache-user function may do on
// its user; ElastiCacheReplicationGroupActions on the user's replication
// group.
var (
	ElastiCacheUserActions             = []string{"elasticache:DescribeUsers", "elasticache:ModifyUser"}
	ElastiCacheReplicationGroupActions = []string{"elasticache:DescribeReplicationGroups"}
)

// ElastiCacheUserArnOK reports whether arn is the ARN of an ElastiCache
// user (arn:aws:elasticache:<region>:<account>:user:<id>).
func ElastiCacheUserArnOK(arn string) bool { return ecUserArnRe.MatchString(arn) }

// ReplicationGroupArnOK reports whether arn is the ARN of an ElastiCache
// replication group (arn:aws:elasticache:<region>:<account>:replicationgroup:<id>).
func ReplicationGroupArnOK(arn string) bool { return ecGroupArnRe.MatchString(arn) }

var (
	ecUserArnRe  = regexp.MustCompile(`^arn:aws[a-z-]*:elasticache:[a-z0-9-]+:[0-9]{12}:user:[a-zA-Z][a-zA-Z0-9-]*$`)
	ecGroupArnRe = regexp.MustCompile(`^arn:aws[a-z-]*:elasticache:[a-z0-9-]+:[0-9]{12}:replicationgroup:[a-zA-Z][a-zA-Z0-9-]*$`)
)

// allowElastiCacheUser lets the function describe the ElastiCache user
// userArn and set its passwords, and describe the replication group
// groupArn: one statement per user and one per group, each on its ARN
// only.
func (f *Function) allowElastiCacheUser(userArn, groupArn string) {
	if f.ecUsers == nil {
		f.ecUsers, f.ecGroups = map[string]bool{}, map[string]bool{}
	}
	if !f.ecUsers[userArn] {
		f.ecUsers[userArn] = true
		f.Role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String(fmt.Sprintf("%s%d", SidElastiCacheUser, len(f.ecUsers))),
			Actions:   jsii.Strings(ElastiCacheUserActions...),
			Resources: jsii.Strings(userArn),
		}))
	}
	if !f.ecGroups[groupArn] {
		f.ecGroups[groupArn] = true
		f.Role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String(fmt.Sprintf("%s%d", SidElastiCacheReplicationGroup, len(f.ecGroups))),
			Actions:   jsii.Strings(ElastiCacheReplicationGroupActions...),
			Resources: jsii.Strings(groupArn),
		}))
	}
}

// allowReadMaster lets the function read a master secret.
func (f *Function) allowReadMaster(secretArn *string) {
	if f.masters[*secretArn] {
		return
	}
	f.masters[*secretArn] = true
	if f.master == nil {
		f.master = awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:     jsii.String(SidReadMasterSecrets),
			Actions: jsii.Strings(MasterActions...),
		})
		f.Role.AddToPrincipalPolicy(f.master)
	}
	f.master.AddResources(secretArn)
}

// allowKey lets the function use a key, only through Secrets Manager in this region.
func (f *Function) allowKey(keyArn *string) {
	if f.keys[*keyArn] {
		return
	}
	f.keys[*keyArn] = true
	if f.kms == nil {
		f.kms = awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String(SidUseKeys),
			Actions:    jsii.Strings(KeyActions...),
			Conditions: f.suite.viaSecretsManager(),
		})
		f.Role.AddToPrincipalPolicy(f.kms)
	}
	f.kms.AddResources(keyArn)
	if f.suite.secretKey != nil && *keyArn == *f.suite.secretKey.KeyArn() {
		f.allowSuiteKeyPolicy()
	}
}

// allowSuiteKeyPolicy adds the function's role to the suite key's policy,
// again only through Secrets Manager.
func (f *Function) allowSuiteKeyPolicy() {
	if f.keyPolicyDone {
		return
	}
	f.keyPolicyDone = true
	f.suite.secretKey.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String(SidKeyPolicyFunctions + f.Type.constructID()),
		Principals: &[]awsiam.IPrincipal{f.Role},
		Actions:    jsii.Strings(KeyActions...),
		Resources:  jsii.Strings("*"),
		Conditions: f.suite.viaSecretsManager(),
	}), jsii.Bool(false))
}

func (s *Suite) viaSecretsManager() *map[string]any {
	return &map[string]any{"StringEquals": map[string]any{
		"kms:ViaService":    awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("secretsmanager."), s.stack.Region(), jsii.String(".amazonaws.com")}),
		"kms:CallerAccount": s.stack.Account(),
	}}
}

// OutputID is a CloudFormation-safe name for outputs about this function,
// such as "PostgresSingleUserFunctionName".
func (f *Function) OutputID() string { return f.Type.constructID() + "FunctionName" }

// placeInVpc gives a function that logs in to databases its security group
// (no ingress, no egress but what is added), the route to the Secrets
// Manager endpoint when the suite has one (and SECRETS_MANAGER_ENDPOINT,
// unless env sets it), the suite's subnets and extra groups, and the
// network-interface permissions Lambda needs on its role. egress adds the
// function's other HTTPS rules (https is port 443).
func (s *Suite) placeInVpc(scope constructs.Construct, name string, role awsiam.Role, env map[string]*string, props *awslambda.FunctionProps, egress func(sg awsec2.SecurityGroup, https awsec2.Port)) awsec2.SecurityGroup {
	sg := awsec2.NewSecurityGroup(scope, jsii.String("SecurityGroup"), &awsec2.SecurityGroupProps{
		Vpc:              s.props.Vpc,
		Description:      jsii.String(fmt.Sprintf("Rotary %s: egress to its databases and Secrets Manager only, no ingress", name)),
		AllowAllOutbound: jsii.Bool(false),
	})
	groups := []awsec2.ISecurityGroup{sg}
	if s.props.SecurityGroups != nil {
		groups = append(groups, *s.props.SecurityGroups...)
	}
	https := awsec2.Port_Tcp(jsii.Number(443))
	if s.endpoint != nil {
		sg.AddEgressRule(s.endpointSG, https, jsii.String("Secrets Manager VPC endpoint"), nil)
		s.endpointSG.AddIngressRule(sg, https, jsii.String(fmt.Sprintf("Rotary %s function", name)), nil)
		if _, set := env["SECRETS_MANAGER_ENDPOINT"]; !set {
			env["SECRETS_MANAGER_ENDPOINT"] = s.endpointURL()
		}
	}
	egress(sg, https)
	props.Vpc = s.props.Vpc
	props.VpcSubnets = s.props.VpcSubnets
	props.SecurityGroups = &groups

	// Lambda manages the function's network interfaces with the
	// function's role; these are the actions of
	// AWSLambdaVPCAccessExecutionRole, written out.
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String(SidDescribeENIs),
		Actions:   jsii.Strings("ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"),
		Resources: jsii.Strings("*"),
	}))
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String(SidManageENIs),
		Actions:   jsii.Strings("ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"),
		Resources: jsii.Strings("*"),
	}))
	return sg
}
