package smlocal

import (
	"errors"
	"testing"
	"time"
)

// FuzzSchedule parses arbitrary RotationRules (a ScheduleExpression and an
// optional Duration) as RotateSecret does and, when they are accepted,
// walks the schedule from a fuzzed start time. The seeds are in
// testdata/fuzz/FuzzSchedule.
//
// Properties:
//   - parsing never panics; a refusal is an InvalidParameterException;
//   - an accepted schedule's interval is at least four hours (Secrets
//     Manager's minimum) and at least a day for a rate in days;
//   - next(t) is strictly after t (or, for a cron expression only, zero: no
//     firing within five years), on a whole minute, and for a cron
//     expression a firing time with none between t and it;
//   - successive firings (up to 30) are at least four hours apart, except
//     rate(N hours) restarting at midnight; with a Duration, each window
//     ends before the next firing and within its UTC day.
func FuzzSchedule(f *testing.F) {
	f.Add("cron(0 16 1,15 * ? *)", "2h", true, int64(0))
	f.Add("rate(5 hours)", "", false, int64(86400*400+3600*21))
	f.Fuzz(func(t *testing.T, expr, duration string, hasDuration bool, at int64) {
		rules := &rotationRules{ScheduleExpression: &expr}
		if hasDuration {
			rules.Duration = &duration
		}
		sched, err := parseRules(rules)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.Type != excInvalidParameter {
				t.Fatalf("parseRules(%q, %q) = %v, want an InvalidParameterException", expr, duration, err)
			}
			return
		}
		if sched == nil {
			t.Fatalf("parseRules(%q) accepted an expression but returned no schedule", expr)
		}
		var win time.Duration
		if hasDuration {
			win = mustWindow(t, duration)
		}
		checkSchedule(t, expr, sched, win, startTime(at))
	})
}

// startTime maps a fuzzed integer to a time from 2000 to 2199, on any second.
func startTime(at int64) time.Time {
	const span = 200 * 365 * 24 * 3600
	s := at % span
	if s < 0 {
		s += span
	}
	return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(s) * time.Second)
}

func mustWindow(t *testing.T, d string) time.Duration {
	m := durationRE.FindStringSubmatch(d)
	if m == nil {
		t.Fatalf("Duration %q accepted but not of the form Nh", d)
	}
	w, err := time.ParseDuration(d)
	if err != nil || w < time.Hour || w > 24*time.Hour {
		t.Fatalf("Duration %q accepted but is not 1h to 24h", d)
	}
	return w
}

func checkSchedule(t *testing.T, expr string, sched schedule, win time.Duration, start time.Time) {
	t.Helper()
	switch s := sched.(type) {
	case daysSchedule:
		if s.interval() < 24*time.Hour {
			t.Fatalf("%q: a rate in days with interval %s", expr, s.interval())
		}
	default:
		if sched.interval() < minScheduleInterval {
			t.Fatalf("%q: interval %s is under four hours", expr, sched.interval())
		}
	}
	cron, isCron := sched.(*cronSchedule)
	_, isHours := sched.(hoursSchedule)
	prev := time.Time{}
	at := start
	for i := 0; i < 30; i++ {
		n := sched.next(at)
		if n.IsZero() {
			if !isCron {
				t.Fatalf("%q: no rotation after %s", expr, at)
			}
			return
		}
		if !n.After(at) || n.Second() != 0 || n.Nanosecond() != 0 {
			t.Fatalf("%q: next(%s) = %s, want a whole minute strictly after it", expr, at, n)
		}
		if isCron {
			if !cron.fires(n) {
				t.Fatalf("%q: next(%s) = %s, which is not a firing time", expr, at, n)
			}
			if n.Sub(at) <= 48*time.Hour {
				for m := at.Truncate(time.Minute).Add(time.Minute); m.Before(n); m = m.Add(time.Minute) {
					if !m.After(at) {
						continue
					}
					if cron.fires(m) {
						t.Fatalf("%q: next(%s) = %s skips the firing at %s", expr, at, n, m)
					}
				}
			}
		}
		if !prev.IsZero() {
			gap := n.Sub(prev)
			midnight := isHours && n.Equal(dayOf(n))
			if gap < minScheduleInterval && !midnight {
				t.Fatalf("%q: rotations at %s and %s, %s apart, under four hours", expr, prev, n, gap)
			}
			if win > 0 && prev.Add(win).After(n) {
				t.Fatalf("%q with a %s window: the window opening at %s runs into the rotation at %s", expr, win, prev, n)
			}
		}
		if win > 0 && n.Add(win).After(dayOf(n).Add(24*time.Hour)) {
			t.Fatalf("%q with a %s window: the window opening at %s runs into the next UTC day", expr, win, n)
		}
		prev, at = n, n
	}
}

// fires reports whether the cron expression fires at the minute t.
func (c *cronSchedule) fires(t time.Time) bool {
	return c.minutes[t.Minute()] && c.hours[t.Hour()] && c.dayMatches(dayOf(t))
}
