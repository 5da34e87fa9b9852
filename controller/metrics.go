package controller

import (
	"runtime"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/registry"
)

var (
	tasksFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "taskgate_tasks_finished_total",
		Help: "runs that reached Succeeded or Failed, by plugin, result (succeeded, failed) and reason " +
			"(the Succeeded condition's reason, e.g. PodFailed, Timeout, PodRejected; \"other\" for one this version does not know).",
	}, []string{"plugin", "result", "reason"})

	taskDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "taskgate_task_duration_seconds",
		Help: "Time from a run's start to its completion, by plugin and result; " +
			"measured on the controller's clock where the same process started the run, else from the whole-second status timestamps.",
		// 25 ms .. 4 h: a transformation or run-synchronization takes
		// milliseconds to seconds, a custom image up to hours.
		Buckets: []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400},
	}, []string{"plugin", "result"})

	buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "taskgate_build_info",
		Help: "Always 1: the taskgate version and the Go version it was built with, as labels.",
	}, []string{"version", "go_version"})
)

func init() {
	metrics.Registry.MustRegister(tasksFinished, taskDuration, buildInfo, tasks)
	SetBuildVersion("unknown")
}

// SetBuildVersion sets the version label of taskgate_build_info (the
// binary's version, as `taskgate version` prints it). Until it is called
// the label says "unknown".
func SetBuildVersion(version string) {
	buildInfo.Reset()
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
}

// observeFinished counts a run that just became finished, and observes
// how long it took (d, when timed). The reconciler calls it once, after the
// status write that made the run finished succeeded, so a retried write
// does not count it twice.
func observeFinished(run *v1alpha1.TaskRun, d time.Duration, timed bool) {
	plugin, res := registry.Label(run.Plugin()), result(&run.Status)
	tasksFinished.WithLabelValues(plugin, res, finishReason(&run.Status)).Inc()
	if timed {
		taskDuration.WithLabelValues(plugin, res).Observe(d.Seconds())
	}
}

// finishReason is the reason label of a finished Task: its Succeeded
// condition's reason when it is one of this controller's (finishReasons),
// else "other", so that the label stays bounded whatever a status says.
func finishReason(status *v1alpha1.TaskRunStatus) string {
	c := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionSucceeded)
	if c != nil && slices.Contains(finishReasons, c.Reason) {
		return c.Reason
	}
	return "other"
}

// finishReasons are the reasons a run can finish with: every condition
// reason in reasons.go but the in-progress ones (TestFinishReasons keeps the
// two in step).
var finishReasons = []string{
	ReasonCompleted, ReasonPatched, ReasonNothingMatched, ReasonSynchronizationCreated, ReasonSynchronizationSucceeded,
	ReasonInvalidConfig, ReasonUnknownPlugin, ReasonPodFailed, ReasonTimeout, ReasonPodDeleted, ReasonNameConflict,
	ReasonServiceAccountReplaced, ReasonBindForbidden, ReasonForbidden, ReasonPodRejected, ReasonNoRequester,
	ReasonScopeChanged, ReasonTooManyObjects, ReasonResourceNotFound, ReasonPatchFailed, ReasonInterrupted,
	ReasonSynchronizationFailed, ReasonSynchronizationNotServed, ReasonConcurrencyForbidden, ReasonNoSnapshot,
}
