package rotary

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	scheduleinterval "github.com/rotary-secrets/rotary/infra/internal/schedule"
)

// NewSecretProps describes a secret the suite creates.
type NewSecretProps struct {
	// SecretName of the new secret. Required (alerts match it by name too).
	SecretName *string
	// Description of the secret.
	Description *string
	// Template holds the non-secret fields of the secret JSON (engine, host,
	// port, username, dbname, masterarn, ...). Values may be tokens.
	Template map[string]any
	// GenerateKey is the field that receives a generated password. Default: "password".
	GenerateKey *string
}

// NewSecret creates a secret encrypted with the suite's customer-managed key,
// with a generated password in the template's "password" field.
func (s *Suite) NewSecret(id *string, props *NewSecretProps) (awssecretsmanager.Secret, error) {
	if props == nil || props.SecretName == nil || *props.SecretName == "" {
		return nil, errors.New("rotary suite: NewSecret: field SecretName is required")
	}
	key := "password"
	if props.GenerateKey != nil {
		key = *props.GenerateKey
	}
	template := map[string]any{}
	for k, v := range props.Template {
		template[k] = v
	}
	secret := awssecretsmanager.NewSecret(s.Construct, id, &awssecretsmanager.SecretProps{
		SecretName:    props.SecretName,
		Description:   props.Description,
		EncryptionKey: s.EncryptionKey(),
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			SecretStringTemplate: s.stack.ToJsonString(template, nil),
			GenerateStringKey:    jsii.String(key),
			PasswordLength:       jsii.Number(32),
			// Characters that break connection strings and shell quoting.
			ExcludeCharacters: jsii.String(`"'@/\:;?#&%+ `),
		},
	})
	s.ours[*secret.SecretArn()] = true
	return secret, nil
}

// DatabaseTarget is where a database function connects.
type DatabaseTarget struct {
	// SecurityGroup of the database; it gets an ingress rule from the
	// function on Port. Import it with awsec2.SecurityGroup_FromSecurityGroupId
	// (Mutable: true).
	SecurityGroup awsec2.ISecurityGroup
	// Port the database listens on (5432, 3306, ...).
	Port *float64
}

// RotateSecretProps attaches rotation to one secret.
type RotateSecretProps struct {
	// Secret to rotate: one from NewSecret, or an existing one imported with
	// awssecretsmanager.Secret_FromSecretCompleteArn. Required.
	Secret awssecretsmanager.ISecret
	// SecretName lets the denied-call alert also match calls that name the
	// secret instead of its ARN. Optional.
	SecretName *string
	// EncryptionKey that encrypts Secret when it is not the aws/secretsmanager
	// key. Default: Secret.EncryptionKey().
	EncryptionKey awskms.IKey
	// Type of the rotation function. Required.
	Type FunctionType
	// Schedule is a rate(N hours|days) or cron(...) expression. Required.
	Schedule *string
	// Window is the rotation window (whole hours, 1 to 24). Default: 2 hours.
	Window awscdk.Duration
	// RotateImmediatelyOnUpdate rotates when the schedule is created or
	// changed. Default: false (wait for the schedule).
	RotateImmediatelyOnUpdate *bool
	// MasterSecret is read (never written) by multi-user types (required
	// for them) and by redis-acl when the secret names an admin user's
	// secret in masterarn (optional; the secret must hold that ARN).
	MasterSecret awssecretsmanager.ISecret
	// MasterEncryptionKey encrypts MasterSecret (default: MasterSecret.EncryptionKey()).
	MasterEncryptionKey awskms.IKey
	// Database the function connects to. Required for database types.
	// For rds-master it turns on the login mode: the function runs in the
	// VPC, reaches the database and logs in with the new password
	// (ROTARY_RDS_MASTER_LOGIN=true); all rds-master rotations of a suite
	// have a Database, or none.
	Database *DatabaseTarget
	// RDSDatabaseArn is the ARN of the RDS instance (arn:...:db:<id>) or
	// cluster (arn:...:cluster:<id>) whose master password the secret
	// holds, for types that set it through the RDS API (rds-master): the
	// function may describe and modify that database only, and is told
	// (EnvRDSBindings) that this secret is bound to it, so that it
	// refuses the secret if it names another database of the function.
	// Required for them, refused for others.
	RDSDatabaseArn *string
	// ElastiCacheUserArn is the ARN of the ElastiCache user
	// (arn:...:elasticache:<region>:<account>:user:<id>) whose passwords
	// the secret holds, and ReplicationGroupArn the ARN of its replication
	// group (arn:...:replicationgroup:<id>), for types that change the user
	// through the ElastiCache API (elasticache-user): the function may
	// describe and modify that user and describe that group only, and is
	// told (EnvElastiCacheBindings) that this secret is bound to that
	// user. Both required for them, refused for others.
	ElastiCacheUserArn  *string
	ReplicationGroupArn *string
	// Repair overrides WatchProps.Repair for this secret: whether the
	// watch may heal its stuck rotations. Default: the watch's setting.
	Repair *bool
	// Access attaches a resource policy to the secret that denies reads
	// to everyone but its readers, admins and the suite, and version
	// writes to everyone but its rotation function and admins, and alerts
	// on reads by anyone else. Default: no policy (the alerts on rotation
	// failures, denied calls and manual overrides are there anyway).
	Access *SecretAccess
}

// Rotation is the rotation of one secret.
type Rotation struct {
	constructs.Construct
	Function   *Function
	Schedule   awssecretsmanager.CfnRotationSchedule
	Permission awslambda.CfnPermission
}

// RotateSecret creates (or reuses) the function for props.Type, grants it
// exactly this secret, lets Secrets Manager invoke it for this secret only,
// schedules the rotation and routes the secret's rotation failures and
// denied API calls to the alarm topic.
func (s *Suite) RotateSecret(id *string, props *RotateSecretProps) (*Rotation, error) {
	where := "rotary suite: RotateSecret " + *id
	if props == nil || props.Secret == nil {
		return nil, fmt.Errorf("%s: field Secret is required", where)
	}
	if s.watch != nil {
		return nil, fmt.Errorf("%s: the suite's watch was created already and checks only the secrets rotated before it: call RotateSecret for every secret before NewWatch", where)
	}
	if first, ok := s.rotated[*props.Secret.SecretArn()]; ok {
		return nil, fmt.Errorf("%s: field Secret: the secret is already rotated by RotateSecret %s; a secret has one rotation schedule, so rotate it once", where, first)
	}
	if !props.Type.Valid() {
		return nil, fmt.Errorf("%s: field Type: %q is unknown: use one of %v", where, props.Type, FunctionTypes())
	}
	if props.Schedule == nil || !(strings.HasPrefix(*props.Schedule, "rate(") || strings.HasPrefix(*props.Schedule, "cron(")) {
		return nil, fmt.Errorf("%s: field Schedule: want a rate(...) or cron(...) expression", where)
	}
	if props.Type.NeedsMaster() && props.MasterSecret == nil {
		return nil, fmt.Errorf("%s: field MasterSecret is required for type %s", where, props.Type)
	}
	if !props.Type.NeedsMaster() && !props.Type.MayHaveMaster() && props.MasterSecret != nil {
		return nil, fmt.Errorf("%s: field MasterSecret: type %s reads no master secret; remove it", where, props.Type)
	}
	if props.Type.NeedsRDSMasterPassword() != (props.RDSDatabaseArn != nil) {
		if props.RDSDatabaseArn == nil {
			return nil, fmt.Errorf("%s: field RDSDatabaseArn is required for type %s: the ARN of the DB instance or cluster whose master password the secret holds", where, props.Type)
		}
		return nil, fmt.Errorf("%s: field RDSDatabaseArn: type %s sets no master password through the RDS API; remove it", where, props.Type)
	}
	if props.RDSDatabaseArn != nil && RDSResourceKind(*props.RDSDatabaseArn) == "" {
		return nil, fmt.Errorf("%s: field RDSDatabaseArn: %q is not the ARN of an RDS DB instance (arn:aws:rds:<region>:<account>:db:<id>) or cluster (...:cluster:<id>)", where, *props.RDSDatabaseArn)
	}
	if props.Type.NeedsElastiCacheUser() {
		if props.ElastiCacheUserArn == nil {
			return nil, fmt.Errorf("%s: field ElastiCacheUserArn is required for type %s: the ARN of the ElastiCache user whose passwords the secret holds", where, props.Type)
		}
		if !ElastiCacheUserArnOK(*props.ElastiCacheUserArn) {
			return nil, fmt.Errorf("%s: field ElastiCacheUserArn: %q is not the ARN of an ElastiCache user (arn:aws:elasticache:<region>:<account>:user:<id>)", where, *props.ElastiCacheUserArn)
		}
		if props.ReplicationGroupArn == nil {
			return nil, fmt.Errorf("%s: field ReplicationGroupArn is required for type %s: the ARN of the replication group the secret's host belongs to", where, props.Type)
		}
		if !ReplicationGroupArnOK(*props.ReplicationGroupArn) {
			return nil, fmt.Errorf("%s: field ReplicationGroupArn: %q is not the ARN of an ElastiCache replication group (arn:aws:elasticache:<region>:<account>:replicationgroup:<id>)", where, *props.ReplicationGroupArn)
		}
	} else if props.ElastiCacheUserArn != nil || props.ReplicationGroupArn != nil {
		return nil, fmt.Errorf("%s: field ElastiCacheUserArn/ReplicationGroupArn: type %s changes no ElastiCache user through the ElastiCache API; remove them", where, props.Type)
	}
	if props.Type.NeedsDatabase() && (props.Database == nil || props.Database.SecurityGroup == nil || props.Database.Port == nil) {
		return nil, fmt.Errorf("%s: field Database (SecurityGroup and Port) is required for type %s", where, props.Type)
	}
	window := props.Window
	if window == nil {
		window = awscdk.Duration_Hours(jsii.Number(2))
	}
	// Not ToHours with Integral: it panics (through jsii) on 90 minutes.
	minutes := *window.ToMinutes(&awscdk.TimeConversionOptions{Integral: jsii.Bool(false)})
	hours := jsii.Number(minutes / 60)
	if minutes != math.Trunc(minutes/60)*60 || *hours < 1 || *hours > 24 {
		return nil, fmt.Errorf("%s: field Window: %v minutes is not a whole number of hours between 1 and 24; use awscdk.Duration_Hours", where, minutes)
	}

	login := props.Type.NeedsRDSMasterPassword() && props.Database != nil
	if login && (props.Database.SecurityGroup == nil || props.Database.Port == nil) {
		return nil, fmt.Errorf("%s: field Database needs SecurityGroup and Port", where)
	}
	fn, err := s.functionFor(props.Type, login)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if fn.Type.ExpiringUsers() {
		if err := CheckCredentialTTL(fn.credentialTTL, *props.Schedule, time.Duration(*hours)*time.Hour); err != nil {
			return nil, fmt.Errorf("%s: field Schedule: %w", where, err)
		}
	}
	r := &Rotation{Construct: constructs.NewConstruct(s.Construct, id), Function: fn}
	if props.Access != nil {
		if err := s.attachPolicy(r.Construct, where, props.Secret.SecretArn(), fn, props.Access); err != nil {
			return nil, err
		}
	}
	arn := props.Secret.SecretArn()
	s.rotated[*arn] = *id
	s.watched = append(s.watched, watchedSecret{id: *id, arn: arn, name: props.SecretName, fn: fn, repair: props.Repair})
	fn.allowRotate(arn)
	if key := firstKey(props.EncryptionKey, props.Secret.EncryptionKey()); key != nil {
		fn.allowKey(key.KeyArn())
	} else if s.ours[*arn] {
		fn.allowKey(s.secretKey.KeyArn())
	}
	if props.MasterSecret != nil {
		fn.allowReadMaster(props.MasterSecret.SecretArn())
		s.addMasterReader(*props.MasterSecret.SecretArn(), fn)
		if key := firstKey(props.MasterEncryptionKey, props.MasterSecret.EncryptionKey()); key != nil {
			fn.allowKey(key.KeyArn())
		} else if s.ours[*props.MasterSecret.SecretArn()] {
			fn.allowKey(s.secretKey.KeyArn())
		}
	}
	if props.Database != nil && fn.inVpc {
		s.allowDatabase(fn, props.Database)
	}
	// The role may modify the resources of all the function's secrets:
	// bind each secret to its own, which the function checks before any
	// change.
	if props.RDSDatabaseArn != nil {
		fn.allowRDSMasterPassword(*props.RDSDatabaseArn)
		fn.bind(EnvRDSBindings, arn, *props.RDSDatabaseArn)
	}
	if props.ElastiCacheUserArn != nil {
		fn.allowElastiCacheUser(*props.ElastiCacheUserArn, *props.ReplicationGroupArn)
		fn.bind(EnvElastiCacheBindings, arn, *props.ElastiCacheUserArn)
	}

	r.Permission = awslambda.NewCfnPermission(r.Construct, jsii.String("InvokePermission"), &awslambda.CfnPermissionProps{
		Action:        jsii.String("lambda:InvokeFunction"),
		FunctionName:  fn.Function.FunctionArn(),
		Principal:     jsii.String("secretsmanager.amazonaws.com"),
		SourceAccount: s.stack.Account(),
		SourceArn:     arn,
	})
	r.Schedule = awssecretsmanager.NewCfnRotationSchedule(r.Construct, jsii.String("Schedule"), &awssecretsmanager.CfnRotationScheduleProps{
		SecretId:          arn,
		RotationLambdaArn: fn.Function.FunctionArn(),
		// Set at the CloudFormation level: the L2 RotationSchedule only knows rate().
		RotationRules: &awssecretsmanager.CfnRotationSchedule_RotationRulesProperty{
			ScheduleExpression: props.Schedule,
			Duration:           jsii.String(fmt.Sprintf("%dh", int(*hours))),
		},
		RotateImmediatelyOnUpdate: jsii.Bool(props.RotateImmediatelyOnUpdate != nil && *props.RotateImmediatelyOnUpdate),
	})
	// Secrets Manager checks the invoke permission, and a first rotation
	// needs the role's policy, when the schedule is created.
	r.Schedule.Node().AddDependency(r.Permission, fn.Role, fn.Function)

	if err := s.alertOn(props, fn); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return r, nil
}

// CheckCredentialTTL refuses a credential lifetime that a rotation on
// schedule (with its window) would not outlive: AWSCURRENT, made as early
// as the opening of one window, must still log in at the end of the next
// window, so the TTL must be longer than the schedule's longest interval
// plus the window. The error says both and the shortest TTL to use.
func CheckCredentialTTL(ttl time.Duration, schedule string, window time.Duration) error {
	gap, err := scheduleinterval.MaxInterval(schedule)
	if err != nil {
		return err
	}
	if need := gap + window; ttl <= need {
		return fmt.Errorf("%w: the credential lifetime %s is not longer than the schedule's longest interval (%s, %s) plus its window (%s) = %s, so AWSCURRENT would expire before the next rotation replaced it; set the TTL above %s (2 x interval + window, %s, leaves room for a failed rotation to be retried)",
			ErrCredentialTTL, ttl, gap, schedule, window, need, need, 2*gap+window)
	}
	return nil
}

// ErrCredentialTTL is wrapped when a credential lifetime is too short for
// a secret's schedule.
var ErrCredentialTTL = errors.New("credential TTL too short for the schedule")

// addMasterReader records that fn reads the master secret arn, which its
// policy (made before or after) then spares.
func (s *Suite) addMasterReader(arn string, fn *Function) {
	for _, f := range s.masterReaders[arn] {
		if f == fn {
			return
		}
	}
	s.masterReaders[arn] = append(s.masterReaders[arn], fn)
}

func firstKey(keys ...awskms.IKey) awskms.IKey {
	for _, k := range keys {
		if k != nil {
			return k
		}
	}
	return nil
}

// allowDatabase opens the function's security group to the database port
// and the database's security group to the function, once per pair.
func (s *Suite) allowDatabase(fn *Function, db *DatabaseTarget) {
	key := fmt.Sprintf("%s|%s|%v", fn.Type, *db.SecurityGroup.SecurityGroupId(), *db.Port)
	if s.dbRules[key] {
		return
	}
	s.dbRules[key] = true
	port := awsec2.Port_Tcp(db.Port)
	fn.SecurityGroup.AddEgressRule(db.SecurityGroup, port, jsii.String("database"), nil)
	db.SecurityGroup.AddIngressRule(fn.SecurityGroup, port, jsii.String(fmt.Sprintf("Rotary %s rotation function", fn.Type)), nil)
}
