package rotary

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/rotary-secrets/rotary/pkg/registry"
)

// The watch function's contract with the suite (docs/watch.md): the
// environment the suite sets, the metrics it alarms on, and the most
// secrets one schedule's input lists.
const (
	WatchVarRepair       = "ROTARY_WATCH_REPAIR"
	WatchVarRepairAfter  = "ROTARY_WATCH_REPAIR_AFTER"
	WatchVarOverdueAfter = "ROTARY_WATCH_OVERDUE_AFTER"
	WatchVarTopicArn     = "ROTARY_WATCH_TOPIC_ARN"
	WatchVarConcurrency  = "ROTARY_WATCH_CONCURRENCY"
	WatchVarInterval     = "ROTARY_WATCH_INTERVAL"

	MetricOverdue           = "Overdue"
	MetricStuck             = "Stuck"
	MetricCurrentLogsIn     = "CurrentLogsIn"
	MetricPreviousRefused   = "PreviousRefused"
	MetricSecretsChecked    = "SecretsChecked"
	MetricSecretsUnverified = "SecretsUnverified"

	// WatchSecretsPerSchedule is the most secrets one schedule sends the
	// watch; a larger fleet gets several schedules.
	WatchSecretsPerSchedule = 100
	// WatchScheduledTime is EventBridge Scheduler's placeholder for the
	// time of the run, which the input's "time" carries.
	WatchScheduledTime = "<aws.scheduler.scheduled-time>"
)

// Statement IDs of the watch's and its scheduler's roles.
const (
	SidWatchDescribeSecrets = "DescribeSuiteSecrets"
	SidWatchInvokeFunctions = "InvokeRotationFunctions"
	SidWatchPublish         = "PublishToAlarmTopic"
	SidWatchTopicKey        = "UseAlarmTopicKeyViaSns"
	SidSchedulerInvoke      = "InvokeWatch"
)

// WatchSecretActions are what the watch may do on the suite's secrets:
// metadata, version ids and labels; never a value.
var WatchSecretActions = []string{"secretsmanager:DescribeSecret", "secretsmanager:ListSecretVersionIds"}

// WatchTopicKeyActions are what publishing to a KMS-encrypted topic needs.
var WatchTopicKeyActions = []string{"kms:GenerateDataKey", "kms:Decrypt"}

// WatchProps configures the watch.
type WatchProps struct {
	// Interval between runs, whole minutes from 5 minutes to 12 hours.
	// Default: 15 minutes.
	Interval awscdk.Duration
	// Repair lets the watch heal stuck rotations (RotateSecretProps.Repair
	// overrides it per secret). Default: false.
	Repair *bool
	// RepairAfter is the age of a stuck rotation before the watch repairs
	// it, at least 5 minutes. Default: 1 hour.
	RepairAfter awscdk.Duration
	// OverdueAfter is how long past its window a rotation counts as
	// overdue. Default: 1 hour.
	OverdueAfter awscdk.Duration
	// Concurrency is how many secrets one run checks at once (1-64).
	// Default: the function's, 8.
	Concurrency *float64
	// PerSecretAlarms alarms per secret (dimensions SecretName and
	// FunctionName) instead of per rotation function. Every RotateSecret
	// needs SecretName then. Default: false.
	PerSecretAlarms *bool
	// MemorySize in MiB. Default: 256.
	MemorySize *float64
	// Timeout of one run. Default: 5 minutes.
	Timeout awscdk.Duration
}

// Watch is the function that checks the suite's secrets on a schedule
// (docs/watch.md), with its role, log group, schedules and alarms.
type Watch struct {
	constructs.Construct
	Function      awslambda.Function
	Role          awsiam.Role
	LogGroup      awslogs.LogGroup
	SchedulerRole awsiam.Role
	// Schedules send the secrets, at most WatchSecretsPerSchedule each.
	Schedules []awsscheduler.CfnSchedule
	Alarms    []awscloudwatch.Alarm
}

// watchedSecret is one rotated secret, as the watch sees it.
type watchedSecret struct {
	id     string
	arn    *string
	name   *string
	fn     *Function
	repair *bool
}

// watchInput is the event a schedule sends; field order is the template's.
type watchInput struct {
	Time    string             `json:"time"`
	Secrets []watchInputSecret `json:"secrets"`
}

type watchInputSecret struct {
	ARN      string `json:"arn"`
	Function string `json:"function"`
	Repair   *bool  `json:"repair,omitempty"`
}

// Watch returns the suite's watch, or nil before NewWatch.
func (s *Suite) Watch() *Watch { return s.watch }

// NewWatch deploys the watch for every secret rotated so far: call it
// after the last RotateSecret. It needs dist/watch.zip.
func (s *Suite) NewWatch(id *string, props *WatchProps) (*Watch, error) {
	const where = "rotary suite: NewWatch"
	if s.watch != nil {
		return nil, fmt.Errorf("%s: the suite has a watch already", where)
	}
	if len(s.watched) == 0 {
		return nil, fmt.Errorf("%s: no secret is rotated, so there is nothing to watch: call RotateSecret first", where)
	}
	if props == nil {
		props = &WatchProps{}
	}
	interval, err := minutes(props.Interval, 15)
	if err != nil || interval < 5 || interval > 12*60 {
		return nil, fmt.Errorf("%s: field Interval: want whole minutes from 5 minutes to 12 hours", where)
	}
	repairAfter, err := goDuration(props.RepairAfter, time.Hour)
	if err != nil || repairAfter < 5*time.Minute {
		return nil, fmt.Errorf("%s: field RepairAfter: want whole seconds, at least 5 minutes", where)
	}
	overdueAfter, err := goDuration(props.OverdueAfter, time.Hour)
	if err != nil {
		return nil, fmt.Errorf("%s: field OverdueAfter: %w", where, err)
	}
	if c := props.Concurrency; c != nil && (*c < 1 || *c > 64 || *c != math.Trunc(*c)) {
		return nil, fmt.Errorf("%s: field Concurrency: %v is not a whole number from 1 to 64", where, *c)
	}
	perSecret := props.PerSecretAlarms != nil && *props.PerSecretAlarms
	if perSecret {
		for _, w := range s.watched {
			if w.name == nil || *w.name == "" {
				return nil, fmt.Errorf("%s: field PerSecretAlarms: RotateSecret %s has no SecretName, the alarms' SecretName dimension: set it", where, w.id)
			}
		}
	}
	zip, err := s.zipPath(registry.Watch.Name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}

	w := &Watch{Construct: constructs.NewConstruct(s.Construct, id)}
	w.LogGroup = awslogs.NewLogGroup(w.Construct, jsii.String("LogGroup"), &awslogs.LogGroupProps{
		Retention:     s.props.LogRetention,
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	w.Role = awsiam.NewRole(w.Construct, jsii.String("Role"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("Rotary watch function (least privilege, no managed policies; no secret values)"),
	})
	w.Role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String(SidWriteLogs),
		Actions:   jsii.Strings("logs:CreateLogStream", "logs:PutLogEvents"),
		Resources: &[]*string{w.LogGroup.LogGroupArn()},
	}))
	secrets := awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:     jsii.String(SidWatchDescribeSecrets),
		Actions: jsii.Strings(WatchSecretActions...),
	})
	for _, ws := range s.watched {
		secrets.AddResources(ws.arn)
	}
	w.Role.AddToPrincipalPolicy(secrets)
	invoke := awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:     jsii.String(SidWatchInvokeFunctions),
		Actions: jsii.Strings("lambda:InvokeFunction"),
	})
	for _, f := range s.Functions() {
		invoke.AddResources(f.Function.FunctionArn())
	}
	w.Role.AddToPrincipalPolicy(invoke)
	w.Role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String(SidWatchPublish),
		Actions:   jsii.Strings("sns:Publish"),
		Resources: &[]*string{s.topic.TopicArn()},
	}))
	if key := s.topic.MasterKey(); key != nil {
		w.Role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String(SidWatchTopicKey),
			Actions:   jsii.Strings(WatchTopicKeyActions...),
			Resources: &[]*string{key.KeyArn()},
			Conditions: &map[string]any{"StringEquals": map[string]any{
				"kms:ViaService": awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("sns."), s.stack.Region(), jsii.String(".amazonaws.com")}),
			}},
		}))
	}

	env := map[string]*string{
		WatchVarRepair:       jsii.String(strconv.FormatBool(props.Repair != nil && *props.Repair)),
		WatchVarRepairAfter:  jsii.String(repairAfter.String()),
		WatchVarOverdueAfter: jsii.String(overdueAfter.String()),
		WatchVarTopicArn:     s.topic.TopicArn(),
		WatchVarInterval:     jsii.String((time.Duration(interval) * time.Minute).String()),
	}
	if props.Concurrency != nil {
		env[WatchVarConcurrency] = jsii.String(strconv.Itoa(int(*props.Concurrency)))
	}
	memory := props.MemorySize
	if memory == nil {
		memory = jsii.Number(256)
	}
	timeout := props.Timeout
	if timeout == nil {
		timeout = awscdk.Duration_Minutes(jsii.Number(5))
	}
	// Outside any VPC: the watch calls AWS APIs only (Secrets Manager,
	// Lambda, SNS), never a database.
	w.Function = awslambda.NewFunction(w.Construct, jsii.String("Function"), &awslambda.FunctionProps{
		Description:  jsii.String("Rotary watch: " + registry.Watch.Summary),
		Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture: awslambda.Architecture_ARM_64(),
		Handler:      jsii.String("bootstrap"),
		Code:         awslambda.Code_FromAsset(jsii.String(zip), nil),
		MemorySize:   memory,
		Timeout:      timeout,
		Role:         w.Role,
		LogGroup:     w.LogGroup,
		Environment:  &env,
		// The next run comes one interval later; Lambda's two retries of a
		// failed asynchronous run would only repeat its checks.
		RetryAttempts: jsii.Number(0),
	})

	w.SchedulerRole = awsiam.NewRole(w.Construct, jsii.String("SchedulerRole"), &awsiam.RoleProps{
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("scheduler.amazonaws.com"), &awsiam.ServicePrincipalOpts{
			Conditions: &map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": s.stack.Account()}},
		}),
		Description: jsii.String("EventBridge Scheduler runs the Rotary watch (invoke the watch function only)"),
	})
	w.SchedulerRole.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String(SidSchedulerInvoke),
		Actions:   jsii.Strings("lambda:InvokeFunction"),
		Resources: &[]*string{w.Function.FunctionArn()},
	}))
	if err := w.schedule(s, interval); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	w.alarm(s, interval, overdueAfter, repairAfter, perSecret)
	s.watch = w
	return w, nil
}

// schedule creates one schedule per WatchSecretsPerSchedule secrets.
func (w *Watch) schedule(s *Suite, interval int) error {
	expr := fmt.Sprintf("rate(%d minutes)", interval)
	switch {
	case interval == 60:
		expr = "rate(1 hour)"
	case interval%60 == 0:
		expr = fmt.Sprintf("rate(%d hours)", interval/60)
	}
	n := (len(s.watched) + WatchSecretsPerSchedule - 1) / WatchSecretsPerSchedule
	for i := 0; i < n; i++ {
		part := s.watched[i*WatchSecretsPerSchedule : min((i+1)*WatchSecretsPerSchedule, len(s.watched))]
		in := watchInput{Time: WatchScheduledTime}
		for _, ws := range part {
			in.Secrets = append(in.Secrets, watchInputSecret{ARN: *ws.arn, Function: *ws.fn.Function.FunctionArn(), Repair: ws.repair})
		}
		// Tokens (ARNs of resources of the stack) stay strings in the JSON
		// and become an Fn::Join; no HTML escaping of the placeholder's <>.
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(in); err != nil {
			return fmt.Errorf("schedule input: %w", err)
		}
		desc := fmt.Sprintf("Rotary watch: checks %d secrets every %d minutes", len(part), interval)
		if n > 1 {
			desc = fmt.Sprintf("Rotary watch: checks secrets %d-%d of %d every %d minutes", i*WatchSecretsPerSchedule+1, i*WatchSecretsPerSchedule+len(part), len(s.watched), interval)
		}
		sched := awsscheduler.NewCfnSchedule(w.Construct, jsii.String(fmt.Sprintf("Schedule%d", i)), &awsscheduler.CfnScheduleProps{
			Description:        jsii.String(desc),
			ScheduleExpression: jsii.String(expr),
			// A fleet's schedules would all fire at once (one per 100
			// secrets): a flexible window of half the interval spreads
			// them, and keeps every gap between runs under two intervals,
			// so the stopped alarm (two empty periods) does not fire.
			FlexibleTimeWindow: &awsscheduler.CfnSchedule_FlexibleTimeWindowProperty{Mode: jsii.String("FLEXIBLE"), MaximumWindowInMinutes: jsii.Number(float64(max(interval/2, 1)))},
			State:              jsii.String("ENABLED"),
			Target: &awsscheduler.CfnSchedule_TargetProperty{
				Arn:     w.Function.FunctionArn(),
				RoleArn: w.SchedulerRole.RoleArn(),
				Input:   jsii.String(string(bytes.TrimRight(b.Bytes(), "\n"))),
				// A run that cannot be delivered is replaced by the next one.
				RetryPolicy: &awsscheduler.CfnSchedule_RetryPolicyProperty{
					MaximumRetryAttempts:     jsii.Number(0),
					MaximumEventAgeInSeconds: jsii.Number(float64(min(interval*60, 86400))),
				},
			},
		})
		// The role's policy must exist before the first run.
		sched.Node().AddDependency(w.SchedulerRole)
		w.Schedules = append(w.Schedules, sched)
	}
	return nil
}

// alarm creates the alarms on the watch's metrics: per rotation function
// (or per secret), and the watch's own health.
//
// A single-user rotation caught between setSecret and finishSecret looks
// stuck, and locked out, for one run: so Stuck alarms only when every run
// for longer than repairAfter saw it (the watch repairs it then, when
// repair is on), and CurrentLogsIn only after two runs in a row.
func (w *Watch) alarm(s *Suite, interval int, overdueAfter, repairAfter time.Duration, perSecret bool) {
	stuckRuns := float64(int(math.Ceil(repairAfter.Minutes()/float64(interval))) + 1)
	period := awscdk.Duration_Minutes(jsii.Number(float64(interval)))
	metric := func(name, stat string, dims map[string]*string) awscloudwatch.Metric {
		return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace:     jsii.String(MetricNamespace),
			MetricName:    jsii.String(name),
			DimensionsMap: &dims,
			Statistic:     jsii.String(stat),
			Period:        period,
		})
	}
	health := func(scope constructs.Construct, f *Function, subject string, dims map[string]*string) {
		t, _ := registry.Lookup(string(f.Type))
		w.Alarms = append(w.Alarms,
			s.alarm(scope, "OverdueAlarm", fmt.Sprintf("Rotary watch: %s is overdue: its scheduled rotation has not happened %v after its window (Rotary/%s >= 1). See rotary status --verify and docs/watch.md.", subject, overdueAfter, MetricOverdue),
				metric(MetricOverdue, "Maximum", dims)),
			s.alarmRuns(scope, "StuckAlarm", fmt.Sprintf("Rotary watch: %s has had an unfinished rotation for longer than %v (AWSPENDING on another version than AWSCURRENT; Rotary/%s >= 1 on %d runs in a row). rotary unstick heals it, or the watch with repair on. See docs/watch.md.", subject, repairAfter, MetricStuck, int(stuckRuns)),
				metric(MetricStuck, "Maximum", dims), stuckRuns))
		if t.Database() {
			w.Alarms = append(w.Alarms, s.alarmBelow(scope, "CurrentLogsInAlarm", fmt.Sprintf("Rotary watch: AWSCURRENT of %s no longer logs in to its database (drifted: the password was changed or the user dropped behind Secrets Manager's back; Rotary/%s < 1). See docs/watch.md.", subject, MetricCurrentLogsIn),
				metric(MetricCurrentLogsIn, "Minimum", dims), awscloudwatch.TreatMissingData_NOT_BREACHING, 2))
		}
		if t.Database() && !t.Master {
			w.Alarms = append(w.Alarms, s.alarmBelow(scope, "PreviousRefusedAlarm", fmt.Sprintf("Rotary watch: the database still accepts AWSPREVIOUS of %s, which rotation should have replaced (Rotary/%s < 1). See docs/watch.md.", subject, MetricPreviousRefused),
				metric(MetricPreviousRefused, "Minimum", dims), awscloudwatch.TreatMissingData_NOT_BREACHING, 1))
		}
	}
	if perSecret {
		for _, ws := range s.watched {
			scope := constructs.NewConstruct(w.Construct, jsii.String("Alarms-"+ws.id))
			health(scope, ws.fn, fmt.Sprintf("secret %s (rotated by the %s function)", *ws.name, ws.fn.Type),
				map[string]*string{"SecretName": ws.name, "FunctionName": ws.fn.Function.FunctionName()})
		}
	} else {
		for _, f := range s.Functions() {
			scope := constructs.NewConstruct(w.Construct, jsii.String(f.Type.constructID()))
			health(scope, f, fmt.Sprintf("a secret rotated by the %s function", f.Type),
				map[string]*string{"FunctionName": f.Function.FunctionName()})
		}
	}
	checked := awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:  jsii.String(MetricNamespace),
		MetricName: jsii.String(MetricSecretsChecked),
		Statistic:  jsii.String("Sum"),
		Period:     period,
	})
	w.Alarms = append(w.Alarms,
		s.alarmBelow(w.Construct, "StoppedAlarm", fmt.Sprintf("Rotary watch: the watch checked no secret in two intervals of %d minutes (Rotary/%s missing or 0: not scheduled, failing or throttled). Nothing watches the secrets until it runs again.", interval, MetricSecretsChecked),
			checked, awscloudwatch.TreatMissingData_BREACHING, 2),
		s.alarmRuns(w.Construct, "UnverifiedAlarm", fmt.Sprintf("Rotary watch: on two runs in a row the watch could not check some secrets through (Rotary/%s >= 1: a secret it may not describe, a rotation function it may not invoke, a probe that could not tell, or the deadline). Their lines in the watch's log group say why.", MetricSecretsUnverified),
			awscloudwatch.NewMetric(&awscloudwatch.MetricProps{Namespace: jsii.String(MetricNamespace), MetricName: jsii.String(MetricSecretsUnverified), Statistic: jsii.String("Minimum"), Period: period}), 2),
		s.alarm(w.Construct, "ErrorsAlarm", fmt.Sprintf("Rotary watch: the watch function failed (Lambda Errors >= 1 in %d minutes); see its log group", interval),
			w.Function.MetricErrors(&awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("Sum")})))
}

// minutes converts an optional whole-minute Duration.
func minutes(d awscdk.Duration, def int) (int, error) {
	if d == nil {
		return def, nil
	}
	m := *d.ToSeconds(&awscdk.TimeConversionOptions{Integral: jsii.Bool(false)}) / 60
	if m != math.Trunc(m) {
		return 0, errors.New("not whole minutes")
	}
	return int(m), nil
}

// goDuration converts an optional whole-second Duration to a Go duration.
func goDuration(d awscdk.Duration, def time.Duration) (time.Duration, error) {
	if d == nil {
		return def, nil
	}
	sec := *d.ToSeconds(&awscdk.TimeConversionOptions{Integral: jsii.Bool(false)})
	if sec != math.Trunc(sec) || sec < 0 {
		return 0, fmt.Errorf("%v seconds is not a whole, non-negative number of seconds", sec)
	}
	return time.Duration(sec) * time.Second, nil
}
