package controller_test

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/children"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/test/testutil"
)

// config.clusterRole is bound to the run's ServiceAccount while the run
// runs, under a finalizer, and unbound when it finishes or is deleted.
func TestClusterRoleBinding(t *testing.T) {
	ns := parallelWithManager(t)

	tests := []struct {
		name string
		end  func(t *testing.T, task *v1alpha1.TaskRun, pod *corev1.Pod)
	}{
		{name: "finished", end: func(t *testing.T, task *v1alpha1.TaskRun, pod *corev1.Pod) {
			setPodStatus(t, pod, corev1.PodSucceeded, 0, "Completed")
			task = waitForRun(t, ns, task.Name, v1alpha1.TaskSucceeded)
			waitForEvents(t, task, controller.EventClusterRoleBindingCreated, controller.EventClusterRoleBindingRemoved)
			waitForFinalizerGone(t, task)
		}},
		{name: "deleted", end: func(t *testing.T, task *v1alpha1.TaskRun, _ *corev1.Pod) {
			if err := k8sClient.Delete(t.Context(), task); err != nil {
				t.Fatalf("delete task: %v", err)
			}
			testutil.Eventually(t, "task gone", func() error {
				if err := get(t, client.ObjectKeyFromObject(task), &v1alpha1.TaskRun{}); !apierrors.IsNotFound(err) {
					return errNotYet("task still there (%v)", err)
				}
				return nil
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := customImage("bitnami/kubectl:1.37", "kubectl", "get", "nodes")
			cfg.ClusterRole = "view"
			mustCreate(t, makeRun(t, ns, tt.name, v1alpha1.PluginCustomImage, cfg))
			pod := waitForPod(t, ns, tt.name)

			task := &v1alpha1.TaskRun{}
			mustGet(t, ns, tt.name, task)
			if !slices.Contains(task.Finalizers, v1alpha1.Finalizer) {
				t.Errorf("finalizers = %v, want %s while the binding exists", task.Finalizers, v1alpha1.Finalizer)
			}
			crbName := v1alpha1.ClusterRoleBindingName(ns, tt.name)
			crb := &rbacv1.ClusterRoleBinding{}
			mustGet(t, "", crbName, crb)
			wantSubject := rbacv1.Subject{Kind: "ServiceAccount", Namespace: ns, Name: pod.Spec.ServiceAccountName}
			if crb.RoleRef.Kind != "ClusterRole" || crb.RoleRef.Name != "view" ||
				len(crb.Subjects) != 1 || crb.Subjects[0] != wantSubject {
				t.Errorf("binding = %+v %+v, want view bound to %+v", crb.RoleRef, crb.Subjects, wantSubject)
			}
			if crb.Labels[v1alpha1.TaskRunLabel] != tt.name || crb.Labels[v1alpha1.TaskRunUIDLabel] != string(task.UID) ||
				crb.Labels[children.TaskNamespaceLabel] != ns {
				t.Errorf("binding labels = %v", crb.Labels)
			}

			tt.end(t, task, pod)
			testutil.Eventually(t, "binding removed", func() error {
				if err := get(t, client.ObjectKey{Name: crbName}, &rbacv1.ClusterRoleBinding{}); !apierrors.IsNotFound(err) {
					return errNotYet("binding still there (%v)", err)
				}
				return nil
			})
		})
	}
}
