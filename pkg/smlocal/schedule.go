package smlocal

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// minScheduleInterval is the shortest rotation interval Secrets Manager allows.
const minScheduleInterval = 4 * time.Hour

// schedule says when a secret's rotations fall due.
type schedule interface {
	// next returns the first rotation time strictly after t.
	next(t time.Time) time.Time
	// interval is the shortest time between two rotations.
	interval() time.Duration
}

// daysSchedule is AutomaticallyAfterDays or rate(N days): the window opens
// at the start of the UTC day N days after the last rotation.
type daysSchedule struct{ days int }

func (d daysSchedule) next(t time.Time) time.Time {
	return dayOf(t).AddDate(0, 0, d.days)
}
func (d daysSchedule) interval() time.Duration { return time.Duration(d.days) * 24 * time.Hour }

// hoursSchedule is rate(N hours). As with every rate(), the windows start at
// midnight UTC: at 00:00, N:00, 2N:00, ... of each day.
type hoursSchedule struct{ hours int }

func (h hoursSchedule) next(t time.Time) time.Time {
	day := dayOf(t)
	for start := day; start.Before(day.Add(24 * time.Hour)); start = start.Add(time.Duration(h.hours) * time.Hour) {
		if start.After(t) {
			return start
		}
	}
	return day.Add(24 * time.Hour)
}
func (h hoursSchedule) interval() time.Duration { return time.Duration(h.hours) * time.Hour }

// lastWindowStart is the start of the day's last window, as an offset from midnight.
func (h hoursSchedule) lastWindowStart() time.Duration {
	return time.Duration((23/h.hours)*h.hours) * time.Hour
}

var (
	rateRE     = regexp.MustCompile(`^rate\(\s*(\d+)\s+(hour|hours|day|days)\s*\)$`)
	cronRE     = regexp.MustCompile(`^cron\((.*)\)$`)
	durationRE = regexp.MustCompile(`^(\d+)h$`)
)

// parseRules validates RotationRules and returns the schedule they describe.
func parseRules(r *rotationRules) (schedule, error) {
	if r == nil {
		return nil, nil
	}
	var sched schedule
	switch {
	case r.AutomaticallyAfterDays != nil && r.ScheduleExpression != nil:
		return nil, errorf(excInvalidParameter, "You can't specify both AutomaticallyAfterDays and ScheduleExpression in RotationRules; use one of them.")
	case r.AutomaticallyAfterDays != nil:
		d := *r.AutomaticallyAfterDays
		if d < 1 || d > 1000 {
			return nil, errorf(excInvalidParameter, "RotationRules.AutomaticallyAfterDays must be from 1 to 1000, got %d", d)
		}
		sched = daysSchedule{int(d)}
	case r.ScheduleExpression != nil:
		var err error
		if sched, err = parseScheduleExpression(*r.ScheduleExpression); err != nil {
			return nil, err
		}
	default:
		if r.Duration != nil {
			return nil, errorf(excInvalidParameter, "RotationRules.Duration needs a schedule; set ScheduleExpression or AutomaticallyAfterDays too")
		}
		return nil, nil
	}
	if r.Duration != nil {
		m := durationRE.FindStringSubmatch(*r.Duration)
		h := 0
		if m != nil {
			h, _ = strconv.Atoi(m[1])
		}
		if m == nil || h < 1 || h > 24 {
			return nil, errorf(excInvalidParameter, "RotationRules.Duration %q is invalid; use a whole number of hours from 1h to 24h, such as 3h", *r.Duration)
		}
		win := time.Duration(h) * time.Hour
		if _, daily := sched.(daysSchedule); !daily && win >= sched.interval() {
			return nil, errorf(excInvalidParameter, "RotationRules.Duration %s must be shorter than the schedule's interval (%s), so a rotation window ends before the next begins", *r.Duration, sched.interval())
		}
		switch sc := sched.(type) {
		case *cronSchedule:
			if err := sc.checkWindow(win); err != nil {
				return nil, err
			}
		case hoursSchedule:
			if start := sc.lastWindowStart(); start+win > 24*time.Hour {
				return nil, errorf(excInvalidParameter, "RotationRules.Duration %s is too long: the window opening at %02d:00 UTC would extend into the next UTC day; shorten it", *r.Duration, int(start.Hours()))
			}
		}
	}
	return sched, nil
}

// parseScheduleExpression parses rate(N hours|days) or a 6-field AWS cron().
func parseScheduleExpression(expr string) (schedule, error) {
	expr = strings.TrimSpace(expr)
	if m := rateRE.FindStringSubmatch(expr); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n < 1 {
			return nil, errorf(excInvalidParameter, "ScheduleExpression %q has an invalid rate; use rate(N hours) with N from 4 to 23, or rate(N days) with N from 1 to 1000", expr)
		}
		if strings.HasPrefix(m[2], "hour") {
			if n < 4 || n > 23 {
				return nil, errorf(excInvalidParameter, "ScheduleExpression %q is invalid: a rate in hours must be from 4 to 23 hours (Secrets Manager rotates at most every four hours); use rate(N days) for longer intervals", expr)
			}
			return hoursSchedule{n}, nil
		}
		if n > 1000 {
			return nil, errorf(excInvalidParameter, "ScheduleExpression %q is invalid: a rate in days must be from 1 to 1000", expr)
		}
		return daysSchedule{n}, nil
	}
	if m := cronRE.FindStringSubmatch(expr); m != nil {
		c, err := parseCron(m[1])
		if err != nil {
			return nil, errorf(excInvalidParameter, "ScheduleExpression %q is invalid: %v", expr, err)
		}
		if c.interval() < minScheduleInterval {
			return nil, errorf(excInvalidParameter, "ScheduleExpression %q is invalid: it rotates more often than every four hours, the shortest interval Secrets Manager allows", expr)
		}
		return c, nil
	}
	return nil, errorf(excInvalidParameter, "ScheduleExpression %q is invalid; use rate(N hours|days) or cron(minutes hours day-of-month month day-of-week year), in UTC", expr)
}

// windowEnd is what DescribeSecret reports as NextRotationDate for a window
// that opens at start: as AWS documents it, "the latest date that rotation
// will occur", the end of the rotation window. The window is
// RotationRules.Duration; without one it closes an hour after it opens for
// a schedule in hours, and at the end of the UTC day otherwise (AWS shows
// 23:59:59). Rotations start when the window opens (Tick).
func windowEnd(r *rotationRules, start time.Time) time.Time {
	if start.IsZero() || r == nil {
		return start
	}
	if r.Duration != nil {
		if m := durationRE.FindStringSubmatch(*r.Duration); m != nil {
			if h, err := strconv.Atoi(m[1]); err == nil {
				return start.Add(time.Duration(h) * time.Hour)
			}
		}
	}
	if sched, err := parseRules(r); err == nil {
		if _, hours := sched.(hoursSchedule); hours {
			return start.Add(time.Hour)
		}
	}
	return dayOf(start).Add(24*time.Hour - time.Second)
}

// nextRotation computes the start of the next rotation window from the secret's rules and the
// time its schedule was last anchored: the later of its last rotation and the
// time rotation was configured (or, for AutomaticallyAfterDays, the value was
// last updated by hand).
func nextRotation(sec *storedSecret) time.Time {
	sched, err := parseRules(sec.Rules)
	if err != nil || sched == nil {
		return time.Time{}
	}
	base := sec.LastRotated
	if sec.RotationBase.After(base) {
		base = sec.RotationBase
	}
	if base.IsZero() {
		base = sec.Created
	}
	return sched.next(base)
}

// cronSchedule is an AWS cron expression: minutes hours day-of-month month
// day-of-week year, in UTC.
type cronSchedule struct {
	minutes, hours, months [60]bool
	years                  map[int]bool // nil: every year
	dom                    domSpec
	dow                    dowSpec
	domAny, dowAny         bool // "?" in that field
	minGap                 time.Duration
}

type domSpec struct {
	days     [32]bool
	last     bool // L
	lastOff  int  // L-n
	weekday  int  // nW, 0 if unused
	lastWeek bool // LW
}

type dowSpec struct {
	days [8]bool // 1=SUN .. 7=SAT
	last int     // nL: last weekday n of the month
	nth  [2]int  // d#n: the n-th weekday d
}

var monthNames = []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}
var dayNames = []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}

// parseCron parses the six fields of an AWS cron expression.
func parseCron(s string) (*cronSchedule, error) {
	f := strings.Fields(s)
	if len(f) != 6 {
		return nil, fmt.Errorf("want 6 fields (minutes hours day-of-month month day-of-week year), got %d", len(f))
	}
	c := &cronSchedule{}
	if err := parseList(f[0], 0, 59, nil, c.minutes[:]); err != nil {
		return nil, fmt.Errorf("minutes: %w", err)
	}
	if err := parseList(f[1], 0, 23, nil, c.hours[:]); err != nil {
		return nil, fmt.Errorf("hours: %w", err)
	}
	if err := parseList(f[3], 1, 12, monthNames, c.months[:]); err != nil {
		return nil, fmt.Errorf("month: %w", err)
	}
	if f[5] != "*" {
		var years [2200]bool
		if err := parseList(f[5], 1970, 2199, nil, years[:]); err != nil {
			return nil, fmt.Errorf("year: %w", err)
		}
		c.years = map[int]bool{}
		for y, ok := range years {
			if ok {
				c.years[y] = true
			}
		}
	}
	c.domAny, c.dowAny = f[2] == "?", f[4] == "?"
	if c.domAny == c.dowAny {
		return nil, fmt.Errorf("exactly one of day-of-month and day-of-week must be ?")
	}
	if !c.domAny {
		if err := parseDom(f[2], &c.dom); err != nil {
			return nil, fmt.Errorf("day-of-month: %w", err)
		}
	}
	if !c.dowAny {
		if err := parseDow(f[4], &c.dow); err != nil {
			return nil, fmt.Errorf("day-of-week: %w", err)
		}
	}
	c.minGap = c.measureGap()
	if c.minGap == 0 {
		return nil, fmt.Errorf("it never fires")
	}
	return c, nil
}

func parseValue(s string, names []string, lo int) (int, error) {
	for i, n := range names {
		if strings.EqualFold(s, n) {
			return lo + i, nil
		}
	}
	return strconv.Atoi(s)
}

// parseList parses a comma-separated list of *, n, a-b and x/step items into set.
func parseList(field string, lo, hi int, names []string, set []bool) error {
	for _, item := range strings.Split(field, ",") {
		rng, stepStr, hasStep := strings.Cut(item, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepStr)
			if err != nil || n < 1 {
				return fmt.Errorf("step %q is not a positive number", stepStr)
			}
			step = n
		}
		a, b := lo, hi
		switch {
		case rng == "*":
		case strings.Contains(rng, "-"):
			as, bs, _ := strings.Cut(rng, "-")
			var err1, err2 error
			a, err1 = parseValue(as, names, lo)
			b, err2 = parseValue(bs, names, lo)
			if err1 != nil || err2 != nil {
				return fmt.Errorf("range %q is not valid", rng)
			}
		default:
			v, err := parseValue(rng, names, lo)
			if err != nil {
				return fmt.Errorf("value %q is not valid", rng)
			}
			a = v
			if !hasStep {
				b = v
			}
		}
		if a < lo || b > hi || a > b {
			return fmt.Errorf("%q is out of range %d-%d", item, lo, hi)
		}
		for v := a; ; v += step {
			set[v] = true
			if step > b-v { // also stops v+step from overflowing for a huge step
				break
			}
		}
	}
	return nil
}

func parseDom(field string, d *domSpec) error {
	switch {
	case field == "L":
		d.last = true
		return nil
	case field == "LW":
		d.lastWeek = true
		return nil
	case strings.HasPrefix(field, "L-"):
		n, err := strconv.Atoi(field[2:])
		if err != nil || n < 1 || n > 30 {
			return fmt.Errorf("%q: L-n needs n from 1 to 30", field)
		}
		d.last, d.lastOff = true, n
		return nil
	case strings.HasSuffix(field, "W"):
		n, err := strconv.Atoi(strings.TrimSuffix(field, "W"))
		if err != nil || n < 1 || n > 31 {
			return fmt.Errorf("%q: nW needs n from 1 to 31", field)
		}
		d.weekday = n
		return nil
	}
	return parseList(field, 1, 31, nil, d.days[:])
}

func parseDow(field string, d *dowSpec) error {
	if a, b, ok := strings.Cut(field, "#"); ok {
		day, err1 := parseValue(a, dayNames, 1)
		n, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || day < 1 || day > 7 || n < 1 || n > 5 {
			return fmt.Errorf("%q: use d#n with d from 1-7 (or SUN-SAT) and n from 1 to 5", field)
		}
		d.nth = [2]int{day, n}
		return nil
	}
	if strings.HasSuffix(field, "L") && field != "L" {
		day, err := parseValue(strings.TrimSuffix(field, "L"), dayNames, 1)
		if err != nil || day < 1 || day > 7 {
			return fmt.Errorf("%q: use dL with d from 1-7 (or SUN-SAT)", field)
		}
		d.last = day
		return nil
	}
	if field == "L" {
		d.days[7] = true // L alone is Saturday, the last day of the week
		return nil
	}
	return parseList(field, 1, 7, dayNames, d.days[:])
}

// dayMatches reports whether the UTC date t is a firing day.
func (c *cronSchedule) dayMatches(t time.Time) bool {
	if !c.months[int(t.Month())] {
		return false
	}
	if c.years != nil && !c.years[t.Year()] {
		return false
	}
	lastDay := time.Date(t.Year(), t.Month()+1, 0, 0, 0, 0, 0, time.UTC).Day()
	if !c.domAny {
		d := c.dom
		switch {
		case d.last:
			return t.Day() == lastDay-d.lastOff
		case d.lastWeek:
			return t.Day() == nearestWeekday(t, lastDay, lastDay)
		case d.weekday > 0:
			return t.Day() == nearestWeekday(t, min(d.weekday, lastDay), lastDay)
		}
		return d.days[t.Day()]
	}
	wd := int(t.Weekday()) + 1
	switch {
	case c.dow.last > 0:
		return wd == c.dow.last && t.Day()+7 > lastDay
	case c.dow.nth[0] > 0:
		return wd == c.dow.nth[0] && (t.Day()-1)/7+1 == c.dow.nth[1]
	}
	return c.dow.days[wd]
}

// nearestWeekday is the weekday (Mon-Fri) of t's month nearest to day n,
// without leaving the month.
func nearestWeekday(t time.Time, n, lastDay int) int {
	d := time.Date(t.Year(), t.Month(), n, 0, 0, 0, 0, time.UTC)
	switch d.Weekday() {
	case time.Saturday:
		if n == 1 {
			return 3
		}
		return n - 1
	case time.Sunday:
		if n == lastDay {
			return n - 2
		}
		return n + 1
	}
	return n
}

// next returns the first firing time strictly after t, or the zero time if
// there is none within 5 years.
func (c *cronSchedule) next(t time.Time) time.Time {
	t = t.UTC().Truncate(time.Minute).Add(time.Minute)
	day := dayOf(t)
	for i := 0; i < 5*366; i++ {
		if c.dayMatches(day) {
			for h := 0; h < 24; h++ {
				if !c.hours[h] {
					continue
				}
				for m := 0; m < 60; m++ {
					if !c.minutes[m] {
						continue
					}
					at := day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
					if !at.Before(t) {
						return at
					}
				}
			}
		}
		day = day.AddDate(0, 0, 1)
	}
	return time.Time{}
}

func (c *cronSchedule) interval() time.Duration { return c.minGap }

// measureGap is the shortest time between two firings. Every firing day
// fires at the same times of day, so it is the shorter of the shortest gap
// within a day and, over consecutive firing days, the days between them
// less the span of the day's times. The firing days are looked at over
// every year of the year field, or over 2026-2054 for every year: the
// calendar repeats every 28 years from 1901 to 2099, and every year to 2199
// is one of the 14 kinds (leap or not, starting on each weekday) met there.
// A sample of the first firings is not enough: February 29 comes once in
// four years, and cron(0 1,23 1-29/2 * ? *), 22 hours or more apart in
// other months, fires at 23:00 on it and at 01:00 on March 1.
func (c *cronSchedule) measureGap() time.Duration {
	var times []time.Duration // of day, ascending
	for h := range 24 {
		for m := range 60 {
			if c.hours[h] && c.minutes[m] {
				times = append(times, time.Duration(h)*time.Hour+time.Duration(m)*time.Minute)
			}
		}
	}
	if len(times) == 0 {
		return 0
	}
	gap := time.Duration(1<<63 - 1)
	for i := 1; i < len(times); i++ {
		gap = min(gap, times[i]-times[i-1])
	}
	span := times[len(times)-1] - times[0]
	first, last := 2026, 2054
	if c.years != nil {
		first, last = 9999, 0
		for y := range c.years {
			first, last = min(first, y), max(last, y)
		}
	}
	var prev time.Time
	for y := first; y <= last; y++ {
		if c.years != nil && !c.years[y] {
			continue
		}
		for m := time.January; m <= time.December; m++ {
			if !c.months[m] {
				continue
			}
			days := time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
			for d := 1; d <= days; d++ {
				day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
				if !c.dayMatches(day) {
					continue
				}
				if !prev.IsZero() {
					gap = min(gap, day.Sub(prev)-span)
				}
				prev = day
			}
		}
	}
	if prev.IsZero() {
		return 0
	}
	return gap
}

// checkWindow rejects a rotation window that would run into the next UTC day.
func (c *cronSchedule) checkWindow(win time.Duration) error {
	for h := 23; h >= 0; h-- {
		if !c.hours[h] {
			continue
		}
		last := 59
		for !c.minutes[last] {
			last--
		}
		if time.Duration(h)*time.Hour+time.Duration(last)*time.Minute+win > 24*time.Hour {
			return errorf(excInvalidParameter, "RotationRules.Duration %s is too long: a window opening at %02d:%02d UTC would extend into the next UTC day; shorten it or start earlier", win, h, last)
		}
		return nil
	}
	return nil
}
