package watch

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/rotary-secrets/rotary/pkg/emf"
)

// Metric names of the watch's embedded-metric-format records.
const (
	MetricNamespace        = "Rotary"
	MetricCurrentAgeHours  = "CurrentAgeHours"
	MetricOverdue          = "Overdue"
	MetricStuck            = "Stuck"
	MetricCurrentLogsIn    = "CurrentLogsIn"
	MetricPreviousRefused  = "PreviousRefused"
	MetricRepaired         = "Repaired"
	MetricSecretsChecked   = "SecretsChecked"
	MetricSecretsUnhealthy = "SecretsUnhealthy"
	// MetricSecretsUnverified counts the secrets the run could not check
	// through: not described, not probed, the probe could not tell, or cut
	// off by the deadline. A watch that lost its permissions reports them
	// here, not as checked.
	MetricSecretsUnverified = "SecretsUnverified"
)

// Log messages of the watch's lines.
const (
	MsgCheck   = "watch check"
	MsgRepair  = "watch repair"
	MsgSummary = "watch run"
)

func (w *Watcher) logger() *slog.Logger {
	if w.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Log
}

// Metrics returns the check's metrics by name: only those it can tell
// (none for an error or an unchecked secret).
func (c *Check) Metrics() map[string]float64 {
	if c.State == StateError || c.State == StateUnchecked {
		return nil
	}
	m := map[string]float64{
		MetricOverdue:  b2f(c.Overdue),
		MetricStuck:    b2f(c.Stuck),
		MetricRepaired: b2f(c.Repaired),
	}
	if c.CurrentCreated != nil {
		m[MetricCurrentAgeHours] = hours(c.CurrentAge)
	}
	if c.CurrentLogsIn != nil {
		m[MetricCurrentLogsIn] = b2f(*c.CurrentLogsIn)
	}
	if c.PreviousRefused != nil {
		m[MetricPreviousRefused] = b2f(*c.PreviousRefused)
	}
	return m
}

// metricOrder is the order of the metrics in a line's directive.
var metricOrder = []string{MetricCurrentAgeHours, MetricOverdue, MetricStuck, MetricCurrentLogsIn, MetricPreviousRefused, MetricRepaired}

// logCheck writes the secret's one line: what was found, and the metrics
// as an embedded-metric-format record (dimensions SecretName and
// FunctionName, the rotation function's).
func (w *Watcher) logCheck(ctx context.Context, c *Check, now time.Time) {
	level := slog.LevelInfo
	switch {
	case c.State == StateError || c.State == StateUnchecked:
		level = slog.LevelError
	case !c.Healthy():
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("secretArn", c.SecretARN),
		slog.String("SecretName", c.name()),
		slog.String("FunctionName", c.FunctionName),
		slog.String("function", c.Function),
		slog.String("state", c.State),
	}
	if c.State != StateError && c.State != StateUnchecked {
		attrs = append(attrs,
			slog.Bool("rotationEnabled", c.RotationEnabled),
			slog.String("lastRotated", fmtTime(c.LastRotated)),
			slog.String("nextRotation", fmtTime(c.NextRotation)),
			slog.String("currentVersion", c.CurrentVersion),
		)
		if c.PendingVersion != "" {
			attrs = append(attrs, slog.String("pendingVersion", c.PendingVersion), slog.String("pendingAge", time.Duration(c.PendingAge).String()))
		}
		if r := c.Probe; r != nil {
			outcomes := make([]string, 0, len(r.Versions))
			for _, v := range r.Versions {
				outcomes = append(outcomes, v.VersionID+"="+v.Outcome)
			}
			attrs = append(attrs, slog.String("probeState", r.State), slog.Any("probes", outcomes))
		}
		if c.ProbeError != "" {
			attrs = append(attrs, slog.String("probeError", c.ProbeError))
		}
		if len(c.Reaped) > 0 {
			attrs = append(attrs, slog.Any("reaped", c.Reaped))
		}
		if c.ReapError != "" {
			attrs = append(attrs, slog.String("reapError", c.ReapError))
		}
		if c.Repair != "" {
			attrs = append(attrs, slog.String("repair", c.Repair))
		}
		if c.StateBefore != "" {
			attrs = append(attrs, slog.String("stateBefore", c.StateBefore))
		}
	}
	if len(c.Problems) > 0 {
		attrs = append(attrs, slog.Any("problems", c.Problems))
	}
	attrs = append(attrs, slog.String("advice", c.Advice))
	if c.Error != "" {
		attrs = append(attrs, slog.String("error", c.Error))
	}
	if m := c.Metrics(); m != nil {
		var ms []emf.Metric
		for _, name := range metricOrder {
			if v, ok := m[name]; ok {
				attrs = append(attrs, slog.Float64(name, v))
				ms = append(ms, emf.Metric{Name: name, Unit: "None"})
			}
		}
		attrs = append(attrs, slog.Any("_aws", emf.Directive{Timestamp: now.UnixMilli(), CloudWatchMetrics: []emf.MetricSet{{
			Namespace: MetricNamespace, Dimensions: [][]string{{"SecretName", "FunctionName"}, {"FunctionName"}}, Metrics: ms,
		}}}))
	}
	w.logger().LogAttrs(ctx, level, MsgCheck, attrs...)
}

// logSummary writes the run's line, a record with no dimension so that an
// alarm can catch a watch that stopped running.
func (w *Watcher) logSummary(ctx context.Context, res *Result) {
	level := slog.LevelInfo
	if res.Unhealthy > 0 {
		level = slog.LevelWarn
	}
	w.logger().LogAttrs(ctx, level, MsgSummary,
		slog.String("eventTime", res.Time.Format(time.RFC3339)),
		slog.Int("secrets", len(res.Secrets)),
		slog.Int(MetricSecretsChecked, res.Checked),
		slog.Int(MetricSecretsUnhealthy, res.Unhealthy),
		slog.Int(MetricSecretsUnverified, res.Unverified),
		slog.Int("secretsUnchecked", res.Unchecked),
		slog.Int("secretsRepaired", res.Repaired),
		slog.Any("_aws", emf.Directive{Timestamp: res.Time.UnixMilli(), CloudWatchMetrics: []emf.MetricSet{{
			Namespace: MetricNamespace, Dimensions: [][]string{{}},
			Metrics: []emf.Metric{{Name: MetricSecretsChecked, Unit: "None"}, {Name: MetricSecretsUnhealthy, Unit: "None"}, {Name: MetricSecretsUnverified, Unit: "None"}},
		}}}),
	)
}

// reportRepair writes the one line and sends the one notification of a
// repair or a refusal to repair.
func (w *Watcher) reportRepair(ctx context.Context, c *Check) {
	n := Notification{SecretARN: c.SecretARN, SecretName: c.name(), Outcome: c.Repair, Detail: c.RepairDetail}
	if c.Repaired {
		n.Subject = "Rotary repaired " + c.name()
		n.Message = fmt.Sprintf("The Rotary watch repaired the stuck rotation of %s (%s): %s. It is now %s.", c.name(), c.SecretARN, c.RepairDetail, c.State)
	} else {
		n.Subject = "Rotary did not repair " + c.name()
		n.Message = fmt.Sprintf("The Rotary watch did not repair %s (%s), which is %s: %s (%s). %s.", c.name(), c.SecretARN, c.State, c.RepairDetail, c.Repair, c.Advice)
	}
	attrs := []slog.Attr{
		slog.String("secretArn", c.SecretARN),
		slog.String("SecretName", c.name()),
		slog.String("FunctionName", c.FunctionName),
		slog.String("repair", c.Repair),
		slog.String("detail", c.RepairDetail),
		slog.String("state", c.State),
	}
	level := slog.LevelWarn
	if c.Repaired {
		level = slog.LevelInfo
	}
	switch {
	case !w.notifies(c):
		attrs = append(attrs, slog.String("notification", "none (notified once already, or nothing to act on yet; the alarms follow the state)"))
	case w.Notifier != nil:
		// A short context of its own: the run's may be at its deadline.
		nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err := w.Notifier.Notify(nctx, n)
		cancel()
		if err != nil {
			level = slog.LevelError
			attrs = append(attrs, slog.String("notification", "failed"), slog.String("notificationError", err.Error()))
		} else {
			attrs = append(attrs, slog.String("notification", "sent"))
		}
	default:
		attrs = append(attrs, slog.String("notification", "none (no topic)"))
	}
	w.logger().LogAttrs(ctx, level, MsgRepair, attrs...)
}

// notifies says whether a repair outcome is notified: every repair; a
// refusal or failure of a stuck rotation once, on the first run after it
// became old enough to repair; never a rotation too young to repair (it
// may be running) nor a lockout with nothing pending (the CurrentLogsIn
// alarm reports it when it changes).
func (w *Watcher) notifies(c *Check) bool {
	switch c.Repair {
	case RepairDone:
		return true
	case RepairTooYoung, RepairNotStuck:
		return false
	}
	age, after := time.Duration(c.PendingAge), w.Config.repairAfter()
	return c.PendingCreated != nil && age >= after && age < after+w.Config.interval()
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
