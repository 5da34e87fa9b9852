package controller_test

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/test/testutil"
)

// A transformation is patched as its requester, so RBAC escalation
// prevention holds: a user who may patch Roles cannot add a rule granting
// everything (the API server's own refusal reaches the run, the Role stays
// as it was); a requester who holds every right can.
func TestTransformationRBACEscalation(t *testing.T) {
	ns := parallelWithManager(t)

	patchRoles := rbacv1.PolicyRule{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"roles"}, Verbs: []string{"get", "list", "patch"}}
	grantAll := v1alpha1.TransformationConfig{
		Resources:  []v1alpha1.GroupVersionResource{{Group: rbacv1.GroupName, Version: "v1", Resource: "roles", Scope: v1alpha1.ScopeNamespaced}},
		Names:      []string{"target"},
		Operations: []v1alpha1.TransformationOperation{{JSONPatch: rawJSON(`[{"op":"add","path":"/rules/-","value":{"apiGroups":["*"],"resources":["*"],"verbs":["*"]}}]`)}},
	}
	mustCreate(t, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "target"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}}}})
	before := &rbacv1.Role{}
	mustGet(t, ns, "target", before)

	mustCreate(t, withRequester(makeRun(t, ns, "escalate", v1alpha1.PluginTransformation, grantAll),
		newRequester(t, ns, "role-patcher", []rbacv1.PolicyRule{createTaskRuns, patchRoles}, nil)))
	task := waitForRun(t, ns, "escalate", v1alpha1.TaskFailed)
	c := succeededCondition(t, task)
	if c.Reason != controller.ReasonPatchFailed || !strings.Contains(c.Message, "attempting to grant RBAC permissions not currently held") {
		t.Errorf("condition = %s: %s, want PatchFailed with the API server's escalation refusal", c.Reason, c.Message)
	}
	after := &rbacv1.Role{}
	mustGet(t, ns, "target", after)
	if after.ResourceVersion != before.ResourceVersion || !equality.Semantic.DeepEqual(after.Rules, before.Rules) {
		t.Errorf("role changed: %+v", after.Rules)
	}

	mustCreate(t, makeRun(t, ns, "admin-grants", v1alpha1.PluginTransformation, grantAll))
	waitForRun(t, ns, "admin-grants", v1alpha1.TaskSucceeded)
	mustGet(t, ns, "target", after)
	if len(after.Rules) != 2 || after.Rules[1].Verbs[0] != "*" {
		t.Errorf("role rules = %+v, want the admin's rule added", after.Rules)
	}
}

// A resource admission checked as namespaced that is cluster-scoped at run
// time fails the run before any patch; checked cluster-wide (or admitted
// before the scope was recorded) it is patched.
func TestTransformationScopeChanged(t *testing.T) {
	ns := parallelWithManager(t)
	gvr := createClusterScopedCRD(t, "gizmos")
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(gvr.GroupVersion().WithKind("Gizmo"))
	obj.SetName("g-" + ns)
	testutil.Eventually(t, "gizmo created", func() error { return k8sClient.Create(t.Context(), obj) })

	tests := []struct {
		name       string
		scope      v1alpha1.ResourceScope
		wantPhase  v1alpha1.TaskPhase
		wantReason string
	}{
		{name: "checked-namespaced", scope: v1alpha1.ScopeNamespaced, wantPhase: v1alpha1.TaskFailed, wantReason: controller.ReasonScopeChanged},
		{name: "checked-cluster", scope: v1alpha1.ScopeCluster, wantPhase: v1alpha1.TaskSucceeded, wantReason: controller.ReasonPatched},
		{name: "before-scopes", wantPhase: v1alpha1.TaskSucceeded, wantReason: controller.ReasonPatched},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := obj.DeepCopy()
			testutil.Eventually(t, "read gizmo", func() error { return get(t, client.ObjectKeyFromObject(before), before) })
			cfg := v1alpha1.TransformationConfig{
				Resources:  []v1alpha1.GroupVersionResource{{Group: gvr.Group, Version: gvr.Version, Resource: gvr.Resource, Scope: tt.scope}},
				Names:      []string{obj.GetName()},
				Operations: []v1alpha1.TransformationOperation{{MergePatch: rawJSON(fmt.Sprintf(`{"metadata":{"labels":{%q:"yes"}}}`, tt.name))}},
			}
			mustCreate(t, makeRun(t, ns, tt.name, v1alpha1.PluginTransformation, cfg))
			task := waitForRun(t, ns, tt.name, tt.wantPhase)
			if c := succeededCondition(t, task); c.Reason != tt.wantReason {
				t.Errorf("condition = %s: %s, want %s", c.Reason, c.Message, tt.wantReason)
			}
			after := obj.DeepCopy()
			mustGet(t, "", obj.GetName(), after)
			if changed := after.GetResourceVersion() != before.GetResourceVersion(); changed != (tt.wantPhase == v1alpha1.TaskSucceeded) {
				t.Errorf("gizmo changed = %v (labels %v)", changed, after.GetLabels())
			}
			if tt.wantReason == controller.ReasonScopeChanged && task.Status.Transformation != nil {
				t.Errorf("status.transformation = %+v, want none: nothing was claimed", task.Status.Transformation)
			}
		})
	}
}

// More matched objects than Options.MaxTransformationObjects fail the run
// before any patch; as many as the bound are patched.
func TestTransformationTooManyObjects(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerWith(t, ns, managerOptions{controller: controller.Options{MaxTransformationObjects: 3}})
	for i := range 5 {
		set := "few"
		if i >= 3 {
			set = "more"
		}
		mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("cm-%d", i),
			Labels: map[string]string{"all": "yes", "set": set}}})
	}
	tests := []struct {
		name      string
		selector  map[string]string
		wantPhase v1alpha1.TaskPhase
	}{
		{name: "over-the-bound", selector: map[string]string{"all": "yes"}, wantPhase: v1alpha1.TaskFailed},
		{name: "at-the-bound", selector: map[string]string{"set": "few"}, wantPhase: v1alpha1.TaskSucceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := &corev1.ConfigMapList{}
			if err := k8sClient.List(t.Context(), before, client.InNamespace(ns)); err != nil {
				t.Fatal(err)
			}
			cfg := v1alpha1.TransformationConfig{
				Resources:     []v1alpha1.GroupVersionResource{{Version: "v1", Resource: "configmaps", Scope: v1alpha1.ScopeNamespaced}},
				LabelSelector: &metav1.LabelSelector{MatchLabels: tt.selector},
				Operations:    []v1alpha1.TransformationOperation{{MergePatch: rawJSON(`{"data":{"touched":"yes"}}`)}},
			}
			mustCreate(t, makeRun(t, ns, tt.name, v1alpha1.PluginTransformation, cfg))
			task := waitForRun(t, ns, tt.name, tt.wantPhase)
			if tt.wantPhase == v1alpha1.TaskSucceeded {
				if got := task.Status.Transformation; got == nil || got.Patched != 3 {
					t.Errorf("status.transformation = %+v, want 3 patched", got)
				}
				return
			}
			if c := succeededCondition(t, task); c.Reason != controller.ReasonTooManyObjects || !strings.Contains(c.Message, "more than 3") {
				t.Errorf("condition = %s: %s, want TooManyObjects", c.Reason, c.Message)
			}
			if task.Status.Transformation != nil {
				t.Errorf("status.transformation = %+v, want none", task.Status.Transformation)
			}
			for _, cm := range before.Items {
				after := &corev1.ConfigMap{}
				mustGet(t, ns, cm.Name, after)
				if after.ResourceVersion != cm.ResourceVersion {
					t.Errorf("configmap %s patched", cm.Name)
				}
			}
		})
	}
}

// Patching through the metadata client still patches the whole object and
// counts right: large ConfigMaps keep their data and gain the patch.
func TestTransformationLargeObjects(t *testing.T) {
	ns := parallelWithManager(t)
	blob := strings.Repeat("x", 700<<10)
	for i := range 6 {
		mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("big-%d", i), Labels: map[string]string{"size": "big"}},
			Data: map[string]string{"blob": blob}})
	}
	cfg := v1alpha1.TransformationConfig{
		Resources:     []v1alpha1.GroupVersionResource{{Version: "v1", Resource: "configmaps", Scope: v1alpha1.ScopeNamespaced}},
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"size": "big"}},
		Operations: []v1alpha1.TransformationOperation{
			{MergePatch: rawJSON(`{"data":{"note":"patched"}}`)},
			{JSONPatch: rawJSON(`[{"op":"add","path":"/metadata/labels/patched","value":"yes"}]`)},
		},
	}
	for _, run := range []struct {
		name string
		want v1alpha1.TransformationStatus
	}{
		{name: "first", want: v1alpha1.TransformationStatus{Matched: 6, Patched: 6}},
		{name: "again", want: v1alpha1.TransformationStatus{Matched: 6, Unchanged: 6}},
	} {
		mustCreate(t, makeRun(t, ns, run.name, v1alpha1.PluginTransformation, cfg))
		task := waitForRun(t, ns, run.name, v1alpha1.TaskSucceeded)
		if got := task.Status.Transformation; got == nil || !equalCounts(*got, run.want) {
			t.Errorf("%s: status.transformation = %+v, want %+v", run.name, got, run.want)
		}
	}
	for i := range 6 {
		cm := &corev1.ConfigMap{}
		mustGet(t, ns, fmt.Sprintf("big-%d", i), cm)
		if cm.Data["blob"] != blob || cm.Data["note"] != "patched" || cm.Labels["patched"] != "yes" {
			t.Errorf("%s: blob kept %v, note %q, labels %v", cm.Name, cm.Data["blob"] == blob, cm.Data["note"], cm.Labels)
		}
	}
}

// createClusterScopedCRD installs a cluster-scoped CRD <plural>.scope.example.com
// (a resource that was namespaced at admission and is cluster-scoped now
// looks the same to the run) and waits until it is established.
func createClusterScopedCRD(t *testing.T, plural string) schema.GroupVersionResource {
	t.Helper()
	kind := strings.ToUpper(plural[:1]) + strings.TrimSuffix(plural[1:], "s")
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": plural + "." + scopeTestGroup},
		"spec": map[string]any{
			"group": scopeTestGroup, "scope": "Cluster",
			"names": map[string]any{"plural": plural, "singular": strings.TrimSuffix(plural, "s"), "kind": kind, "listKind": kind + "List"},
			"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
		},
	}}
	if err := k8sClient.Create(t.Context(), crd); err != nil {
		t.Fatalf("create CRD: %v", err)
	}
	testutil.Eventually(t, "CRD established", func() error {
		if err := get(t, client.ObjectKeyFromObject(crd), crd); err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
				return nil
			}
		}
		return errNotYet("not established")
	})
	return schema.GroupVersionResource{Group: scopeTestGroup, Version: "v1", Resource: plural}
}
