package controller_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/children"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/test/testutil"
)

// The sweeper alone (its manager watches another namespace, so no reconcile
// of these Tasks runs) removes a binding whose Task finished a while ago,
// and keeps one whose Task still runs and one that only looks like a
// Task's (a name taskgate never gives, whatever its labels).
func TestSweeperRemovesBindingsOfFinishedTasks(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	finishedLongAgo := metav1.NewTime(time.Now().Add(-10 * time.Minute).Truncate(time.Second))
	tests := []struct {
		name        string
		finished    bool
		bindingName string
		wantRemoved bool
	}{
		{name: "finished", finished: true, wantRemoved: true},
		{name: "running"},
		{name: "lookalike", finished: true, bindingName: "lookalike-" + ns},
	}
	for _, tt := range tests {
		task := makeTask(t, ns, tt.name, v1alpha1.PluginCustomImage, customImage("busybox:1.36", "true"))
		mustCreate(t, task)
		if tt.finished {
			task.Status = v1alpha1.TaskStatus{Phase: v1alpha1.TaskSucceeded, StartTime: &finishedLongAgo, CompletionTime: &finishedLongAgo,
				Conditions: []metav1.Condition{{Type: v1alpha1.ConditionSucceeded, Status: metav1.ConditionTrue,
					Reason: controller.ReasonCompleted, Message: "done", LastTransitionTime: finishedLongAgo}}}
			if err := k8sClient.Status().Update(t.Context(), task); err != nil {
				t.Fatal(err)
			}
		}
		crb := children.ClusterRoleBinding(task, "view", "someone")
		if tt.bindingName != "" {
			crb.Name = tt.bindingName
		}
		mustCreate(t, crb)
	}
	// Each sweep lists the bindings from the API server once: counting those
	// lists tells when a whole sweep has run after the removal.
	var sweeps atomic.Int64
	cfg := rest.CopyConfig(managerCfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/clusterrolebindings") && r.URL.Query().Get("watch") == "" {
				sweeps.Add(1)
			}
			return rt.RoundTrip(r)
		})
	})
	startManagerWith(t, newNamespace(t), managerOptions{config: cfg, controller: controller.Options{SweepInterval: 200 * time.Millisecond}})

	waitForAbsent(t, client.ObjectKey{Name: v1alpha1.ClusterRoleBindingName(ns, "finished")}, &rbacv1.ClusterRoleBinding{})
	// The sweep that removed it may still be going; the one after next
	// starts only once the next has finished.
	removedBy := sweeps.Load()
	testutil.Eventually(t, "two more sweeps", func() error {
		if n := sweeps.Load() - removedBy; n < 2 {
			return errNotYet("%d sweeps since the removal, want 2", n)
		}
		return nil
	})
	for _, tt := range tests {
		if tt.wantRemoved {
			continue
		}
		name := tt.bindingName
		if name == "" {
			name = v1alpha1.ClusterRoleBindingName(ns, tt.name)
		}
		if err := get(t, client.ObjectKey{Name: name}, &rbacv1.ClusterRoleBinding{}); err != nil {
			t.Errorf("%s: binding %s: %v, want it kept", tt.name, name, err)
		}
	}
}

// roundTripperFunc is an http.RoundTripper of a function.
type roundTripperFunc func(*http.Request) (*http.Response, error)

// RoundTrip implements http.RoundTripper.
func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
