package controller_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/test/testutil"
)

// Every plugin has workers of its own: a run-synchronization Task created
// while four transformations each patch 1,500 objects succeeds while all
// four are still patching (the ordering is the proof; the 2 s is
// checked too). With one shared pool of four workers the run-synchronization
// Task would wait for a transformation to end. Not parallel: the time it
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
		mustCreate(t, makeTask(t, ns, names[i], v1alpha1.PluginTransformation, cfg))
	}
	for _, n := range names {
		waitForReason(t, ns, n, controller.ReasonPatching)
	}

	created := time.Now()
	mustCreate(t, makeTask(t, ns, "sync", v1alpha1.PluginRunSync, syncConfig()))
	waitForTask(t, ns, "sync", v1alpha1.TaskSucceeded)
	took := time.Since(created)
	t.Logf("the run-synchronization Task succeeded %s after it was created", took)
	for _, n := range names {
		task := &v1alpha1.Task{}
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

// waitForReason waits until the Task's Succeeded condition has reason.
func waitForReason(t *testing.T, ns, name, reason string) {
	t.Helper()
	testutil.Eventually(t, "task "+name+" to be "+reason, func() error {
		task := &v1alpha1.Task{}
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
