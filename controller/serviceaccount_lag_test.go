package controller

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/children"
)

// laggingCache answers Gets of one key with an older copy of the object,
// as an informer does before it has seen this controller's own last
// delete and create.
type laggingCache struct {
	client.Client
	key types.NamespacedName
	old *corev1.ServiceAccount
}

func (l *laggingCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if sa, ok := obj.(*corev1.ServiceAccount); ok && key == l.key {
		l.old.DeepCopyInto(sa)
		return nil
	}
	return l.Client.Get(ctx, key, obj, opts...)
}

// TestServiceAccountCacheLag: the cache may lag behind the controller's
// own last steps, and a ServiceAccount verdict (delete it, or fail the Task
// ServiceAccountReplaced) is taken on the API server's view. Against a real
// API server: (1) the cache still shows the ServiceAccount this controller
// replaced, while the status records the new one: the step goes on, no
// failure; (2) the Task in hand is older than the API server's (its
// checkpoint is not in the cache yet): the step retries instead of deleting
// the recorded ServiceAccount; (3) the recorded one really was replaced:
// the Task still fails ServiceAccountReplaced.
func TestServiceAccountCacheLag(t *testing.T) {
	cp := controlPlane(t)
	ns := envNamespace(t, cp)
	ctx := t.Context()
	setup := func(t *testing.T, name string) (*v1alpha1.TaskRun, types.NamespacedName, *corev1.ServiceAccount, *corev1.ServiceAccount) {
		task := newEnvRun(t, cp.Client, ns, name, v1alpha1.PluginCustomImage, staleImageConfig)
		key := types.NamespacedName{Namespace: ns, Name: v1alpha1.ServiceAccountName(task.Name, task.UID)}
		mk := func() *corev1.ServiceAccount {
			sa := &corev1.ServiceAccount{ObjectMeta: children.Meta(task, key.Name)}
			sa.OwnerReferences = children.OwnerReference(task)
			createChild(t, cp, sa, "service account")
			return sa
		}
		old := mk()
		if err := cp.Client.Delete(ctx, old); err != nil {
			t.Fatal(err)
		}
		return task, key, old, mk()
	}

	t.Run("cache shows the replaced one", func(t *testing.T) {
		task, key, old, current := setup(t, "lag-replaced")
		st := customImageStatus(task)
		st.ServiceAccountUID = current.UID
		d := envDeps(t, cp.Config, &laggingCache{Client: cp.Client, key: key, old: old})
		if err := (&customImageRunner{deps: d}).ensureServiceAccount(ctx, task, &v1alpha1.CustomImageConfig{}, st, &noCheckpoint{}); err != nil {
			t.Fatalf("cache one step behind the controller's own replacement: %v; want the recorded ServiceAccount (UID %s) accepted", err, current.UID)
		}
		if st.ServiceAccountUID != current.UID {
			t.Errorf("status records UID %s, want %s", st.ServiceAccountUID, current.UID)
		}
	})

	t.Run("task older than the API server's", func(t *testing.T) {
		task, key, _, current := setup(t, "lag-task")
		stale := task.DeepCopy()
		// The checkpoint, written by an earlier reconcile: the API server's
		// Task records the ServiceAccount; the copy in hand does not.
		customImageStatus(task).ServiceAccountUID = current.UID
		if err := cp.Client.Status().Update(ctx, task); err != nil {
			t.Fatal(err)
		}
		d := envDeps(t, cp.Config, cp.Client)
		err := (&customImageRunner{deps: d}).ensureServiceAccount(ctx, stale, &v1alpha1.CustomImageConfig{}, customImageStatus(stale), &noCheckpoint{})
		if err == nil || errors.Is(err, errServiceAccountReplaced) || errors.Is(err, errNameConflict) {
			t.Fatalf("with a Task older than the API server's: %v; want a retry error", err)
		}
		sa := &corev1.ServiceAccount{}
		if err := cp.Client.Get(ctx, key, sa); err != nil || sa.UID != current.UID {
			t.Errorf("recorded ServiceAccount (UID %s) after the step: UID %s, %v; want it untouched", current.UID, sa.UID, err)
		}
	})

	t.Run("really replaced", func(t *testing.T) {
		task, _, old, _ := setup(t, "lag-really")
		st := customImageStatus(task)
		st.ServiceAccountUID = old.UID // what taskgate recorded is gone; another stands in its place
		d := envDeps(t, cp.Config, cp.Client)
		err := (&customImageRunner{deps: d}).ensureServiceAccount(ctx, task, &v1alpha1.CustomImageConfig{}, st, &noCheckpoint{})
		if !errors.Is(err, errServiceAccountReplaced) {
			t.Fatalf("recorded ServiceAccount replaced on the API server: %v; want ServiceAccountReplaced", err)
		}
	})
}
