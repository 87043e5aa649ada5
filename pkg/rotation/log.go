package rotation

import (
	"context"
	"log/slog"
	"time"

	"github.com/rotary-secrets/rotary/pkg/emf"
)

// Metric names of the embedded-metric-format record each step writes.
const (
	MetricNamespace  = "Rotary"
	MetricDuration   = "StepDurationMs"
	MetricStepFailed = "StepFailed"
)

var emfMetrics = []emf.MetricSet{{
	Namespace:  MetricNamespace,
	Dimensions: [][]string{{"FunctionName"}, {"FunctionName", "step"}},
	Metrics:    []emf.Metric{{Name: MetricDuration, Unit: "Milliseconds"}, {Name: MetricStepFailed, Unit: "Count"}},
}}

// logStep writes the step's one log line: secret ARN, step, version token,
// outcome and duration, plus the metric directive. It goes through the
// scrubbing handler with the invocation's context.
func (h *Handler) logStep(ctx context.Context, inv *invocation, start time.Time, err *StepError) {
	end := h.now()
	ms := float64(end.Sub(start).Microseconds()) / 1000
	outcome, failed, level := "succeeded", 0, slog.LevelInfo
	if err != nil {
		outcome, failed, level = "failed", 1, slog.LevelError
	}
	attrs := []slog.Attr{
		slog.String("secretArn", inv.arn),
		slog.String("step", inv.ev.Step),
		slog.String("token", inv.ev.ClientRequestToken),
		slog.String("outcome", outcome),
		slog.Float64(MetricDuration, ms),
		slog.Int(MetricStepFailed, failed),
		slog.String("FunctionName", h.function),
		slog.Any("_aws", emf.Directive{Timestamp: end.UnixMilli(), CloudWatchMetrics: emfMetrics}),
	}
	if inv.note != "" {
		attrs = append(attrs, slog.String("note", inv.note))
	}
	if inv.restore != "" {
		attrs = append(attrs, slog.String("restore", inv.restore))
	}
	if inv.reap != "" {
		attrs = append(attrs, slog.String("reap", inv.reap))
	}
	if r := inv.report; r != nil && r.Action == ActionReap {
		attrs = append(attrs, slog.String("action", r.Action), slog.Any("reaped", r.Reaped), slog.Int("reapKept", r.ReapKept))
	} else if r != nil {
		outcomes := make([]string, 0, len(r.Versions))
		for _, v := range r.Versions {
			outcomes = append(outcomes, v.VersionID+"="+v.Outcome)
		}
		attrs = append(attrs, slog.String("state", r.State), slog.String("plan", r.Plan), slog.Any("probes", outcomes), slog.String("summary", r.Summary))
		if r.Action != "" {
			attrs = append(attrs, slog.String("action", r.Action))
		}
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	if inv.stack != "" {
		attrs = append(attrs, slog.String("stack", inv.stack))
	}
	h.log.LogAttrs(ctx, level, "rotation step", attrs...)
}
