package security_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
)

// A user whose only right is Tasks must not get a Pod (with a powerful
// ServiceAccount and a Secret they cannot read); a user who may create Pods
// gets exactly the Pod they could have created by hand.
func TestTasksOnlyUserGetsNoPod(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "")
	must(t, k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: ns}}))
	must(t, k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "deployer-admin-" + ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "deployer", Namespace: ns}},
	}))
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns}, StringData: map[string]string{"password": "s3cret"}}))
	config := `{"image":"busybox:1.36","command":["sh","-c","env"],"serviceAccountName":"deployer",` +
		`"env":[{"name":"PW","valueFrom":{"secretKeyRef":{"name":"db","key":"password"}}}]}`

	grant(t, ns, "mallory", taskRights)
	mallory := as(t, "mallory")
	mustRefuse(t, mallory.create(t, newTask(ns, "steal", v1alpha1.PluginCustomImage, config)), "create pods")
	absent(t, &corev1.Pod{}, client.ObjectKey{Namespace: ns, Name: v1alpha1.PodName("steal")})

	grant(t, ns, "paula", taskRights, rule("", "pods", "create"))
	paula := as(t, "paula")
	must(t, paula.create(t, newTask(ns, "run", v1alpha1.PluginCustomImage, config)))
	if r := requesterOf(t, ns, "run"); r == nil || r.Username != "paula" {
		t.Fatalf("spec.requester = %+v, want paula", r)
	}
	// In requester mode the manager holds no `create pods`: the Pod exists
	// only because it was created as paula.
	waitPod(t, ns, v1alpha1.PodName("run"))
}

// `bind` on a ClusterRole is not enough for a ClusterRoleBinding: Kubernetes
// also wants `create clusterrolebindings`, and so does a Task.
func TestBindAloneGetsNoBinding(t *testing.T) {
	ns := newNamespace(t, "")
	podsAndBind := []rbacv1.PolicyRule{taskRights, rule("", "pods", "create")}
	bindView := rbacv1.PolicyRule{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterroles"}, ResourceNames: []string{"view"}, Verbs: []string{"bind"}}
	config := `{"image":"busybox:1.36","command":["true"],"clusterRole":"view"}`

	grant(t, ns, "bob", podsAndBind...)
	grant(t, "", "bob", bindView)
	mustRefuse(t, as(t, "bob").create(t, newTask(ns, "bind", v1alpha1.PluginCustomImage, config)), "create clusterrolebindings")
	absent(t, &rbacv1.ClusterRoleBinding{}, client.ObjectKey{Name: v1alpha1.ClusterRoleBindingName(ns, "bind")})

	grant(t, ns, "bea", podsAndBind...)
	grant(t, "", "bea", bindView, rule(rbacv1.GroupName, "clusterrolebindings", "create"))
	must(t, as(t, "bea").create(t, newTask(ns, "bind", v1alpha1.PluginCustomImage, config)))
	crb := waitBinding(t, ns, "bind")
	if uid := runUID(t, ns, "bind"); crb.RoleRef.Name != "view" || crb.Labels[v1alpha1.TaskRunUIDLabel] != uid {
		t.Fatalf("binding %s: roleRef %s, labels %v; want view and the run's UID %s", crb.Name, crb.RoleRef.Name, crb.Labels, uid)
	}
}

// A namespace editor cannot get a run's ClusterRole by preparing its
// ServiceAccount: the name holds part of the run's random UID, so neither a
// ServiceAccount squatting it nor a RoleBinding naming it can exist before
// the run does (the older "<task>-task" name, which a user chose, is just
// another ServiceAccount). The run binds only the ServiceAccount it created
// and recorded, deletes it when it ends, and also when it is deleted with
// --cascade=orphan. (A squatter racing in after the run exists is the
// controller's NameConflict: controller/ensure_stale_test.go.)
func TestServiceAccountSquatting(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "")
	grant(t, ns, "eve", taskRights, rule("", "serviceaccounts", "create", "get"), rule(rbacv1.GroupName, "rolebindings", "create"))
	eve := as(t, "eve")
	for _, guess := range []string{"nightly-task", "nightly-sa"} {
		must(t, eve.c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: guess, Namespace: ns}}))
	}

	admin := as(t, "root", adminGroup)
	must(t, admin.create(t, newTask(ns, "nightly", v1alpha1.PluginCustomImage, `{"image":"busybox:1.36","command":["true"],"clusterRole":"cluster-admin"}`)))
	crb := waitBinding(t, ns, "nightly")
	run := &v1alpha1.TaskRun{}
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "nightly"}, run))
	own := v1alpha1.ServiceAccountName("nightly", run.UID)
	if len(crb.Subjects) != 1 || crb.Subjects[0].Name != own {
		t.Fatalf("binding subjects %v; want only the run's own ServiceAccount %s", crb.Subjects, own)
	}
	pod := waitPod(t, ns, v1alpha1.PodName("nightly"))
	if pod.Spec.ServiceAccountName != own {
		t.Fatalf("pod runs as %s, want %s", pod.Spec.ServiceAccountName, own)
	}
	sa := &corev1.ServiceAccount{}
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: own}, sa))
	if len(sa.OwnerReferences) != 1 || sa.OwnerReferences[0].Name != "nightly" || sa.OwnerReferences[0].Kind != "TaskRun" {
		t.Fatalf("service account owners %v; want the TaskRun nightly", sa.OwnerReferences)
	}

	// Deleted with --cascade=orphan while it runs: the binding and the
	// ServiceAccount still go (the run's finalizer), nothing is left to be
	// bound later.
	must(t, admin.c.Delete(ctx, run, client.PropagationPolicy(metav1.DeletePropagationOrphan)))
	waitGone(t, &rbacv1.ClusterRoleBinding{}, client.ObjectKey{Name: v1alpha1.ClusterRoleBindingName(ns, "nightly")})
	waitGone(t, &corev1.ServiceAccount{}, client.ObjectKey{Namespace: ns, Name: own})
	for _, guess := range []string{"nightly-task", "nightly-sa"} {
		must(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: guess}, &corev1.ServiceAccount{})) // eve's, untouched
	}
}

// Task "b-c" in namespace "<p>" and Task "c" in namespace "<p>-b" must not
// share a ClusterRoleBinding name: one namespace cannot block another's Task.
func TestBindingNamesDoNotCollide(t *testing.T) {
	p := newNamespace(t, "")
	q := newNamespace(t, p+"-b")
	admin := as(t, "root", adminGroup)
	config := `{"image":"busybox:1.36","command":["true"],"clusterRole":"view"}`
	must(t, admin.create(t, newTask(p, "b-c", v1alpha1.PluginCustomImage, config)))
	must(t, admin.create(t, newTask(q, "c", v1alpha1.PluginCustomImage, config)))
	one, two := waitBinding(t, p, "b-c"), waitBinding(t, q, "c")
	if one.Name == two.Name {
		t.Fatalf("both Tasks got binding %s", one.Name)
	}
}

// A requester recorded by the webhook cannot be forged at create nor
// changed afterwards; the taskgate finalizer cannot be stripped by anyone
// but the manager, so a binding cannot be made to outlive its run.
func TestRequesterAndFinalizerAreTheManagers(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "")
	grant(t, ns, "mallory", taskRights, rule("", "pods", "create"))
	mallory := as(t, "mallory")
	must(t, mallory.c.Create(ctx, newTask(ns, "forged", v1alpha1.PluginCustomImage, `{"image":"busybox:1.36","command":["true"]}`)))
	forged := newRun(ns, "forged", "forged")
	forged.Spec.Requester = &v1alpha1.Requester{Username: "root", Groups: []string{adminGroup}}
	must(t, mallory.c.Create(ctx, forged))
	if r := requesterOf(t, ns, "forged"); r == nil || r.Username != "mallory" {
		t.Fatalf("spec.requester = %+v; want mallory, whatever the TaskRun said", r)
	}
	stored := &v1alpha1.TaskRun{}
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "forged"}, stored))
	changed := stored.DeepCopy()
	changed.Spec.Requester = &v1alpha1.Requester{Username: "root", Groups: []string{adminGroup}}
	mustRefuse(t, mallory.c.Patch(ctx, changed, client.MergeFrom(stored)), "spec")

	admin := as(t, "root", adminGroup)
	must(t, admin.create(t, newTask(ns, "bound", v1alpha1.PluginCustomImage, `{"image":"busybox:1.36","command":["true"],"clusterRole":"view"}`)))
	task := newRun(ns, "bound", "bound")
	waitBinding(t, ns, "bound")
	for _, u := range []*user{mallory, admin} {
		latest := &v1alpha1.TaskRun{}
		must(t, k8s.Get(ctx, client.ObjectKeyFromObject(task), latest))
		stripped := latest.DeepCopy()
		stripped.Finalizers = nil
		mustRefuse(t, u.c.Patch(ctx, stripped, client.MergeFrom(latest)), "metadata.finalizers")
	}
	must(t, admin.c.Delete(ctx, task))
	waitGone(t, &rbacv1.ClusterRoleBinding{}, client.ObjectKey{Name: v1alpha1.ClusterRoleBindingName(ns, "bound")})
	waitGone(t, &v1alpha1.TaskRun{}, client.ObjectKeyFromObject(task))
}

// A requester in system:masters is acted for without that group, which
// Kubernetes does not let anyone impersonate: with no other rights, the Task
// is refused at admission with a message that says why; the same person
// bound to cluster-admin through an ordinary group runs it. Under
// --act-as=controller nobody is impersonated: the requester's rights are
// checked as the API server grants them, system:masters included, and the
// controller runs the Task with its own.
func TestMastersRequester(t *testing.T) {
	ns := newNamespace(t, "")
	config := `{"image":"busybox:1.36","command":["true"]}`
	err := as(t, "breakglass", "system:masters").create(t, newTask(ns, "root", v1alpha1.PluginCustomImage, config))
	if mode == actas.ModeController {
		must(t, err)
		waitPod(t, ns, v1alpha1.PodName("root"))
		return
	}
	mustRefuse(t, err, "system:masters", "ordinary group")
	must(t, as(t, "breakglass", adminGroup).create(t, newTask(ns, "hello", v1alpha1.PluginCustomImage, config)))
	waitPod(t, ns, v1alpha1.PodName("hello"))
}

// A ServiceAccount that creates Tasks (a GitOps controller) is acted for
// through constrained impersonation's serviceaccount mode: by name alone.
func TestServiceAccountRequester(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "")
	for _, sa := range []string{"gitops", "gitops-ro"} {
		must(t, k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns}}))
	}
	grant(t, ns, "system:serviceaccount:"+ns+":gitops", taskRights, rule("", "pods", "create"))
	grant(t, ns, "system:serviceaccount:"+ns+":gitops-ro", taskRights)
	config := `{"image":"busybox:1.36","command":["true"]}`
	saGroups := []string{"system:serviceaccounts", "system:serviceaccounts:" + ns}
	mustRefuse(t, as(t, "system:serviceaccount:"+ns+":gitops-ro", saGroups...).create(t, newTask(ns, "ro", v1alpha1.PluginCustomImage, config)), "create pods")
	must(t, as(t, "system:serviceaccount:"+ns+":gitops", saGroups...).create(t, newTask(ns, "rw", v1alpha1.PluginCustomImage, config)))
	waitPod(t, ns, v1alpha1.PodName("rw"))
}

// A user who may patch Roles and RoleBindings, but holds neither escalate
// nor bind, cannot grant through a Task what the API server would refuse
// her directly: a wildcard rule, or herself in another binding's subjects.
// A user who holds escalate gets her patch.
func TestTransformationCannotEscalate(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "")
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns}, Rules: []rbacv1.PolicyRule{rule("", "configmaps", "get")}}
	must(t, k8s.Create(ctx, role))
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "app-readers", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "app"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "reader"}}}
	must(t, k8s.Create(ctx, rb))
	patchRBAC := []rbacv1.PolicyRule{taskRights,
		rule(rbacv1.GroupName, "roles", "get", "list", "patch"), rule(rbacv1.GroupName, "rolebindings", "get", "list", "patch")}
	wildcard := `{"resources":[{"group":"rbac.authorization.k8s.io","version":"v1","resource":"roles"}],"names":["app"],` +
		`"operations":[{"jsonPatch":[{"op":"add","path":"/rules/-","value":{"apiGroups":["*"],"resources":["*"],"verbs":["*"]}}]}]}`
	joinBinding := `{"resources":[{"group":"rbac.authorization.k8s.io","version":"v1","resource":"rolebindings"}],"names":["app-readers"],` +
		`"operations":[{"jsonPatch":[{"op":"add","path":"/subjects/-","value":{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"rita"}}]}]}`

	grant(t, ns, "rita", patchRBAC...)
	rita := as(t, "rita")
	mustRefuse(t, rita.create(t, newTask(ns, "wildcard", v1alpha1.PluginTransformation, wildcard)), "escalate")
	mustRefuse(t, rita.create(t, newTask(ns, "join", v1alpha1.PluginTransformation, joinBinding)), "bind")
	unchanged(t, role, &rbacv1.Role{}, func(a, b client.Object) bool {
		return equality.Semantic.DeepEqual(a.(*rbacv1.Role).Rules, b.(*rbacv1.Role).Rules)
	})
	unchanged(t, rb, &rbacv1.RoleBinding{}, func(a, b client.Object) bool {
		return equality.Semantic.DeepEqual(a.(*rbacv1.RoleBinding).Subjects, b.(*rbacv1.RoleBinding).Subjects)
	})

	// With escalate, the same patch is hers to make, by hand or by Task.
	grant(t, ns, "rhea", append(patchRBAC, rule(rbacv1.GroupName, "roles", "escalate"))...)
	must(t, as(t, "rhea").create(t, newTask(ns, "wildcard", v1alpha1.PluginTransformation, wildcard)))
	if mode == actas.ModeController {
		// The manager patches as itself, and the API server's escalation
		// check holds it to its own rights: the chart gives it no escalate.
		wantOutcome(t, finished(t, ns, "wildcard"), v1alpha1.TaskFailed, "PatchFailed", "attempting to grant RBAC permissions not currently held")
		return
	}
	wantOutcome(t, finished(t, ns, "wildcard"), v1alpha1.TaskSucceeded, "", "1 patched")
	got := &rbacv1.Role{}
	must(t, k8s.Get(ctx, client.ObjectKeyFromObject(role), got))
	if len(got.Rules) != 2 {
		t.Fatalf("role rules %v; want the wildcard rule appended", got.Rules)
	}
}

// A user with every right in one namespace only cannot reach past it: no
// ClusterRole, no other namespace, and no resource whose scope admission
// cannot see (a CRD installed later could make it cluster-scoped); inside
// her namespace her Tasks run.
func TestNamespaceAdminStaysInNamespace(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "")
	other := newNamespace(t, "")
	grant(t, ns, "nadia", rbacv1.PolicyRule{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}})
	nadia := as(t, "nadia")
	must(t, k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: other}}))

	tests := []struct {
		name, config string
		plugin       v1alpha1.Plugin
		want         string
	}{
		{name: "cluster-admin", plugin: v1alpha1.PluginCustomImage,
			config: `{"image":"busybox:1.36","command":["true"],"clusterRole":"cluster-admin"}`, want: "bind"},
		{name: "other-namespace", plugin: v1alpha1.PluginTransformation,
			config: `{"resources":[{"version":"v1","resource":"configmaps"}],"namespaces":["` + other + `"],"operations":[{"mergePatch":{"metadata":{"labels":{"a":"b"}}}}]}`,
			want:   "in namespace " + other},
		{name: "unknown-scope", plugin: v1alpha1.PluginTransformation,
			config: `{"resources":[{"group":"example.com","version":"v1","resource":"widgets"}],"operations":[{"mergePatch":{"metadata":{"labels":{"a":"b"}}}}]}`,
			want:   "cluster-wide"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustRefuse(t, nadia.create(t, newTask(ns, tt.name, tt.plugin, tt.config)), tt.want)
		})
	}
	cm := &corev1.ConfigMap{}
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: other, Name: "cm"}, cm))
	if len(cm.Labels) != 0 {
		t.Fatalf("configmap in %s was labelled %v", other, cm.Labels)
	}

	must(t, k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "mine", Namespace: ns}}))
	must(t, nadia.create(t, newTask(ns, "own", v1alpha1.PluginTransformation,
		`{"resources":[{"version":"v1","resource":"configmaps"}],"names":["mine"],"operations":[{"mergePatch":{"metadata":{"labels":{"a":"b"}}}}]}`)))
	wantOutcome(t, finished(t, ns, "own"), v1alpha1.TaskSucceeded, "", "1 patched")
	must(t, nadia.create(t, newTask(ns, "pod", v1alpha1.PluginCustomImage, `{"image":"busybox:1.36","command":["true"]}`)))
	waitPod(t, ns, v1alpha1.PodName("pod"))
}

// unchanged asserts that obj, read again, still equals what it was.
func unchanged(t *testing.T, want, got client.Object, same func(a, b client.Object) bool) {
	t.Helper()
	must(t, k8s.Get(context.Background(), client.ObjectKeyFromObject(want), got))
	if !same(want, got) {
		t.Fatalf("%T %s changed: %+v", got, want.GetName(), got)
	}
}
