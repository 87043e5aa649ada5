package rotary

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/jsii-runtime-go"
)

// watched is a suite with the team's own (unencrypted, imported) topic and
// one rotated secret.
func watched(t *testing.T) (env, *Suite) {
	t.Helper()
	e := newEnv(t)
	s, err := NewSuite(e.stack, jsii.String("Rotation"), &SuiteProps{
		DistDir:    jsii.String(e.dist),
		AlarmTopic: awssns.Topic_FromTopicArn(e.stack, jsii.String("Topic"), jsii.String(topicARN)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateSecret(jsii.String("A"), &RotateSecretProps{Secret: imported(e, secretA), Type: RandomSecret, Schedule: jsii.String("rate(1 day)")}); err != nil {
		t.Fatal(err)
	}
	return e, s
}

func TestWatchWithTheTeamsTopic(t *testing.T) {
	e, s := watched(t)
	w, err := s.NewWatch(jsii.String("Watch"), &WatchProps{Interval: awscdk.Duration_Hours(jsii.Number(1)), Concurrency: jsii.Number(16)})
	if err != nil {
		t.Fatal(err)
	}
	if s.Watch() != w {
		t.Error("Suite.Watch is not the watch NewWatch returned")
	}
	tmpl := assertions.Template_FromStack(e.stack, nil)
	check(t, "hourly schedule", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::Scheduler::Schedule"), &map[string]any{"ScheduleExpression": "rate(1 hour)"})
	})
	check(t, "topic and concurrency in the environment", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), &map[string]any{
			"Environment": map[string]any{"Variables": assertions.Match_ObjectLike(&map[string]any{WatchVarTopicArn: topicARN, WatchVarConcurrency: "16"})},
		})
	})
	// An imported topic without a key: publishing needs no KMS grant.
	b, err := json.Marshal(tmpl.ToJSON())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "kms:") || strings.Contains(string(b), SidWatchTopicKey) {
		t.Error("KMS granted to the watch though the topic has no key")
	}
	_, err = s.RotateSecret(jsii.String("B"), &RotateSecretProps{Secret: imported(e, secretB), Type: RandomSecret, Schedule: jsii.String("rate(1 day)")})
	if err == nil || !strings.Contains(err.Error(), "before NewWatch") {
		t.Errorf("RotateSecret after NewWatch: %v, want a refusal (the watch would not check it)", err)
	}
	if _, err := s.NewWatch(jsii.String("Again"), nil); err == nil {
		t.Error("a second watch was accepted")
	}
}

func TestWatchRejectsBadProps(t *testing.T) {
	tests := []struct {
		name  string
		props *WatchProps
		want  string
	}{
		{"interval too short", &WatchProps{Interval: awscdk.Duration_Minutes(jsii.Number(2))}, "field Interval"},
		{"interval not whole minutes", &WatchProps{Interval: awscdk.Duration_Seconds(jsii.Number(330))}, "field Interval"},
		{"repairAfter too short", &WatchProps{RepairAfter: awscdk.Duration_Minutes(jsii.Number(1))}, "field RepairAfter"},
		{"concurrency out of range", &WatchProps{Concurrency: jsii.Number(65)}, "field Concurrency"},
		{"per-secret alarms without SecretName", &WatchProps{PerSecretAlarms: jsii.Bool(true)}, "SecretName"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, s := watched(t)
			if _, err := s.NewWatch(jsii.String("Watch"), tc.props); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewWatch error = %v, want one naming %q", err, tc.want)
			}
		})
	}
}
