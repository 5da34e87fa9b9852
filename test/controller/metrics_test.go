package controller_test

import (
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/test/testutil"
)

// taskgate_tasks counts the runs by plugin and phase as they move, and
// forgets a deleted one; a transformation's sub-second duration lands in a
// sub-second bucket; the finished counter carries the reason; the build info
// is there. Not parallel, like TestMetricsObservedOnce: the gauge counts the
// runs of every running manager, and only this test's runs now.
func TestMetricsState(t *testing.T) {
	ns := newNamespace(t)
	startManager(t, ns)
	transformation := map[string]string{"plugin": string(v1alpha1.PluginTransformation), "result": "succeeded"}
	nothingMatched := map[string]string{"plugin": string(v1alpha1.PluginTransformation), "result": "succeeded", "reason": controller.ReasonNothingMatched}
	const subSecond = 0.5
	finishedBefore := testutil.MetricValue(t, "taskgate_tasks_finished_total", nothingMatched)
	fastBefore := bucketCount(t, "taskgate_task_duration_seconds", transformation, subSecond)

	mustCreate(t, makeRun(t, ns, "pending", v1alpha1.PluginCustomImage, customImage("busybox:1.36", "true")))
	mustCreate(t, makeRun(t, ns, "running", v1alpha1.PluginCustomImage, customImage("busybox:1.36", "sleep", "60")))
	mustCreate(t, makeRun(t, ns, "failed", v1alpha1.PluginCustomImage, customImage("busybox:1.36", "false")))
	mustCreate(t, makeRun(t, ns, "empty", v1alpha1.PluginTransformation, nothingToPatch(ns)))
	// As the kubelet would: one Pod runs, one fails, one is never scheduled.
	setPodStatus(t, waitForPod(t, ns, "running"), corev1.PodRunning, 0, "")
	setPodStatus(t, waitForPod(t, ns, "failed"), corev1.PodFailed, 1, "Error")
	waitForPod(t, ns, "pending")

	gauge := func(p v1alpha1.Plugin, phase v1alpha1.TaskPhase) float64 {
		return testutil.MetricValue(t, "taskgate_tasks", map[string]string{"plugin": string(p), "phase": string(phase)})
	}
	wantGauge := func(want map[v1alpha1.TaskPhase]float64) func() error {
		return func() error {
			for phase, n := range want {
				if got := gauge(v1alpha1.PluginCustomImage, phase); got != n {
					return errNotYet("taskgate_tasks{custom-image,%s} = %v, want %v", phase, got, n)
				}
			}
			if got := gauge(v1alpha1.PluginTransformation, v1alpha1.TaskSucceeded); got != 1 {
				return errNotYet("taskgate_tasks{transformation,Succeeded} = %v, want 1", got)
			}
			return nil
		}
	}
	testutil.Eventually(t, "tasks counted by phase", wantGauge(map[v1alpha1.TaskPhase]float64{
		v1alpha1.TaskPending: 1, v1alpha1.TaskRunning: 1, v1alpha1.TaskFailed: 1, v1alpha1.TaskSucceeded: 0}))
	if testutil.FindMetric(t, "taskgate_tasks", map[string]string{"plugin": string(v1alpha1.PluginRunSync), "phase": string(v1alpha1.TaskPending)}) == nil {
		t.Error("taskgate_tasks has no run-synchronization/Pending series: every plugin and phase is reported, 0 included")
	}

	if got := testutil.MetricValue(t, "taskgate_tasks_finished_total", nothingMatched) - finishedBefore; got != 1 {
		t.Errorf("taskgate_tasks_finished_total{reason=NothingMatched} moved by %v, want 1", got)
	}
	if got := bucketCount(t, "taskgate_task_duration_seconds", transformation, subSecond) - fastBefore; got != 1 {
		t.Errorf("taskgate_task_duration_seconds{le=%v} moved by %v, want 1: the transformation took milliseconds", subSecond, got)
	}
	if m := testutil.FindMetric(t, "taskgate_build_info", map[string]string{"go_version": runtime.Version()}); m == nil || m.GetGauge().GetValue() != 1 {
		t.Errorf("taskgate_build_info{go_version=%s} = %v, want 1", runtime.Version(), m)
	}

	// A deleted run is not counted any more: nothing to drift.
	task := &v1alpha1.TaskRun{}
	mustGet(t, ns, "running", task)
	if err := k8sClient.Delete(t.Context(), task); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "deleted task not counted", wantGauge(map[v1alpha1.TaskPhase]float64{v1alpha1.TaskPending: 1, v1alpha1.TaskRunning: 0}))
}

// A transformation that matched nothing succeeds, says so in its message,
// and records a Warning Event besides its outcome's.
func TestTransformationNothingMatched(t *testing.T) {
	ns := parallelWithManager(t)

	mustCreate(t, makeRun(t, ns, "empty", v1alpha1.PluginTransformation, nothingToPatch(ns)))
	task := waitForRun(t, ns, "empty", v1alpha1.TaskSucceeded)
	const want = "matched no objects: check resources, namespaces, names and labelSelector"
	if c := succeededCondition(t, task); c.Reason != controller.ReasonNothingMatched || c.Message != want || task.Status.Message != want {
		t.Errorf("condition %s: %q, message %q; want %s: %q", c.Reason, c.Message, task.Status.Message, controller.ReasonNothingMatched, want)
	}
	if got := task.Status.Transformation; got == nil || got.Matched != 0 || got.Patched != 0 {
		t.Errorf("status.transformation = %+v, want all zero", got)
	}
	events := waitForEventsList(t, task, controller.EventNothingMatched, controller.EventSucceeded)
	for _, e := range events {
		if e.Reason == controller.EventNothingMatched && (e.Type != corev1.EventTypeWarning || e.Note != want) {
			t.Errorf("%s event: %s %q, want Warning %q", e.Reason, e.Type, e.Note, want)
		}
	}
}

// The finished-runs counter and the duration histogram see each run once,
// at its transition to finished, however often it is reconciled afterwards.
// Not parallel: it reads process-wide metrics, so it runs while every
// parallel test is still waiting to start.
func TestMetricsObservedOnce(t *testing.T) {
	ns := newNamespace(t)
	startManager(t, ns)
	labels := map[string]string{"plugin": string(v1alpha1.PluginCustomImage), "result": "failed"}
	byReason := map[string]string{"plugin": string(v1alpha1.PluginCustomImage), "result": "failed", "reason": controller.ReasonPodFailed}
	finished := func() float64 { return testutil.MetricValue(t, "taskgate_tasks_finished_total", byReason) }
	durations := func() float64 { return testutil.MetricValue(t, "taskgate_task_duration_seconds", labels) }
	seconds := func() float64 {
		return testutil.FindMetric(t, "taskgate_task_duration_seconds", labels).GetHistogram().GetSampleSum()
	}
	finishedBefore, durationsBefore, secondsBefore := finished(), durations(), seconds()
	created := time.Now()

	mustCreate(t, makeRun(t, ns, "counted", v1alpha1.PluginCustomImage, customImage("busybox:1.36", "false")))
	setPodStatus(t, waitForPod(t, ns, "counted"), corev1.PodFailed, 1, "Error")
	task := waitForRun(t, ns, "counted", v1alpha1.TaskFailed)
	testutil.Eventually(t, "task counted", func() error {
		if got := finished() - finishedBefore; got != 1 {
			return errNotYet("counter moved by %v", got)
		}
		return nil
	})
	// The observed duration is the run's own, from its creation to its
	// end: more than nothing, less than this test has waited.
	if got, most := seconds()-secondsBefore, time.Since(created).Seconds(); got <= 0 || got > most {
		t.Errorf("taskgate_task_duration_seconds grew by %vs, want the Task's duration, in (0, %v]", got, most)
	}

	// Make the controller look at the finished run again, and wait until it did.
	reconciles := func() float64 {
		return testutil.MetricValue(t, "controller_runtime_reconcile_total", map[string]string{"controller": "taskrun-" + string(v1alpha1.PluginCustomImage), "result": "success"})
	}
	seen := reconciles()
	if err := k8sClient.Patch(t.Context(), task, rawPatch(`{"metadata":{"labels":{"poke":"1"}}}`)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "another reconcile", func() error {
		if reconciles() <= seen {
			return errNotYet("no reconcile since the label change")
		}
		return nil
	})
	if got := finished() - finishedBefore; got != 1 {
		t.Errorf("taskgate_tasks_finished_total moved by %v, want 1", got)
	}
	if got := durations() - durationsBefore; got != 1 {
		t.Errorf("taskgate_task_duration_seconds observed %v times, want 1", got)
	}
}

// bucketCount is a histogram's cumulative count of observations up to le.
func bucketCount(t *testing.T, name string, labels map[string]string, le float64) uint64 {
	t.Helper()
	m := testutil.FindMetric(t, name, labels)
	for _, b := range m.GetHistogram().GetBucket() {
		if b.GetUpperBound() == le {
			return b.GetCumulativeCount()
		}
	}
	if m != nil {
		t.Fatalf("%s has no bucket le=%v", name, le)
	}
	return 0
}
