// Package emf holds the CloudWatch embedded metric format directive: the
// "_aws" member that makes a JSON log line a metrics record, from which
// CloudWatch Logs extracts the named top-level numbers as metrics. The
// engine's step lines and the watch's lines share it. It imports nothing
// of Rotary.
package emf

// Directive is the "_aws" member of a line.
type Directive struct {
	// Timestamp is in milliseconds since the Unix epoch.
	Timestamp         int64       `json:"Timestamp"`
	CloudWatchMetrics []MetricSet `json:"CloudWatchMetrics"`
}

// MetricSet names the metrics of a line and the dimension sets they are
// recorded under; every metric and every dimension must be a top-level
// member of the line.
type MetricSet struct {
	Namespace  string     `json:"Namespace"`
	Dimensions [][]string `json:"Dimensions"`
	Metrics    []Metric   `json:"Metrics"`
}

// Metric is a metric's name and unit ("None", "Count", "Milliseconds").
type Metric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}
