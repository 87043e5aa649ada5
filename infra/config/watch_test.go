package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestWatchDefaults(t *testing.T) {
	c, err := Parse([]byte(validYAML), ".")
	if err != nil {
		t.Fatal(err)
	}
	if !c.WatchEnabled() {
		t.Error("the watch is off by default for a config with secrets")
	}
	w := c.Watch
	if w.Interval != "15m" || w.Repair || w.RepairAfter != "1h" || w.OverdueAfter != "1h" || w.PerSecretAlarms {
		t.Errorf("watch defaults %+v, want interval 15m, repair off, repairAfter 1h, overdueAfter 1h, perSecretAlarms off", w)
	}
	if c.Stagger != "none" {
		t.Errorf("stagger = %q, want none", c.Stagger)
	}
	off, err := Parse([]byte(validYAML+"watch: {enabled: false}\n"), ".")
	if err != nil {
		t.Fatal(err)
	}
	if off.WatchEnabled() {
		t.Error("watch.enabled: false left the watch on")
	}
	if (&Config{}).WatchEnabled() {
		t.Error("a config without secrets has a watch")
	}
}

func TestWatchErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name, append string
		replace      [2]string
		want         []string
	}{
		{"interval too short", "watch: {interval: 2m}\n", [2]string{}, []string{"field watch.interval", `"2m"`, "5m"}},
		{"interval not minutes", "watch: {interval: 90s}\n", [2]string{}, []string{"field watch.interval", "whole number of minutes"}},
		{"interval too long", "watch: {interval: 13h}\n", [2]string{}, []string{"field watch.interval", "12h"}},
		{"interval not a duration", "watch: {interval: hourly}\n", [2]string{}, []string{"field watch.interval", "Go duration"}},
		{"repairAfter too short", "watch: {repairAfter: 1m}\n", [2]string{}, []string{"field watch.repairAfter", "at least 5m"}},
		{"repairAfter not a duration", "watch: {repairAfter: soon}\n", [2]string{}, []string{"field watch.repairAfter", "Go duration"}},
		{"overdueAfter negative", "watch: {overdueAfter: -1h}\n", [2]string{}, []string{"field watch.overdueAfter"}},
		{"unknown watch field", "watch: {intervall: 5m}\n", [2]string{}, []string{"intervall"}},
		{"repair with the watch off", "watch: {enabled: false}\n", [2]string{"    window: 3h\n", "    window: 3h\n    repair: true\n"}, []string{"secrets[1] (app)", "field repair", "watch.enabled"}},
		{"bad stagger", "stagger: hosts\n", [2]string{}, []string{"field stagger", `"hosts"`, "host"}},
		{"host on random-secret", "", [2]string{"secrets:\n", "secrets:\n  - {name: tok, type: random-secret, create: {}, schedule: rate(1 day), host: db1, readers: []}\n"}, []string{"secrets[0] (tok)", "field host", "random-secret"}},
		{"bad host", "", [2]string{"    database: pg\n    schedule: rate(30 days)", "    database: pg\n    host: 'a b'\n    schedule: rate(30 days)"}, []string{"secrets[0] (admin)", "field host"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := validYAML
			if tc.replace[0] != "" {
				if !strings.Contains(src, tc.replace[0]) {
					t.Fatalf("test setup: %q not in the valid config", tc.replace[0])
				}
				src = strings.Replace(src, tc.replace[0], tc.replace[1], 1)
			}
			_, err := Parse([]byte(src+tc.append), ".")
			if err == nil {
				t.Fatal("config accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestPerSecretAlarmsAreForSmallFleets(t *testing.T) {
	fleet := func(n int) string {
		var b strings.Builder
		b.WriteString("account: \"111122223333\"\nregion: eu-west-1\nwatch: {perSecretAlarms: true}\nsecrets:\n")
		for i := range n {
			fmt.Fprintf(&b, "  - {name: tok-%d, type: random-secret, create: {}, schedule: rate(1 day), readers: []}\n", i)
		}
		return b.String()
	}
	if _, err := Parse([]byte(fleet(MaxPerSecretAlarmSecrets)), "."); err != nil {
		t.Errorf("%d secrets with per-secret alarms: %v", MaxPerSecretAlarmSecrets, err)
	}
	_, err := Parse([]byte(fleet(MaxPerSecretAlarmSecrets+1)), ".")
	if err == nil || !strings.Contains(err.Error(), "field watch.perSecretAlarms") {
		t.Errorf("%d secrets with per-secret alarms: error %v, want one naming field watch.perSecretAlarms", MaxPerSecretAlarmSecrets+1, err)
	}
}

// staggerYAML is a config with stagger: host and the given secrets (name,
// host, schedule, window) of type postgres-single-user on database pg.
func staggerYAML(secrets ...[4]string) string {
	var b strings.Builder
	b.WriteString(`account: "111122223333"
region: eu-west-1
stagger: host
vpc: {id: vpc-0a1b2c3d4e5f60718, subnets: [{id: subnet-0a1b2c3d4e5f60001, availabilityZone: eu-west-1a}]}
databases: [{name: pg, securityGroupId: sg-0a1b2c3d4e5f60101, port: 5432}]
secrets:
`)
	for i, s := range secrets {
		host := ""
		if s[1] != "" {
			host = ", host: " + s[1]
		}
		fmt.Fprintf(&b, "  - {name: %s, type: postgres-single-user, arn: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:s%d-Ab12Cd', database: pg%s, schedule: '%s', window: %s, readers: []}\n", s[0], i, host, s[2], s[3])
	}
	return b.String()
}

func TestStaggerSpreadsEachHostsWindows(t *testing.T) {
	src := staggerYAML(
		[4]string{"a", "db1", "rate(30 days)", "2h"},
		[4]string{"b", "db1", "rate(30 days)", "2h"},
		[4]string{"c", "db1", "rate(4 hours)", "1h"},
		[4]string{"d", "db1", "cron(30 4 ? * SUN *)", "3h"},
		[4]string{"e", "db1", "rate(1 day)", "1h"},
		[4]string{"f", "db1", "rate(90 days)", "1h"},
		[4]string{"g", "db2", "rate(7 days)", "2h"},
		[4]string{"h", "db2", "rate(7 days)", "2h"},
		[4]string{"alone", "db3", "rate(30 days)", "2h"},
		[4]string{"x", "", "rate(14 days)", "4h"}, // host: the database entry pg
		[4]string{"y", "", "rate(400 days)", "4h"},
	)
	c, err := Parse([]byte(src), ".")
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.StaggeredSchedules()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		// db1: c (rate(4 hours)) first, at hour 0 of every 4; then the
		// longest window (d, 3h) at the first free hours 1-3, ...
		"c": "cron(0 0/4 * * ? *)",
		"d": "cron(0 1 ? * SUN *)",
		"a": "cron(0 5 1 * ? *)", // rate(30 days): monthly (StaggerDays)
		"b": "cron(0 9 1 * ? *)",
		"e": "cron(0 7 * * ? *)",
		"f": "cron(0 11 1 1/3 ? *)", // rate(90 days): every third month
		"g": "cron(0 0 ? * 1 *)",    // rate(7 days): every Sunday
		"h": "cron(0 2 ? * 1 *)",
		"x": "cron(0 0 1,15 * ? *)", // rate(14 days): the 1st and the 15th
		"y": "cron(0 4 1 1 ? *)",
		// "alone" is the only secret of db3: its schedule stays.
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("staggered schedules\n got %v\nwant %v", got, want)
	}
	// Whatever the assignment, no two secrets of a host share an hour of the day.
	for host, names := range map[string][]string{"db1": {"a", "b", "c", "d", "e", "f"}, "db2": {"g", "h"}, "pg": {"x", "y"}} {
		var busy [24]string
		for _, n := range names {
			s, _ := c.Secret(n)
			sl, err := staggerSlot(s)
			if err != nil {
				t.Fatal(err)
			}
			h := startHour(t, got[n])
			for _, hour := range hours(sl, h) {
				if busy[hour] != "" {
					t.Errorf("host %s: %s and %s both rotate in hour %d", host, busy[hour], n, hour)
				}
				busy[hour] = n
			}
		}
	}
	again, err := Parse([]byte(src), ".")
	if err != nil {
		t.Fatal(err)
	}
	if second, _ := again.StaggeredSchedules(); !reflect.DeepEqual(second, got) {
		t.Errorf("the same config staggered twice differs:\n%v\n%v", got, second)
	}
	none, err := Parse([]byte(strings.Replace(src, "stagger: host", "stagger: none", 1)), ".")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := none.StaggeredSchedules(); len(s) != 0 {
		t.Errorf("stagger: none moved schedules: %v", s)
	}
}

// startHour reads the hour a staggered cron() opens its window at.
func startHour(t *testing.T, expr string) int {
	t.Helper()
	f := strings.Fields(strings.TrimPrefix(expr, "cron("))
	var h int
	if _, err := fmt.Sscanf(strings.Split(f[1], "/")[0], "%d", &h); err != nil {
		t.Fatalf("%s: hour field %q", expr, f[1])
	}
	return h
}

func TestStaggerRefusesAFullHost(t *testing.T) {
	var secrets [][4]string
	for i := range 9 {
		secrets = append(secrets, [4]string{fmt.Sprintf("s%d", i), "db1", "rate(30 days)", "3h"})
	}
	// 8 windows of 3h fill the day; the 9th does not fit.
	if _, err := Parse([]byte(staggerYAML(secrets[:8]...)), "."); err != nil {
		t.Fatalf("8 secrets of 3h on one host: %v", err)
	}
	_, err := Parse([]byte(staggerYAML(secrets...)), ".")
	if err == nil {
		t.Fatal("9 windows of 3h on one host accepted")
	}
	for _, w := range []string{"field stagger", `host "db1"`, "more secrets than hours", "27 hours a day of 24", "secrets[8] (s8)"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	// rate(4 hours) leaves 4 hours per period: a fifth 1h window does not fit.
	var short [][4]string
	for i := range 5 {
		short = append(short, [4]string{fmt.Sprintf("r%d", i), "db1", "rate(4 hours)", "1h"})
	}
	_, err = Parse([]byte(staggerYAML(short...)), ".")
	if err == nil || !strings.Contains(err.Error(), "4-hour period") {
		t.Errorf("five 1h windows every 4 hours on one host: error %v, want one naming the 4-hour period", err)
	}
}

func TestStaggerRefusesSchedulesItCannotMove(t *testing.T) {
	tests := []struct{ schedule, window, want string }{
		{"rate(5 hours)", "1h", "does not divide the day"},
		{"cron(0 */6 * * ? *)", "1h", `hour field "*/6"`},
		{"cron(*/30 4 * * ? *)", "1h", `minute field "*/30"`},
		{"rate(4 hours)", "6h", "longer than the 4 hours"},
	}
	for _, tc := range tests {
		t.Run(tc.schedule, func(t *testing.T) {
			src := staggerYAML([4]string{"a", "db1", tc.schedule, tc.window}, [4]string{"b", "db1", "rate(1 day)", "1h"})
			_, err := Parse([]byte(src), ".")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "secrets[0] (a): field schedule") {
				t.Errorf("error %v, want one naming secrets[0] (a), field schedule and %q", err, tc.want)
			}
		})
	}
}
