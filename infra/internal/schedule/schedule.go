// Package schedule computes how far apart the windows of a Secrets Manager
// rotation schedule open, so that the CDK app can refuse a credential
// lifetime that a rotation would not outlive.
package schedule

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// span is how much calendar MaxInterval walks for a cron() expression:
// eight years hold two leap days four years apart (a cron of February 29
// fires every four years) and every weekday on every date.
const span = 8

var rateRe = regexp.MustCompile(`^rate\((\d+) (hour|hours|day|days)\)$`)

// MaxInterval is the longest time between the openings of two consecutive
// rotation windows of expr: N hours or days for rate(N hours|days), the
// longest gap between two firings for a cron(...) expression (AWS's six
// fields: minutes hours day-of-month month day-of-week year; numbers,
// names, *, ?, ranges, lists, steps, L in day-of-month, n#k and nL in
// day-of-week). A rotation may start anywhere in its window, so a
// credential made at the opening of one window must live MaxInterval plus
// the window to reach the end of the next one.
func MaxInterval(expr string) (time.Duration, error) {
	if m := rateRe.FindStringSubmatch(expr); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n < 1 {
			return 0, fmt.Errorf("%q: the rate must be a positive number", expr)
		}
		d := time.Duration(n) * time.Hour
		if strings.HasPrefix(m[2], "day") {
			d *= 24
		}
		return d, nil
	}
	if !strings.HasPrefix(expr, "cron(") || !strings.HasSuffix(expr, ")") {
		return 0, fmt.Errorf("%q is neither rate(N hours|days) nor cron(...)", expr)
	}
	c, err := parseCron(strings.TrimSuffix(strings.TrimPrefix(expr, "cron("), ")"))
	if err != nil {
		return 0, fmt.Errorf("%q: %w", expr, err)
	}
	// A fixed start keeps synths deterministic; 2024 is a leap year.
	first := 2024
	if c.years != nil {
		first = 2199
		for y := range c.years {
			first = min(first, y)
		}
	}
	start := time.Date(first, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(span, 0, 0)
	var prev time.Time
	var longest time.Duration
	fired := 0
	for day := start; day.Before(end); day = day.AddDate(0, 0, 1) {
		if !c.matchesDay(day) {
			continue
		}
		for _, h := range c.hours {
			for _, m := range c.minutes {
				at := day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
				if fired > 0 && at.Sub(prev) > longest {
					longest = at.Sub(prev)
				}
				prev = at
				fired++
			}
		}
	}
	if fired < 2 {
		return 0, fmt.Errorf("%q fires fewer than twice in %d years, so it has no interval to check a lifetime against; use rate(N days) or a cron() that repeats", expr, span)
	}
	return longest, nil
}

// cron is a parsed cron expression.
type cron struct {
	minutes, hours []int
	dom            map[int]bool // day of month 1-31
	lastDOM        bool         // L: the last day of the month
	anyDOM         bool         // * or ?
	months         map[int]bool // 1-12
	dow            map[int]bool // 1-7, SUN-SAT
	nthDOW         map[[2]int]bool
	lastDOW        map[int]bool // nL: the last weekday n of the month
	anyDOW         bool
	years          map[int]bool // nil: every year
}

var (
	monthNames = map[string]int{"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6, "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12}
	dayNames   = map[string]int{"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
)

func parseCron(body string) (*cron, error) {
	f := strings.Fields(body)
	if len(f) != 6 {
		return nil, errors.New("want six fields: minutes hours day-of-month month day-of-week year")
	}
	c := &cron{}
	mins, err := values(f[0], 0, 59, nil)
	if err != nil {
		return nil, fmt.Errorf("minutes %q: %w", f[0], err)
	}
	hours, err := values(f[1], 0, 23, nil)
	if err != nil {
		return nil, fmt.Errorf("hours %q: %w", f[1], err)
	}
	c.minutes, c.hours = sorted(mins), sorted(hours)
	switch f[2] {
	case "*", "?":
		c.anyDOM = true
	case "L":
		c.lastDOM = true
	default:
		if strings.ContainsAny(f[2], "LW") {
			return nil, fmt.Errorf("day-of-month %q: W (nearest weekday) and L with an offset are not supported here; use a day, a range, a list, L or *", f[2])
		}
		if c.dom, err = values(f[2], 1, 31, nil); err != nil {
			return nil, fmt.Errorf("day-of-month %q: %w", f[2], err)
		}
	}
	if c.months, err = values(f[3], 1, 12, monthNames); err != nil {
		return nil, fmt.Errorf("month %q: %w", f[3], err)
	}
	switch {
	case f[4] == "*" || f[4] == "?":
		c.anyDOW = true
	case strings.Contains(f[4], "#"):
		c.nthDOW = map[[2]int]bool{}
		for _, part := range strings.Split(f[4], ",") {
			d, n, ok := strings.Cut(part, "#")
			wd, err1 := weekday(d)
			k, err2 := strconv.Atoi(n)
			if !ok || err1 != nil || err2 != nil || k < 1 || k > 5 {
				return nil, fmt.Errorf("day-of-week %q: want DAY#N, N from 1 to 5", f[4])
			}
			c.nthDOW[[2]int{wd, k}] = true
		}
	case strings.HasSuffix(f[4], "L"):
		wd, err := weekday(strings.TrimSuffix(f[4], "L"))
		if err != nil {
			return nil, fmt.Errorf("day-of-week %q: want DAYL (the last DAY of the month)", f[4])
		}
		c.lastDOW = map[int]bool{wd: true}
	default:
		if c.dow, err = values(f[4], 1, 7, dayNames); err != nil {
			return nil, fmt.Errorf("day-of-week %q: %w", f[4], err)
		}
	}
	if f[5] != "*" && f[5] != "?" {
		if c.years, err = values(f[5], 1970, 2199, nil); err != nil {
			return nil, fmt.Errorf("year %q: %w", f[5], err)
		}
	}
	return c, nil
}

func weekday(s string) (int, error) {
	if d, ok := dayNames[strings.ToUpper(s)]; ok {
		return d, nil
	}
	d, err := strconv.Atoi(s)
	if err != nil || d < 1 || d > 7 {
		return 0, errors.New("not a weekday")
	}
	return d, nil
}

// values parses a cron field of numbers (or names) from lo to hi: *, a,
// a-b, a/s, a-b/s, */s, and lists of those.
func values(field string, lo, hi int, names map[string]int) (map[int]bool, error) {
	num := func(s string) (int, error) {
		if v, ok := names[strings.ToUpper(s)]; ok {
			return v, nil
		}
		v, err := strconv.Atoi(s)
		if err != nil || v < lo || v > hi {
			return 0, fmt.Errorf("%q is not a value from %d to %d", s, lo, hi)
		}
		return v, nil
	}
	out := map[int]bool{}
	for _, part := range strings.Split(field, ",") {
		rng, step := part, 1
		if r, s, ok := strings.Cut(part, "/"); ok {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("step %q is not a positive number", s)
			}
			rng, step = r, n
		}
		from, to := lo, hi
		switch {
		case rng == "*":
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			var err error
			if from, err = num(a); err != nil {
				return nil, err
			}
			if to, err = num(b); err != nil {
				return nil, err
			}
			if to < from {
				return nil, fmt.Errorf("range %q runs backwards", rng)
			}
		default:
			v, err := num(rng)
			if err != nil {
				return nil, err
			}
			from = v
			if step == 1 {
				to = v
			}
		}
		for v := from; v <= to; v += step {
			out[v] = true
		}
	}
	return out, nil
}

func sorted(m map[int]bool) []int {
	var out []int
	for v := 0; v <= 59; v++ {
		if m[v] {
			out = append(out, v)
		}
	}
	return out
}

// matchesDay reports whether the expression fires on day (UTC midnight).
func (c *cron) matchesDay(day time.Time) bool {
	if c.years != nil && !c.years[day.Year()] {
		return false
	}
	if !c.months[int(day.Month())] {
		return false
	}
	last := day.AddDate(0, 1, -day.Day()).Day()
	domOK := c.anyDOM || c.lastDOM && day.Day() == last || c.dom[day.Day()]
	wd := int(day.Weekday()) + 1
	dowOK := c.anyDOW || c.dow[wd] || c.nthDOW[[2]int{wd, (day.Day()-1)/7 + 1}] || c.lastDOW[wd] && day.Day()+7 > last
	return domOK && dowOK
}
