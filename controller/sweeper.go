package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/children"
)

// bindingNamePrefix starts the name of every ClusterRoleBinding a run
// creates (v1alpha1.ClusterRoleBindingName). The sweeper deletes nothing
// else, whatever labels someone puts on it.
const bindingNamePrefix = "taskgate."

// sweeper removes ClusterRoleBindings a run created whose Task is gone or
// finished: the finalizer normally removes them, but a finalizer can be
// stripped (the webhook refuses that, the controller does not rely on it) or
// a cleanup can be cut short. It runs on the leader, at start and every
// interval, reads from the API server, and logs what it removes (no Events:
// the run is usually gone).
type sweeper struct {
	client   client.Client
	reader   client.Reader
	interval time.Duration
	log      logr.Logger
}

var (
	_ manager.Runnable               = (*sweeper)(nil)
	_ manager.LeaderElectionRunnable = (*sweeper)(nil)
)

// NeedLeaderElection: two managers sweeping would only race each other.
func (s *sweeper) NeedLeaderElection() bool { return true }

// Start sweeps until ctx ends.
func (s *sweeper) Start(ctx context.Context) error {
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		if err := s.sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Error(err, "sweep of run cluster role bindings failed; trying again later", "interval", s.interval.String())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// sweep runs once, over the bindings of runs (v1alpha1.TaskRunUIDLabel)
// and those a taskgate before TaskRuns made for a Task
// (v1alpha1.TaskUIDLabel), whose Tasks hold the run status themselves.
func (s *sweeper) sweep(ctx context.Context) error {
	runs := func(ctx context.Context, ns string) (sets.Set[types.UID], error) {
		return liveUIDs(ctx, s.reader, ns, &v1alpha1.TaskRunList{}, func(l *v1alpha1.TaskRunList) []v1alpha1.TaskRun { return l.Items },
			func(r *v1alpha1.TaskRun) (types.UID, *v1alpha1.TaskRunStatus) { return r.UID, &r.Status })
	}
	legacy := func(ctx context.Context, ns string) (sets.Set[types.UID], error) {
		return liveUIDs(ctx, s.reader, ns, &v1alpha1.TaskList{}, func(l *v1alpha1.TaskList) []v1alpha1.Task { return l.Items },
			func(t *v1alpha1.Task) (types.UID, *v1alpha1.TaskRunStatus) { return t.UID, &t.Status.TaskRunStatus })
	}
	return errors.Join(s.sweepLabel(ctx, v1alpha1.TaskRunUIDLabel, runs), s.sweepLabel(ctx, v1alpha1.TaskUIDLabel, legacy))
}

// sweepLabel removes the bindings carrying uidLabel whose owner (by that
// UID, in the namespace the binding names) is not among live's. The bindings
// are listed before the owners, so a binding created after the owner list
// was read cannot be taken for an orphan.
func (s *sweeper) sweepLabel(ctx context.Context, uidLabel string, live func(context.Context, string) (sets.Set[types.UID], error)) error {
	req, err := labels.NewRequirement(uidLabel, selection.Exists, nil)
	if err != nil {
		return err
	}
	var bindings []rbacv1.ClusterRoleBinding
	opts := &client.ListOptions{LabelSelector: labels.NewSelector().Add(*req), Limit: listPageSize}
	for {
		page := &rbacv1.ClusterRoleBindingList{}
		if err := s.reader.List(ctx, page, opts); err != nil {
			return fmt.Errorf("list cluster role bindings: %w", err)
		}
		bindings = append(bindings, page.Items...)
		if opts.Continue = page.Continue; opts.Continue == "" {
			break
		}
	}
	byNamespace := map[string]sets.Set[types.UID]{} // namespace -> UIDs of its unfinished owners
	for i := range bindings {
		crb := &bindings[i]
		ns := crb.Labels[children.TaskNamespaceLabel]
		if ns == "" || !strings.HasPrefix(crb.Name, bindingNamePrefix) {
			continue // not one taskgate created
		}
		uids, ok := byNamespace[ns]
		if !ok {
			if uids, err = live(ctx, ns); err != nil {
				return err
			}
			byNamespace[ns] = uids
		}
		if uids.Has(types.UID(crb.Labels[uidLabel])) {
			continue
		}
		err := s.client.Delete(ctx, crb, client.Preconditions{UID: &crb.UID})
		if client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete cluster role binding %s: %w", crb.Name, err)
		}
		s.log.Info("removed a cluster role binding whose run is gone or finished", "clusterRoleBinding", crb.Name,
			"namespace", ns, "taskrun", crb.Labels[v1alpha1.TaskRunLabel], "task", crb.Labels[v1alpha1.TaskLabel], "uid", crb.Labels[uidLabel])
	}
	return nil
}

// finishedGrace is how long after a run finished the sweeper leaves its
// binding to the run's own cleanup, which also records an Event.
const finishedGrace = time.Minute

// liveUIDs returns the UIDs of the objects in ns (TaskRuns, or legacy Tasks)
// whose run has not finished, or finished less than finishedGrace ago.
func liveUIDs[L client.ObjectList, T any](ctx context.Context, reader client.Reader, ns string, page L,
	items func(L) []T, status func(*T) (types.UID, *v1alpha1.TaskRunStatus)) (sets.Set[types.UID], error) {
	uids := sets.New[types.UID]()
	opts := &client.ListOptions{Namespace: ns, Limit: listPageSize}
	for {
		if err := reader.List(ctx, page, opts); err != nil {
			return nil, fmt.Errorf("list %T in %s: %w", page, ns, err)
		}
		all := items(page)
		for i := range all {
			uid, st := status(&all[i])
			if !isFinished(st) || st.CompletionTime == nil || time.Since(st.CompletionTime.Time) < finishedGrace {
				uids.Insert(uid)
			}
		}
		if opts.Continue = page.GetContinue(); opts.Continue == "" {
			return uids, nil
		}
	}
}
