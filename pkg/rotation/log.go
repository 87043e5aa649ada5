package rotation

import (
	"context"
	"log/slog"
	"time"
)

// Metric names of the embedded-metric-format record each step writes.
const (
	MetricNamespace  = "Rotary"
	MetricDuration   = "StepDurationMs"
	MetricStepFailed = "StepFailed"
)

// emfDirective is the "_aws" member that makes a JSON log line a CloudWatch
// embedded-metric-format record: CloudWatch Logs extracts the step's
// duration and failure count as metrics, per function and per step.
type emfDirective struct {
	Timestamp         int64          `json:"Timestamp"`
	CloudWatchMetrics []emfMetricSet `json:"CloudWatchMetrics"`
}

type emfMetricSet struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []emfMetric `json:"Metrics"`
}

type emfMetric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

var emfMetrics = []emfMetricSet{{
	Namespace:  MetricNamespace,
	Dimensions: [][]string{{"FunctionName"}, {"FunctionName", "step"}},
	Metrics:    []emfMetric{{Name: MetricDuration, Unit: "Milliseconds"}, {Name: MetricStepFailed, Unit: "Count"}},
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
		slog.Any("_aws", emfDirective{Timestamp: end.UnixMilli(), CloudWatchMetrics: emfMetrics}),
	}
	if inv.note != "" {
		attrs = append(attrs, slog.String("note", inv.note))
	}
	if inv.restore != "" {
		attrs = append(attrs, slog.String("restore", inv.restore))
	}
	if r := inv.report; r != nil {
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
