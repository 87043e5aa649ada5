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
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/rotary-secrets/rotary/pkg/registry"
)

// The credential issuer's contract with the suite (pkg/issuer,
// docs/issued-credentials.md): its roles' variable, the bounds of their
// lifetimes, and the operator event a schedule sends to reap.
const (
	IssuerVarRoles = "ROTARY_ISSUER_ROLES"
	// IssuerMinTTL and IssuerCeilingTTL bound a role's lifetimes;
	// IssuerDefaultTTL and IssuerDefaultMaxTTL are its defaults.
	IssuerMinTTL        = time.Second
	IssuerCeilingTTL    = 7 * 24 * time.Hour
	IssuerDefaultTTL    = time.Hour
	IssuerDefaultMaxTTL = 12 * time.Hour
	// IssuerReapEvent is what the reap schedule sends: drop every role's
	// expired users (the only expiry MySQL and MariaDB have).
	IssuerReapEvent = `{"rotary":"reap"}`
	// DefaultIssuerReapInterval is the reap schedule's default interval.
	DefaultIssuerReapInterval = 5 * time.Minute
)

// Statement IDs of the issuer's role and of its reap schedule's role.
const (
	SidIssuerReadMasters = "ReadRoleMasterSecrets"
	SidIssuerUseKeys     = "DecryptMasterSecretsViaSecretsManager"
	SidIssuerSchedule    = "InvokeIssuerToReap"
)

// IssuerMasterActions are what the issuer may do on its roles' master
// secrets: read AWSCURRENT, nothing else.
var IssuerMasterActions = []string{"secretsmanager:GetSecretValue"}

// IssuerKeyActions are what the issuer may do with their keys, through
// Secrets Manager only: it writes no secret, so no GenerateDataKey.
var IssuerKeyActions = []string{"kms:Decrypt"}

// IssuerRole is one role callers may ask the issuer for.
type IssuerRole struct {
	// Name is what callers ask for: 1 to 64 letters, digits, '_', '.' or
	// '-', starting with a letter or digit. Required.
	Name string
	// Engine is "postgres", or "mysql" for MySQL and MariaDB. Required.
	Engine string
	// MasterSecret is the admin user's database secret that creates and
	// drops the issued users; the issuer reads it (AWSCURRENT) on every
	// request. Required.
	MasterSecret awssecretsmanager.ISecret
	// MasterEncryptionKey encrypts MasterSecret (default:
	// MasterSecret.EncryptionKey(), or the suite's key for a secret the
	// suite created).
	MasterEncryptionKey awskms.IKey
	// BaseUser is the user whose privileges every issued user gets. Required.
	BaseUser string
	// DBName is the database the credential names; default the master
	// secret's.
	DBName string
	// DefaultTTL is the lifetime when the caller names none (default 1
	// hour, or MaxTTL if shorter); MaxTTL the longest a caller may ask for
	// (default 12 hours, at most 7 days). Whole seconds.
	DefaultTTL, MaxTTL awscdk.Duration
	// Database is where the master logs in: the issuer gets egress to its
	// port and the database's security group ingress from the issuer.
	// Required.
	Database *DatabaseTarget
}

// IssuerProps configures the credential issuer.
type IssuerProps struct {
	// Roles callers may ask for. At least one.
	Roles []IssuerRole
	// AllowedCallers are the IAM role and user ARNs (exact: a function's
	// resource policy takes no wildcards; any account) that may call the
	// function URL. Each gets lambda:InvokeFunctionUrl with
	// lambda:FunctionUrlAuthType AWS_IAM and lambda:InvokeFunction with
	// lambda:InvokedViaFunctionUrl true, in the function's resource
	// policy: through the URL only, never the operator events. Callers of
	// the stack's account may also be allowed by their own IAM policies.
	AllowedCallers []string
	// Operators are the IAM role and user ARNs that may invoke the
	// function directly (lambda:InvokeFunction: the operator events
	// leases, revoke-leases and reap). An operator may also send a made-up
	// function URL event, so list only who runs rotary leases and rotary
	// revoke --leases.
	Operators []string
	// FunctionName of the function. Default: rotary-credential-issuer,
	// the name the rotary CLI's --issuer defaults to.
	FunctionName *string
	// MemorySize in MiB. Default: SuiteProps.MemorySize.
	MemorySize *float64
	// Timeout of one request. Default: SuiteProps.Timeout.
	Timeout awscdk.Duration
	// Environment adds variables (PASSWORD_LENGTH, ROTARY_CA_BUNDLE,
	// ROTARY_REAP_KEEP_SESSIONS, ROTARY_MYSQL_MARKER_DATABASE, ...) over
	// SuiteProps.Environment. ROTARY_ISSUER_ROLES is the suite's.
	Environment *map[string]*string
	// ReservedConcurrency caps concurrent requests (each holds one master
	// connection), a whole number >= 1, or Unreserved. Default:
	// DefaultReservedConcurrency, as for the functions that log in to a
	// database.
	ReservedConcurrency *float64
	// ReapInterval is how often an EventBridge Scheduler schedule sends
	// the function {"rotary":"reap"}, which drops every role's expired
	// users: on MySQL and MariaDB the only expiry there is, and on
	// PostgreSQL the cleanup of users the server already refuses. Whole
	// minutes, 1 minute to 1 day. Default: 5 minutes.
	ReapInterval awscdk.Duration
	// NoReapSchedule leaves the schedule out (expired users are then
	// reaped when a role is asked for, and by the expiring-user types'
	// reaper on the same base user). Default: false.
	NoReapSchedule *bool
}

// Issuer is the credential-issuer function with its role, log group,
// security group, function URL, reap schedule and alarms.
type Issuer struct {
	constructs.Construct
	Function      awslambda.Function
	Role          awsiam.Role
	LogGroup      awslogs.LogGroup
	SecurityGroup awsec2.SecurityGroup
	// Url is the function URL (AuthType AWS_IAM).
	Url awslambda.FunctionUrl
	// ReapSchedule and SchedulerRole are nil with NoReapSchedule.
	ReapSchedule  awsscheduler.CfnSchedule
	SchedulerRole awsiam.Role
	// Permissions are the function's resource policy: per caller its
	// InvokeFunctionUrl and InvokeFunction-through-the-URL statements,
	// per operator its InvokeFunction.
	Permissions []awslambda.CfnPermission

	masters map[string]bool
	keys    map[string]bool
}

// DefaultIssuerFunctionName is the issuer's function name unless
// IssuerProps.FunctionName says otherwise (the rotary CLI's default).
const DefaultIssuerFunctionName = "rotary-credential-issuer"

var (
	issuerRoleNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	functionNameRe   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	// callerArnRe is an exact IAM role or user ARN (with a path) of any
	// account: what a Lambda permission's Principal takes.
	callerArnRe = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/[A-Za-z0-9+=,.@_/-]+$`)
)

// issuerRoleJSON is one role of ROTARY_ISSUER_ROLES, as pkg/issuer reads it.
type issuerRoleJSON struct {
	Engine     string `json:"engine"`
	MasterARN  string `json:"masterarn"`
	BaseUser   string `json:"baseUser"`
	DBName     string `json:"dbname,omitempty"`
	DefaultTTL string `json:"defaultTtl"`
	MaxTTL     string `json:"maxTtl"`
}

// Issuer returns the suite's credential issuer, or nil before NewIssuer.
func (s *Suite) Issuer() *Issuer { return s.issuer }

// NewIssuer deploys the credential issuer (docs/issued-credentials.md):
// a function in the VPC that reads only its roles' master secrets, with a
// function URL whose auth type is AWS_IAM and whose resource policy lets
// exactly AllowedCallers call it, Operators invoke it directly, and a
// schedule reap expired users. It needs dist/credential-issuer.zip and
// SuiteProps.Vpc. A suite has one issuer.
func (s *Suite) NewIssuer(id *string, props *IssuerProps) (*Issuer, error) {
	const where = "rotary suite: NewIssuer"
	if s.issuer != nil {
		return nil, fmt.Errorf("%s: the suite has an issuer already; deploy another suite (stack) for another group of callers", where)
	}
	if props == nil || len(props.Roles) == 0 {
		return nil, fmt.Errorf("%s: field Roles: list at least one role", where)
	}
	if s.props.Vpc == nil {
		return nil, fmt.Errorf("%s: the issuer logs in to databases and needs field Vpc: set SuiteProps.Vpc (and VpcSubnets)", where)
	}
	roles := map[string]issuerRoleJSON{}
	for i, r := range props.Roles {
		at := fmt.Sprintf("%s: field Roles[%d] (%s)", where, i, r.Name)
		if !issuerRoleNameRe.MatchString(r.Name) {
			return nil, fmt.Errorf("%s: field Name: %q must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit", at, r.Name)
		}
		if _, dup := roles[r.Name]; dup {
			return nil, fmt.Errorf("%s: field Name: another role has this name", at)
		}
		if r.Engine != registry.FamilyPostgres && r.Engine != registry.FamilyMySQL {
			return nil, fmt.Errorf("%s: field Engine: %q; use %s or %s (MySQL and MariaDB)", at, r.Engine, registry.FamilyPostgres, registry.FamilyMySQL)
		}
		if r.MasterSecret == nil {
			return nil, fmt.Errorf("%s: field MasterSecret is required: the admin user's secret that creates the users", at)
		}
		if r.BaseUser == "" {
			return nil, fmt.Errorf("%s: field BaseUser is required: the user whose privileges every issued user gets", at)
		}
		if r.Database == nil || r.Database.SecurityGroup == nil || r.Database.Port == nil {
			return nil, fmt.Errorf("%s: field Database (SecurityGroup and Port) is required: the issuer logs in to it", at)
		}
		maxTTL, err := goDuration(r.MaxTTL, IssuerDefaultMaxTTL)
		if err != nil || maxTTL < IssuerMinTTL || maxTTL > IssuerCeilingTTL {
			return nil, fmt.Errorf("%s: field MaxTTL: want whole seconds from %s to %s", at, IssuerMinTTL, IssuerCeilingTTL)
		}
		def, err := goDuration(r.DefaultTTL, min(IssuerDefaultTTL, maxTTL))
		if err != nil || def < IssuerMinTTL || def > maxTTL {
			return nil, fmt.Errorf("%s: field DefaultTTL: want whole seconds from %s to MaxTTL (%s)", at, IssuerMinTTL, maxTTL)
		}
		roles[r.Name] = issuerRoleJSON{Engine: r.Engine, MasterARN: *r.MasterSecret.SecretArn(), BaseUser: r.BaseUser, DBName: r.DBName, DefaultTTL: def.String(), MaxTTL: maxTTL.String()}
	}
	for i, p := range props.AllowedCallers {
		if !callerArnRe.MatchString(p) {
			return nil, fmt.Errorf("%s: field AllowedCallers[%d]: %q is not an IAM role or user ARN (arn:aws:iam::ACCOUNT:role/NAME or user/NAME, with its path; no wildcards: a function's resource policy takes none)", where, i, p)
		}
	}
	for i, p := range props.Operators {
		if !callerArnRe.MatchString(p) {
			return nil, fmt.Errorf("%s: field Operators[%d]: %q is not an IAM role or user ARN (arn:aws:iam::ACCOUNT:role/NAME or user/NAME, with its path; no wildcards)", where, i, p)
		}
	}
	name := DefaultIssuerFunctionName
	if props.FunctionName != nil {
		name = *props.FunctionName
	}
	if !functionNameRe.MatchString(name) {
		return nil, fmt.Errorf("%s: field FunctionName: %q must be 1 to 64 letters, digits, '-' or '_'", where, name)
	}
	reapEvery, err := minutes(props.ReapInterval, int(DefaultIssuerReapInterval/time.Minute))
	if err != nil || reapEvery < 1 || reapEvery > 24*60 {
		return nil, fmt.Errorf("%s: field ReapInterval: want whole minutes from 1 minute to 1 day", where)
	}
	zip, err := s.zipPath(registry.Issuer.Name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}

	is := &Issuer{Construct: constructs.NewConstruct(s.Construct, id), masters: map[string]bool{}, keys: map[string]bool{}}
	is.LogGroup = awslogs.NewLogGroup(is.Construct, jsii.String("LogGroup"), &awslogs.LogGroupProps{
		Retention:     s.props.LogRetention,
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	is.Role = awsiam.NewRole(is.Construct, jsii.String("Role"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("Rotary credential issuer (least privilege, no managed policies; reads its roles' master secrets only)"),
	})
	is.Role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String(SidWriteLogs),
		Actions:   jsii.Strings("logs:CreateLogStream", "logs:PutLogEvents"),
		Resources: &[]*string{is.LogGroup.LogGroupArn()},
	}))
	masters := awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{Sid: jsii.String(SidIssuerReadMasters), Actions: jsii.Strings(IssuerMasterActions...)})
	var keys awsiam.PolicyStatement
	for _, r := range props.Roles {
		arn := r.MasterSecret.SecretArn()
		if !is.masters[*arn] {
			is.masters[*arn] = true
			masters.AddResources(arn)
			s.issuerMasters[*arn] = true
		}
		key := firstKey(r.MasterEncryptionKey, r.MasterSecret.EncryptionKey())
		var keyArn *string
		if key != nil {
			keyArn = key.KeyArn()
		} else if s.ours[*arn] {
			keyArn = s.secretKey.KeyArn()
		}
		if keyArn != nil && !is.keys[*keyArn] {
			is.keys[*keyArn] = true
			if keys == nil {
				keys = awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
					Sid:        jsii.String(SidIssuerUseKeys),
					Actions:    jsii.Strings(IssuerKeyActions...),
					Conditions: s.viaSecretsManager(),
				})
			}
			keys.AddResources(keyArn)
			if s.secretKey != nil && *keyArn == *s.secretKey.KeyArn() {
				s.secretKey.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
					Sid:        jsii.String(SidKeyPolicyFunctions + "CredentialIssuer"),
					Principals: &[]awsiam.IPrincipal{is.Role},
					Actions:    jsii.Strings(IssuerKeyActions...),
					Resources:  jsii.Strings("*"),
					Conditions: s.viaSecretsManager(),
				}), jsii.Bool(false))
			}
		}
	}
	is.Role.AddToPrincipalPolicy(masters)
	if keys != nil {
		is.Role.AddToPrincipalPolicy(keys)
	}

	env := map[string]*string{}
	if s.props.Environment != nil {
		for k, v := range *s.props.Environment {
			env[k] = v
		}
	}
	if props.Environment != nil {
		if _, set := (*props.Environment)[IssuerVarRoles]; set {
			return nil, fmt.Errorf("%s: field Environment: %s is set by the suite from Roles", where, IssuerVarRoles)
		}
		for k, v := range *props.Environment {
			env[k] = v
		}
	}
	// encoding/json sorts the roles by name (the same props give the same
	// template); a created master's ARN stays a token in the string and
	// becomes an Fn::Join.
	rolesJSON, err := json.Marshal(roles)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", where, IssuerVarRoles, err)
	}
	env[IssuerVarRoles] = jsii.String(string(rolesJSON))

	memory := s.props.MemorySize
	if props.MemorySize != nil {
		memory = props.MemorySize
	}
	timeout := s.props.Timeout
	if props.Timeout != nil {
		timeout = props.Timeout
	}
	fp := &awslambda.FunctionProps{
		FunctionName: jsii.String(name),
		Description:  jsii.String("Rotary credential issuer: " + registry.Issuer.Summary),
		Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture: awslambda.Architecture_ARM_64(),
		Handler:      jsii.String("bootstrap"),
		Code:         awslambda.Code_FromAsset(jsii.String(zip), nil),
		MemorySize:   memory,
		Timeout:      timeout,
		Role:         is.Role,
		LogGroup:     is.LogGroup,
	}
	reserved := props.ReservedConcurrency
	if reserved == nil {
		reserved = jsii.Number(DefaultReservedConcurrency)
	}
	if *reserved != Unreserved {
		if *reserved < 1 || *reserved != math.Trunc(*reserved) {
			return nil, fmt.Errorf("%s: field ReservedConcurrency: %v is not a whole number >= 1 (or Unreserved)", where, *reserved)
		}
		fp.ReservedConcurrentExecutions = reserved
	}
	is.SecurityGroup = s.placeInVpc(is.Construct, registry.Issuer.Name, is.Role, env, fp, func(sg awsec2.SecurityGroup, https awsec2.Port) {
		// The issuer calls Secrets Manager only (the master secrets hold
		// their host): with the endpoint it needs no other HTTPS.
		if s.endpoint == nil {
			sg.AddEgressRule(awsec2.Peer_AnyIpv4(), https, jsii.String("Secrets Manager public endpoint over HTTPS (through the VPC's NAT)"), nil)
		}
	})
	fp.Environment = &env
	is.Function = awslambda.NewFunction(is.Construct, jsii.String("Function"), fp)
	cdknag.NagSuppressions_AddResourceSuppressions(is.Role, &[]*cdknag.NagPackSuppression{{
		Id:        jsii.String("AwsSolutions-IAM5"),
		Reason:    jsii.String(ReasonENIWildcard),
		AppliesTo: &[]any{"Resource::*"},
	}}, jsii.Bool(true))
	seen := map[string]bool{}
	for _, r := range props.Roles {
		key := fmt.Sprintf("%s|%v", *r.Database.SecurityGroup.SecurityGroupId(), *r.Database.Port)
		if seen[key] {
			continue
		}
		seen[key] = true
		port := awsec2.Port_Tcp(r.Database.Port)
		is.SecurityGroup.AddEgressRule(r.Database.SecurityGroup, port, jsii.String("database"), nil)
		r.Database.SecurityGroup.AddIngressRule(is.SecurityGroup, port, jsii.String("Rotary credential issuer"), nil)
	}

	// AWS_IAM: every request is SigV4-signed by an IAM principal, which
	// the function reads from requestContext.authorizer.iam, and the
	// resource policy below is the access control. No CORS: callers are
	// programs, not browsers.
	is.Url = is.Function.AddFunctionUrl(&awslambda.FunctionUrlOptions{AuthType: awslambda.FunctionUrlAuthType_AWS_IAM})
	for i, p := range dedupeStrings(props.AllowedCallers) {
		// Since October 2025 a function URL call needs both actions: the
		// URL's, and InvokeFunction, which is granted through the URL only
		// (lambda:InvokedViaFunctionUrl) so that callers cannot send the
		// operator events.
		is.Permissions = append(is.Permissions,
			awslambda.NewCfnPermission(is.Construct, jsii.String(fmt.Sprintf("Caller%dUrl", i+1)), &awslambda.CfnPermissionProps{
				Action:              jsii.String("lambda:InvokeFunctionUrl"),
				FunctionName:        is.Function.FunctionArn(),
				Principal:           jsii.String(p),
				FunctionUrlAuthType: jsii.String("AWS_IAM"),
			}),
			awslambda.NewCfnPermission(is.Construct, jsii.String(fmt.Sprintf("Caller%dInvokeViaUrl", i+1)), &awslambda.CfnPermissionProps{
				Action:                jsii.String("lambda:InvokeFunction"),
				FunctionName:          is.Function.FunctionArn(),
				Principal:             jsii.String(p),
				InvokedViaFunctionUrl: jsii.Bool(true),
			}))
	}
	for i, p := range dedupeStrings(props.Operators) {
		is.Permissions = append(is.Permissions, awslambda.NewCfnPermission(is.Construct, jsii.String(fmt.Sprintf("Operator%dInvoke", i+1)), &awslambda.CfnPermissionProps{
			Action:       jsii.String("lambda:InvokeFunction"),
			FunctionName: is.Function.FunctionArn(),
			Principal:    jsii.String(p),
		}))
	}

	if props.NoReapSchedule == nil || !*props.NoReapSchedule {
		is.SchedulerRole = awsiam.NewRole(is.Construct, jsii.String("SchedulerRole"), &awsiam.RoleProps{
			AssumedBy: awsiam.NewServicePrincipal(jsii.String("scheduler.amazonaws.com"), &awsiam.ServicePrincipalOpts{
				Conditions: &map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": s.stack.Account()}},
			}),
			Description: jsii.String("EventBridge Scheduler asks the Rotary credential issuer to reap expired users (invoke the issuer only)"),
		})
		is.SchedulerRole.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String(SidIssuerSchedule),
			Actions:   jsii.Strings("lambda:InvokeFunction"),
			Resources: &[]*string{is.Function.FunctionArn()},
		}))
		expr := fmt.Sprintf("rate(%d minutes)", reapEvery)
		switch {
		case reapEvery == 1:
			expr = "rate(1 minute)"
		case reapEvery == 60:
			expr = "rate(1 hour)"
		case reapEvery%60 == 0:
			expr = fmt.Sprintf("rate(%d hours)", reapEvery/60)
		}
		is.ReapSchedule = awsscheduler.NewCfnSchedule(is.Construct, jsii.String("ReapSchedule"), &awsscheduler.CfnScheduleProps{
			Description:        jsii.String(fmt.Sprintf("Rotary credential issuer: drop every role's expired users every %d minutes (on MySQL and MariaDB the reaper is the expiry)", reapEvery)),
			ScheduleExpression: jsii.String(expr),
			FlexibleTimeWindow: &awsscheduler.CfnSchedule_FlexibleTimeWindowProperty{Mode: jsii.String("OFF")},
			State:              jsii.String("ENABLED"),
			Target: &awsscheduler.CfnSchedule_TargetProperty{
				Arn:     is.Function.FunctionArn(),
				RoleArn: is.SchedulerRole.RoleArn(),
				Input:   jsii.String(IssuerReapEvent),
				// A reap that cannot be delivered is replaced by the next one.
				RetryPolicy: &awsscheduler.CfnSchedule_RetryPolicyProperty{
					MaximumRetryAttempts:     jsii.Number(0),
					MaximumEventAgeInSeconds: jsii.Number(float64(max(60, min(reapEvery*60, 86400)))),
				},
			},
		})
		is.ReapSchedule.Node().AddDependency(is.SchedulerRole)
	}

	period := awscdk.Duration_Minutes(jsii.Number(5))
	s.alarm(is.Construct, "ErrorsAlarm", "Rotary credential issuer: the function failed (Lambda Errors >= 1 in 5 minutes: a crash, a timeout, or an operator event or reap that failed); its log group says why",
		is.Function.MetricErrors(&awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("Sum")}))
	s.alarm(is.Construct, "ThrottlesAlarm", "Rotary credential issuer: requests were throttled (Lambda Throttles >= 1 in 5 minutes): callers got HTTP 429; raise its reserved concurrency if this is normal load",
		is.Function.MetricThrottles(&awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("Sum")}))
	s.issuer = is
	return is, nil
}

func dedupeStrings(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
