package controller

import (
	"context"
	"errors"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/children"
	"github.com/astronetes/taskgate/test/load/kit"
)

// noCheckpoint counts the saves a step asks for; the status itself is not
// written (these tests call one ensure-step, not a reconcile).
type noCheckpoint struct{ saves int }

func (n *noCheckpoint) save(context.Context) error { n.saves++; return nil }

// ensureCase is one ensure-step, run after an earlier reconcile created the
// child and stopped before recording it in the Task's status (a crash, a
// lost status write), while the cache has not seen the child yet: the
// create gets AlreadyExists from the API server, and the step must go on
// with the child that exists, never make a second one.
type ensureCase struct {
	name   string
	plugin v1alpha1.Plugin
	config string
	// child is the child as the earlier reconcile created it.
	child func(task *v1alpha1.TaskRun) client.Object
	// ensure runs the step with d and returns the child it went on with.
	ensure func(ctx context.Context, d *deps, task *v1alpha1.TaskRun) (client.Object, error)
	// list lists every child of this kind of task.
	list func(task *v1alpha1.TaskRun) (client.ObjectList, []client.ListOption)
}

const staleImageConfig = `{"image":"busybox:1.36","command":["true"],"clusterRole":"view"}`

func customImageStatus(task *v1alpha1.TaskRun) *v1alpha1.CustomImageStatus {
	if task.Status.CustomImage == nil {
		task.Status.CustomImage = &v1alpha1.CustomImageStatus{ServiceAccountName: v1alpha1.ServiceAccountName(task.Name, task.UID)}
	}
	return task.Status.CustomImage
}

func ensureCases() []ensureCase {
	byTask := func(task *v1alpha1.TaskRun) []client.ListOption {
		return []client.ListOption{client.InNamespace(task.Namespace), client.MatchingLabels{v1alpha1.TaskRunLabel: v1alpha1.TaskLabelValue(task.Name)}}
	}
	return []ensureCase{
		{
			name: "service account", plugin: v1alpha1.PluginCustomImage, config: staleImageConfig,
			child: func(task *v1alpha1.TaskRun) client.Object {
				sa := &corev1.ServiceAccount{ObjectMeta: children.Meta(task, v1alpha1.ServiceAccountName(task.Name, task.UID))}
				sa.OwnerReferences = children.OwnerReference(task)
				return sa
			},
			ensure: func(ctx context.Context, d *deps, task *v1alpha1.TaskRun) (client.Object, error) {
				st := customImageStatus(task)
				if err := (&customImageRunner{deps: d}).ensureServiceAccount(ctx, task, &v1alpha1.CustomImageConfig{}, st, &noCheckpoint{}); err != nil {
					return nil, err
				}
				sa := &corev1.ServiceAccount{}
				err := d.reader.Get(ctx, types.NamespacedName{Namespace: task.Namespace, Name: st.ServiceAccountName}, sa)
				if err == nil && sa.UID != st.ServiceAccountUID {
					err = fmt.Errorf("status records service account UID %s, the API server holds %s", st.ServiceAccountUID, sa.UID)
				}
				return sa, err
			},
			list: func(task *v1alpha1.TaskRun) (client.ObjectList, []client.ListOption) {
				return &corev1.ServiceAccountList{}, byTask(task)
			},
		},
		podCase("pod", 0, byTask),
		podCase("pod of a later attempt", 1, byTask), // the attempt recorded before its Pod is created
		{
			name: "cluster role binding", plugin: v1alpha1.PluginCustomImage, config: staleImageConfig,
			child: func(task *v1alpha1.TaskRun) client.Object {
				return children.ClusterRoleBinding(task, "view", v1alpha1.ServiceAccountName(task.Name, task.UID))
			},
			ensure: func(ctx context.Context, d *deps, task *v1alpha1.TaskRun) (client.Object, error) {
				if err := (&customImageRunner{deps: d}).ensureBinding(ctx, task, "view", v1alpha1.ServiceAccountName(task.Name, task.UID)); err != nil {
					return nil, err
				}
				crb := &rbacv1.ClusterRoleBinding{}
				err := d.reader.Get(ctx, client.ObjectKey{Name: v1alpha1.ClusterRoleBindingName(task.Namespace, task.Name)}, crb)
				return crb, err
			},
			list: func(task *v1alpha1.TaskRun) (client.ObjectList, []client.ListOption) {
				return &rbacv1.ClusterRoleBindingList{}, []client.ListOption{client.MatchingLabels{v1alpha1.TaskRunUIDLabel: string(task.UID)}}
			},
		},
		{
			name: "synchronization", plugin: v1alpha1.PluginRunSync, config: staleSyncConfig,
			child: func(task *v1alpha1.TaskRun) client.Object {
				cfg, err := decodeConfig[v1alpha1.RunSynchronizationConfig](task)
				if err != nil {
					panic(err) // a constant config
				}
				return newSynchronization(task, cfg)
			},
			ensure: func(ctx context.Context, d *deps, task *v1alpha1.TaskRun) (client.Object, error) {
				// The whole step: the Task must also record the existing one.
				if _, err := (&runSyncRunner{deps: d}).run(ctx, task, &noCheckpoint{}); err != nil {
					return nil, err
				}
				if task.Status.Synchronization == nil {
					return nil, fmt.Errorf("status records no synchronization; conditions %s", conditionsText(task.Status.Conditions))
				}
				sync := &v1alpha1.Synchronization{}
				err := d.reader.Get(ctx, types.NamespacedName{Namespace: task.Namespace, Name: task.Status.Synchronization.Name}, sync)
				return sync, err
			},
			list: func(task *v1alpha1.TaskRun) (client.ObjectList, []client.ListOption) {
				return &v1alpha1.SynchronizationList{}, byTask(task)
			},
		},
	}
}

// podToken is the creation token the earlier reconcile of podCase wrote.
const podToken = "token-of-the-earlier-reconcile"

// podCase is the ensurePod step for the Pod of the given attempt, recorded
// in the status before the step runs.
func podCase(name string, attempt int32, byTask func(*v1alpha1.TaskRun) []client.ListOption) ensureCase {
	imageCfg := &v1alpha1.CustomImageConfig{Image: "busybox:1.36", Command: []string{"true"}, ClusterRole: "view"}
	return ensureCase{
		name: name, plugin: v1alpha1.PluginCustomImage, config: staleImageConfig,
		child: func(task *v1alpha1.TaskRun) client.Object {
			pod := children.Pod(task, imageCfg, v1alpha1.ServiceAccountName(task.Name, task.UID))
			pod.Name = v1alpha1.AttemptPodName(task.Name, attempt)
			// As the earlier reconcile created it: with the token it
			// checkpointed first.
			pod.Annotations = map[string]string{v1alpha1.CreationTokenAnnotation: podToken}
			return pod
		},
		ensure: func(ctx context.Context, d *deps, task *v1alpha1.TaskRun) (client.Object, error) {
			st := customImageStatus(task)
			st.Attempt, st.CreationToken = attempt, podToken
			pod, err := (&customImageRunner{deps: d}).ensurePod(ctx, task, imageCfg, st, &noCheckpoint{})
			if err == nil && pod == nil {
				err = errors.New("ensurePod returned no Pod")
			}
			return pod, err
		},
		list: func(task *v1alpha1.TaskRun) (client.ObjectList, []client.ListOption) {
			return &corev1.PodList{}, byTask(task)
		},
	}
}

const staleSyncConfig = `{"template":{"spec":{"plugin":"kubernetes-to-kubernetes","config":{"sourceName":"dr","destinationName":"main"}}}}`

// TestEnsureStaleCacheFindsExisting: against a real API server, each
// ensure-step whose create meets AlreadyExists (the cache does not see the
// child an earlier reconcile created) goes on with that child: the API
// server holds exactly one, the one created first (same UID), also after
// the step runs a second time. For the ServiceAccount, one that claims the
// Task but was never recorded is replaced, never kept beside another (see
// ensureServiceAccount), and what the status records is what exists.
func TestEnsureStaleCacheFindsExisting(t *testing.T) {
	forEachEnsureCase(t, "stale-", func(t *testing.T, cp *kit.ControlPlane, tt ensureCase, task *v1alpha1.TaskRun) {
		ctx := t.Context()
		first := tt.child(task)
		createChild(t, cp, first, "the child an earlier reconcile made")
		d := envDeps(t, cp.Config, &staleCache{Client: cp.Client, hide: hideChildren})

		got, err := tt.ensure(ctx, d, task)
		if err != nil {
			t.Fatalf("%s with a stale cache: %v; want it to go on with the existing one", tt.name, err)
		}
		if tt.name != "service account" && got.GetUID() != first.GetUID() {
			t.Errorf("went on with %s UID %s, want the existing one, UID %s", got.GetName(), got.GetUID(), first.GetUID())
		}
		wantUID := got.GetUID()
		// Again, as the next reconcile would, the cache still stale.
		again, err := tt.ensure(ctx, d, task)
		if err != nil {
			t.Fatalf("second run: %v", err)
		}
		if again.GetUID() != wantUID {
			t.Errorf("second run went on with UID %s, want %s (the child must not change)", again.GetUID(), wantUID)
		}
		list, opts := tt.list(task)
		if err := cp.Client.List(ctx, list, opts...); err != nil {
			t.Fatal(err)
		}
		items, err := metaItems(list)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 1 || items[0].GetUID() != wantUID {
			t.Errorf("the API server holds %d %s(s) of the Task: %v; want exactly one, UID %s", len(items), tt.name, describe(items), wantUID)
		}
	})
}

// TestEnsureStaleCacheNameTaken: a child's name held by an object that is
// not the Task's is never adopted, also when the cache cannot see it: the
// step fails with errNameConflict and the object stays as it was.
func TestEnsureStaleCacheNameTaken(t *testing.T) {
	forEachEnsureCase(t, "taken-", func(t *testing.T, cp *kit.ControlPlane, tt ensureCase, task *v1alpha1.TaskRun) {
		ctx := t.Context()
		// Someone else's: same name and labels, no owner reference
		// (or, for the binding, another Task's UID).
		other := task.DeepCopy()
		other.UID = "00000000-0000-0000-0000-000000000000"
		squatter := tt.child(other)
		squatter.SetOwnerReferences(nil)
		// Under the run's own child name: the ServiceAccount's name holds
		// part of the run's UID, so a squatter takes it once the run exists.
		squatter.SetName(tt.child(task).GetName())
		createChild(t, cp, squatter, "squatter")
		d := envDeps(t, cp.Config, &staleCache{Client: cp.Client, hide: hideChildren})
		_, err := tt.ensure(ctx, d, task)
		if tt.plugin == v1alpha1.PluginRunSync {
			// run() turns the conflict into the Task's failure.
			if c := task.Status.Conditions; len(c) == 0 || c[0].Reason != ReasonNameConflict {
				t.Fatalf("run() = %v; want the Task failed with %s, got conditions %s", err, ReasonNameConflict, conditionsText(c))
			}
		} else if !errors.Is(err, errNameConflict) {
			t.Fatalf("%s with the name taken: error %v, want errNameConflict", tt.name, err)
		}
		list, opts := tt.list(other)
		if err := cp.Client.List(ctx, list, opts...); err != nil {
			t.Fatal(err)
		}
		if items, _ := metaItems(list); len(items) != 1 || items[0].GetUID() != squatter.GetUID() {
			t.Errorf("after the conflict: %v; want only the squatter, UID %s, untouched", describe(items), squatter.GetUID())
		}
	})
}

// forEachEnsureCase runs body as a subtest for each ensure case, on one
// control plane, with the case's Task (named prefix+case) created and the
// ServiceAccount its Pod needs (see podServiceAccount).
func forEachEnsureCase(t *testing.T, prefix string, body func(t *testing.T, cp *kit.ControlPlane, tt ensureCase, task *v1alpha1.TaskRun)) {
	cp := controlPlane(t)
	ns := envNamespace(t, cp)
	for _, tt := range ensureCases() {
		t.Run(tt.name, func(t *testing.T) {
			task := newEnvRun(t, cp.Client, ns, prefix+sanitize(tt.name), tt.plugin, tt.config)
			podServiceAccount(t, cp.Client, task, tt)
			body(t, cp, tt, task)
		})
	}
}

// createChild creates obj (what names it in a failure) and deletes it when
// the test ends.
func createChild(t *testing.T, cp *kit.ControlPlane, obj client.Object, what string) {
	t.Helper()
	if err := cp.Client.Create(t.Context(), obj); err != nil {
		t.Fatalf("create %s: %v", what, err)
	}
	t.Cleanup(func() { _ = cp.Client.Delete(context.Background(), obj) })
}

// podServiceAccount creates the ServiceAccount the Pod and binding cases
// name (ServiceAccount admission refuses a Pod without it), unlabelled so
// that the stale cache sees it; the service account case makes its own.
func podServiceAccount(t *testing.T, c client.Client, task *v1alpha1.TaskRun, tt ensureCase) {
	t.Helper()
	if tt.plugin != v1alpha1.PluginCustomImage || tt.name == "service account" {
		return
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: task.Namespace, Name: v1alpha1.ServiceAccountName(task.Name, task.UID)}}
	if err := c.Create(t.Context(), sa); err != nil {
		t.Fatalf("create service account: %v", err)
	}
}

// conditionsText is conds as "Type=Status Reason: Message", for failure messages.
func conditionsText(conds []metav1.Condition) string {
	if len(conds) == 0 {
		return "(none)"
	}
	var out string
	for _, c := range conds {
		out += fmt.Sprintf("[%s=%s %s: %s]", c.Type, c.Status, c.Reason, c.Message)
	}
	return out
}

// describe names items by name and UID, for failure messages.
func describe(items []metav1.Object) []string {
	out := make([]string, 0, len(items))
	for _, o := range items {
		out = append(out, fmt.Sprintf("%s (UID %s)", o.GetName(), o.GetUID()))
	}
	return out
}

// metaItems are the items of list.
func metaItems(list client.ObjectList) ([]metav1.Object, error) {
	objs, err := meta.ExtractList(list)
	if err != nil {
		return nil, fmt.Errorf("items of %T: %w", list, err)
	}
	out := make([]metav1.Object, 0, len(objs))
	for _, o := range objs {
		m, err := meta.Accessor(o)
		if err != nil {
			return nil, fmt.Errorf("item of %T: %w", list, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// sanitize makes a case name a name part.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == ' ' {
			b[i] = '-'
		}
	}
	return string(b)
}
