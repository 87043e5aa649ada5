package schedule

import (
	"strings"
	"testing"
	"time"
)

func TestMaxInterval(t *testing.T) {
	const day = 24 * time.Hour
	for _, tc := range []struct {
		expr string
		want time.Duration
	}{
		{"rate(4 hours)", 4 * time.Hour},
		{"rate(1 day)", day},
		{"rate(30 days)", 30 * day},
		{"cron(0 4 * * ? *)", day},
		{"cron(0 4 ? * SUN *)", 7 * day},
		{"cron(15 4 ? * MON *)", 7 * day},
		{"cron(0 0/6 * * ? *)", 6 * time.Hour},
		{"cron(0 3/8 * * ? *)", 8 * time.Hour},  // 3, 11, 19, then 3 the next day
		{"cron(0 2,4 * * ? *)", 22 * time.Hour}, // 2 and 4 each day: 22 hours from 4 to 2
		// The 1st and the 15th: 17 days from the 15th to the 1st after a 31-day month.
		{"cron(0 2 1,15 * ? *)", 17 * day},
		// The 1st of each month: 31 days at most.
		{"cron(0 2 1 * ? *)", 31 * day},
		{"cron(0 2 1 1/2 ? *)", 62 * day},
		{"cron(0 2 1 1 ? *)", 366 * day},
		{"cron(0 2 L * ? *)", 31 * day},
		// The first Monday of the month: up to five weeks apart.
		{"cron(0 2 ? * MON#1 *)", 35 * day},
		{"cron(0 2 ? * 6L *)", 35 * day},
		{"cron(0 2 ? * MON-FRI *)", 3 * day},
		{"cron(0 0 29 2 ? *)", (4*365 + 1) * day},
	} {
		got, err := MaxInterval(tc.expr)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		if got != tc.want {
			t.Errorf("MaxInterval(%s) = %s, want %s", tc.expr, got, tc.want)
		}
	}
}

func TestMaxIntervalRefuses(t *testing.T) {
	for expr, want := range map[string]string{
		"rate(5 minutes)":       "neither rate",
		"cron(0 2 15W * ? *)":   "W (nearest weekday)",
		"cron(0 2 1 1 ? 2030)":  "fewer than twice",
		"cron(0 25 * * ? *)":    "hours",
		"cron(0 2 * * ?)":       "six fields",
		"cron(0 2 ? * MON#6 *)": "DAY#N",
		"cron(0 2 10-5 * ? *)":  "backwards",
	} {
		_, err := MaxInterval(expr)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("MaxInterval(%s) = %v, want an error with %q", expr, err, want)
		}
	}
}
