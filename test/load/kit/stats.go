package kit

import (
	"slices"
	"time"
)

// Latencies collects durations and answers percentiles.
type Latencies []time.Duration

// Percentile returns the p-th percentile (0 < p ≤ 100), nearest rank.
func (l Latencies) Percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	rank := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(rank, len(s)-1))]
}

// Median is the 50th percentile.
func (l Latencies) Median() time.Duration { return l.Percentile(50) }

// P99 is the 99th percentile.
func (l Latencies) P99() time.Duration { return l.Percentile(99) }

// MedianFloat is the median of xs.
func MedianFloat(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
