// Package app builds the Rotary CloudFormation stack from a config file, on
// top of the reusable rotary construct, and checks it with cdk-nag.
package app

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/rotary-secrets/rotary/infra/config"
	"github.com/rotary-secrets/rotary/infra/rotary"
)

// Stack is the synthesized Rotary stack and the suite inside it.
type Stack struct {
	awscdk.Stack
	Suite *rotary.Suite
}

// NewStack creates the stack cfg describes in scope (usually an awscdk.App),
// with cdk-nag's AwsSolutions checks applied and every suppression explained.
func NewStack(scope constructs.Construct, cfg *config.Config) (*Stack, error) {
	stack := awscdk.NewStack(scope, jsii.String(cfg.StackName), &awscdk.StackProps{
		Env:         &awscdk.Environment{Account: jsii.String(cfg.Account), Region: jsii.String(cfg.Region)},
		Description: jsii.String("Rotary: Secrets Manager rotation functions, schedules, least-privilege roles and alarms"),
	})
	for _, k := range sortedKeys(cfg.Tags) {
		awscdk.Tags_Of(stack).Add(jsii.String(k), jsii.String(cfg.Tags[k]), nil)
	}

	props := &rotary.SuiteProps{
		DistDir:                jsii.String(cfg.DistPath()),
		MemorySize:             jsii.Number(float64(cfg.Function.MemoryMB)),
		Timeout:                duration(cfg.Function.Timeout),
		LogRetention:           retention(cfg.LogRetentionDays),
		Environment:            strMap(cfg.Function.Environment),
		SecretsManagerEndpoint: jsii.Bool(cfg.SecretsManagerEndpoint.Enabled),
		EndpointPrivateDns:     cfg.SecretsManagerEndpoint.PrivateDNS,
		StaleRotationCheck:     jsii.Bool(cfg.Alarms.StaleRotationCheck),
	}
	if cfg.DeployRoleArn != "" {
		props.DeployRoleArn = jsii.String(cfg.DeployRoleArn)
	}
	if len(cfg.Alarms.Emails) > 0 {
		props.AlarmEmails = jsii.Strings(cfg.Alarms.Emails...)
	}
	fo := map[rotary.FunctionType]*rotary.FunctionOptions{}
	for _, t := range cfg.TypesInUse() {
		o := &rotary.FunctionOptions{ReservedConcurrency: jsii.Number(rotary.Unreserved)}
		if _, ok := cfg.Functions[t]; ok {
			f := cfg.FunctionFor(t)
			o.MemorySize = jsii.Number(float64(f.MemoryMB))
			o.Timeout = duration(f.Timeout)
			o.Environment = strMap(f.Environment)
		}
		if c := cfg.ReservedConcurrencyFor(t); c != config.Unreserved {
			o.ReservedConcurrency = jsii.Number(float64(c))
		}
		f := cfg.FunctionFor(t)
		if config.IsExpiringType(t) {
			o.CredentialTTL = duration(f.CredentialTTL)
		}
		if env := fieldEnvironment(t, f); len(env) > 0 {
			for k, v := range f.Environment {
				env[k] = v
			}
			o.Environment = strMap(env)
		}
		fo[rotary.FunctionType(t)] = o
	}
	props.Functions = &fo
	if cfg.Vpc != nil {
		var azs []string
		var subnets []awsec2.ISubnet
		seenAZ := map[string]bool{}
		for i, sn := range cfg.Vpc.Subnets {
			attrs := &awsec2.SubnetAttributes{SubnetId: jsii.String(sn.ID), AvailabilityZone: jsii.String(sn.AvailabilityZone)}
			if sn.RouteTableID != "" {
				attrs.RouteTableId = jsii.String(sn.RouteTableID)
			}
			subnet := awsec2.Subnet_FromSubnetAttributes(stack, jsii.String(fmt.Sprintf("Subnet%d", i)), attrs)
			if sn.RouteTableID == "" {
				// The app never reads route tables (no gateway endpoints).
				awscdk.Annotations_Of(subnet).AcknowledgeWarning(jsii.String("@aws-cdk/aws-ec2:noSubnetRouteTableId"), jsii.String("rotary reads no route tables"))
			}
			subnets = append(subnets, subnet)
			if !seenAZ[sn.AvailabilityZone] {
				seenAZ[sn.AvailabilityZone] = true
				azs = append(azs, sn.AvailabilityZone)
			}
		}
		props.Vpc = awsec2.Vpc_FromVpcAttributes(stack, jsii.String("Vpc"), &awsec2.VpcAttributes{
			VpcId:             jsii.String(cfg.Vpc.ID),
			AvailabilityZones: jsii.Strings(azs...),
		})
		props.VpcSubnets = &awsec2.SubnetSelection{Subnets: &subnets}
		var groups []awsec2.ISecurityGroup
		for i, id := range cfg.Vpc.SecurityGroupIDs {
			groups = append(groups, awsec2.SecurityGroup_FromSecurityGroupId(stack, jsii.String(fmt.Sprintf("FunctionSecurityGroup%d", i)), jsii.String(id), &awsec2.SecurityGroupImportOptions{Mutable: jsii.Bool(false)}))
		}
		if len(groups) > 0 {
			props.SecurityGroups = &groups
		}
	}

	suite, err := rotary.NewSuite(stack, jsii.String("Rotary"), props)
	if err != nil {
		return nil, err
	}

	dbs := map[string]*rotary.DatabaseTarget{}
	for _, d := range cfg.Databases {
		dbs[d.Name] = &rotary.DatabaseTarget{
			SecurityGroup: awsec2.SecurityGroup_FromSecurityGroupId(stack, jsii.String("Database-"+d.Name), jsii.String(d.SecurityGroupID),
				&awsec2.SecurityGroupImportOptions{Mutable: jsii.Bool(true), AllowAllOutbound: jsii.Bool(false)}),
			Port: jsii.Number(float64(d.Port)),
		}
	}

	// Resolve every secret first (created ones may be master secrets of others).
	secrets := map[string]awssecretsmanager.ISecret{}
	keys := map[string]awskms.IKey{}
	for _, s := range cfg.Secrets {
		if s.ARN == "" {
			continue
		}
		secrets[s.Name] = awssecretsmanager.Secret_FromSecretCompleteArn(stack, jsii.String("Secret-"+s.Name), jsii.String(s.ARN))
		if s.KmsKeyARN != "" {
			keys[s.Name] = awskms.Key_FromKeyArn(stack, jsii.String("Key-"+s.Name), jsii.String(s.KmsKeyARN))
		}
	}
	for _, s := range cfg.Secrets {
		if s.Create == nil {
			continue
		}
		template := map[string]any{}
		for k, v := range s.Create.Template {
			template[k] = v
		}
		if config.IsMultiUserType(s.Type) {
			if s.MasterSecretARN != "" {
				template["masterarn"] = s.MasterSecretARN
			} else if m, ok := secrets[s.MasterSecret]; ok {
				template["masterarn"] = m.SecretArn()
			} else {
				return nil, fmt.Errorf("secrets entry %s: field masterSecret: %q must be listed before the secrets created with it as master", s.Name, s.MasterSecret)
			}
		}
		desc := s.Create.Description
		if desc == "" {
			desc = fmt.Sprintf("Created by Rotary; rotated by the %s function", s.Type)
		}
		sec, err := suite.NewSecret(jsii.String("Secret-"+s.Name), &rotary.NewSecretProps{
			SecretName:  jsii.String(s.Name),
			Description: jsii.String(desc),
			Template:    template,
		})
		if err != nil {
			return nil, fmt.Errorf("secrets entry %s: %w", s.Name, err)
		}
		secrets[s.Name] = sec
	}

	staggered, err := cfg.StaggeredSchedules()
	if err != nil {
		return nil, err
	}
	for _, s := range cfg.Secrets {
		hours, _ := config.WindowHours(s.Window) // validated
		schedule := s.Schedule
		if moved, ok := staggered[s.Name]; ok {
			schedule = moved
		}
		rp := &rotary.RotateSecretProps{
			Secret:                    secrets[s.Name],
			SecretName:                jsii.String(secretName(s)),
			EncryptionKey:             keys[s.Name],
			Type:                      rotary.FunctionType(s.Type),
			Schedule:                  jsii.String(schedule),
			Window:                    awscdk.Duration_Hours(jsii.Number(float64(hours))),
			RotateImmediatelyOnUpdate: s.RotateImmediately,
			Repair:                    s.Repair,
		}
		if s.MasterSecret != "" {
			rp.MasterSecret = secrets[s.MasterSecret]
			rp.MasterEncryptionKey = keys[s.MasterSecret]
		} else if s.MasterSecretARN != "" {
			rp.MasterSecret = awssecretsmanager.Secret_FromSecretCompleteArn(stack, jsii.String("Master-"+s.Name), jsii.String(s.MasterSecretARN))
			if s.MasterKmsKeyARN != "" {
				rp.MasterEncryptionKey = awskms.Key_FromKeyArn(stack, jsii.String("MasterKey-"+s.Name), jsii.String(s.MasterKmsKeyARN))
			}
		}
		if s.Database != "" {
			rp.Database = dbs[s.Database]
		}
		if s.Readers != nil {
			rp.Access = &rotary.SecretAccess{Readers: *s.Readers, Admins: s.Admins, RequireVpcEndpoint: s.RequireVpcEndpoint}
		}
		if s.RDSDatabaseARN != "" {
			rp.RDSDatabaseArn = jsii.String(s.RDSDatabaseARN)
		}
		if s.ElastiCacheUserARN != "" {
			rp.ElastiCacheUserArn = jsii.String(s.ElastiCacheUserARN)
		}
		if s.ReplicationGroupARN != "" {
			rp.ReplicationGroupArn = jsii.String(s.ReplicationGroupARN)
		}
		if _, err := suite.RotateSecret(jsii.String("Rotation-"+s.Name), rp); err != nil {
			return nil, fmt.Errorf("secrets entry %s: %w", s.Name, err)
		}
	}

	if cfg.Issuer != nil {
		is, err := newIssuer(stack, suite, cfg, secrets, keys, dbs)
		if err != nil {
			return nil, fmt.Errorf("issuer: %w", err)
		}
		awscdk.NewCfnOutput(stack, jsii.String("IssuerFunctionName"), &awscdk.CfnOutputProps{
			Value:       is.Function.FunctionName(),
			Description: jsii.String("Name of the credential issuer (rotary issue/leases/revoke --leases --issuer NAME)"),
		})
		awscdk.NewCfnOutput(stack, jsii.String("IssuerFunctionUrl"), &awscdk.CfnOutputProps{
			Value:       is.Url.Url(),
			Description: jsii.String("Function URL of the credential issuer (AWS_IAM auth): rotary issue ROLE --url URL, or ROTARY_ISSUER_URL"),
		})
	}

	if cfg.WatchEnabled() {
		w, err := suite.NewWatch(jsii.String("Watch"), &rotary.WatchProps{
			Interval:        duration(cfg.Watch.Interval),
			Repair:          jsii.Bool(cfg.Watch.Repair),
			RepairAfter:     duration(cfg.Watch.RepairAfter),
			OverdueAfter:    duration(cfg.Watch.OverdueAfter),
			PerSecretAlarms: jsii.Bool(cfg.Watch.PerSecretAlarms),
		})
		if err != nil {
			return nil, fmt.Errorf("watch: %w", err)
		}
		awscdk.NewCfnOutput(stack, jsii.String("WatchFunctionName"), &awscdk.CfnOutputProps{
			Value:       w.Function.FunctionName(),
			Description: jsii.String("Name of the watch function, which checks the secrets every watch.interval"),
		})
	}

	awscdk.NewCfnOutput(stack, jsii.String("AlarmTopicArn"), &awscdk.CfnOutputProps{
		Value:       suite.Topic().TopicArn(),
		Description: jsii.String("SNS topic that receives Rotary alarms, rotation failures and denied calls"),
	})
	for _, f := range suite.Functions() {
		awscdk.NewCfnOutput(stack, jsii.String(f.OutputID()), &awscdk.CfnOutputProps{
			Value:       f.Function.FunctionName(),
			Description: jsii.String(fmt.Sprintf("Name of the %s rotation function", f.Type)),
		})
	}

	awscdk.Aspects_Of(stack).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	return &Stack{Stack: stack, Suite: suite}, nil
}

// secretName is the name alerts match besides the ARN: the entry name of a
// created secret, the name inside the ARN of an existing one
// (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX).
func secretName(s config.SecretConfig) string {
	if s.Create != nil {
		return s.Name
	}
	const marker = ":secret:"
	i := strings.Index(s.ARN, marker)
	if i < 0 || len(s.ARN) < i+len(marker)+7 {
		return ""
	}
	return s.ARN[i+len(marker) : len(s.ARN)-7]
}

// fieldEnvironment is the environment the app sets from fn's own fields
// (reapKeepSessions, mysqlMarkerDatabase), for the functions that read them.
func fieldEnvironment(fn string, f config.FunctionConfig) map[string]string {
	env := map[string]string{}
	if f.ReapKeepSessions != nil && config.ReapsUsers(fn) {
		env[config.EnvReapKeepSessions] = fmt.Sprint(*f.ReapKeepSessions)
	}
	if f.MySQLMarkerDatabase != "" && config.UsesMySQLMarker(fn) {
		env[config.EnvMySQLMarkerDB] = f.MySQLMarkerDatabase
	}
	return env
}

// newIssuer deploys the config's issuer section.
func newIssuer(stack awscdk.Stack, suite *rotary.Suite, cfg *config.Config, secrets map[string]awssecretsmanager.ISecret, keys map[string]awskms.IKey, dbs map[string]*rotary.DatabaseTarget) (*rotary.Issuer, error) {
	ic := cfg.Issuer
	f := cfg.FunctionFor(config.IssuerFunction)
	env := fieldEnvironment(config.IssuerFunction, f)
	for k, v := range f.Environment {
		env[k] = v
	}
	props := &rotary.IssuerProps{
		FunctionName: jsii.String(ic.FunctionName),
		MemorySize:   jsii.Number(float64(f.MemoryMB)),
		Timeout:      duration(f.Timeout),
		Environment:  strMap(env),
		Operators:    ic.Operators,
	}
	if ic.AllowedCallers != nil {
		props.AllowedCallers = *ic.AllowedCallers
	}
	if c := cfg.ReservedConcurrencyFor(config.IssuerFunction); c != config.Unreserved {
		props.ReservedConcurrency = jsii.Number(float64(c))
	} else {
		props.ReservedConcurrency = jsii.Number(rotary.Unreserved)
	}
	if ic.ReapInterval == config.IssuerReapOff {
		props.NoReapSchedule = jsii.Bool(true)
	} else {
		props.ReapInterval = duration(ic.ReapInterval)
	}
	for i, r := range ic.Roles {
		def, maxTTL, _ := r.TTLs() // validated
		role := rotary.IssuerRole{
			Name: r.Name, Engine: r.Engine, BaseUser: r.BaseUser, DBName: r.DBName, Database: dbs[r.Database],
			DefaultTTL: awscdk.Duration_Seconds(jsii.Number(def.Seconds())),
			MaxTTL:     awscdk.Duration_Seconds(jsii.Number(maxTTL.Seconds())),
		}
		if r.MasterSecret != "" {
			role.MasterSecret = secrets[r.MasterSecret]
			role.MasterEncryptionKey = keys[r.MasterSecret]
		} else {
			role.MasterSecret = awssecretsmanager.Secret_FromSecretCompleteArn(stack, jsii.String(fmt.Sprintf("IssuerMaster%d-%s", i, r.Name)), jsii.String(r.MasterSecretARN))
			if r.MasterKmsKeyARN != "" {
				role.MasterEncryptionKey = awskms.Key_FromKeyArn(stack, jsii.String(fmt.Sprintf("IssuerMasterKey%d-%s", i, r.Name)), jsii.String(r.MasterKmsKeyARN))
			}
		}
		props.Roles = append(props.Roles, role)
	}
	return suite.NewIssuer(jsii.String("Issuer"), props)
}
