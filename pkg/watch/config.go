package watch

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rotary-secrets/rotary/pkg/envflag"
)

// Environment variables of the watch function (docs/watch.md).
const (
	EnvRepair       = "ROTARY_WATCH_REPAIR"
	EnvRepairAfter  = "ROTARY_WATCH_REPAIR_AFTER"
	EnvOverdueAfter = "ROTARY_WATCH_OVERDUE_AFTER"
	EnvTopicARN     = "ROTARY_WATCH_TOPIC_ARN"
	EnvConcurrency  = "ROTARY_WATCH_CONCURRENCY"
	EnvInterval     = "ROTARY_WATCH_INTERVAL"
)

// Defaults and bounds of the settings.
const (
	DefaultRepairAfter  = time.Hour
	MinRepairAfter      = 5 * time.Minute
	DefaultOverdueAfter = time.Hour
	DefaultConcurrency  = 8
	MaxConcurrency      = 64
	DefaultInterval     = 15 * time.Minute
	// DefaultWindow is the rotation window when RotationRules.Duration is
	// unset.
	DefaultWindow = 24 * time.Hour
)

// Config is what a watch does besides checking.
type Config struct {
	// Repair heals stuck rotations (recoverSecret) for every secret whose
	// Target.Repair does not say otherwise.
	Repair bool
	// RepairAfter: a stuck rotation is repaired only when its AWSPENDING
	// version is older than this (a younger one may still be running).
	// Zero means DefaultRepairAfter.
	RepairAfter time.Duration
	// OverdueAfter is the grace after NextRotationDate plus the window
	// before a secret is overdue. Zero means DefaultOverdueAfter; a
	// negative value means none.
	OverdueAfter time.Duration
	// Concurrency is how many secrets are checked at once; zero means
	// DefaultConcurrency.
	Concurrency int
	// TopicARN is where the SNS notifier publishes; empty: no notifications.
	TopicARN string
	// Interval is how often the schedule runs the watch (zero means
	// DefaultInterval). A refusal to repair, or a failed repair, of a stuck
	// rotation is notified once: on the first run after the rotation
	// became old enough to repair (its AWSPENDING age within
	// [RepairAfter, RepairAfter+Interval)); after that the Stuck alarm
	// speaks for it, on each change of state rather than on every run.
	Interval time.Duration
}

// ConfigFromEnv reads the watch function's settings. An error names the
// variable and what it accepts, never echoing more than the setting.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{RepairAfter: DefaultRepairAfter, OverdueAfter: DefaultOverdueAfter, Concurrency: DefaultConcurrency}
	if v := strings.TrimSpace(getenv(EnvRepair)); v != "" {
		b, err := envflag.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("%s: %w", EnvRepair, err)
		}
		c.Repair = b
	}
	if v := strings.TrimSpace(getenv(EnvRepairAfter)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < MinRepairAfter {
			return c, fmt.Errorf("%s=%q: want a Go duration of at least %s (such as 1h); a younger stuck rotation may still be running", EnvRepairAfter, v, MinRepairAfter)
		}
		c.RepairAfter = d
	}
	if v := strings.TrimSpace(getenv(EnvOverdueAfter)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return c, fmt.Errorf("%s=%q: want a Go duration of 0 or more (such as 1h)", EnvOverdueAfter, v)
		}
		c.OverdueAfter = d
		if d == 0 {
			c.OverdueAfter = -1 // explicitly none
		}
	}
	if v := strings.TrimSpace(getenv(EnvConcurrency)); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxConcurrency {
			return c, fmt.Errorf("%s=%q: want a whole number from 1 to %d", EnvConcurrency, v, MaxConcurrency)
		}
		c.Concurrency = n
	}
	if v := strings.TrimSpace(getenv(EnvInterval)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute || d > 24*time.Hour {
			return c, fmt.Errorf("%s=%q: want the schedule's interval, a Go duration from 1m to 24h (such as 15m)", EnvInterval, v)
		}
		c.Interval = d
	}
	c.TopicARN = strings.TrimSpace(getenv(EnvTopicARN))
	if c.TopicARN != "" && !strings.HasPrefix(c.TopicARN, "arn:") {
		return c, fmt.Errorf("%s=%q: want an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)", EnvTopicARN, c.TopicARN)
	}
	return c, nil
}

func (c Config) repairAfter() time.Duration {
	if c.RepairAfter <= 0 {
		return DefaultRepairAfter
	}
	return c.RepairAfter
}

func (c Config) overdueAfter() time.Duration {
	switch {
	case c.OverdueAfter < 0:
		return 0
	case c.OverdueAfter == 0:
		return DefaultOverdueAfter
	}
	return c.OverdueAfter
}

func (c Config) interval() time.Duration {
	if c.Interval <= 0 {
		return DefaultInterval
	}
	return c.Interval
}

func (c Config) concurrency() int {
	switch {
	case c.Concurrency <= 0:
		return DefaultConcurrency
	case c.Concurrency > MaxConcurrency:
		return MaxConcurrency
	}
	return c.Concurrency
}
