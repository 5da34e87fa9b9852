package controller

import (
	"context"
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

// bindingNamePrefix starts the name of every ClusterRoleBinding a Task
// creates (v1alpha1.ClusterRoleBindingName). The sweeper deletes nothing
// else, whatever labels someone puts on it.
const bindingNamePrefix = "taskgate."

// sweeper removes ClusterRoleBindings a Task created whose Task is gone or
// finished: the finalizer normally removes them, but a finalizer can be
// stripped (the webhook refuses that, the controller does not rely on it) or
// a cleanup can be cut short. It runs on the leader, at start and every
// interval, reads from the API server, and logs what it removes (no Events:
// the Task is usually gone).
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
			s.log.Error(err, "sweep of task cluster role bindings failed; trying again later", "interval", s.interval.String())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// sweep runs once. The bindings are listed before the Tasks, so a binding
// created after the Task list was read cannot be taken for an orphan.
func (s *sweeper) sweep(ctx context.Context) error {
	req, err := labels.NewRequirement(v1alpha1.TaskUIDLabel, selection.Exists, nil)
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
	live := map[string]sets.Set[types.UID]{} // namespace -> UIDs of its unfinished Tasks
	for i := range bindings {
		crb := &bindings[i]
		ns := crb.Labels[children.TaskNamespaceLabel]
		if ns == "" || !strings.HasPrefix(crb.Name, bindingNamePrefix) {
			continue // not one a Task created
		}
		uids, ok := live[ns]
		if !ok {
			if uids, err = s.liveTasks(ctx, ns); err != nil {
				return err
			}
			live[ns] = uids
		}
		if uids.Has(types.UID(crb.Labels[v1alpha1.TaskUIDLabel])) {
			continue
		}
		err := s.client.Delete(ctx, crb, client.Preconditions{UID: &crb.UID})
		if client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete cluster role binding %s: %w", crb.Name, err)
		}
		s.log.Info("removed a cluster role binding whose task is gone or finished", "clusterRoleBinding", crb.Name,
			"taskNamespace", ns, "task", crb.Labels[v1alpha1.TaskLabel], "taskUID", crb.Labels[v1alpha1.TaskUIDLabel])
	}
	return nil
}

// finishedGrace is how long after a Task finished the sweeper leaves its
// binding to the Task's own cleanup, which also records an Event.
const finishedGrace = time.Minute

// liveTasks returns the UIDs of the Tasks in ns that have not finished, or
// finished less than finishedGrace ago.
func (s *sweeper) liveTasks(ctx context.Context, ns string) (sets.Set[types.UID], error) {
	uids := sets.New[types.UID]()
	opts := &client.ListOptions{Namespace: ns, Limit: listPageSize}
	for {
		page := &v1alpha1.TaskList{}
		if err := s.reader.List(ctx, page, opts); err != nil {
			return nil, fmt.Errorf("list tasks in %s: %w", ns, err)
		}
		for i := range page.Items {
			st := &page.Items[i].Status
			if !isFinished(st) || st.CompletionTime == nil || time.Since(st.CompletionTime.Time) < finishedGrace {
				uids.Insert(page.Items[i].UID)
			}
		}
		if opts.Continue = page.Continue; opts.Continue == "" {
			return uids, nil
		}
	}
}
