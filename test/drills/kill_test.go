package drills_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/children"
	"github.com/astronetes/taskgate/test/load/kit"
)

// TestKillManager kills `taskgate manager` with SIGKILL while Tasks are in
// flight and starts it again: every Task ends Succeeded, each ran exactly
// once (one Pod or one Synchronization, counted by the task label), no
// Task is lost, and no ClusterRoleBinding of the Tasks with a clusterRole
// outlives them. The manager holds no right to create Pods, bindings or
// Synchronizations itself: each is created as the Task's requester.
func TestKillManager(t *testing.T) {
	n := short(50, 500)
	kills := short(1, 3)
	ns := newNamespace(t, "kill")
	start := time.Now()
	defer func() { t.Logf("%d Tasks, %d kills: %s", n, kills, time.Since(start).Round(time.Millisecond)) }()

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
	taskgateBinary(t)
	t.Logf("binary built: %s", time.Since(start).Round(time.Millisecond))
	mgr := startManager(t, "1")
	if err := mgr.WaitOutput("Starting workers", time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("manager started: %s", time.Since(start).Round(time.Millisecond))
	created := make(chan struct{})
	go func() {
		defer close(created)
		createMixed(ctx, t, ns, n)
	}()
	for k := range kills {
		// Kill once some Tasks are done and others not yet started.
		waitTerminal(t, ns, (k+1)*n/(2*kills+1), time.Minute)
		mgr.Kill()
		t.Logf("manager %d killed (SIGKILL) with %d of %d Tasks finished", k+1, countTerminal(t, ns), n)
		mgr = startManager(t, fmt.Sprint(k+2))
	}
	<-created
	if t.Failed() {
		return
	}
	t.Logf("all created: %s", time.Since(start).Round(time.Millisecond))
	waitTerminal(t, ns, n, short(2*time.Minute, 10*time.Minute))
	checkRanOnce(t, ns, n)
	// Each Task with a clusterRole got its binding (created as its
	// requester), and a finished Task's binding is removed by the
	// reconcile that finishes it, or by the first one after a restart.
	for i := 0; i < n; i += 8 {
		task := &v1alpha1.Task{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("bind-%04d", i)}}
		if !bindings.seen(v1alpha1.ClusterRoleBindingName(ns, task.Name)) {
			t.Errorf("task %s: no ClusterRoleBinding was ever created", task.Name)
		}
	}
	eventually(t, "no ClusterRoleBinding of the namespace's Tasks", time.Minute, 200*time.Millisecond, func() error {
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

// createMixed creates n Tasks, custom-image and run-synchronization in
// turn (every fourth custom-image one binding the ClusterRole view while it
// runs), through the webhooks, with 8 workers.
func createMixed(ctx context.Context, t *testing.T, ns string, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				task := customImageTask(ns, fmt.Sprintf("img-%04d", i))
				switch {
				case i%2 == 1:
					task = runSyncTask(ns, fmt.Sprintf("sync-%04d", i))
				case i%8 == 0:
					task.Name = fmt.Sprintf("bind-%04d", i)
					task.Spec.Config.Raw = []byte(`{"image":"busybox:1.36","command":["true"],"clusterRole":"view"}`)
				}
				if err := admin.Client.Create(ctx, task); err != nil {
					t.Errorf("create task %s: %v", task.Name, err)
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
		if err := cp.Client.List(ctx, pods, client.InNamespace(ns)); err != nil {
			if ctx.Err() == nil {
				t.Logf("kubelet: list pods: %v", err)
			}
			continue
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
	tasks := &v1alpha1.TaskList{}
	if err := cp.Client.List(t.Context(), tasks, client.InNamespace(ns)); err != nil {
		t.Fatalf("list tasks: %v", err)
	}
	n := 0
	for _, task := range tasks.Items {
		if task.Status.Phase == v1alpha1.TaskSucceeded || task.Status.Phase == v1alpha1.TaskFailed {
			n++
		}
	}
	return n
}

// waitTerminal waits until at least want Tasks of ns are Succeeded or Failed.
func waitTerminal(t *testing.T, ns string, want int, timeout time.Duration) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d finished Tasks", want), timeout, 100*time.Millisecond, func() error {
		if got := countTerminal(t, ns); got < want {
			return fmt.Errorf("%d finished", got)
		}
		return nil
	})
}

// checkRanOnce checks that all n Tasks exist, each Succeeded, and that each
// has exactly one Pod or Synchronization, and that there is nothing else.
func checkRanOnce(t *testing.T, ns string, n int) {
	t.Helper()
	tasks := &v1alpha1.TaskList{}
	pods := &corev1.PodList{}
	syncs := &v1alpha1.SynchronizationList{}
	for _, l := range []client.ObjectList{tasks, pods, syncs} {
		if err := cp.Client.List(t.Context(), l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
	}
	if len(tasks.Items) != n {
		t.Errorf("%d Tasks, want %d", len(tasks.Items), n)
	}
	children := map[string]int{}
	for _, p := range pods.Items {
		children[p.Labels[v1alpha1.TaskLabel]]++
	}
	for _, s := range syncs.Items {
		children[s.Labels[v1alpha1.TaskLabel]]++
	}
	for _, task := range tasks.Items {
		if task.Status.Phase != v1alpha1.TaskSucceeded {
			t.Errorf("task %s: phase %q (%s)", task.Name, task.Status.Phase, task.Status.Message)
		}
		if got := children[v1alpha1.TaskLabelValue(task.Name)]; got != 1 {
			t.Errorf("task %s (%s): %d Pods/Synchronizations, want exactly 1", task.Name, task.Spec.Plugin, got)
		}
	}
	if len(pods.Items)+len(syncs.Items) != n {
		t.Errorf("%d Pods + %d Synchronizations, want %d in all", len(pods.Items), len(syncs.Items), n)
	}
}

// bindingWatch records the names of the ClusterRoleBindings of a
// namespace's Tasks it has seen created.
type bindingWatch struct {
	mu    sync.Mutex
	names map[string]bool
}

func (b *bindingWatch) seen(name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.names[name]
}

// watchBindings watches the ClusterRoleBindings labelled for ns's Tasks
// until ctx ends; a binding lives only while its Task runs, too briefly
// for polling.
func watchBindings(ctx context.Context, t *testing.T, ns string) *bindingWatch {
	t.Helper()
	b := &bindingWatch{names: map[string]bool{}}
	wc, err := client.NewWithWatch(cp.Config, client.Options{Scheme: kit.Scheme()})
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
