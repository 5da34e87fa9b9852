package controller_test

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/test/testutil"
)

// unservedResource is a transformation of a resource the API server does
// not serve: its run fails (ResourceNotFound) in one reconcile.
func unservedResource() v1alpha1.TransformationConfig {
	return v1alpha1.TransformationConfig{
		Resources:  []v1alpha1.GroupVersionResource{{Group: "widgets.example.com", Version: "v1", Resource: "widgets"}},
		Operations: []v1alpha1.TransformationOperation{{MergePatch: rawJSON(`{"metadata":{"labels":{"a":"b"}}}`)}},
	}
}

// runWith is a run of task admitted when the Task said plugin with cfg
// (the Task was edited since): its snapshot is that, not the Task's spec.
func runWith(t *testing.T, task *v1alpha1.Task, name string, plugin v1alpha1.Plugin, cfg any) *v1alpha1.TaskRun {
	t.Helper()
	run := runOf(task, name)
	run.Spec.TaskSpec = pluginSpec(t, plugin, cfg)
	return run
}

// waitForTaskStatus waits until check passes on the Task and returns it.
func waitForTaskStatus(t *testing.T, ns, name, what string, check func(*v1alpha1.Task) error) *v1alpha1.Task {
	t.Helper()
	task := &v1alpha1.Task{}
	testutil.Eventually(t, "task "+name+": "+what, func() error {
		if err := get(t, keyOf(ns, name), task); err != nil {
			return err
		}
		return check(task)
	})
	return task
}

// lastRunIs checks that the Task's status names run runName, in phase, with
// the run's own start and completion times, and counts active unfinished
// runs.
func lastRunIs(t *testing.T, runName string, phase v1alpha1.TaskPhase, active int32) func(*v1alpha1.Task) error {
	return func(task *v1alpha1.Task) error {
		run := &v1alpha1.TaskRun{}
		if err := get(t, keyOf(task.Namespace, runName), run); err != nil {
			return err
		}
		if run.Status.Phase != phase {
			return errNotYet("run %s is %q (%s)", runName, run.Status.Phase, run.Status.Message)
		}
		want := &v1alpha1.RunReference{Name: runName, Phase: phase, StartTime: run.Status.StartTime, CompletionTime: run.Status.CompletionTime}
		if got := task.Status.LastRun; !equality.Semantic.DeepEqual(got, want) || task.Status.ActiveRuns != active {
			return errNotYet("status.lastRun %+v, activeRuns %d; want %+v, %d", got, task.Status.ActiveRuns, want, active)
		}
		return nil
	}
}

// A Task's status follows its runs: the last run created (name, phase,
// start, completion as the run says) and how many have not finished.
func TestTaskStatusFollowsRuns(t *testing.T) {
	ns := parallelWithManager(t)
	task := makeTask(t, ns, "book", v1alpha1.PluginCustomImage, customImage("busybox:1.36", "true"))
	mustCreate(t, task)

	mustCreate(t, runOf(task, "run-1"))
	pod1 := waitForPod(t, ns, "run-1")
	waitForTaskStatus(t, ns, "book", "run-1 pending", lastRunIs(t, "run-1", v1alpha1.TaskPending, 1))
	setPodStatus(t, pod1, corev1.PodRunning, 0, "")
	waitForTaskStatus(t, ns, "book", "run-1 running", lastRunIs(t, "run-1", v1alpha1.TaskRunning, 1))

	mustCreate(t, runOf(task, "run-2"))
	pod2 := waitForPod(t, ns, "run-2")
	waitForTaskStatus(t, ns, "book", "run-2 pending beside run-1", lastRunIs(t, "run-2", v1alpha1.TaskPending, 2))
	setPodStatus(t, pod1, corev1.PodSucceeded, 0, "Completed")
	waitForRun(t, ns, "run-1", v1alpha1.TaskSucceeded)
	waitForTaskStatus(t, ns, "book", "run-1 finished, run-2 last", lastRunIs(t, "run-2", v1alpha1.TaskPending, 1))
	setPodStatus(t, pod2, corev1.PodFailed, 1, "Error")
	got := waitForTaskStatus(t, ns, "book", "run-2 failed", lastRunIs(t, "run-2", v1alpha1.TaskFailed, 0))
	if got.Status.LastRun.StartTime == nil || got.Status.LastRun.CompletionTime == nil {
		t.Errorf("status.lastRun = %+v, want its start and completion", got.Status.LastRun)
	}
	if got.Status.Phase != "" || len(got.Status.Conditions) != 0 {
		t.Errorf("Task status %+v carries a run's phase or conditions: those are the TaskRun's", got.Status.TaskRunStatus)
	}
}

// Of a Task's finished runs, the newest successfulRunsHistoryLimit
// succeeded and failedRunsHistoryLimit failed ones are kept: the Task's
// fields, else the installation's (Options), else 3 and 1. Older ones are
// deleted; a run that has not finished never is, however old.
func TestTaskRunHistory(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                      string
		successful, failed        *int32 // the Task's fields
		manager                   controller.Options
		wantSucceeded, wantFailed int
	}{
		{name: "task-1-1", successful: ptr.To[int32](1), failed: ptr.To[int32](1), wantSucceeded: 1, wantFailed: 1},
		{name: "defaults-3-1", wantSucceeded: 3, wantFailed: 1},
		{name: "installation-2-0", manager: controller.Options{SuccessfulRunsHistoryLimit: ptr.To[int32](2), FailedRunsHistoryLimit: ptr.To[int32](0)},
			wantSucceeded: 2, wantFailed: 0},
		{name: "task-wins-0-2", successful: ptr.To[int32](0), failed: ptr.To[int32](2),
			manager:       controller.Options{SuccessfulRunsHistoryLimit: ptr.To[int32](2), FailedRunsHistoryLimit: ptr.To[int32](0)},
			wantSucceeded: 0, wantFailed: 2},
	}
	// Created one after the other, each once the one before finished, so
	// that completion follows creation: S succeeds, F fails.
	outcomes := "SFSSFSFS"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			startManagerWith(t, ns, managerOptions{controller: tt.manager})
			task := makeTask(t, ns, "book", v1alpha1.PluginTransformation, nothingToPatch(ns))
			task.Spec.SuccessfulRunsHistoryLimit, task.Spec.FailedRunsHistoryLimit = tt.successful, tt.failed
			mustCreate(t, task)

			// The oldest run of all never finishes (no kubelet).
			mustCreate(t, runWith(t, task, "run-0", v1alpha1.PluginCustomImage, customImage("busybox:1.36", "sleep", "3600")))
			waitForPod(t, ns, "run-0")
			var succeeded, failed []string
			for i, o := range outcomes {
				name := "run-" + string(rune('1'+i))
				var cfg any = nothingToPatch(ns)
				if o == 'F' {
					cfg, failed = unservedResource(), append(failed, name)
				} else {
					succeeded = append(succeeded, name)
				}
				mustCreate(t, runWith(t, task, name, v1alpha1.PluginTransformation, cfg))
				waitForFinishedOrGone(t, ns, name)
			}
			want := append([]string{"run-0"}, succeeded[len(succeeded)-tt.wantSucceeded:]...)
			want = append(want, failed[len(failed)-tt.wantFailed:]...)
			slices.Sort(want)
			testutil.Eventually(t, "the history kept", func() error {
				if got := runNames(t, ns); !slices.Equal(got, want) {
					return errNotYet("runs %v, want %v", got, want)
				}
				return nil
			})
			last := outcomes[len(outcomes)-1]
			if last == 'S' && tt.wantSucceeded > 0 {
				waitForTaskStatus(t, ns, "book", "the last run", lastRunIs(t, "run-"+string(rune('0'+len(outcomes))), v1alpha1.TaskSucceeded, 1))
			}
			if got := runNames(t, ns); !slices.Equal(got, want) {
				t.Errorf("runs %v after the Task's status was written, want %v", got, want)
			}
		})
	}
}

// waitForFinishedOrGone waits until the run finished, or is gone: only a
// finished run is deleted for the history (the test checks which are kept).
func waitForFinishedOrGone(t *testing.T, ns, name string) {
	t.Helper()
	testutil.Eventually(t, "run "+name+" to finish", func() error {
		run := &v1alpha1.TaskRun{}
		err := get(t, keyOf(ns, name), run)
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil:
			return err
		case run.Status.Phase != v1alpha1.TaskSucceeded && run.Status.Phase != v1alpha1.TaskFailed:
			return errNotYet("phase %q", run.Status.Phase)
		}
		return nil
	})
}

// runNames lists the TaskRuns in ns, sorted.
func runNames(t *testing.T, ns string) []string {
	t.Helper()
	return listNames(t, &v1alpha1.TaskRunList{}, client.InNamespace(ns))
}

// A TaskRun is one of a Task's runs only by its controller owner reference
// to the Task's UID: one that merely carries the Task's name (taskRef, the
// task label) or an owner reference to a former Task of that name, or that
// names the Task as an owner but not as its controller, is neither counted
// in the Task's status nor deleted for its history, even when newer, and
// unfinished, than the Task's own runs.
func TestTaskNeverAdoptsOnNameOrLabel(t *testing.T) {
	ns := parallelWithManager(t)
	task := makeTask(t, ns, "book", v1alpha1.PluginTransformation, nothingToPatch(ns))
	task.Spec.SuccessfulRunsHistoryLimit, task.Spec.FailedRunsHistoryLimit = ptr.To[int32](1), ptr.To[int32](1)
	mustCreate(t, task)

	strays := []struct {
		name  string
		strip func(*v1alpha1.TaskRun)
	}{
		{name: "label-and-ref", strip: func(r *v1alpha1.TaskRun) { r.OwnerReferences = nil }},
		{name: "former-task", strip: func(r *v1alpha1.TaskRun) { r.OwnerReferences[0].UID = "00000000-0000-0000-0000-00000000f0e1" }},
		{name: "not-controller", strip: func(r *v1alpha1.TaskRun) { r.OwnerReferences[0].Controller = ptr.To(false) }},
	}
	stray := func(name string, strip func(*v1alpha1.TaskRun), plugin v1alpha1.Plugin, cfg any) {
		run := runWith(t, task, name, plugin, cfg)
		strip(run)
		mustCreate(t, run)
	}
	// Finished strays, older than the Task's own runs: counted, they would
	// be deleted as beyond the limit of one.
	for _, s := range strays {
		stray("old-"+s.name, s.strip, v1alpha1.PluginTransformation, nothingToPatch(ns))
		waitForRun(t, ns, "old-"+s.name, v1alpha1.TaskSucceeded)
	}
	mustCreate(t, runOf(task, "own-1"))
	waitForRun(t, ns, "own-1", v1alpha1.TaskSucceeded)
	mustCreate(t, runOf(task, "own-2"))
	waitForAbsent(t, keyOf(ns, "own-1"), &v1alpha1.TaskRun{}) // the Task's own beyond its limit
	// Its last own run still going, then unfinished strays newer than it:
	// counted, one would be the last run and each an active one.
	mustCreate(t, runWith(t, task, "own-3", v1alpha1.PluginCustomImage, customImage("busybox:1.36", "true")))
	pod := waitForPod(t, ns, "own-3")
	waitForTaskStatus(t, ns, "book", "own-3 pending", lastRunIs(t, "own-3", v1alpha1.TaskPending, 1))
	for _, s := range strays {
		stray("new-"+s.name, s.strip, v1alpha1.PluginCustomImage, customImage("busybox:1.36", "sleep", "3600"))
		waitForPod(t, ns, "new-"+s.name)
	}
	setPodStatus(t, pod, corev1.PodSucceeded, 0, "Completed")
	waitForTaskStatus(t, ns, "book", "own-3 last and no run active", lastRunIs(t, "own-3", v1alpha1.TaskSucceeded, 0))
	waitForAbsent(t, keyOf(ns, "own-2"), &v1alpha1.TaskRun{})
	for _, s := range strays {
		for _, name := range []string{"old-" + s.name, "new-" + s.name} {
			if err := get(t, keyOf(ns, name), &v1alpha1.TaskRun{}); err != nil {
				t.Errorf("%s: %v, want it kept: it is not the Task's", name, err)
			}
		}
	}
}
