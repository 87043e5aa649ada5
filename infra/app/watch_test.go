package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/rotary-secrets/rotary/infra/config"
	"github.com/rotary-secrets/rotary/infra/internal/cdktest"
	"github.com/rotary-secrets/rotary/infra/rotary"
	"github.com/rotary-secrets/rotary/pkg/registry"
)

// secretRef is how the template names a config entry's secret: its ARN,
// or a Ref to the secret the app created.
func (f *fixture) secretRef(t *testing.T, s config.SecretConfig) any {
	t.Helper()
	if s.ARN != "" {
		return s.ARN
	}
	return ref(f.createdSecret(t, s.Name))
}

func TestWatchFunctionRunsOutsideTheVpc(t *testing.T) {
	for name, tc := range map[string]struct {
		lf  *lazyFixture
		env map[string]any
	}{
		"example": {example, map[string]any{"ROTARY_WATCH_REPAIR": "false", "ROTARY_WATCH_REPAIR_AFTER": "1h0m0s", "ROTARY_WATCH_OVERDUE_AFTER": "1h0m0s", "ROTARY_WATCH_INTERVAL": "15m0s"}},
		"minimal": {minimal, map[string]any{"ROTARY_WATCH_REPAIR": "true", "ROTARY_WATCH_REPAIR_AFTER": "30m0s", "ROTARY_WATCH_OVERDUE_AFTER": "2h0m0s", "ROTARY_WATCH_INTERVAL": "5m0s"}},
	} {
		t.Run(name, func(t *testing.T) {
			f := tc.lf.get(t)
			id := f.watchFunctionID(t)
			fn := props(f.resources("AWS::Lambda::Function")[id])
			check(t, "runtime, architecture, package", func() {
				f.template.HasResourceProperties(jsii.String("AWS::Lambda::Function"), &map[string]any{
					"Description":   fn["Description"],
					"Runtime":       "provided.al2023",
					"Architectures": []any{"arm64"},
					"Handler":       "bootstrap",
					"Code":          assertions.Match_ObjectLike(&map[string]any{"S3Key": assertions.Match_StringLikeRegexp(jsii.String(`\.zip$`))}),
					"VpcConfig":     assertions.Match_Absent(),
				})
			})
			if !strings.Contains(fmt.Sprint(fn["Description"]), registry.Watch.Summary) {
				t.Errorf("description %q does not say what the watch does", fn["Description"])
			}
			lg := fn["LoggingConfig"].(map[string]any)["LogGroup"].(map[string]any)["Ref"].(string)
			group, ok := f.resources("AWS::Logs::LogGroup")[lg]
			if !ok {
				t.Fatalf("the watch logs to %v, want an explicit AWS::Logs::LogGroup of the stack", lg)
			}
			if got := props(group)["RetentionInDays"]; fmt.Sprint(got) != fmt.Sprint(f.cfg.LogRetentionDays) {
				t.Errorf("watch log retention %v, want logRetentionDays %d", got, f.cfg.LogRetentionDays)
			}
			want := map[string]any{"ROTARY_WATCH_TOPIC_ARN": ref(f.only(t, "AWS::SNS::Topic", func(map[string]any) bool { return true }))}
			for k, v := range tc.env {
				want[k] = v
			}
			// Nothing else: not the rotation functions' environment, not the
			// VPC endpoint (the example has one; the watch is not in the VPC).
			if got := fn["Environment"].(map[string]any)["Variables"]; canon(got) != canon(want) {
				t.Errorf("watch environment\n got %s\nwant %s", canon(got), canon(want))
			}
			check(t, "no retries of a failed run", func() {
				f.template.HasResourceProperties(jsii.String("AWS::Lambda::EventInvokeConfig"), &map[string]any{
					"FunctionName": ref(id), "MaximumRetryAttempts": 0,
				})
			})
			check(t, "output", func() {
				f.template.HasOutput(jsii.String("WatchFunctionName"), &map[string]any{"Value": ref(id)})
			})
		})
	}
}

// TestWatchRoleIsLeastPrivilege compares the watch's and its scheduler's
// policies with the contract, statement for statement.
func TestWatchRoleIsLeastPrivilege(t *testing.T) {
	for name, lf := range map[string]*lazyFixture{"example": example, "minimal": minimal} {
		t.Run(name, func(t *testing.T) {
			f := lf.get(t)
			fn := props(f.resources("AWS::Lambda::Function")[f.watchFunctionID(t)])
			lg := fn["LoggingConfig"].(map[string]any)["LogGroup"].(map[string]any)["Ref"].(string)
			var secrets, functions []any
			for _, s := range f.cfg.Secrets {
				secrets = append(secrets, f.secretRef(t, s))
			}
			for _, typ := range f.cfg.TypesInUse() {
				functions = append(functions, getAtt(f.functionID(t, rotary.FunctionType(typ)), "Arn"))
			}
			topic := f.only(t, "AWS::SNS::Topic", func(map[string]any) bool { return true })
			topicKey := f.only(t, "AWS::KMS::Key", func(p map[string]any) bool {
				return strings.Contains(fmt.Sprint(p["Description"]), "alarm topic")
			})
			region := f.cfg.Region
			want := []map[string]any{
				{"Sid": rotary.SidWriteLogs, "Effect": "Allow", "Action": []any{"logs:CreateLogStream", "logs:PutLogEvents"}, "Resource": []any{getAtt(lg, "Arn")}},
				{"Sid": rotary.SidWatchDescribeSecrets, "Effect": "Allow", "Action": []any{"secretsmanager:DescribeSecret", "secretsmanager:ListSecretVersionIds"}, "Resource": secrets},
				{"Sid": rotary.SidWatchInvokeFunctions, "Effect": "Allow", "Action": []any{"lambda:InvokeFunction"}, "Resource": functions},
				{"Sid": rotary.SidWatchPublish, "Effect": "Allow", "Action": []any{"sns:Publish"}, "Resource": []any{ref(topic)}},
				{"Sid": rotary.SidWatchTopicKey, "Effect": "Allow", "Action": []any{"kms:Decrypt", "kms:GenerateDataKey"}, "Resource": []any{getAtt(topicKey, "Arn")},
					"Condition": map[string]any{"StringEquals": map[string]any{"kms:ViaService": "sns." + region + ".amazonaws.com"}}},
			}
			if got, w := normStatements(f.statements(t, f.watchRoleID(t))), normStatements(want); !reflect.DeepEqual(got, w) {
				t.Errorf("watch policy\n got %v\nwant %v", got, w)
			}
			for _, s := range f.statements(t, f.watchRoleID(t)) {
				for _, a := range list(s["Action"]) {
					if a == "secretsmanager:GetSecretValue" || a == "secretsmanager:ListSecrets" {
						t.Errorf("the watch may call %s: %s", a, canon(s))
					}
				}
			}
			sched := []map[string]any{{"Sid": rotary.SidSchedulerInvoke, "Effect": "Allow", "Action": []any{"lambda:InvokeFunction"}, "Resource": []any{getAtt(f.watchFunctionID(t), "Arn")}}}
			if got, w := normStatements(f.statements(t, f.schedulerRoleID(t))), normStatements(sched); !reflect.DeepEqual(got, w) {
				t.Errorf("scheduler policy\n got %v\nwant %v", got, w)
			}
		})
	}
}

// normStatements renders statements with their actions and resources
// sorted, so that two policies compare regardless of order.
func normStatements(stmts []map[string]any) []string {
	var out []string
	for _, s := range stmts {
		n := map[string]any{}
		for k, v := range s {
			switch k {
			case "Action", "Resource":
				n[k] = canonSet(list(v))
			default:
				n[k] = v
			}
		}
		out = append(out, canon(n))
	}
	sort.Strings(out)
	return out
}

// scheduleInput parses a schedule's Input, a JSON string or an Fn::Join
// of strings and tokens (Ref, Fn::GetAtt), back into JSON with each token
// in place of the string it resolves to.
func scheduleInput(t *testing.T, v any) map[string]any {
	t.Helper()
	text, tokens := "", map[string]any{}
	switch x := v.(type) {
	case string:
		text = x
	case map[string]any:
		parts := x["Fn::Join"].([]any)[1].([]any)
		for i, p := range parts {
			if s, ok := p.(string); ok {
				text += s
				continue
			}
			key := fmt.Sprintf("TOKEN%d", i)
			tokens[key] = p
			text += key
		}
	default:
		t.Fatalf("schedule input %s is neither a string nor an Fn::Join", canon(v))
	}
	var in map[string]any
	if err := json.Unmarshal([]byte(text), &in); err != nil {
		t.Fatalf("schedule input is not JSON: %v\n%s", err, text)
	}
	for _, s := range in["secrets"].([]any) {
		e := s.(map[string]any)
		for _, k := range []string{"arn", "function"} {
			if tok, ok := tokens[fmt.Sprint(e[k])]; ok {
				e[k] = tok
			}
		}
	}
	return in
}

// watchSchedules returns the watch's schedules in the order of their secrets.
func (f *fixture) watchSchedules(t *testing.T) []map[string]any {
	t.Helper()
	ids := make([]string, 0)
	for id := range f.watchScheduleResources(t) {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		// Schedule0..ScheduleN: by the number before the hash.
		return len(ids[i]) < len(ids[j]) || len(ids[i]) == len(ids[j]) && ids[i] < ids[j]
	})
	var out []map[string]any
	for _, id := range ids {
		out = append(out, props(f.watchScheduleResources(t)[id]))
	}
	return out
}

func TestWatchSchedulesSendTheConfiguredSecrets(t *testing.T) {
	for name, tc := range map[string]struct {
		lf        *lazyFixture
		expr      string
		schedules int
		window    int // minutes of the flexible window
	}{
		"example": {example, "rate(15 minutes)", 1, 7},
		"minimal": {minimal, "rate(5 minutes)", 1, 2},
		"fleet":   {fleet, "rate(15 minutes)", 2, 7},
	} {
		t.Run(name, func(t *testing.T) {
			f := tc.lf.get(t)
			var want []any
			for _, s := range f.cfg.Secrets {
				e := map[string]any{"arn": f.secretRef(t, s), "function": getAtt(f.functionID(t, rotary.FunctionType(s.Type)), "Arn")}
				if s.Repair != nil {
					e["repair"] = *s.Repair
				}
				want = append(want, e)
			}
			scheds := f.watchSchedules(t)
			if len(scheds) != tc.schedules {
				t.Fatalf("%d schedules for %d secrets, want %d", len(scheds), len(f.cfg.Secrets), tc.schedules)
			}
			var got []any
			for i, p := range scheds {
				if p["ScheduleExpression"] != tc.expr || canon(p["FlexibleTimeWindow"]) != canon(map[string]any{"Mode": "FLEXIBLE", "MaximumWindowInMinutes": tc.window}) || p["State"] != "ENABLED" {
					t.Errorf("schedule %d: %s %s %v, want %s, a flexible window of %d minutes (half the interval), enabled", i, p["ScheduleExpression"], canon(p["FlexibleTimeWindow"]), p["State"], tc.expr, tc.window)
				}
				target := p["Target"].(map[string]any)
				if canon(target["Arn"]) != canon(getAtt(f.watchFunctionID(t), "Arn")) || canon(target["RoleArn"]) != canon(getAtt(f.schedulerRoleID(t), "Arn")) {
					t.Errorf("schedule %d targets %s as %s, want the watch as the scheduler role", i, canon(target["Arn"]), canon(target["RoleArn"]))
				}
				in := scheduleInput(t, target["Input"])
				if in["time"] != rotary.WatchScheduledTime {
					t.Errorf("schedule %d: time = %v, want %s", i, in["time"], rotary.WatchScheduledTime)
				}
				secrets := in["secrets"].([]any)
				if len(secrets) == 0 || len(secrets) > rotary.WatchSecretsPerSchedule {
					t.Errorf("schedule %d sends %d secrets, want 1 to %d", i, len(secrets), rotary.WatchSecretsPerSchedule)
				}
				if len(in) != 2 {
					t.Errorf("schedule %d: input has fields %v, want time and secrets", i, in)
				}
				got = append(got, secrets...)
			}
			if canon(got) != canon(want) {
				t.Errorf("the schedules send\n%s\nwant the config's secrets\n%s", canon(got), canon(want))
			}
		})
	}
}

// alarmKey is what an alarm checks, comparable across alarms.
func alarmKey(p map[string]any) string {
	return canon([]any{p["Namespace"], p["MetricName"], p["Dimensions"], p["Statistic"], p["ComparisonOperator"], p["Threshold"], p["Period"], p["EvaluationPeriods"], p["DatapointsToAlarm"], p["TreatMissingData"]})
}

func TestWatchAlarmsOnItsMetrics(t *testing.T) {
	healthMetrics := map[string]bool{rotary.MetricOverdue: true, rotary.MetricStuck: true, rotary.MetricCurrentLogsIn: true, rotary.MetricPreviousRefused: true}
	for name, tc := range map[string]struct {
		lf        *lazyFixture
		perSecret bool
		period    int
		// stuckRuns: Stuck must be seen on every run for longer than
		// repairAfter (ceil(repairAfter/interval)+1 runs), so a rotation
		// caught in flight does not alarm.
		stuckRuns int
	}{
		"example: per function": {example, false, 900, 5}, // 1h / 15m + 1
		"minimal: per secret":   {minimal, true, 300, 7},  // 30m / 5m + 1
	} {
		t.Run(name, func(t *testing.T) {
			f := tc.lf.get(t)
			topic := ref(f.only(t, "AWS::SNS::Topic", func(map[string]any) bool { return true }))
			health := func(typ rotary.FunctionType, dims []any) []string {
				rt, _ := registry.Lookup(string(typ))
				at := func(metric, stat, op string, runs int) string {
					a := map[string]any{"Namespace": "Rotary", "MetricName": metric, "Dimensions": dims, "Statistic": stat, "ComparisonOperator": op,
						"Threshold": 1, "Period": tc.period, "EvaluationPeriods": runs, "TreatMissingData": "notBreaching"}
					if op == "LessThanThreshold" || runs > 1 {
						a["DatapointsToAlarm"] = runs
					}
					return alarmKey(a)
				}
				out := []string{at("Overdue", "Maximum", "GreaterThanOrEqualToThreshold", 1), at("Stuck", "Maximum", "GreaterThanOrEqualToThreshold", tc.stuckRuns)}
				if rt.Database() {
					// Two runs in a row: one run may catch a single-user
					// rotation between setSecret and finishSecret.
					out = append(out, at("CurrentLogsIn", "Minimum", "LessThanThreshold", 2))
				}
				if rt.Database() && !rt.Master {
					out = append(out, at("PreviousRefused", "Minimum", "LessThanThreshold", 1))
				}
				return out
			}
			var want []string
			if tc.perSecret {
				for _, s := range f.cfg.Secrets {
					typ := rotary.FunctionType(s.Type)
					want = append(want, health(typ, []any{
						map[string]any{"Name": "FunctionName", "Value": ref(f.functionID(t, typ))},
						map[string]any{"Name": "SecretName", "Value": secretName(s)},
					})...)
				}
			} else {
				for _, typ := range f.cfg.TypesInUse() {
					want = append(want, health(rotary.FunctionType(typ), []any{map[string]any{"Name": "FunctionName", "Value": ref(f.functionID(t, rotary.FunctionType(typ)))}})...)
				}
			}
			var got []string
			for id, r := range f.resources("AWS::CloudWatch::Alarm") {
				p := props(r)
				if p["Namespace"] != "Rotary" || !healthMetrics[fmt.Sprint(p["MetricName"])] {
					continue
				}
				got = append(got, alarmKey(p))
				if canon(p["AlarmActions"]) != canon([]any{topic}) {
					t.Errorf("alarm %s notifies %s, want the alarm topic", id, canon(p["AlarmActions"]))
				}
				if d := fmt.Sprint(p["AlarmDescription"]); !strings.HasPrefix(d, "Rotary watch: ") || !strings.Contains(d, "Rotary/"+fmt.Sprint(p["MetricName"])) || len(d) < 60 {
					t.Errorf("alarm %s description %q does not say what it means", id, d)
				}
			}
			sort.Strings(got)
			sort.Strings(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("watch health alarms\n got %v\nwant %v", got, want)
			}

			watch := ref(f.watchFunctionID(t))
			check(t, "the watch stopped: SecretsChecked missing is breaching", func() {
				f.template.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), &map[string]any{
					"Namespace": "Rotary", "MetricName": rotary.MetricSecretsChecked, "Dimensions": assertions.Match_Absent(),
					"Statistic": "Sum", "ComparisonOperator": "LessThanThreshold", "Threshold": 1, "Period": tc.period,
					"EvaluationPeriods": 2, "DatapointsToAlarm": 2, "TreatMissingData": "breaching", "AlarmActions": []any{topic},
				})
			})
			check(t, "the watch runs blind: SecretsUnverified on two runs", func() {
				f.template.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), &map[string]any{
					"Namespace": "Rotary", "MetricName": rotary.MetricSecretsUnverified, "Dimensions": assertions.Match_Absent(),
					"Statistic": "Minimum", "ComparisonOperator": "GreaterThanOrEqualToThreshold", "Threshold": 1, "Period": tc.period,
					"EvaluationPeriods": 2, "DatapointsToAlarm": 2, "TreatMissingData": "notBreaching", "AlarmActions": []any{topic},
				})
			})
			check(t, "the watch failed: Lambda Errors", func() {
				f.template.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), &map[string]any{
					"Namespace": "AWS/Lambda", "MetricName": "Errors", "Dimensions": []any{map[string]any{"Name": "FunctionName", "Value": watch}},
					"Statistic": "Sum", "ComparisonOperator": "GreaterThanOrEqualToThreshold", "Threshold": 1, "Period": tc.period, "AlarmActions": []any{topic},
				})
			})
		})
	}
}

func TestStaggeredSchedulesNeverShareAnHourOnAHost(t *testing.T) {
	f := fleet.get(t)
	want, err := f.cfg.StaggeredSchedules()
	if err != nil {
		t.Fatal(err)
	}
	bySecret := map[string]map[string]any{}
	for _, r := range f.resources("AWS::SecretsManager::RotationSchedule") {
		p := props(r)
		bySecret[canon(p["SecretId"])] = p["RotationRules"].(map[string]any)
	}
	type window struct {
		name        string
		expr        string
		start, span int
	}
	hosts := map[string][]window{}
	for _, s := range f.cfg.Secrets {
		rules, ok := bySecret[canon(f.secretRef(t, s))]
		if !ok {
			t.Fatalf("%s has no rotation schedule", s.Name)
		}
		expr := fmt.Sprint(rules["ScheduleExpression"])
		if w, moved := want[s.Name]; moved != (s.Type != "random-secret") || moved && expr != w {
			t.Errorf("%s: schedule %s (staggered: %q)", s.Name, expr, w)
		}
		if s.Type == "random-secret" {
			if expr != s.Schedule {
				t.Errorf("%s has no host but its schedule moved: %s", s.Name, expr)
			}
			continue
		}
		if !strings.HasPrefix(expr, "cron(0 ") {
			t.Errorf("%s: %s is not a cron() that picks the hour", s.Name, expr)
			continue
		}
		var start, span int
		if _, err := fmt.Sscanf(strings.Fields(expr)[1], "%d", &start); err != nil {
			t.Fatalf("%s: hour of %s: %v", s.Name, expr, err)
		}
		if _, err := fmt.Sscanf(fmt.Sprint(rules["Duration"]), "%dh", &span); err != nil || fmt.Sprintf("%dh", span) != s.Window {
			t.Errorf("%s: Duration %v, want its window %s", s.Name, rules["Duration"], s.Window)
		}
		if start+span > 24 {
			t.Errorf("%s: window %d+%dh crosses midnight UTC", s.Name, start, span)
		}
		hosts[config.HostOf(s)] = append(hosts[config.HostOf(s)], window{s.Name, expr, start, span})
	}
	if len(hosts) != 6 {
		t.Errorf("%d hosts, want the fleet's 6", len(hosts))
	}
	for host, ws := range hosts {
		var busy [24]string
		for _, w := range ws {
			for h := w.start; h < w.start+w.span && h < 24; h++ {
				if busy[h] != "" {
					t.Errorf("host %s: %s and %s (%s) both rotate in hour %d", host, busy[h], w.name, w.expr, h)
				}
				busy[h] = w.name
			}
		}
	}
	// The cron schedule keeps its days; the rates keep at most their period.
	s, _ := f.cfg.Secret("app-003")
	if got := want[s.Name]; !strings.HasSuffix(got, " ? * MON *)") {
		t.Errorf("app-003's weekly cron(15 4 ? * MON *) became %s, want its days kept", got)
	}
	again, err := config.Parse([]byte(fleetYAML()), ".")
	if err != nil {
		t.Fatal(err)
	}
	if second, _ := again.StaggeredSchedules(); !reflect.DeepEqual(second, want) {
		t.Error("the same config staggers differently twice")
	}
}

// TestNoWatchWithoutSecretsOrWhenDisabled: watch.enabled: false deploys
// no watch, and the construct refuses a watch with nothing to watch.
func TestNoWatchWithoutSecretsOrWhenDisabled(t *testing.T) {
	cdktest.RequireNode(t)
	cfg, err := config.Parse([]byte(`{"account":"111122223333","region":"us-east-1","watch":{"enabled":false},
"secrets":[{"name":"tok","type":"random-secret","create":{},"schedule":"rate(4 hours)","readers":[]}]}`), ".")
	if err != nil {
		t.Fatal(err)
	}
	dist, err := fakeDist(randomSecret)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DistDir = dist
	a := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	st, err := NewStack(a, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Suite.Watch() != nil {
		t.Error("watch.enabled: false deployed a watch")
	}
	tmpl := assertions.Template_FromStack(st.Stack, nil)
	check(t, "no watch resources", func() {
		tmpl.ResourceCountIs(jsii.String("AWS::Scheduler::Schedule"), jsii.Number(0))
		tmpl.ResourceCountIs(jsii.String("AWS::Lambda::Function"), jsii.Number(1))
		tmpl.ResourceCountIs(jsii.String("AWS::IAM::Role"), jsii.Number(1))
	})
	if _, err := st.Suite.NewWatch(jsii.String("Late"), nil); err != nil {
		t.Errorf("NewWatch on a suite with a secret: %v", err)
	}
	empty, err := rotary.NewSuite(awscdk.NewStack(a, jsii.String("Empty"), nil), jsii.String("Rotary"), &rotary.SuiteProps{DistDir: jsii.String(dist)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := empty.NewWatch(jsii.String("Watch"), nil); err == nil || !strings.Contains(err.Error(), "nothing to watch") {
		t.Errorf("NewWatch without secrets: %v, want a refusal", err)
	}
}

func TestMissingWatchPackageSaysRunMakeBuild(t *testing.T) {
	cdktest.RequireNode(t)
	cfg, err := config.Parse([]byte(minimalYAML), ".")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := tempDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := cdktest.WriteFakeDist(dir, string(randomSecret), string(postgresSingleUser)); err != nil {
		t.Fatal(err)
	}
	cfg.DistDir = dir
	_, err = NewStack(awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())}), cfg)
	if !errors.Is(err, rotary.ErrMissingPackage) || !strings.Contains(fmt.Sprint(err), "watch.zip") || !strings.Contains(fmt.Sprint(err), "run make build") {
		t.Errorf("NewStack without watch.zip: %v, want ErrMissingPackage naming watch.zip and make build", err)
	}
}
