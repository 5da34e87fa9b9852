package controller_test

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
)

// setReplicasToOne is the seed's set-replica-to-1, selected by label, plus a
// merge patch, in that order.
func setReplicasToOne(labels map[string]string) v1alpha1.TransformationConfig {
	return v1alpha1.TransformationConfig{
		Resources:     []v1alpha1.GroupVersionResource{deploymentsGVR},
		LabelSelector: &metav1.LabelSelector{MatchLabels: labels},
		Operations: []v1alpha1.TransformationOperation{
			{JSONPatch: rawJSON(`[{"op":"replace","path":"/spec/replicas","value":1}]`)},
			{MergePatch: rawJSON(`{"metadata":{"annotations":{"drill":"2026-q4"}}}`)},
		},
	}
}

// The transformation patches exactly the Deployments its selector matches,
// and counts them; a second run finds nothing left to change.
func TestTransformationScalesSelectedDeployments(t *testing.T) {
	ns := parallelWithManager(t)

	web := map[string]string{"tier": "web"}
	for _, d := range []*appsv1.Deployment{
		makeDeployment(ns, "web-a", 3, web),
		makeDeployment(ns, "web-b", 2, web),
		makeDeployment(ns, "db", 3, map[string]string{"tier": "db"}),
	} {
		mustCreate(t, d)
	}
	db := &appsv1.Deployment{}
	mustGet(t, ns, "db", db)

	mustCreate(t, makeRun(t, ns, "scale-down", v1alpha1.PluginTransformation, setReplicasToOne(web)))
	task := waitForRun(t, ns, "scale-down", v1alpha1.TaskSucceeded)
	want := v1alpha1.TransformationStatus{Matched: 2, Patched: 2}
	if got := task.Status.Transformation; got == nil || !equalCounts(*got, want) {
		t.Errorf("status.transformation = %+v, want %+v", got, want)
	}
	if c := succeededCondition(t, task); c.Reason != controller.ReasonPatched {
		t.Errorf("condition = %+v, want reason %s", c, controller.ReasonPatched)
	}
	for _, name := range []string{"web-a", "web-b"} {
		d := &appsv1.Deployment{}
		mustGet(t, ns, name, d)
		if *d.Spec.Replicas != 1 || d.Annotations["drill"] != "2026-q4" {
			t.Errorf("%s: replicas %d, annotations %v; want 1 and drill", name, *d.Spec.Replicas, d.Annotations)
		}
	}
	dbAfter := &appsv1.Deployment{}
	mustGet(t, ns, "db", dbAfter)
	if dbAfter.ResourceVersion != db.ResourceVersion || *dbAfter.Spec.Replicas != 3 {
		t.Errorf("db was touched: resourceVersion %s -> %s, replicas %d", db.ResourceVersion, dbAfter.ResourceVersion, *dbAfter.Spec.Replicas)
	}
	wantOnlyEvent(t, task, controller.EventSucceeded, "matched 2 objects: 2 patched, 0 unchanged, 0 failed")

	mustCreate(t, makeRun(t, ns, "scale-down-again", v1alpha1.PluginTransformation, setReplicasToOne(web)))
	task = waitForRun(t, ns, "scale-down-again", v1alpha1.TaskSucceeded)
	want = v1alpha1.TransformationStatus{Matched: 2, Unchanged: 2}
	if got := task.Status.Transformation; got == nil || !equalCounts(*got, want) {
		t.Errorf("second run: status.transformation = %+v, want %+v", got, want)
	}
}

// Namespaces and names narrow the selection; a cluster-scoped resource
// ignores namespaces.
func TestTransformationSelection(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	other := newNamespace(t)
	startManager(t, ns)

	for _, n := range []string{ns, other} {
		mustCreate(t, makeDeployment(n, "api", 2, nil))
		mustCreate(t, makeDeployment(n, "worker", 2, nil))
	}
	annotate := []v1alpha1.TransformationOperation{{MergePatch: rawJSON(`{"metadata":{"labels":{"touched-by":"taskgate"}}}`)}}
	tests := []struct {
		name string
		cfg  v1alpha1.TransformationConfig
		want v1alpha1.TransformationStatus
	}{
		{name: "names-in-own-namespace", cfg: v1alpha1.TransformationConfig{
			Resources: []v1alpha1.GroupVersionResource{deploymentsGVR}, Names: []string{"api"}, Operations: annotate,
		}, want: v1alpha1.TransformationStatus{Matched: 1, Patched: 1}},
		{name: "listed-namespaces", cfg: v1alpha1.TransformationConfig{
			Resources: []v1alpha1.GroupVersionResource{deploymentsGVR}, Namespaces: []string{other}, Names: []string{"worker"},
			Operations: annotate,
		}, want: v1alpha1.TransformationStatus{Matched: 1, Patched: 1}},
		{name: "cluster-scoped", cfg: v1alpha1.TransformationConfig{
			Resources: []v1alpha1.GroupVersionResource{{Version: "v1", Resource: "namespaces"}}, Namespaces: []string{"ignored"},
			Names: []string{other}, Operations: annotate,
		}, want: v1alpha1.TransformationStatus{Matched: 1, Patched: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustCreate(t, makeRun(t, ns, tt.name, v1alpha1.PluginTransformation, tt.cfg))
			task := waitForRun(t, ns, tt.name, v1alpha1.TaskSucceeded)
			if got := task.Status.Transformation; got == nil || !equalCounts(*got, tt.want) {
				t.Errorf("status.transformation = %+v, want %+v", got, tt.want)
			}
		})
	}
	for _, n := range []string{ns, other} {
		for _, name := range []string{"api", "worker"} {
			d := &appsv1.Deployment{}
			mustGet(t, n, name, d)
			touched := d.Labels["touched-by"] == "taskgate"
			want := (n == ns && name == "api") || (n == other && name == "worker")
			if touched != want {
				t.Errorf("%s/%s touched = %v, want %v", n, name, touched, want)
			}
		}
	}
	nsObj := &corev1.Namespace{}
	mustGet(t, "", other, nsObj)
	if nsObj.Labels["touched-by"] != "taskgate" {
		t.Errorf("namespace %s labels = %v", other, nsObj.Labels)
	}
}

// A resource the API server does not serve fails the run, naming it; an
// operation that fails on some objects fails the run, naming them.
func TestTransformationFailures(t *testing.T) {
	ns := parallelWithManager(t)

	mustCreate(t, makeDeployment(ns, "with-note", 1, map[string]string{"app": "x"}))
	mustCreate(t, makeDeployment(ns, "without-note", 1, map[string]string{"app": "x"}))
	// Only one of them has the annotation a JSON patch "replace" needs.
	if err := k8sClient.Patch(t.Context(), &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "with-note"}},
		rawPatch(`{"metadata":{"annotations":{"note":"old"}}}`)); err != nil {
		t.Fatal(err)
	}
	replaceNote := []v1alpha1.TransformationOperation{{JSONPatch: rawJSON(`[{"op":"replace","path":"/metadata/annotations/note","value":"new"}]`)}}

	tests := []struct {
		name        string
		cfg         v1alpha1.TransformationConfig
		wantReason  string
		wantMessage string
		wantCounts  *v1alpha1.TransformationStatus
	}{
		{name: "unknown-group", cfg: v1alpha1.TransformationConfig{
			Resources:  []v1alpha1.GroupVersionResource{{Group: "widgets.example.com", Version: "v1", Resource: "widgets"}},
			Operations: replaceNote,
		}, wantReason: controller.ReasonResourceNotFound, wantMessage: `"widgets.example.com/v1/widgets"`},
		{name: "unknown-resource", cfg: v1alpha1.TransformationConfig{
			Resources:  []v1alpha1.GroupVersionResource{deploymentsGVR, {Group: "apps", Version: "v1", Resource: "gadgets"}},
			Operations: replaceNote,
		}, wantReason: controller.ReasonResourceNotFound, wantMessage: `"apps/v1/gadgets"`},
		{name: "unknown-version", cfg: v1alpha1.TransformationConfig{
			Resources:  []v1alpha1.GroupVersionResource{{Group: "apps", Version: "v9", Resource: "deployments"}},
			Operations: replaceNote,
		}, wantReason: controller.ReasonResourceNotFound, wantMessage: `"apps/v9/deployments"`},
		{name: "patch-fails-on-one", cfg: v1alpha1.TransformationConfig{
			Resources:     []v1alpha1.GroupVersionResource{deploymentsGVR},
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}},
			Operations:    replaceNote,
		}, wantReason: controller.ReasonPatchFailed, wantMessage: "apps/deployments " + ns + "/without-note",
			wantCounts: &v1alpha1.TransformationStatus{Matched: 2, Patched: 1, Failed: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustCreate(t, makeRun(t, ns, tt.name, v1alpha1.PluginTransformation, tt.cfg))
			task := waitForRun(t, ns, tt.name, v1alpha1.TaskFailed)
			c := succeededCondition(t, task)
			if c.Reason != tt.wantReason || !strings.Contains(c.Message, tt.wantMessage) {
				t.Errorf("condition = %s: %q, want %s naming %s", c.Reason, c.Message, tt.wantReason, tt.wantMessage)
			}
			if tt.wantCounts == nil {
				if task.Status.Transformation != nil {
					t.Errorf("status.transformation = %+v, want none: nothing was patched", task.Status.Transformation)
				}
				return
			}
			got := task.Status.Transformation
			if got == nil || !equalCounts(*got, *tt.wantCounts) {
				t.Fatalf("status.transformation = %+v, want %+v", got, tt.wantCounts)
			}
			if len(got.Failures) != 1 || got.Failures[0].Object != "apps/deployments "+ns+"/without-note" {
				t.Errorf("failures = %+v, want one, for apps/deployments %s/without-note", got.Failures, ns)
			}
			wantOnlyEvent(t, task, controller.EventFailed, "1 patched, 0 unchanged, 1 failed", tt.wantMessage)
		})
	}
}

// equalCounts compares the counters of two transformation results.
func equalCounts(a, b v1alpha1.TransformationStatus) bool {
	return a.Matched == b.Matched && a.Patched == b.Patched && a.Unchanged == b.Unchanged && a.Failed == b.Failed
}
