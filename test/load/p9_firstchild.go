package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/load/kit"
	"github.com/astronetes/taskgate/test/testutil"
)

// p9Namespace is where P9 runs its Jobs and TaskRuns.
const p9Namespace = "p9"

// p9Job is the row of kube-controller-manager's Job controller in P9.
const p9Job = "Job → Pod (kube-controller-manager)"

// p9Result is, per sample (and for the Jobs), the time from each create's
// answer to the first child seen, and the creates' own latency.
type p9Result struct {
	runs    int
	samples []string // in order; the names of the Tasks the runs run
	plugins map[string]v1alpha1.Plugin
	first   map[string]kit.Latencies // sample (or p9Job) → create answered → first child
	create  map[string]kit.Latencies // sample (or p9Job) → the create itself
}

// ratio is a sample's median ÷ the Jobs' median.
func (p *p9Result) ratio(sample string) float64 {
	return ratio(p.first[sample].Median(), p.first[p9Job].Median())
}

// runP9 measures, side by side and one at a time on an otherwise idle
// control plane, how long after a TaskRun's create its first child is
// created (the Pod of a custom-image run, the Synchronization, the first
// patch of a transformation) and how long after a Job's create
// kube-controller-manager's Job controller creates its Pod. The TaskRuns
// are admitted by taskgate's webhooks as installed (e's taskgate mode) and
// run by `taskgate manager` (bin, a subprocess like kube-controller-manager)
// as kit.ManagerUser with the requester-mode rules; both clocks start when
// the create is answered and stop when a watch sees the child, so admission
// is not in either (P1 measures it). Each round creates one Job, then one
// TaskRun of each sample, the order rotated every round.
func runP9(ctx context.Context, e *benchEnv, bin string, samples []*v1alpha1.Task, names []string, n int) (*p9Result, error) {
	kcm, err := startKCM(ctx, e.cp)
	if err != nil {
		return nil, err
	}
	defer kcm.Stop(15 * time.Second)
	mgr, err := testutil.StartProcess(bin, e.manager.Kubeconfig, nil, kit.ManagerArgs...)
	if err != nil {
		return nil, err
	}
	defer mgr.Stop(15 * time.Second)
	if err := mgr.WaitOutput("Starting workers", 2*time.Minute); err != nil {
		return nil, fmt.Errorf("taskgate manager: %w\n%s", err, tail(mgr.Output(), 4000))
	}
	if err := e.cp.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: p9Namespace}}); err != nil {
		return nil, err
	}
	if err := e.cp.EnsureDefaultServiceAccount(ctx, p9Namespace); err != nil {
		return nil, err
	}
	target := p9Target()
	if err := e.cp.Client.Create(ctx, target); err != nil {
		return nil, fmt.Errorf("create the transformation's target: %w", err)
	}
	if err := e.runbooks(ctx, p9Namespace, samples, names); err != nil { // also switches to taskgate's webhooks
		return nil, err
	}
	w, err := watchChildren(ctx, e.cp)
	if err != nil {
		return nil, err
	}
	defer w.stop()
	res := &p9Result{runs: n, samples: names, plugins: map[string]v1alpha1.Plugin{},
		first: map[string]kit.Latencies{}, create: map[string]kit.Latencies{}}
	for i, s := range samples {
		res.plugins[names[i]] = s.Spec.Plugin
	}
	// A first Job, untimed: kube-controller-manager's informers have
	// synced once its Pod appears.
	if _, _, err := p9OneJob(ctx, e, w, "warm-up", kcm, 3*time.Minute); err != nil {
		return nil, err
	}
	rows := append([]string{p9Job}, names...)
	for r := range n {
		for k := range rows {
			row := rows[(r+k)%len(rows)]
			var created, first time.Duration
			var err error
			if row == p9Job {
				created, first, err = p9OneJob(ctx, e, w, strconv.Itoa(r), kcm, time.Minute)
			} else {
				created, first, err = p9OneRun(ctx, e, w, target, row, res.plugins[row], r, mgr)
			}
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", r, row, err)
			}
			res.create[row] = append(res.create[row], created)
			res.first[row] = append(res.first[row], first)
		}
	}
	return res, nil
}

// startKCM runs kube-controller-manager (from testutil.AssetsDir: `make
// envtest-run` builds it) against cp with its Job controller only, as a
// system:masters user: its rights are not under test here.
func startKCM(ctx context.Context, cp *kit.ControlPlane) (*testutil.Process, error) {
	bin := filepath.Join(testutil.AssetsDir(), "kube-controller-manager")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("P9 needs kube-controller-manager in %s: run `make envtest-run`: %w", testutil.AssetsDir(), err)
	}
	u, err := cp.AddUser(envtest.User{Name: "p9-kube-controller-manager", Groups: []string{"system:masters"}})
	if err != nil {
		return nil, err
	}
	port, err := testutil.FreePort()
	if err != nil {
		return nil, err
	}
	return testutil.StartProcess(bin, u.Kubeconfig, nil,
		"--kubeconfig="+u.Kubeconfig, "--controllers=job", "--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(port), "--cert-dir="+filepath.Join(cp.Dir, "kcm-certs"))
}

// p9OneJob creates a Job and times it to its Pod, waiting up to timeout.
func p9OneJob(ctx context.Context, e *benchEnv, w *childWatch, name string, kcm *testutil.Process, timeout time.Duration) (created, first time.Duration, err error) {
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: p9Namespace, Name: "job-" + name},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "main", Image: "busybox:1.36", Command: []string{"true"}}},
		}}}}
	start := time.Now()
	if err := e.admin.Client.Create(ctx, job); err != nil {
		return 0, 0, err
	}
	answered := time.Now()
	seen, err := w.wait(func(ev childEvent) bool {
		return ev.kind == "Pod" && ev.added && ev.labels[batchv1.JobNameLabel] == job.Name
	}, answered, timeout)
	if err != nil {
		return 0, 0, fmt.Errorf("job %s: %w\nkube-controller-manager:\n%s", job.Name, err, tail(kcm.Output(), 4000))
	}
	return answered.Sub(start), seen.Sub(answered), nil
}

// p9OneRun creates a TaskRun of Task task and times it to its first child.
// A transformation's target is put back first (untimed), so that each run
// patches it.
func p9OneRun(ctx context.Context, e *benchEnv, w *childWatch, target *appsv1.Deployment, task string, plugin v1alpha1.Plugin, r int, mgr *testutil.Process) (created, first time.Duration, err error) {
	name := fmt.Sprintf("%s-%d", task, r)
	var match func(childEvent) bool
	switch plugin {
	case v1alpha1.PluginCustomImage:
		pod := v1alpha1.PodName(name)
		match = func(ev childEvent) bool { return ev.kind == "Pod" && ev.added && ev.name == pod }
	case v1alpha1.PluginRunSync:
		sync := v1alpha1.SynchronizationName(name)
		match = func(ev childEvent) bool { return ev.kind == "Synchronization" && ev.added && ev.name == sync }
	case v1alpha1.PluginTransformation:
		if err := resetTarget(ctx, e.cp.Client, w, target); err != nil {
			return 0, 0, err
		}
		match = func(ev childEvent) bool { return ev.kind == "Deployment" && !ev.added && ev.name == target.Name }
	default:
		return 0, 0, fmt.Errorf("no first child known for plugin %q", plugin)
	}
	start := time.Now()
	if err := e.admin.Client.Create(ctx, kit.NewTaskRun(p9Namespace, name, task)); err != nil {
		return 0, 0, err
	}
	answered := time.Now()
	seen, err := w.wait(match, answered, time.Minute)
	if err != nil {
		run := &v1alpha1.TaskRun{}
		_ = e.cp.Client.Get(ctx, client.ObjectKey{Namespace: p9Namespace, Name: name}, run)
		return 0, 0, fmt.Errorf("taskrun %s (%s: %s): %w\ntaskgate manager:\n%s", name, run.Status.Phase, run.Status.Message, err, tail(mgr.Output(), 4000))
	}
	return answered.Sub(start), seen.Sub(answered), nil
}

// p9Target is the Deployment the transformation sample (tier=frontend,
// replicas to 1, an annotation) patches.
func p9Target() *appsv1.Deployment {
	labels := map[string]string{"tier": "frontend"}
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: p9Namespace, Name: "frontend", Labels: labels},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}}}}}
}

// resetTarget undoes the transformation's patch and waits until the watch
// has seen that, so the next change it sees is the next run's.
func resetTarget(ctx context.Context, c client.Client, w *childWatch, target *appsv1.Deployment) error {
	d := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(target), d); err != nil {
		return err
	}
	if *d.Spec.Replicas == *target.Spec.Replicas && len(d.Annotations) == 0 {
		return nil
	}
	d.Spec.Replicas, d.Annotations = ptr.To(*target.Spec.Replicas), nil
	if err := c.Update(ctx, d); err != nil {
		return fmt.Errorf("reset %s: %w", d.Name, err)
	}
	_, err := w.wait(func(ev childEvent) bool {
		return ev.kind == "Deployment" && ev.name == d.Name && ev.resourceVersion == d.ResourceVersion
	}, time.Time{}, time.Minute)
	return err
}

// childEvent is one watch event of P9's namespace.
type childEvent struct {
	at              time.Time
	kind, name      string
	added           bool
	labels          map[string]string
	resourceVersion string
}

// childWatch watches the Pods, Synchronizations and Deployments of P9's
// namespace and keeps every event with the time it arrived.
type childWatch struct {
	mu       sync.Mutex
	events   []childEvent
	arrived  chan struct{} // closed and replaced on each event
	watchers []watch.Interface
	done     sync.WaitGroup
}

func watchChildren(ctx context.Context, cp *kit.ControlPlane) (*childWatch, error) {
	wc, err := client.NewWithWatch(cp.Config, client.Options{Scheme: testutil.Scheme()})
	if err != nil {
		return nil, err
	}
	cw := &childWatch{arrived: make(chan struct{})}
	for kind, list := range map[string]client.ObjectList{
		"Pod": &corev1.PodList{}, "Synchronization": &v1alpha1.SynchronizationList{}, "Deployment": &appsv1.DeploymentList{},
	} {
		w, err := wc.Watch(ctx, list, client.InNamespace(p9Namespace))
		if err != nil {
			cw.stop()
			return nil, fmt.Errorf("watch %ss: %w", kind, err)
		}
		cw.watchers = append(cw.watchers, w)
		cw.done.Go(func() {
			for ev := range w.ResultChan() {
				o, ok := ev.Object.(client.Object)
				if !ok || (ev.Type != watch.Added && ev.Type != watch.Modified) {
					continue
				}
				cw.note(childEvent{at: time.Now(), kind: kind, name: o.GetName(), added: ev.Type == watch.Added,
					labels: o.GetLabels(), resourceVersion: o.GetResourceVersion()})
			}
		})
	}
	return cw, nil
}

func (cw *childWatch) note(ev childEvent) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	cw.events = append(cw.events, ev)
	close(cw.arrived)
	cw.arrived = make(chan struct{})
}

// wait returns the arrival time of the first event at or after since that
// match accepts, waiting up to timeout for it.
func (cw *childWatch) wait(match func(childEvent) bool, since time.Time, timeout time.Duration) (time.Time, error) {
	deadline := time.After(timeout)
	for {
		cw.mu.Lock()
		for _, ev := range cw.events {
			if !ev.at.Before(since) && match(ev) {
				cw.mu.Unlock()
				return ev.at, nil
			}
		}
		arrived := cw.arrived
		cw.mu.Unlock()
		select {
		case <-arrived:
		case <-deadline:
			return time.Time{}, errors.New("no such child seen in " + timeout.String())
		}
	}
}

func (cw *childWatch) stop() {
	for _, w := range cw.watchers {
		w.Stop()
	}
	cw.done.Wait()
}
