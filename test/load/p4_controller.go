package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/test/load/kit"
	"github.com/astronetes/taskgate/test/testutil"
)

// p4Variant is one way of getting the TaskRuns to Succeeded.
type p4Variant struct {
	name       string
	controller bool // else the floor: the driver writes the status
	reconciles int
	noEvents   bool // the controller's Event POSTs are answered in-process
}

type p4Result struct {
	tasks, workers, reconciles int
	variants                   []p4Variant
	took                       map[string][]time.Duration // by variant, one per round
	requests                   *requestCounter            // the shipped controller's API requests
}

// ratio is the median over rounds of variant ÷ floor of the same round.
func (r *p4Result) ratio(variant string) float64 {
	var xs []float64
	for i, d := range r.took[variant] {
		xs = append(xs, float64(d)/float64(r.took[r.variants[0].name][i]))
	}
	return kit.MedianFloat(xs)
}

// runP4 times n TaskRuns of one run-synchronization Task from the first
// create to the last seen Succeeded: the floor (the same creates plus one
// status update each, written by the load driver), the controller as
// `taskgate manager` runs it, and what-ifs that show what limits it. The
// variants take turns in every round, the order rotated each round.
//
// As under the default --act-as=requester in production, the Task and its
// runs are created by admin (kit.AdminGroup), each run as taskgate's
// webhooks admit it (admitted: the Task's snapshot, admin as the requester,
// the Task's label and owner reference, written by the driver: P4 runs
// without webhooks), and the controller runs as manager (requester-mode
// rules), so each Synchronization is created through constrained
// impersonation. The Task keeps all n runs (its history limits are n), so
// no run is deleted while the clock runs.
func runP4(ctx context.Context, cp *kit.ControlPlane, admin, manager *testutil.Identity, sample *v1alpha1.Task, n, workers, reconciles, rounds int) (*p4Result, error) {
	who, err := actas.Self(ctx, admin.Config)
	if err != nil {
		return nil, err
	}
	env := p4Env{cp: cp, creator: admin.Client, manager: manager.Config, requester: actas.FromUserInfo(who)}
	res := &p4Result{tasks: n, workers: workers, reconciles: reconciles, requests: newRequestCounter(),
		took: map[string][]time.Duration{}, variants: []p4Variant{
			{name: "floor"},
			{name: "controller", controller: true, reconciles: reconciles},
			{name: fmt.Sprintf("controller, %d concurrent reconciles", 4*reconciles), controller: true, reconciles: 4 * reconciles},
			{name: "controller, Events not sent", controller: true, reconciles: reconciles, noEvents: true},
			{name: fmt.Sprintf("controller, %d concurrent reconciles, Events not sent", 4*reconciles), controller: true, reconciles: 4 * reconciles, noEvents: true},
		}}
	took := make([][]time.Duration, len(res.variants))
	for r := range rounds {
		for k := range res.variants {
			i := (r + k) % len(res.variants)
			v := res.variants[i]
			ns := fmt.Sprintf("p4-r%d-v%d", r, i)
			if err := cp.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
				return nil, err
			}
			task, err := env.runbook(ctx, sample, ns, n)
			if err != nil {
				return nil, err
			}
			var d time.Duration
			if v.controller {
				var rc *requestCounter
				if i == 1 {
					rc = res.requests
				}
				d, err = p4Controller(ctx, env, task, n, workers, v, rc)
			} else {
				d, err = p4Run(ctx, env, task, n, workers, true)
			}
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", r, v.name, err)
			}
			took[i] = append(took[i], d)
			// Leave the store as the round found it.
			for _, kind := range []client.Object{&v1alpha1.TaskRun{}, &v1alpha1.Task{}} {
				if err := cp.Client.DeleteAllOf(ctx, kind, client.InNamespace(ns)); err != nil {
					return nil, err
				}
			}
			if err := cp.Client.DeleteAllOf(ctx, &v1alpha1.Synchronization{}, client.InNamespace(ns)); err != nil {
				return nil, err
			}
		}
	}
	for i, v := range res.variants {
		res.took[v.name] = took[i]
	}
	return res, nil
}

// p4Env is who does what in P4: cp's admin (system:masters) sets up and
// watches, creator creates the Task and its runs (and, for the floor,
// writes their status) and is their requester, the controller runs as
// manager.
type p4Env struct {
	cp        *kit.ControlPlane
	creator   client.Client
	manager   *rest.Config
	requester *v1alpha1.Requester
}

// runbook creates the Task of sample in ns that keeps n runs of each
// outcome.
func (env p4Env) runbook(ctx context.Context, sample *v1alpha1.Task, ns string, n int) (*v1alpha1.Task, error) {
	task := kit.NewTask(sample, ns, "sync")
	task.Spec.SuccessfulRunsHistoryLimit, task.Spec.FailedRunsHistoryLimit = ptr.To(int32(n)), ptr.To(int32(n))
	if err := env.creator.Create(ctx, task); err != nil {
		return nil, fmt.Errorf("create task %s/%s: %w", ns, task.Name, err)
	}
	return task, nil
}

// p4Controller runs a manager with the controller, restricted to ns, and
// times p4Run without status writes of its own.
func p4Controller(ctx context.Context, env p4Env, task *v1alpha1.Task, n, workers int, v p4Variant, rc *requestCounter) (time.Duration, error) {
	cfg := rest.CopyConfig(env.manager)
	if rc != nil {
		cfg.Wrap(rc.wrap)
	}
	if v.noEvents {
		cfg.Wrap(dropEvents)
	}
	mgr, err := testutil.StartManager(cfg, ctrl.Options{
		GracefulShutdownTimeout: ptr.To(10 * time.Second),
		Controller:              config.Controller{SkipNameValidation: ptr.To(true)},
		Cache:                   controller.CacheOptions(nil, task.Namespace), // cmd/taskgate's, in the namespace of this round
	}, func(mgr ctrl.Manager) error {
		return controller.SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: v.reconciles, ActAs: actas.ModeRequester})
	})
	if err != nil {
		return 0, err
	}
	defer func() {
		if err := mgr.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "p4 manager:", err)
		}
	}()
	syncCtx, syncCancel := context.WithTimeout(ctx, time.Minute)
	defer syncCancel()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		return 0, errors.New("manager cache did not sync")
	}
	return p4Run(ctx, env, task, n, workers, false)
}

// p4Run creates n TaskRuns of task with `workers` workers (each followed by
// a Succeeded status write when writeStatus) and returns the time until a
// watch has seen all n Succeeded.
func p4Run(ctx context.Context, env p4Env, task *v1alpha1.Task, n, workers int, writeStatus bool) (time.Duration, error) {
	ns := task.Namespace
	wc, err := client.NewWithWatch(env.cp.Config, client.Options{Scheme: testutil.Scheme()})
	if err != nil {
		return 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	seen := &succeededWatch{client: wc, ns: ns, succeeded: map[string]bool{}}
	if err := seen.watch(wctx); err != nil {
		return 0, err
	}
	defer func() { seen.w.Stop() }()
	start := time.Now()
	errc := inParallel(n, workers, func(i int) error {
		run := kit.Admitted(task, fmt.Sprintf("sync-%d", i), env.requester)
		if err := env.creator.Create(ctx, run); err != nil {
			return err
		}
		if !writeStatus {
			return nil
		}
		finishLikeController(run)
		return env.creator.Status().Update(ctx, run)
	})
	for len(seen.succeeded) < n {
		select {
		case err, ok := <-errc:
			if ok {
				return 0, err
			}
			errc = nil
		case ev, ok := <-seen.w.ResultChan():
			if !ok || ev.Type == watch.Error {
				// The API server may end a watch at any time (a slow
				// consumer on a busy machine, an expired
				// resourceVersion): list to catch up and watch again
				// from there, until wctx runs out.
				if err := seen.watch(wctx); err != nil {
					return 0, fmt.Errorf("watch again after %d of %d Succeeded: %w", len(seen.succeeded), n, err)
				}
				continue
			}
			if run, ok := ev.Object.(*v1alpha1.TaskRun); ok {
				if err := seen.note(run); err != nil {
					return 0, err
				}
			}
		}
	}
	return time.Since(start), nil
}

// succeededWatch follows the TaskRuns of a namespace until they have all
// Succeeded, listing again whenever its watch ends.
type succeededWatch struct {
	client    client.WithWatch
	ns        string
	w         watch.Interface
	succeeded map[string]bool
}

// watch lists the namespace's TaskRuns, notes those that finished, and watches
// from the list's resourceVersion.
func (s *succeededWatch) watch(ctx context.Context) error {
	if s.w != nil {
		s.w.Stop()
	}
	list := &v1alpha1.TaskRunList{}
	if err := s.client.List(ctx, list, client.InNamespace(s.ns)); err != nil {
		return err
	}
	for i := range list.Items {
		if err := s.note(&list.Items[i]); err != nil {
			return err
		}
	}
	w, err := s.client.Watch(ctx, &v1alpha1.TaskRunList{}, client.InNamespace(s.ns),
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
	if err != nil {
		return err
	}
	s.w = w
	return nil
}

// note records run if it Succeeded; a failed run ends the measurement.
func (s *succeededWatch) note(run *v1alpha1.TaskRun) error {
	switch run.Status.Phase {
	case v1alpha1.TaskSucceeded:
		s.succeeded[run.Name] = true
	case v1alpha1.TaskFailed:
		return fmt.Errorf("taskrun %s failed: %s", run.Name, run.Status.Message)
	}
	return nil
}

// finishLikeController gives run the status the controller writes for a
// run-synchronization run whose Synchronization it created.
func finishLikeController(run *v1alpha1.TaskRun) {
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	name := v1alpha1.SynchronizationName(run.Name)
	run.Status = v1alpha1.TaskRunStatus{
		Phase: v1alpha1.TaskSucceeded, StartTime: &now, CompletionTime: &now,
		ObservedGeneration: run.Generation,
		Message:            "synchronization " + name + " created",
		Synchronization:    &v1alpha1.SynchronizationRunStatus{Name: name},
		Conditions: []metav1.Condition{{
			Type: v1alpha1.ConditionSucceeded, Status: metav1.ConditionTrue, Reason: controller.ReasonSynchronizationCreated,
			Message: "synchronization " + name + " created", LastTransitionTime: now, ObservedGeneration: run.Generation,
		}},
	}
}
