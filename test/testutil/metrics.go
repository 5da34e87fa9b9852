package testutil

import (
	"testing"

	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// FindMetric gathers controller-runtime's registry (where taskgate's
// webhooks and controller register their metrics, in this process) and
// returns the series of name whose labels include these, or nil.
func FindMetric(t testing.TB, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, labels) {
				return m
			}
		}
	}
	return nil
}

// MetricValue is a counter's or a gauge's value, or a histogram's sample
// count, of the series FindMetric finds (0 when there is none).
func MetricValue(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	m := FindMetric(t, name, labels)
	switch {
	case m == nil:
		return 0
	case m.GetHistogram() != nil:
		return float64(m.GetHistogram().GetSampleCount())
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return m.GetCounter().GetValue()
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	matched := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			matched++
		}
	}
	return matched == len(want)
}
