package smlocal

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

func utc(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestCronNextFiringTime(t *testing.T) {
	for _, tc := range []struct {
		expr, after, want string
	}{
		{"0 16 * * ? *", "2026-03-10 12:00", "2026-03-10 16:00"},
		{"0 16 * * ? *", "2026-03-10 16:00", "2026-03-11 16:00"},
		{"0 */4 * * ? *", "2026-03-10 12:00", "2026-03-10 16:00"},
		{"30 8 1 * ? *", "2026-03-10 12:00", "2026-04-01 08:30"},
		{"0 0 L * ? *", "2026-02-01 00:00", "2026-02-28 00:00"},
		{"0 0 L-2 * ? *", "2026-02-01 00:00", "2026-02-26 00:00"},
		{"0 0 15W * ? *", "2026-08-01 00:00", "2026-08-14 00:00"}, // the 15th is a Saturday
		{"0 0 1W * ? *", "2026-07-31 00:00", "2026-08-03 00:00"},  // Aug 1 is a Saturday: Monday the 3rd
		{"0 0 LW * ? *", "2026-05-01 00:00", "2026-05-29 00:00"},  // May 31 is a Sunday
		{"0 10 ? * MON-FRI *", "2026-03-13 12:00", "2026-03-16 10:00"},
		{"0 10 ? * 2#1 *", "2026-03-10 12:00", "2026-04-06 10:00"}, // first Monday
		{"0 10 ? * 6L *", "2026-03-10 12:00", "2026-03-27 10:00"},  // last Friday
		{"0 4 ? JAN,JUL SUN *", "2026-03-10 12:00", "2026-07-05 04:00"},
		{"15 3 1 1 ? 2028", "2026-03-10 12:00", "2028-01-01 03:15"},
	} {
		t.Run(tc.expr+" after "+tc.after, func(t *testing.T) {
			c, err := parseCron(tc.expr)
			if err != nil {
				t.Fatalf("parseCron: %v", err)
			}
			if got := c.next(utc(tc.after)); !got.Equal(utc(tc.want)) {
				t.Fatalf("next = %v, want %s", got, tc.want)
			}
		})
	}
}

func TestCronRejectsMalformedExpressions(t *testing.T) {
	for _, expr := range []string{
		"0 16 * * *",     // five fields
		"0 16 * * * *",   // neither day field is ?
		"0 16 ? * ? *",   // both are
		"60 16 * * ? *",  // minute out of range
		"0 24 * * ? *",   // hour out of range
		"0 0 32 * ? *",   // day out of range
		"0 0 ? * 8 *",    // weekday out of range
		"0 0 ? * 2#6 *",  // no sixth Monday
		"0 0 1 FOO ? *",  // bad month name
		"0 0 31 2 ? *",   // never fires
		"0 0 1 1 ? 1960", // year out of range
		"0 0 1/0 * ? *",  // zero step
	} {
		t.Run(expr, func(t *testing.T) {
			if _, err := parseCron(expr); err == nil {
				t.Fatalf("parseCron(%q) succeeded, want an error", expr)
			}
		})
	}
}

func TestNextRotationDate(t *testing.T) {
	base := utc("2026-03-10 12:34")
	for _, tc := range []struct {
		name  string
		rules rotationRules
		want  string
	}{
		{"days", rotationRules{AutomaticallyAfterDays: aws.Int64(30)}, "2026-04-09 00:00"},
		{"rate days", rotationRules{ScheduleExpression: aws.String("rate(2 days)")}, "2026-03-12 00:00"},
		{"rate hours", rotationRules{ScheduleExpression: aws.String("rate(4 hours)")}, "2026-03-10 16:00"},
		{"rate hours windows start at midnight", rotationRules{ScheduleExpression: aws.String("rate(5 hours)")}, "2026-03-10 15:00"},
		{"cron", rotationRules{ScheduleExpression: aws.String("cron(0 8 ? * MON *)")}, "2026-03-16 08:00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sec := &storedSecret{Rules: &tc.rules, LastRotated: base}
			if got := nextRotation(sec); !got.Equal(utc(tc.want)) {
				t.Fatalf("next = %v, want %s", got, tc.want)
			}
		})
	}
}

func TestRotateSecretValidatesRotationRules(t *testing.T) {
	_, c, _ := rotationServer(t, Options{})
	createSecret(t, c, "rules", "pw")
	for _, tc := range []struct {
		name  string
		rules types.RotationRulesType
		code  string
		msg   string
	}{
		{"days and schedule", types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(3), ScheduleExpression: aws.String("rate(3 days)")}, "InvalidParameterException", "both AutomaticallyAfterDays and ScheduleExpression"},
		{"zero days", types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(0)}, "InvalidParameterException", "1 to 1000"},
		{"1001 days", types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(1001)}, "InvalidParameterException", "1 to 1000"},
		{"rate too frequent", types.RotationRulesType{ScheduleExpression: aws.String("rate(3 hours)")}, "InvalidParameterException", "four hours"},
		{"cron too frequent", types.RotationRulesType{ScheduleExpression: aws.String("cron(0 */2 * * ? *)")}, "InvalidParameterException", "four hours"},
		{"cron two minutes an hour", types.RotationRulesType{ScheduleExpression: aws.String("cron(0,30 */4 * * ? *)")}, "InvalidParameterException", "four hours"},
		{"not an expression", types.RotationRulesType{ScheduleExpression: aws.String("every day")}, "InvalidParameterException", "rate(N hours|days) or cron("},
		{"bad cron", types.RotationRulesType{ScheduleExpression: aws.String("cron(0 8 * * * *)")}, "InvalidParameterException", "day-of-month and day-of-week"},
		{"bad duration", types.RotationRulesType{ScheduleExpression: aws.String("rate(10 hours)"), Duration: aws.String("3m")}, "InvalidParameterException", "1h to 24h"},
		{"duration 25h", types.RotationRulesType{ScheduleExpression: aws.String("rate(2 days)"), Duration: aws.String("25h")}, "InvalidParameterException", "1h to 24h"},
		{"duration not shorter than interval", types.RotationRulesType{ScheduleExpression: aws.String("rate(4 hours)"), Duration: aws.String("4h")}, "InvalidParameterException", "shorter than the schedule's interval"},
		{"rate window into next day", types.RotationRulesType{ScheduleExpression: aws.String("rate(7 hours)"), Duration: aws.String("4h")}, "InvalidParameterException", "next UTC day"},
		{"window into next day", types.RotationRulesType{ScheduleExpression: aws.String("cron(0 22 * * ? *)"), Duration: aws.String("3h")}, "InvalidParameterException", "next UTC day"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.RotateSecret(context.Background(), &secretsmanager.RotateSecretInput{SecretId: aws.String("rules"), RotationLambdaARN: aws.String(fnARN), RotationRules: &tc.rules})
			wantAPIError(t, err, tc.code, tc.msg)
		})
	}
	for _, ok := range []types.RotationRulesType{
		{ScheduleExpression: aws.String("rate(4 hours)"), Duration: aws.String("2h")},
		{ScheduleExpression: aws.String("rate(5 hours)"), Duration: aws.String("3h")},
		{ScheduleExpression: aws.String("cron(0 4 ? * SUN#1 *)"), Duration: aws.String("3h")},
		{AutomaticallyAfterDays: aws.Int64(1000)},
	} {
		t.Run("valid "+aws.ToString(ok.ScheduleExpression), func(t *testing.T) {
			if _, err := parseRules(&rotationRules{ok.AutomaticallyAfterDays, ok.Duration, ok.ScheduleExpression}); err != nil {
				t.Fatalf("parseRules: %v", err)
			}
		})
	}
}

func TestRateHoursNextWindow(t *testing.T) {
	h := hoursSchedule{5}
	for _, tc := range []struct{ after, want string }{
		{"2026-03-10 00:00", "2026-03-10 05:00"},
		{"2026-03-10 12:34", "2026-03-10 15:00"},
		{"2026-03-10 20:00", "2026-03-11 00:00"},
		{"2026-03-10 21:10", "2026-03-11 00:00"},
	} {
		if got := h.next(utc(tc.after)); !got.Equal(utc(tc.want)) {
			t.Errorf("rate(5 hours) after %s = %v, want %s", tc.after, got, tc.want)
		}
	}
}

// TestCronMinimumIntervalCountsLeapDays: the shortest interval was measured
// over the first 400 firings from 2026, which for cron(0 1,23 1-29/2 * ? *)
// (odd days to the 29th, at 01:00 and 23:00) end before February 29, 2028,
// when it fires at 23:00 and again at 01:00 on March 1. Found by
// FuzzSchedule, which walks the firings of accepted schedules.
func TestCronMinimumIntervalCountsLeapDays(t *testing.T) {
	_, err := parseScheduleExpression("cron(0 1,23 1-29/2 * ? *)")
	if err == nil || !strings.Contains(err.Error(), "more often than every four hours") {
		t.Fatalf("parseScheduleExpression = %v, want it refused as more often than every four hours", err)
	}
	for _, ok := range []string{"cron(0 3,23 1-29/2 * ? *)", "cron(0 1,23 1-29/2 * ? 2026-2027)", "cron(0 16 1,15 * ? *)"} {
		if _, err := parseScheduleExpression(ok); err != nil {
			t.Errorf("parseScheduleExpression(%q) = %v, want it accepted", ok, err)
		}
	}
}

// TestCronHugeStep: a step near the largest int overflowed the loop that
// fills a field's set, which then indexed it with a negative number: a
// panic serving RotateSecret. Found by review while writing FuzzSchedule,
// which keeps the input as a seed.
func TestCronHugeStep(t *testing.T) {
	c, err := parseCron("1/9223372036854775807 0 1 * ? *")
	if err != nil {
		t.Fatalf("parseCron: %v", err)
	}
	for m, on := range c.minutes {
		if on != (m == 1) {
			t.Fatalf("minute %d set = %v; want only minute 1", m, on)
		}
	}
}

// TestWindowEnd: DescribeSecret's NextRotationDate is the end of the
// rotation window ("the latest date that rotation will occur").
func TestWindowEnd(t *testing.T) {
	start := time.Date(2026, 3, 10, 4, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		rules rotationRules
		want  time.Time
	}{
		{"days, no duration: end of the UTC day", rotationRules{AutomaticallyAfterDays: aws.Int64(30)}, time.Date(2026, 3, 10, 23, 59, 59, 0, time.UTC)},
		{"hours, no duration: an hour", rotationRules{ScheduleExpression: aws.String("rate(4 hours)")}, start.Add(time.Hour)},
		{"duration", rotationRules{ScheduleExpression: aws.String("rate(4 hours)"), Duration: aws.String("3h")}, start.Add(3 * time.Hour)},
		{"cron, no duration: end of the UTC day", rotationRules{ScheduleExpression: aws.String("cron(0 4 * * ? *)")}, time.Date(2026, 3, 10, 23, 59, 59, 0, time.UTC)},
	} {
		if got := windowEnd(&tc.rules, start); !got.Equal(tc.want) {
			t.Errorf("%s: windowEnd = %v, want %v", tc.name, got, tc.want)
		}
	}
}
