package drills_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/load/kit"
	"github.com/astronetes/taskgate/test/testutil"
)

// patchFinalizer is what the drills' transformations add: a JSON patch
// "add" to a list, which a second application would add twice.
const patchFinalizer = "drills.taskgate.test/patched"

// transformTarget creates the ConfigMap a transformation run patches,
// with a finalizer already in the list the patch appends to (envtest has
// no namespace controller, so it blocks nothing).
func transformTarget(t *testing.T, ns, name string, labels map[string]string) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels,
		Finalizers: []string{"drills.taskgate.test/keep"}}}
	if err := cp.Client.Create(t.Context(), cm); err != nil {
		t.Fatalf("create configmap %s: %v", name, err)
	}
	return cm
}

// transformRun is a one-off TaskRun (each targets a ConfigMap of its own)
// that patches the ConfigMap named target once: a JSON patch that appends
// patchFinalizer to its finalizers.
func transformRun(ns, name, target string) *v1alpha1.TaskRun {
	cfg := fmt.Sprintf(`{"resources":[{"version":"v1","resource":"configmaps"}],"names":[%q],`+
		`"operations":[{"jsonPatch":[{"op":"add","path":"/metadata/finalizers/-","value":%q}]}]}`, target, patchFinalizer)
	return kit.NewInlineRun(ns, name, &v1alpha1.PluginSpec{Plugin: v1alpha1.PluginTransformation, Config: runtime.RawExtension{Raw: []byte(cfg)}})
}

// timesPatched is how often patchFinalizer is in the ConfigMap's finalizers.
func timesPatched(t *testing.T, ns, name string) int {
	t.Helper()
	cm := &corev1.ConfigMap{}
	if err := cp.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, cm); err != nil {
		t.Fatalf("get configmap %s: %v", name, err)
	}
	n := 0
	for _, f := range cm.Finalizers {
		if f == patchFinalizer {
			n++
		}
	}
	return n
}

// TestKillDuringPatch: a transformation's patch is held in flight by an
// admission webhook while `taskgate manager` is killed with SIGKILL; the
// manager started again must not patch a second time: the TaskRun ends
// Failed/Interrupted, the API server was sent the patch exactly once (the
// hook counts), and the list it appends to holds the patch at most once
// (whether the held request was applied once its client was gone is the
// API server's business; a second one never is).
func TestKillDuringPatch(t *testing.T) {
	ns := newNamespace(t, "interrupt")
	labels := map[string]string{holdLabel: "true"}
	probe := transformTarget(t, ns, "probe", labels)
	hooks := newHoldHook(t, ns, probe)
	transformTarget(t, ns, "target", labels)
	patch := hooks.expect("configmaps", ns, "target")

	mgr := startManager(t, "1")
	if err := mgr.WaitOutput("Starting workers", time.Minute); err != nil {
		t.Fatal(err)
	}
	task := transformRun(ns, "patch-once", "target")
	if err := admin.Client.Create(t.Context(), task); err != nil {
		t.Fatalf("create taskrun: %v", err)
	}
	waitHeld(t, time.Minute, map[string]*hold{"the patch of configmap target": patch})
	mgr.Kill()

	// The precondition, read from the API server with the manager dead:
	// the TaskRun is claimed and has no result.
	if err := cp.Client.Get(t.Context(), client.ObjectKeyFromObject(task), task); err != nil {
		t.Fatal(err)
	}
	if isTerminal(task) {
		t.Fatalf("when the kill landed the TaskRun was %s already (%s): the drill proves nothing", task.Status.Phase, task.Status.Message)
	}
	if task.Status.Transformation == nil {
		t.Errorf("when the kill landed, with the patch in flight, the API server held no claim (status.transformation) for the TaskRun")
	}
	patch.Release()

	startManager(t, "2")
	testutil.EventuallyEvery(t, time.Minute, 100*time.Millisecond, "the TaskRun to finish", func() error {
		if err := cp.Client.Get(t.Context(), client.ObjectKeyFromObject(task), task); err != nil {
			return err
		}
		if !isTerminal(task) {
			return fmt.Errorf("phase %q", task.Status.Phase)
		}
		return nil
	})
	if c := meta.FindStatusCondition(task.Status.Conditions, v1alpha1.ConditionSucceeded); task.Status.Phase != v1alpha1.TaskFailed ||
		c == nil || c.Reason != "Interrupted" {
		t.Errorf("TaskRun ended %q (%s); want Failed, reason Interrupted", task.Status.Phase, conditionText(c))
	}
	if n := patch.calls.Load(); n != 1 {
		t.Errorf("the API server was sent the patch %d times, want exactly once (the held one)", n)
	}
	if n := timesPatched(t, ns, "target"); n > 1 {
		t.Errorf("the patch landed %d times, want at most once", n)
	}
}

func isTerminal(task *v1alpha1.TaskRun) bool {
	return slices.Contains([]v1alpha1.TaskPhase{v1alpha1.TaskSucceeded, v1alpha1.TaskFailed}, task.Status.Phase)
}

// conditionText is c as "Reason: message", for failure messages.
func conditionText(c *metav1.Condition) string {
	if c == nil {
		return "no Succeeded condition"
	}
	return fmt.Sprintf("%s=%s, reason %s: %s", c.Type, c.Status, c.Reason, c.Message)
}
