package controller_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/test/testutil"
)

// withTTL sets the run's spec.ttlSecondsAfterFinished.
func withTTL(task *v1alpha1.TaskRun, seconds int32) *v1alpha1.TaskRun {
	task.Spec.TTLSecondsAfterFinished = ptr.To(seconds)
	return task
}

// nothingToPatch is a transformation that matches no object: it finishes
// (NothingMatched) in one reconcile, which makes it the quickest finished run.
func nothingToPatch(ns string) v1alpha1.TransformationConfig {
	return v1alpha1.TransformationConfig{
		Resources:  []v1alpha1.GroupVersionResource{{Version: "v1", Resource: "configmaps"}},
		Namespaces: []string{ns},
		Names:      []string{"no-such-configmap"},
		Operations: []v1alpha1.TransformationOperation{{MergePatch: rawJSON(`{"data":{"a":"b"}}`)}},
	}
}

// deletion is a run as it was when deleted, and when the deletion was seen.
type deletion struct {
	task *v1alpha1.TaskRun
	seen time.Time
}

// watchDeletion watches the run, from the version given, until it is
// deleted. A poll could miss the finished run between its last status
// write and its deletion (with a TTL of 0 there is no such moment to
// catch); the watch's DELETED event carries it as it was last stored.
func watchDeletion(t *testing.T, task *v1alpha1.TaskRun) <-chan deletion {
	t.Helper()
	wc, err := client.NewWithWatch(cp.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(t.Context(), &v1alpha1.TaskRunList{},
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: task.ResourceVersion}},
		client.InNamespace(task.Namespace), client.MatchingFields{"metadata.name": task.Name})
	if err != nil {
		t.Fatalf("watch task %s: %v", task.Name, err)
	}
	out := make(chan deletion, 1)
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			if ev.Type == watch.Deleted {
				out <- deletion{task: ev.Object.(*v1alpha1.TaskRun), seen: time.Now()}
				return
			}
		}
	}()
	return out
}

// waitForDeletion waits until the watched run is deleted and checks it had
// finished with phase, and was not deleted before its completionTime plus
// ttl.
func waitForDeletion(t *testing.T, deleted <-chan deletion, phase v1alpha1.TaskPhase, ttl time.Duration) {
	t.Helper()
	select {
	case d := <-deleted:
		if d.task.Status.Phase != phase || d.task.Status.CompletionTime == nil {
			t.Fatalf("task %s deleted in phase %q (%q), want %s", d.task.Name, d.task.Status.Phase, d.task.Status.Message, phase)
		}
		if due := d.task.Status.CompletionTime.Add(ttl); d.seen.Before(due) {
			t.Errorf("task %s deleted at %s, before its completionTime %s plus its TTL %s", d.task.Name, d.seen, d.task.Status.CompletionTime, ttl)
		}
	case <-time.After(testutil.WaitTimeout):
		t.Fatalf("no deletion within %s", testutil.WaitTimeout)
	}
}

// created creates task and returns a watch for its deletion.
func created(t *testing.T, task *v1alpha1.TaskRun) <-chan deletion {
	t.Helper()
	mustCreate(t, task)
	return watchDeletion(t, task)
}

// stillThere checks, for wait (at least once), that the run is not deleted.
func stillThere(t *testing.T, task *v1alpha1.TaskRun, wait time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(wait); ; time.Sleep(testutil.PollInterval) {
		if err := get(t, client.ObjectKeyFromObject(task), &v1alpha1.TaskRun{}); err != nil {
			t.Fatalf("task %s: %v, want it kept", task.Name, err)
		}
		if time.Now().After(deadline) {
			return
		}
	}
}

// spec.ttlSecondsAfterFinished: the finished run goes after its TTL, its
// binding removed first and its children owned by it (envtest runs no
// garbage collector, so that they go with it is the owner reference the
// collector follows after the background-propagation delete). A run without
// TTL, in a manager without default, stays.
func TestTTLFromSpec(t *testing.T) {
	ns := parallelWithManager(t)

	cfg := customImage("bitnami/kubectl:1.37", "kubectl", "get", "nodes")
	cfg.ClusterRole = "view"
	ttlDeleted := created(t, withTTL(makeRun(t, ns, "ttl", v1alpha1.PluginCustomImage, cfg), 2))
	mustCreate(t, makeRun(t, ns, "kept", v1alpha1.PluginTransformation, nothingToPatch(ns)))
	pod := waitForPod(t, ns, "ttl")
	task := &v1alpha1.TaskRun{}
	mustGet(t, ns, "ttl", task)
	sa := &corev1.ServiceAccount{}
	mustGet(t, ns, pod.Spec.ServiceAccountName, sa)
	isControlledBy(t, pod, task)
	isControlledBy(t, sa, task)

	setPodStatus(t, pod, corev1.PodSucceeded, 0, "Completed") // as the kubelet would
	waitForDeletion(t, ttlDeleted, v1alpha1.TaskSucceeded, 2*time.Second)
	crb := v1alpha1.ClusterRoleBindingName(ns, "ttl")
	if err := get(t, client.ObjectKey{Name: crb}, &rbacv1.ClusterRoleBinding{}); !apierrors.IsNotFound(err) {
		t.Errorf("binding %s: %v, want it removed before the Task went", crb, err)
	}
	kept := waitForRun(t, ns, "kept", v1alpha1.TaskSucceeded)
	stillThere(t, kept, 3*time.Second)
}

// --finished-task-ttl applies to runs without ttlSecondsAfterFinished; the
// spec wins where set; a run that has not finished is never deleted, even
// with a TTL of 0.
func TestTTLManagerDefault(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerWith(t, ns, managerOptions{controller: controller.Options{FinishedTaskTTL: time.Second}})

	defaultDeleted := created(t, makeRun(t, ns, "default", v1alpha1.PluginTransformation, nothingToPatch(ns)))
	mustCreate(t, withTTL(makeRun(t, ns, "longer", v1alpha1.PluginTransformation, nothingToPatch(ns)), 3600))
	runningDeleted := created(t, withTTL(makeRun(t, ns, "running", v1alpha1.PluginCustomImage, customImage("busybox:1.36", "sleep", "60")), 0))

	waitForDeletion(t, defaultDeleted, v1alpha1.TaskSucceeded, time.Second)
	longer := waitForRun(t, ns, "longer", v1alpha1.TaskSucceeded)
	setPodStatus(t, waitForPod(t, ns, "running"), corev1.PodRunning, 0, "") // as the kubelet would
	running := waitForRun(t, ns, "running", v1alpha1.TaskRunning)
	stillThere(t, running, 3*time.Second)
	stillThere(t, longer, 0)

	// Finished, with a TTL of 0: at once.
	setPodStatus(t, waitForPod(t, ns, "running"), corev1.PodSucceeded, 0, "Completed")
	waitForDeletion(t, runningDeleted, v1alpha1.TaskSucceeded, 0)
}

// The CRD's schema refuses a negative TTL (the webhook's schemas cover
// spec.config only), and the TTL is part of the immutable spec.
func TestTTLValidation(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)

	err := k8sClient.Create(t.Context(), withTTL(makeRun(t, ns, "negative", v1alpha1.PluginTransformation, nothingToPatch(ns)), -1))
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.ttlSecondsAfterFinished") ||
		!strings.Contains(err.Error(), "greater than or equal to 0") {
		t.Errorf("negative ttlSecondsAfterFinished: %v, want Invalid on spec.ttlSecondsAfterFinished", err)
	}

	task := withTTL(makeRun(t, ns, "fixed", v1alpha1.PluginTransformation, nothingToPatch(ns)), 60)
	mustCreate(t, task)
	err = k8sClient.Patch(t.Context(), task, rawPatch(`{"spec":{"ttlSecondsAfterFinished":5}}`))
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec is immutable") {
		t.Errorf("changing ttlSecondsAfterFinished: %v, want the spec's immutability refusal", err)
	}
}

// `kubectl explain` documents the field from the CRD's schema.
func TestTTLExplained(t *testing.T) {
	t.Parallel()
	bin, path := filepath.Join(testutil.AssetsDir(), "kubectl"), cp.Kubeconfig
	// The API server publishes a new CRD's OpenAPI a moment after it
	// installed it.
	testutil.Eventually(t, "kubectl explain", func() error {
		ctx, cancel := context.WithTimeout(t.Context(), testutil.WaitTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "--kubeconfig", path, "explain", "taskrun.spec.ttlSecondsAfterFinished").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "FIELD: ttlSecondsAfterFinished <integer>") ||
			!strings.Contains(string(out), "--finished-task-ttl") {
			return errNotYet("kubectl explain taskrun.spec.ttlSecondsAfterFinished: %v\n%s", err, out)
		}
		return nil
	})
}
