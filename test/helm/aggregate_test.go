package helm_test

import (
	"slices"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestAggregateClusterRoles checks the ClusterRoles that add Tasks to
// Kubernetes' default view/edit/admin roles: the labels aggregation selects
// on, and, through the real API server's RBAC authorizer, what a user bound to
// each may do (a namespace editor creates Tasks but never writes their status;
// a viewer reads only; nobody else gets anything). envtest runs no
// kube-controller-manager, so the test binds the two roles directly instead
// of waiting for aggregation; make test-run's control plane aggregates them.
func TestAggregateClusterRoles(t *testing.T) {
	if n := len(render(t, "--set", "aggregateClusterRoles=false").find("ClusterRole")); n != len(render(t).find("ClusterRole"))-2 {
		t.Errorf("aggregateClusterRoles=false: want the two aggregated ClusterRoles gone, %d ClusterRoles left", n)
	}
	m := render(t, "--set", "fullnameOverride=aggtest")
	roles := map[string]*rbacv1.ClusterRole{}
	for _, o := range m.find("ClusterRole") {
		roles[o.GetName()] = typed[rbacv1.ClusterRole](t, o)
	}
	wantLabels := map[string][]string{
		"aggtest-view": {"view", "edit", "admin"},
		"aggtest-edit": {"edit", "admin"},
	}
	for name, to := range wantLabels {
		r := roles[name]
		if r == nil {
			t.Fatalf("no ClusterRole %s in the defaults", name)
		}
		for _, k := range []string{"view", "edit", "admin"} {
			got := r.Labels["rbac.authorization.k8s.io/aggregate-to-"+k] == "true"
			if got != slices.Contains(to, k) {
				t.Errorf("%s: aggregate-to-%s = %v, want %v", name, k, got, !got)
			}
		}
	}

	c, _ := cluster(t)
	ctx := t.Context()
	const ns = "aggregate-roles"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	for name, user := range map[string]string{"aggtest-view": "viewer", "aggtest-edit": "editor"} {
		r := roles[name]
		r.ResourceVersion = ""
		if err := c.Create(ctx, r); err != nil {
			t.Fatalf("create ClusterRole %s: %v", name, err)
		}
		t.Cleanup(func() { _ = c.Delete(ctx, r) })
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		}
		if err := c.Create(ctx, rb); err != nil {
			t.Fatalf("bind %s: %v", name, err)
		}
	}
	// The editor is bound to both roles, as aggregation into edit gives it
	// view's rules too.
	both := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "editor-view", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "aggtest-view"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "editor"}},
	}
	if err := c.Create(ctx, both); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		user, resource, verb, subresource, ns string
		want                                  bool
	}{
		{"editor", "tasks", "create", "", ns, true},
		{"editor", "tasks", "delete", "", ns, true},
		{"editor", "tasks", "list", "", ns, true},
		{"editor", "tasks", "update", "status", ns, false},
		{"editor", "tasks", "patch", "status", ns, false},
		{"editor", "tasks", "create", "", "default", false},
		{"viewer", "tasks", "list", "", ns, true},
		{"viewer", "tasks", "watch", "", ns, true},
		{"viewer", "tasks", "create", "", ns, false},
		{"viewer", "tasks", "delete", "", ns, false},
		{"stranger", "tasks", "list", "", ns, false},
		// An editor runs Tasks (the run acts with their own rights) and
		// removes runs; a viewer reads them; nobody but the manager writes
		// a run's status, and its spec is immutable.
		{"editor", "taskruns", "create", "", ns, true},
		{"editor", "taskruns", "get", "", ns, true},
		{"editor", "taskruns", "delete", "", ns, true},
		{"editor", "taskruns", "update", "status", ns, false},
		{"editor", "taskruns", "create", "", "default", false},
		{"viewer", "taskruns", "get", "", ns, true},
		{"viewer", "taskruns", "list", "", ns, true},
		{"viewer", "taskruns", "watch", "", ns, true},
		{"viewer", "taskruns", "create", "", ns, false},
		{"stranger", "taskruns", "get", "", ns, false},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: tc.user, Groups: []string{"system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: tc.ns, Group: "automation.astronetes.io",
				Resource: tc.resource, Subresource: tc.subresource, Verb: tc.verb},
		}}
		if err := c.Create(ctx, sar); err != nil {
			t.Fatalf("SubjectAccessReview: %v", err)
		}
		if sar.Status.Allowed != tc.want {
			t.Errorf("%s may %s %s/%s in %s: got %v, want %v (%s)", tc.user, tc.verb, tc.resource, tc.subresource, tc.ns, sar.Status.Allowed, tc.want, sar.Status.Reason)
		}
	}
}
