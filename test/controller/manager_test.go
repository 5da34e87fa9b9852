package controller_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/test/testutil"
)

// appendArg is a transformation that is not idempotent: every application
// appends one more argument (and bumps the Deployment's generation), so it
// shows whether it was applied twice.
func appendArg() v1alpha1.TransformationConfig {
	return v1alpha1.TransformationConfig{
		Resources: []v1alpha1.GroupVersionResource{deploymentsGVR},
		Names:     []string{"target"},
		Operations: []v1alpha1.TransformationOperation{
			{JSONPatch: rawJSON(`[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--drill"}]`)},
		},
	}
}

// A controller stopped at any point and replaced by a new one (a crash, a
// leader change) creates no second Pod or Synchronization and patches
// nothing twice.
func TestRestartCreatesAndPatchesOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// wait decides when the first manager is stopped.
		wait func(t *testing.T, ns string)
		// settled: the first manager got through every run, so the
		// transformation must have been applied exactly once (otherwise
		// at most once: stopped between claim and result, it fails as
		// Interrupted rather than patch again).
		settled bool
	}{
		{name: "after-pod-exists", settled: true, wait: func(t *testing.T, ns string) {
			waitForPod(t, ns, "run")
			waitForRun(t, ns, "patch", v1alpha1.TaskSucceeded)
			waitForRun(t, ns, "sync", v1alpha1.TaskSucceeded)
		}},
		{name: "at-once", wait: func(*testing.T, string) {}},
		{name: "after-100ms", wait: func(*testing.T, string) { time.Sleep(100 * time.Millisecond) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			mustCreate(t, makeDeployment(ns, "target", 1, nil))
			before := &appsv1.Deployment{}
			mustGet(t, ns, "target", before)

			stop := startManager(t, ns)
			mustCreate(t, makeRun(t, ns, "run", v1alpha1.PluginCustomImage, customImage("busybox:1.36", "true")))
			mustCreate(t, makeRun(t, ns, "sync", v1alpha1.PluginRunSync, syncConfig()))
			mustCreate(t, makeRun(t, ns, "patch", v1alpha1.PluginTransformation, appendArg()))
			tt.wait(t, ns)
			stop()

			startManager(t, ns)
			setPodStatus(t, waitForPod(t, ns, "run"), corev1.PodSucceeded, 0, "Completed")
			waitForRun(t, ns, "run", v1alpha1.TaskSucceeded)
			waitForRun(t, ns, "sync", v1alpha1.TaskSucceeded)
			patch := waitForFinished(t, ns, "patch")

			assertCount(t, ns, "run", &corev1.PodList{}, 1)
			assertCount(t, ns, "sync", &v1alpha1.SynchronizationList{}, 1)
			after := &appsv1.Deployment{}
			mustGet(t, ns, "target", after)
			applied := len(after.Spec.Template.Spec.Containers[0].Args) - len(before.Spec.Template.Spec.Containers[0].Args)
			if moved := after.Generation - before.Generation; moved != int64(applied) {
				t.Errorf("generation moved %d times for %d appended args", moved, applied)
			}
			switch reason := succeededCondition(t, patch).Reason; {
			case applied > 1:
				t.Errorf("transformation applied %d times", applied)
			case reason == controller.ReasonPatched && applied != 1:
				t.Errorf("transformation Succeeded but applied %d times", applied)
			case tt.settled && reason != controller.ReasonPatched:
				t.Errorf("transformation ended %s: %s", reason, patch.Status.Message)
			case reason != controller.ReasonPatched && reason != controller.ReasonInterrupted:
				t.Errorf("transformation ended %s: %s", reason, patch.Status.Message)
			}
		})
	}
}

// A transformation whose claim is recorded but whose result is not (its
// controller died while patching) fails as Interrupted and patches nothing.
func TestTransformationInterrupted(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	mustCreate(t, makeDeployment(ns, "target", 1, nil))
	before := &appsv1.Deployment{}
	mustGet(t, ns, "target", before)

	task := makeRun(t, ns, "patch", v1alpha1.PluginTransformation, appendArg())
	mustCreate(t, task)
	// What a controller leaves behind when it stops right after claiming.
	now := metav1.Now()
	task.Status = v1alpha1.TaskRunStatus{
		Phase:          v1alpha1.TaskRunning,
		StartTime:      &now,
		Transformation: &v1alpha1.TransformationStatus{},
		Conditions: []metav1.Condition{{
			Type: v1alpha1.ConditionSucceeded, Status: metav1.ConditionUnknown,
			Reason: controller.ReasonPatching, Message: "patching objects", LastTransitionTime: now,
		}},
	}
	if err := k8sClient.Status().Update(t.Context(), task); err != nil {
		t.Fatalf("write claim: %v", err)
	}

	startManager(t, ns)
	task = waitForRun(t, ns, "patch", v1alpha1.TaskFailed)
	if c := succeededCondition(t, task); c.Reason != controller.ReasonInterrupted {
		t.Errorf("condition = %+v, want Interrupted", c)
	}
	after := &appsv1.Deployment{}
	mustGet(t, ns, "target", after)
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("deployment patched after the interruption: resourceVersion %s -> %s", before.ResourceVersion, after.ResourceVersion)
	}
}

// waitForFinished waits until the run is Succeeded or Failed.
func waitForFinished(t *testing.T, ns, name string) *v1alpha1.TaskRun {
	t.Helper()
	task := &v1alpha1.TaskRun{}
	testutil.Eventually(t, "task "+name+" to finish", func() error {
		if err := get(t, client.ObjectKey{Namespace: ns, Name: name}, task); err != nil {
			return err
		}
		if !slices.Contains([]v1alpha1.TaskPhase{v1alpha1.TaskSucceeded, v1alpha1.TaskFailed}, task.Status.Phase) {
			return errNotYet("phase %q", task.Status.Phase)
		}
		return nil
	})
	return task
}

// assertCount checks how many objects of list's kind carry the run's label.
func assertCount(t *testing.T, ns, taskName string, list client.ObjectList, want int) {
	t.Helper()
	err := k8sClient.List(t.Context(), list, client.InNamespace(ns),
		client.MatchingLabels{v1alpha1.TaskRunLabel: v1alpha1.TaskLabelValue(taskName)})
	if err != nil {
		t.Fatal(err)
	}
	if items := meta.LenList(list); items != want {
		t.Errorf("%T of task %s: %d, want %d", list, taskName, items, want)
	}
}

// A controller stopped between two attempts of a retried run (right after
// the checkpoint that records the next attempt, or as the failure is being
// judged) and replaced by a new one creates exactly one Pod per attempt and
// skips none. No kubelet: the test sets each Pod's status.
func TestRestartBetweenAttempts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// wait decides when the first manager is stopped, after attempt
		// 0's Pod was made to fail.
		wait func(t *testing.T, ns string)
	}{
		{name: "after-checkpoint", wait: func(t *testing.T, ns string) {
			testutil.Eventually(t, "attempt 1 recorded", func() error {
				task := &v1alpha1.TaskRun{}
				if err := get(t, client.ObjectKey{Namespace: ns, Name: "retry"}, task); err != nil {
					return err
				}
				if st := task.Status.CustomImage; st == nil || st.Attempt != 1 {
					return errNotYet("status %+v", task.Status.CustomImage)
				}
				return nil
			})
		}},
		{name: "at-once", wait: func(*testing.T, string) {}},
		{name: "after-50ms", wait: func(*testing.T, string) { time.Sleep(50 * time.Millisecond) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			stop := startManager(t, ns)
			mustCreate(t, makeRun(t, ns, "retry", v1alpha1.PluginCustomImage, retrying(2)))
			setPodStatus(t, waitForAttemptPod(t, ns, "retry", 0), corev1.PodFailed, 1, "Error")
			tt.wait(t, ns)
			stop()

			startManager(t, ns)
			setPodStatus(t, waitForAttemptPod(t, ns, "retry", 1), corev1.PodFailed, 2, "Error")
			setPodStatus(t, waitForAttemptPod(t, ns, "retry", 2), corev1.PodSucceeded, 0, "Completed")
			task := waitForRun(t, ns, "retry", v1alpha1.TaskSucceeded)

			want := []string{"retry-task", "retry-task-1", "retry-task-2"}
			if names := podNames(t, ns, "retry"); !slices.Equal(names, want) {
				t.Errorf("pods = %v, want exactly one per attempt %v", names, want)
			}
			wantAttempts := []string{"retry-task=1/Error", "retry-task-1=2/Error", "retry-task-2=0/Completed"}
			if a := attemptsOf(task); !slices.Equal(a, wantAttempts) {
				t.Errorf("attempts = %v, want %v", a, wantAttempts)
			}
		})
	}
}

// Every plugin has workers of its own: a run-synchronization run created
// while four transformations each patch 1,500 objects succeeds while all
// four are still patching (the ordering is the proof; the 2 s is
// checked too). With one shared pool of four workers the run-synchronization
// run would wait for a transformation to end. Not parallel: the time it
// measures should be this test's alone.
func TestPluginsHaveTheirOwnWorkers(t *testing.T) {
	ns := newNamespace(t)
	const objects, transformations = 1500, 4
	createConfigMaps(t, ns, objects, map[string]string{"bulk": "yes"})
	stop := startManagerWith(t, ns, managerOptions{controller: controller.Options{MaxConcurrentReconciles: transformations}})

	names := make([]string, transformations)
	for i := range names {
		names[i] = fmt.Sprintf("bulk-%d", i)
		cfg := v1alpha1.TransformationConfig{
			Resources:     []v1alpha1.GroupVersionResource{{Version: "v1", Resource: "configmaps", Scope: v1alpha1.ScopeNamespaced}},
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"bulk": "yes"}},
			Operations:    []v1alpha1.TransformationOperation{{MergePatch: rawJSON(fmt.Sprintf(`{"data":{%q:"done"}}`, names[i]))}},
		}
		// Four admins' transformations: each requester patches one at a
		// time (TestFairShareBetweenRequesters), so all four patch at once
		// only when they are four requesters'.
		admin := adminRequester.DeepCopy()
		admin.Username = fmt.Sprintf("admin-%d", i)
		mustCreate(t, withRequester(makeRun(t, ns, names[i], v1alpha1.PluginTransformation, cfg), admin))
	}
	for _, n := range names {
		waitForReason(t, ns, n, controller.ReasonPatching)
	}

	created := time.Now()
	mustCreate(t, makeRun(t, ns, "sync", v1alpha1.PluginRunSync, syncConfig()))
	waitForRun(t, ns, "sync", v1alpha1.TaskSucceeded)
	took := time.Since(created)
	t.Logf("the run-synchronization Task succeeded %s after it was created", took)
	for _, n := range names {
		task := &v1alpha1.TaskRun{}
		mustGet(t, ns, n, task)
		if c := succeededCondition(t, task); c.Reason != controller.ReasonPatching {
			t.Errorf("transformation %s is %s (%s) when the run-synchronization Task succeeded; want all four still patching", n, c.Reason, c.Message)
		}
	}
	if took > 2*time.Second {
		t.Errorf("run-synchronization Task took %s to succeed, want under 2s", took)
	}
	// The transformations are not waited for: 6,000 patches would only
	// slow the tests that follow. Stopping the manager cuts them short.
	stop()
}

// createConfigMaps creates n small ConfigMaps with labels, a few at a time.
func createConfigMaps(t *testing.T, ns string, n int, labels map[string]string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("cm-%04d", i), Labels: labels},
					Data: map[string]string{"i": fmt.Sprint(i)}}
				if err := k8sClient.Create(t.Context(), cm); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("create configmap: %v", err)
	}
}

// waitForReason waits until the run's Succeeded condition has reason.
func waitForReason(t *testing.T, ns, name, reason string) {
	t.Helper()
	testutil.Eventually(t, "task "+name+" to be "+reason, func() error {
		task := &v1alpha1.TaskRun{}
		if err := get(t, client.ObjectKey{Namespace: ns, Name: name}, task); err != nil {
			return err
		}
		c := meta.FindStatusCondition(task.Status.Conditions, v1alpha1.ConditionSucceeded)
		if c == nil || c.Reason != reason {
			return errNotYet("condition %+v", c)
		}
		return nil
	})
}

// One requester's long transformations cannot hold up another requester's
// run: each requester patches one transformation at a time, the others wait
// Pending without holding a worker, so another team's one-object
// transformation finishes within seconds while the first team's four big
// ones are under way (issue 20's starvation).
func TestFairShareBetweenRequesters(t *testing.T) {
	ns := newNamespace(t)
	const objects, big = 1500, 4
	createConfigMaps(t, ns, objects, map[string]string{"bulk": "yes"})
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bobs", Labels: map[string]string{"small": "yes"}}})
	stop := startManagerWith(t, ns, managerOptions{controller: controller.Options{MaxConcurrentReconciles: big}})

	patch := func(selector map[string]string, key string) v1alpha1.TransformationConfig {
		return v1alpha1.TransformationConfig{
			Resources:     []v1alpha1.GroupVersionResource{{Version: "v1", Resource: "configmaps", Scope: v1alpha1.ScopeNamespaced}},
			LabelSelector: &metav1.LabelSelector{MatchLabels: selector},
			Operations:    []v1alpha1.TransformationOperation{{MergePatch: rawJSON(fmt.Sprintf(`{"data":{%q:"done"}}`, key))}},
		}
	}
	alice := adminRequester.DeepCopy()
	alice.Username = "alice"
	for i := range big {
		name := fmt.Sprintf("alice-%d", i)
		mustCreate(t, withRequester(makeRun(t, ns, name, v1alpha1.PluginTransformation, patch(map[string]string{"bulk": "yes"}, name)), alice))
	}
	waitForReason(t, ns, "alice-0", controller.ReasonPatching)

	bob := adminRequester.DeepCopy()
	bob.Username = "bob"
	created := time.Now()
	mustCreate(t, withRequester(makeRun(t, ns, "bob", v1alpha1.PluginTransformation, patch(map[string]string{"small": "yes"}, "bob")), bob))
	waitForRun(t, ns, "bob", v1alpha1.TaskSucceeded)
	took := time.Since(created)
	t.Logf("bob's one-object transformation succeeded %s after it was created, beside alice's %d of %d objects", took, big, objects)
	if took > 5*time.Second {
		t.Errorf("bob's transformation took %s, want under 5s whatever alice runs", took)
	}
	patching := 0
	for i := range big {
		run := &v1alpha1.TaskRun{}
		mustGet(t, ns, fmt.Sprintf("alice-%d", i), run)
		switch c := succeededCondition(t, run); {
		case c.Reason == controller.ReasonPatching:
			patching++
		case c.Reason == controller.ReasonPending && !strings.Contains(c.Message, "each requester patches one at a time"):
			t.Errorf("%s pending with %q, want it waiting for alice's slot", run.Name, c.Message)
		}
	}
	if patching > 1 {
		t.Errorf("%d of alice's transformations patching at once, want at most one", patching)
	}
	stop()
}
