package controller_test

import (
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
)

// The Synchronization is created as the requester: the operator runs it
// with its own rights, so only someone who may create one gets one.
func TestRunSynchronizationAsRequester(t *testing.T) {
	ns := parallelWithManager(t)
	createSyncs := rbacv1.PolicyRule{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"synchronizations"}, Verbs: []string{"create"}}
	tests := []struct {
		name      string
		rules     []rbacv1.PolicyRule
		wantPhase v1alpha1.TaskPhase
	}{
		{name: "tasks-only", rules: []rbacv1.PolicyRule{createTaskRuns}, wantPhase: v1alpha1.TaskFailed},
		{name: "sync-creator", rules: []rbacv1.PolicyRule{createTaskRuns, createSyncs}, wantPhase: v1alpha1.TaskSucceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mustCreate(t, withRequester(makeRun(t, ns, tt.name, v1alpha1.PluginRunSync, syncConfig()), newRequester(t, ns, tt.name, tt.rules, nil)))
			task := waitForRun(t, ns, tt.name, tt.wantPhase)
			if tt.wantPhase == v1alpha1.TaskSucceeded {
				sync := &v1alpha1.Synchronization{}
				mustGet(t, ns, v1alpha1.SynchronizationName(tt.name), sync)
				isControlledBy(t, sync, task)
				return
			}
			if c := succeededCondition(t, task); c.Reason != controller.ReasonForbidden || !strings.Contains(c.Message, `cannot create resource "synchronizations"`) {
				t.Errorf("condition = %s: %s, want Forbidden with the API server's text", c.Reason, c.Message)
			}
			wantAbsent(t, keyOf(ns, v1alpha1.SynchronizationName(tt.name)), &v1alpha1.Synchronization{})
		})
	}
}

// A ServiceAccount requester (a GitOps controller creating runs) is acted
// as through constrained impersonation's serviceaccount mode: it gets its
// Pod when it may create Pods, and only then.
func TestServiceAccountRequester(t *testing.T) {
	ns := parallelWithManager(t)
	tests := []struct {
		name    string
		rules   []rbacv1.PolicyRule
		wantPod bool
	}{
		{name: "gitops-pods", rules: []rbacv1.PolicyRule{createTaskRuns, createPods}, wantPod: true},
		{name: "gitops-tasks", rules: []rbacv1.PolicyRule{createTaskRuns}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			user := "system:serviceaccount:" + ns + ":" + tt.name
			mustCreate(t, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: tt.name}, Rules: tt.rules})
			mustCreate(t, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: tt.name},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: tt.name},
				Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: tt.name}}})
			requester := &v1alpha1.Requester{Username: user, UID: "0000-gitops", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns}}
			mustCreate(t, withRequester(makeRun(t, ns, tt.name, v1alpha1.PluginCustomImage, customImage("busybox:1.36", "true")), requester))
			if tt.wantPod {
				waitForPod(t, ns, tt.name)
				return
			}
			task := waitForRun(t, ns, tt.name, v1alpha1.TaskFailed)
			if c := succeededCondition(t, task); c.Reason != controller.ReasonForbidden || !strings.Contains(c.Message, `cannot create resource "pods"`) {
				t.Errorf("condition = %s: %s, want Forbidden with the API server's text", c.Reason, c.Message)
			}
		})
	}
}

func keyOf(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }
