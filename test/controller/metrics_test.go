package controller_test

import (
	"testing"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// The finished-Tasks counter and the duration histogram see each Task once,
// at its transition to finished, however often it is reconciled afterwards.
// Not parallel: it reads process-wide metrics, so it runs while every
// parallel test is still waiting to start.
func TestMetricsObservedOnce(t *testing.T) {
	ns := newNamespace(t)
	startManager(t, ns)
	labels := map[string]string{"plugin": string(v1alpha1.PluginCustomImage), "result": "failed"}
	finished := func() float64 { return metricValue(t, "taskgate_tasks_finished_total", labels) }
	durations := func() float64 { return metricValue(t, "taskgate_task_duration_seconds", labels) }
	finishedBefore, durationsBefore := finished(), durations()

	mustCreate(t, makeTask(t, ns, "counted", v1alpha1.PluginCustomImage, customImage("busybox:1.36", "false")))
	setPodStatus(t, waitForPod(t, ns, "counted"), corev1.PodFailed, 1, "Error")
	task := waitForTask(t, ns, "counted", v1alpha1.TaskFailed)
	eventually(t, "task counted", func() error {
		if got := finished() - finishedBefore; got != 1 {
			return errNotYet("counter moved by %v", got)
		}
		return nil
	})

	// Make the controller look at the finished Task again, and wait until it did.
	reconciles := func() float64 {
		return metricValue(t, "controller_runtime_reconcile_total", map[string]string{"controller": "task-" + string(v1alpha1.PluginCustomImage), "result": "success"})
	}
	seen := reconciles()
	if err := k8sClient.Patch(t.Context(), task, rawPatch(`{"metadata":{"labels":{"poke":"1"}}}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "another reconcile", func() error {
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

// metricValue reads a counter's value, or a histogram's sample count, from
// controller-runtime's registry for the series with exactly these labels.
func metricValue(t *testing.T, name string, labels map[string]string) float64 {
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
			if !hasLabels(m, labels) {
				continue
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
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
