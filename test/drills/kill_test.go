package drills_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/children"
	"github.com/astronetes/taskgate/test/load/kit"
	"github.com/astronetes/taskgate/test/testutil"
)

// TestKillManager kills `taskgate manager` with SIGKILL while TaskRuns are
// in flight and starts it again: every custom-image and run-synchronization
// run ends Succeeded and ran exactly once (one Pod or one Synchronization,
// counted by the taskrun label), every transformation patched its ConfigMap
// at most once (once if it Succeeded; one killed mid-patch ends
// Interrupted), no run is lost, and no ClusterRoleBinding of the runs with a
// clusterRole outlives them. The custom-image and run-synchronization runs
// are runs of three Tasks (many runs of one runbook, in flight together);
// the transformations are one-off runs, each of its own ConfigMap. The
// manager holds no right to create Pods, bindings or Synchronizations
// itself: each is created as the run's requester.
//
// Each kill lands at a known point: four runs of the drill's own are held
// by an admission webhook (holdHook) between creating their child and
// writing the status that records it (a Pod, a ClusterRoleBinding, a
// Synchronization) or with a transformation's patch in flight. The drill checks that precondition on the API server with the
// manager dead, by the state itself (a child exists that the run's status
// does not name, a claim without a result), before it lets them through.
func TestKillManager(t *testing.T) {
	n := short(50, 500)
	kills := short(1, 3)
	ns := newNamespace(t, "kill")
	start := time.Now()
	defer func() { t.Logf("%d TaskRuns, %d kills: %s", n, kills, time.Since(start).Round(time.Millisecond)) }()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// envtest has no kubelet: custom-image Pods never run. This goroutine
	// plays the kubelet and reports every Pod of the namespace Succeeded,
	// also while the manager is down, as a real node would.
	var kubelet sync.WaitGroup
	kubelet.Go(func() { playKubelet(ctx, t, ns) })
	defer kubelet.Wait()
	defer cancel()

	bindings := watchBindings(ctx, t, ns)
	// The runbooks keep every run, so that all can be counted at the end.
	keep := int32(n + 4*kills)
	for name, spec := range map[string]v1alpha1.PluginSpec{imgTask: customImageSpec, bindTask: bindSpec, syncTask: runSyncSpec} {
		createRunbook(t, ns, name, spec, keep)
	}
	for i := 4; i < n; i += 8 {
		transformTarget(t, ns, fmt.Sprintf("cm-%04d", i), nil)
	}
	hooks := newHoldHook(t, ns, transformTarget(t, ns, "probe", map[string]string{holdLabel: "true"}))
	taskgateBinary(t)
	t.Logf("binary built: %s", time.Since(start).Round(time.Millisecond))
	mgr := startManager(t, "1")
	if err := mgr.WaitOutput("Starting workers", time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("manager started: %s", time.Since(start).Round(time.Millisecond))
	var held []string // names of the held runs
	names, holds := holdChildren(t, ns, 0, hooks)
	names = append(names, holdPatch(t, ns, 0, hooks, holds))
	created := make(chan struct{})
	go func() {
		defer close(created)
		createMixed(ctx, t, ns, n)
	}()
	for k := range kills {
		// Kill once some runs are done and others not yet started, and
		// the held ones are where they are held.
		waitTerminal(t, ns, (k+1)*n/(2*kills+1), time.Minute)
		waitHeld(t, time.Minute, holds)
		if waited := time.Since(holds[heldPatch(k)].heldAt()); waited > 25*time.Second {
			t.Fatalf("the held patch waited %s for the kill, close to the webhook's 30 s timeout: the machine is too slow for this drill", waited)
		}
		held = append(held, names...)
		mgr.Kill()
		t.Logf("manager %d killed (SIGKILL) with %d of %d TaskRuns finished", k+1, countTerminal(t, ns), n+len(held))
		checkInWindow(t, ns, names)
		hooks.releaseAll()
		mgr = startManager(t, fmt.Sprint(k+2))
		if k+1 < kills {
			names, holds = holdChildren(t, ns, k+1, hooks)
			names = append(names, holdPatch(t, ns, k+1, hooks, holds))
		}
	}
	<-created
	if t.Failed() {
		return
	}
	t.Logf("all created: %s", time.Since(start).Round(time.Millisecond))
	waitTerminal(t, ns, n+len(held), short(2*time.Minute, 10*time.Minute))
	checkRanOnce(t, ns, n+len(held))
	// Each run with a clusterRole got its binding (created as its
	// requester), and a finished run's binding is removed by the
	// reconcile that finishes it, or by the first one after a restart.
	var bound []string
	for i := 0; i < n; i += 8 {
		bound = append(bound, fmt.Sprintf("bind-%04d", i))
	}
	for k := range kills {
		bound = append(bound, fmt.Sprintf("hold-bind-%d", k))
	}
	for _, name := range bound {
		if !bindings.seen(v1alpha1.ClusterRoleBindingName(ns, name)) {
			t.Errorf("taskrun %s: no ClusterRoleBinding was ever created", name)
		}
	}
	testutil.EventuallyEvery(t, time.Minute, 200*time.Millisecond, "no ClusterRoleBinding of the namespace's runs", func() error {
		crbs := &rbacv1.ClusterRoleBindingList{}
		if err := cp.Client.List(t.Context(), crbs, client.MatchingLabels{children.TaskNamespaceLabel: ns}); err != nil {
			return err
		}
		if len(crbs.Items) > 0 {
			return fmt.Errorf("%d left, e.g. %s", len(crbs.Items), crbs.Items[0].Name)
		}
		return nil
	})
}

// The drill's runbooks: a custom-image Task, one that binds the ClusterRole
// view while it runs, and a run-synchronization Task.
const (
	imgTask  = "img"
	bindTask = "bind"
	syncTask = "sync"
)

// createMixed creates n TaskRuns, of the custom-image and the
// run-synchronization Task in turn (every fourth custom-image one of the
// Task that binds the ClusterRole view while it runs, and the one between
// them a one-off transformation of ConfigMap cm-<i> instead), through the
// webhooks, with 8 workers.
func createMixed(ctx context.Context, t *testing.T, ns string, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				run := kit.NewTaskRun(ns, fmt.Sprintf("img-%04d", i), imgTask)
				switch {
				case i%2 == 1:
					run = kit.NewTaskRun(ns, fmt.Sprintf("sync-%04d", i), syncTask)
				case i%8 == 0:
					run = kit.NewTaskRun(ns, fmt.Sprintf("bind-%04d", i), bindTask)
				case i%8 == 4:
					run = transformRun(ns, fmt.Sprintf("xform-%04d", i), fmt.Sprintf("cm-%04d", i))
				}
				if err := admin.Client.Create(ctx, run); err != nil {
					t.Errorf("create taskrun %s: %v", run.Name, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// playKubelet marks every unfinished Pod in ns Succeeded, until ctx ends.
func playKubelet(ctx context.Context, t *testing.T, ns string) {
	for ctx.Err() == nil {
		pods := &corev1.PodList{}
		if err := cp.Client.List(ctx, pods, client.InNamespace(ns)); err != nil && ctx.Err() == nil {
			t.Logf("kubelet: list pods: %v", err)
		}
		for i := range pods.Items {
			pod := &pods.Items[i]
			if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
				continue
			}
			now := metav1.Now()
			pod.Status.Phase, pod.Status.StartTime = corev1.PodSucceeded, &now
			pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
				Name: pod.Spec.Containers[0].Name, Image: pod.Spec.Containers[0].Image,
				State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
					ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now}},
			}}
			// A conflict is retried on the next pass.
			_ = cp.Client.Status().Update(ctx, pod)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func countTerminal(t *testing.T, ns string) int {
	t.Helper()
	runs := &v1alpha1.TaskRunList{}
	if err := cp.Client.List(t.Context(), runs, client.InNamespace(ns)); err != nil {
		t.Fatalf("list taskruns: %v", err)
	}
	n := 0
	for i := range runs.Items {
		if isTerminal(&runs.Items[i]) {
			n++
		}
	}
	return n
}

// waitTerminal waits until at least want TaskRuns of ns are Succeeded or Failed.
func waitTerminal(t *testing.T, ns string, want int, timeout time.Duration) {
	t.Helper()
	testutil.EventuallyEvery(t, timeout, 100*time.Millisecond, fmt.Sprintf("%d finished TaskRuns", want), func() error {
		if got := countTerminal(t, ns); got < want {
			return fmt.Errorf("%d finished", got)
		}
		return nil
	})
}

// holdChildren creates three of the k-th kill's four held TaskRuns
// (labelled holdLabel), of the drill's three Tasks, and returns their names
// and holds: hold-img-k is held writing the status that names its Pod,
// hold-bind-k the one that names its ClusterRoleBinding (the checkpoint
// before its Pod), hold-sync-k the one that names its Synchronization. An admission request is held at most
// 30 s (the webhook's timeout); a status write is then retried and held
// again.
func holdChildren(t *testing.T, ns string, k int, hooks *holdHook) ([]string, map[string]*hold) {
	t.Helper()
	holds := map[string]*hold{}
	var names []string
	for _, run := range []*v1alpha1.TaskRun{
		kit.NewTaskRun(ns, fmt.Sprintf("hold-img-%d", k), imgTask),
		kit.NewTaskRun(ns, fmt.Sprintf("hold-bind-%d", k), bindTask),
		kit.NewTaskRun(ns, fmt.Sprintf("hold-sync-%d", k), syncTask),
	} {
		run.Labels = map[string]string{holdLabel: "true"}
		records := recordsChild
		if strings.HasPrefix(run.Name, "hold-bind-") {
			records = recordsBinding
		}
		holds["the status write of "+run.Name] = hooks.expectStatus("taskruns/status", ns, run.Name, records)
		names = append(names, run.Name)
		if err := admin.Client.Create(t.Context(), run); err != nil {
			t.Fatalf("create taskrun %s: %v", run.Name, err)
		}
	}
	return names, holds
}

// holdPatch creates the k-th kill's held transformation, hold-xform-k,
// whose patch of ConfigMap hold-cm-k is held, adds its hold to holds (as
// heldPatch(k)) and returns its name. A patch held past the webhook's
// timeout (30 s) would fail, not be retried: the kill must come sooner.
func holdPatch(t *testing.T, ns string, k int, hooks *holdHook, holds map[string]*hold) string {
	t.Helper()
	target := fmt.Sprintf("hold-cm-%d", k)
	transformTarget(t, ns, target, map[string]string{holdLabel: "true"})
	xform := transformRun(ns, fmt.Sprintf("hold-xform-%d", k), target)
	holds[heldPatch(k)] = hooks.expect("configmaps", ns, target)
	if err := admin.Client.Create(t.Context(), xform); err != nil {
		t.Fatalf("create taskrun %s: %v", xform.Name, err)
	}
	return xform.Name
}

// heldPatch names the k-th kill's held patch in holds.
func heldPatch(k int) string { return fmt.Sprintf("the patch of hold-cm-%d", k) }

// listInNamespace lists the TaskRuns of ns and their Pods and Synchronizations.
func listInNamespace(t *testing.T, ns string) (*v1alpha1.TaskRunList, *corev1.PodList, *v1alpha1.SynchronizationList) {
	t.Helper()
	tasks := &v1alpha1.TaskRunList{}
	pods := &corev1.PodList{}
	syncs := &v1alpha1.SynchronizationList{}
	for _, l := range []client.ObjectList{tasks, pods, syncs} {
		if err := cp.Client.List(t.Context(), l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
	}
	return tasks, pods, syncs
}

// checkInWindow checks, on the API server with the manager dead, that the
// kill landed where the drill meant it to: it finds, by their state, the
// runs between creating a child and recording it (a Pod, a
// ClusterRoleBinding or a Synchronization exists that the run's status does
// not name) and the transformations claimed without a result, and requires
// each held run among them and each kind of window at least once.
func checkInWindow(t *testing.T, ns string, held []string) {
	t.Helper()
	tasks, pods, syncs := listInNamespace(t, ns)
	crbs := &rbacv1.ClusterRoleBindingList{}
	if err := cp.Client.List(t.Context(), crbs, client.MatchingLabels{children.TaskNamespaceLabel: ns}); err != nil {
		t.Fatal(err)
	}
	byLabel := map[string]*v1alpha1.TaskRun{}
	for i := range tasks.Items {
		byLabel[v1alpha1.TaskLabelValue(tasks.Items[i].Name)] = &tasks.Items[i]
	}
	window := map[string][]string{} // kind of window → runs in it
	inWindow := map[string]bool{}
	add := func(kind string, task *v1alpha1.TaskRun) {
		window[kind] = append(window[kind], task.Name)
		inWindow[task.Name] = true
	}
	for _, p := range pods.Items {
		if task := byLabel[p.Labels[v1alpha1.TaskRunLabel]]; task != nil && (task.Status.CustomImage == nil || task.Status.CustomImage.PodName != p.Name) {
			add("pod created, not in status", task)
		}
	}
	for _, crb := range crbs.Items {
		if task := byLabel[crb.Labels[v1alpha1.TaskRunLabel]]; task != nil &&
			(task.Status.CustomImage == nil || task.Status.CustomImage.ClusterRoleBindingName != crb.Name) {
			add("cluster role binding created, not in status", task)
		}
	}
	for _, s := range syncs.Items {
		if task := byLabel[s.Labels[v1alpha1.TaskRunLabel]]; task != nil && task.Status.Synchronization == nil {
			add("synchronization created, not in status", task)
		}
	}
	for i := range tasks.Items {
		if task := &tasks.Items[i]; task.Status.Transformation != nil && !isTerminal(task) {
			add("transformation claimed, no result", task)
		}
	}
	t.Logf("when the kill landed: %v", window)
	for _, kind := range []string{"pod created, not in status", "cluster role binding created, not in status",
		"synchronization created, not in status", "transformation claimed, no result"} {
		if len(window[kind]) == 0 {
			t.Errorf("when the kill landed no TaskRun was in the window %q: the drill did not test it", kind)
		}
	}
	for _, name := range held {
		if !inWindow[name] {
			t.Errorf("held taskrun %s was in no window when the kill landed", name)
		}
	}
}

// checkRanOnce checks that all n TaskRuns exist and each ran once: every
// custom-image and run-synchronization run Succeeded with exactly one Pod
// or Synchronization, and there is nothing else; every transformation
// either Succeeded having patched its ConfigMap once, or was killed
// mid-patch and ended Interrupted having patched it at most once (the held
// ones must have).
func checkRanOnce(t *testing.T, ns string, n int) {
	t.Helper()
	tasks, pods, syncs := listInNamespace(t, ns)
	if len(tasks.Items) != n {
		t.Errorf("%d TaskRuns, want %d", len(tasks.Items), n)
	}
	children := map[string]int{}
	for _, p := range pods.Items {
		children[p.Labels[v1alpha1.TaskRunLabel]]++
	}
	for _, s := range syncs.Items {
		children[s.Labels[v1alpha1.TaskRunLabel]]++
	}
	transformations := 0
	for _, task := range tasks.Items {
		if task.Plugin() == v1alpha1.PluginTransformation {
			transformations++
			checkPatchedOnce(t, ns, &task)
			continue
		}
		if task.Status.Phase != v1alpha1.TaskSucceeded {
			t.Errorf("taskrun %s: phase %q (%s), want Succeeded", task.Name, task.Status.Phase, task.Status.Message)
		}
		if got := children[v1alpha1.TaskLabelValue(task.Name)]; got != 1 {
			t.Errorf("taskrun %s (%s): %d Pods/Synchronizations, want exactly 1", task.Name, task.Plugin(), got)
		}
	}
	if want := len(tasks.Items) - transformations; len(pods.Items)+len(syncs.Items) != want {
		t.Errorf("%d Pods + %d Synchronizations, want %d in all", len(pods.Items), len(syncs.Items), want)
	}
}

// checkPatchedOnce checks a transformation run of the kill drill: its
// ConfigMap (named in its config) holds the patch once if it Succeeded, at
// most once if it was Interrupted (a held one must be), and it ended no
// other way.
func checkPatchedOnce(t *testing.T, ns string, task *v1alpha1.TaskRun) {
	t.Helper()
	var cfg v1alpha1.TransformationConfig
	if err := json.Unmarshal(task.Spec.TaskSpec.Config.Raw, &cfg); err != nil || len(cfg.Names) != 1 {
		t.Fatalf("taskrun %s: config %s: %v", task.Name, task.Spec.TaskSpec.Config.Raw, err)
	}
	patched := timesPatched(t, ns, cfg.Names[0])
	c := meta.FindStatusCondition(task.Status.Conditions, v1alpha1.ConditionSucceeded)
	switch {
	case task.Status.Phase == v1alpha1.TaskSucceeded && !strings.HasPrefix(task.Name, "hold-"):
		if patched != 1 {
			t.Errorf("taskrun %s Succeeded with configmap %s patched %d times, want once", task.Name, cfg.Names[0], patched)
		}
	case task.Status.Phase == v1alpha1.TaskFailed && c != nil && c.Reason == "Interrupted":
		if patched > 1 {
			t.Errorf("taskrun %s was Interrupted with configmap %s patched %d times, want at most once", task.Name, cfg.Names[0], patched)
		}
	default:
		t.Errorf("taskrun %s ended %q (%s); want Succeeded, or Interrupted if killed mid-patch (a held one always)",
			task.Name, task.Status.Phase, conditionText(c))
	}
}

// bindingWatch records the names of the ClusterRoleBindings of a
// namespace's runs it has seen created.
type bindingWatch struct {
	mu    sync.Mutex
	names map[string]bool
}

func (b *bindingWatch) seen(name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.names[name]
}

// watchBindings watches the ClusterRoleBindings labelled for ns's runs
// until ctx ends; a binding lives only while its run runs, too briefly
// for polling.
func watchBindings(ctx context.Context, t *testing.T, ns string) *bindingWatch {
	t.Helper()
	b := &bindingWatch{names: map[string]bool{}}
	wc, err := client.NewWithWatch(cp.Config, client.Options{Scheme: testutil.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(ctx, &rbacv1.ClusterRoleBindingList{}, client.MatchingLabels{children.TaskNamespaceLabel: ns})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			if crb, ok := ev.Object.(*rbacv1.ClusterRoleBinding); ok {
				b.mu.Lock()
				b.names[crb.Name] = true
				b.mu.Unlock()
			}
		}
	}()
	return b
}
