package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// A staggered secret occupies the same hours of every UTC day it rotates
// in: a rotation window never crosses midnight UTC (Secrets Manager's
// rule), so secrets of one host whose windows cover different hours of the
// day never rotate in the same hour, whichever days their schedules pick.
//
// Stagger rewrites each schedule as a cron() expression that opens the
// window at the hour it picks:
//
//   - rate(N hours), N dividing 24: cron(0 h/N * * ? *), the window at
//     offset h of every N-hour period (the period has N hours to share);
//   - rate(1 day): cron(0 H * * ? *);
//   - rate(N days), 2 <= N <= 31: cron(0 H 1/N * ? *), days 1, 1+N, ... of
//     each month: never more than N days apart (the last gap of a month is
//     shorter);
//   - rate(N days), N > 31: cron(0 H 1 1/K ? *) on day 1 of every K-th
//     month, K = N/31 (at most 12): never more than N days apart;
//   - cron(M H ...) with one window a day (numeric minute and hour): the
//     hour is replaced, the days are kept.
//
// A rate() window always opens at midnight UTC, so without stagger every
// rate(N days) secret of a host may rotate in the same hours.

// slot is one staggered secret's shape.
type slot struct {
	index  int    // in Config.Secrets
	name   string // entry name
	window int    // hours
	period int    // hours the window recurs in: N for rate(N hours), else 24
	// expr renders the schedule with the window opening at hour h.
	expr func(h int) string
}

// StaggeredSchedules returns, with stagger: host, the schedule expression
// of every secret it moves, by entry name: the secrets of each host (see
// HostOf) that shares it with another secret. The same config always gives
// the same schedules. It fails when a host's windows do not fit in the
// hours its schedules' period has, or when a schedule cannot be moved.
func (c *Config) StaggeredSchedules() (map[string]string, error) {
	out := map[string]string{}
	if c.Stagger != StaggerHost {
		return out, nil
	}
	groups := map[string][]int{}
	for i, s := range c.Secrets {
		if h := HostOf(s); h != "" && IsDatabaseType(s.Type) {
			groups[h] = append(groups[h], i)
		}
	}
	hosts := make([]string, 0, len(groups))
	for h, members := range groups {
		if len(members) > 1 {
			hosts = append(hosts, h)
		}
	}
	sort.Strings(hosts)
	for _, host := range hosts {
		var slots []slot
		for _, i := range groups[host] {
			s := c.Secrets[i]
			sl, err := staggerSlot(s)
			if err != nil {
				return nil, fmt.Errorf("secrets[%d] (%s): field schedule: stagger: host: %w", i, s.Name, err)
			}
			sl.index = i
			slots = append(slots, sl)
		}
		starts, err := place(host, slots)
		if err != nil {
			return nil, err
		}
		for k, sl := range slots {
			out[sl.name] = sl.expr(starts[k])
		}
	}
	return out, nil
}

// place gives each slot a start hour so that no two cover one hour of the
// day: the most constrained first (shortest period, then longest window,
// then by name), each at the earliest hour that fits.
func place(host string, slots []slot) ([]int, error) {
	order := make([]int, len(slots))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		x, y := slots[order[a]], slots[order[b]]
		if x.period != y.period {
			return x.period < y.period
		}
		if x.window != y.window {
			return x.window > y.window
		}
		return x.name < y.name
	})
	var busy [24]string // hour of the day -> entry name
	starts := make([]int, len(slots))
	for _, k := range order {
		sl := slots[k]
		placed := false
		for h := 0; h+sl.window <= sl.period && !placed; h++ {
			if fits(busy, sl, h) {
				for _, hour := range hours(sl, h) {
					busy[hour] = sl.name
				}
				starts[k] = h
				placed = true
			}
		}
		if !placed {
			return nil, capacityError(host, slots, sl)
		}
	}
	return starts, nil
}

// hours are the hours of the day a slot starting at h covers.
func hours(sl slot, h int) []int {
	var out []int
	for p := 0; p < 24; p += sl.period {
		for j := 0; j < sl.window; j++ {
			out = append(out, p+h+j)
		}
	}
	return out
}

func fits(busy [24]string, sl slot, h int) bool {
	for _, hour := range hours(sl, h) {
		if busy[hour] != "" {
			return false
		}
	}
	return true
}

func capacityError(host string, slots []slot, failed slot) error {
	need := 0
	var parts []string
	for _, sl := range slots {
		h := sl.window * (24 / sl.period)
		need += h
		parts = append(parts, fmt.Sprintf("secrets[%d] (%s) %dh", sl.index, sl.name, h))
	}
	where := "of a UTC day (a rotation window cannot cross midnight UTC)"
	if failed.period < 24 {
		where = fmt.Sprintf("of its schedule's %d-hour period", failed.period)
	}
	return fmt.Errorf("field stagger: host %q has more secrets than hours available in the schedule's period: secrets[%d] (%s) finds no %dh window %s that no other secret of the host uses; the host's windows take %d hours a day of 24 (%s): shorten their windows, give some secrets another host, or set stagger: none",
		host, failed.index, failed.name, failed.window, where, need, strings.Join(parts, ", "))
}

// StaggerDays returns the cron() (with %d for the hour) that stagger uses
// for rate(n days), and so the gaps between rotations it gives:
//
//	n = 1          every day
//	2 <= n <= 6    every day (a cron cannot repeat every n days; daily keeps the age under n)
//	7 <= n <= 13   every week, on Sunday (7 days)
//	14 <= n <= 27  on the 1st and the 15th of each month (13 to 17 days)
//	28 <= n <= 59  on the 1st of each month (28 to 31 days)
//	n >= 60        on the 1st of every k-th month, k the largest of 2, 3, 4, 6, 12 with 30k <= n (59 to 62 days for k = 2 ... 365 or 366 for k = 12)
func StaggerDays(n int) string {
	switch {
	case n < 7:
		return "cron(0 %d * * ? *)"
	case n < 14:
		return "cron(0 %d ? * 1 *)"
	case n < 28:
		return "cron(0 %d 1,15 * ? *)"
	case n < 60:
		return "cron(0 %d 1 * ? *)"
	}
	k := 2
	for _, m := range []int{3, 4, 6, 12} {
		if 30*m <= n {
			k = m
		}
	}
	if k == 12 {
		return "cron(0 %d 1 1 ? *)"
	}
	return "cron(0 %d 1 1/" + strconv.Itoa(k) + " ? *)"
}

// staggerSlot reads how a secret's schedule can be moved.
func staggerSlot(s SecretConfig) (slot, error) {
	w, err := WindowHours(s.Window)
	if err != nil {
		return slot{}, err
	}
	sl := slot{name: s.Name, window: w, period: 24}
	if m := rateRe.FindStringSubmatch(s.Schedule); m != nil {
		n, _ := strconv.Atoi(m[1])
		if strings.HasPrefix(m[2], "hour") {
			if n%24 == 0 {
				n, m[2] = n/24, "days"
			} else {
				if 24%n != 0 {
					return slot{}, fmt.Errorf("%q does not divide the day, so its windows fall on other hours each day; use rate(4|6|8|12 hours) or rate(N days)", s.Schedule)
				}
				if w > n {
					return slot{}, fmt.Errorf("the %dh window is longer than the %d hours between rotations of %q; shorten window", w, n, s.Schedule)
				}
				sl.period = n
				sl.expr = func(h int) string { return fmt.Sprintf("cron(0 %d/%d * * ? *)", h, n) }
				return sl, nil
			}
		}
		// A cron cannot say "every N days": the calendar form closest to
		// it whose gaps stay even (never a 1-day gap at a month's end, as
		// 1/N in day-of-month would give): see StaggerDays.
		days := StaggerDays(n)
		sl.expr = func(h int) string { return fmt.Sprintf(days, h) }
		return sl, nil
	}
	fields := strings.Fields(strings.TrimSuffix(strings.TrimPrefix(s.Schedule, "cron("), ")"))
	if len(fields) != 6 {
		return slot{}, fmt.Errorf("%q is neither rate() nor a six-field cron()", s.Schedule)
	}
	if _, err := strconv.Atoi(fields[0]); err != nil {
		return slot{}, fmt.Errorf("%q has minute field %q; stagger moves cron() schedules with one window a day (a number for minute and hour)", s.Schedule, fields[0])
	}
	if hr, err := strconv.Atoi(fields[1]); err != nil || hr < 0 || hr > 23 {
		return slot{}, fmt.Errorf("%q has hour field %q; stagger moves cron() schedules with one window a day (a number for minute and hour): write several a day as rate(N hours)", s.Schedule, fields[1])
	}
	rest := strings.Join(fields[2:], " ")
	sl.expr = func(h int) string { return fmt.Sprintf("cron(0 %d %s)", h, rest) }
	return sl, nil
}
