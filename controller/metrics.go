package controller

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

var (
	tasksFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "taskgate_tasks_finished_total",
		Help: "Tasks that reached Succeeded or Failed, by plugin and result (succeeded, failed).",
	}, []string{"plugin", "result"})

	taskDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "taskgate_task_duration_seconds",
		Help: "Time from a Task's start to its completion, by plugin and result.",
		// 0.5s .. ~4.5h: transformations take seconds, custom images up to hours.
		Buckets: prometheus.ExponentialBuckets(0.5, 2, 16),
	}, []string{"plugin", "result"})
)

func init() {
	metrics.Registry.MustRegister(tasksFinished, taskDuration)
}

// observeFinished counts a Task that just became finished. The reconciler
// calls it once, after the status write that made the Task finished succeeded,
// so a retried write does not count it twice.
func observeFinished(task *v1alpha1.Task) {
	plugin, res := pluginLabel(task.Spec.Plugin), result(&task.Status)
	tasksFinished.WithLabelValues(plugin, res).Inc()
	if start, end := task.Status.StartTime, task.Status.CompletionTime; start != nil && end != nil {
		taskDuration.WithLabelValues(plugin, res).Observe(end.Sub(start.Time).Seconds())
	}
}

// pluginLabel keeps the plugin label bounded: a Task naming a plugin this
// controller does not know (the webhook bypassed) is counted as "unknown",
// so made-up names cannot grow the metrics without end.
func pluginLabel(p v1alpha1.Plugin) string {
	if slices.Contains(v1alpha1.Plugins, p) {
		return string(p)
	}
	return "unknown"
}
