package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	admissionRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "taskgate_admission_requests_total",
		Help: "Admission requests by webhook (mutate, validate), kind (Task, TaskRun), plugin, operation and verdict (allowed, denied, error).",
	}, []string{"webhook", "kind", "plugin", "operation", "verdict"})
	admissionDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "taskgate_admission_duration_seconds",
		Help:    "Time taskgate spent deciding on an admission request (a Task or a TaskRun), by webhook.",
		Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
	}, []string{"webhook"})
	accessReviewCache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "taskgate_access_review_cache_total",
		Help: "Access checks answered from the cache of SubjectAccessReview answers (result hit) or sent to the API server (miss), by verdict (allowed, denied, error; errors are never cached); absent with --access-review-cache-ttl=0.",
	}, []string{"result", "verdict"})
)

func init() {
	metrics.Registry.MustRegister(admissionRequests, admissionDuration, accessReviewCache)
}
