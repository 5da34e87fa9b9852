package controller_test

import (
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
)

func syncConfig() v1alpha1.RunSynchronizationConfig {
	return v1alpha1.RunSynchronizationConfig{Template: v1alpha1.SynchronizationTemplate{
		Metadata: v1alpha1.SynchronizationTemplateMeta{
			Labels:      map[string]string{"team": "platform"},
			Annotations: map[string]string{"astronetes.io/note": "nightly"},
		},
		Spec: v1alpha1.SynchronizationSpec{
			RestartPolicy: "Never",
			Plugin:        "kubernetes-to-kubernetes",
			Config: &runtime.RawExtension{Raw: []byte(
				`{"sourceName":"prod","destinationName":"dr","concurrency":4}`)},
		},
	}}
}

// The run creates one Synchronization from its template, with the task
// label and an owner reference added, and succeeds once it exists.
func TestRunSynchronization(t *testing.T) {
	ns := parallelWithManager(t)

	cfg := syncConfig()
	mustCreate(t, makeRun(t, ns, "nightly", v1alpha1.PluginRunSync, cfg))
	task := waitForRun(t, ns, "nightly", v1alpha1.TaskSucceeded)

	name := v1alpha1.SynchronizationName("nightly")
	if st := task.Status.Synchronization; st == nil || st.Name != name {
		t.Errorf("status.synchronization = %+v, want name %s", st, name)
	}
	if c := succeededCondition(t, task); c.Reason != controller.ReasonSynchronizationCreated {
		t.Errorf("condition = %+v, want reason %s", c, controller.ReasonSynchronizationCreated)
	}
	sync := &v1alpha1.Synchronization{}
	mustGet(t, ns, name, sync)
	isControlledBy(t, sync, task)
	if sync.Labels["team"] != "platform" || sync.Annotations["astronetes.io/note"] != "nightly" {
		t.Errorf("metadata = %v %v, want the template's", sync.Labels, sync.Annotations)
	}
	if sync.Spec.Plugin != cfg.Template.Spec.Plugin || sync.Spec.RestartPolicy != "Never" || !sameJSON(t, sync.Spec.Config, cfg.Template.Spec.Config) {
		t.Errorf("spec = %+v (config %s), want the template's", sync.Spec, sync.Spec.Config.Raw)
	}
	wantOnlyEvent(t, task, controller.EventSucceeded, "synchronization "+name+" created")
}

// A Synchronization that already exists when the run looks at it (a
// restarted controller) decides the outcome if it reports one; one that
// belongs to someone else fails the run.
func TestRunSynchronizationExisting(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)

	tests := []struct {
		name       string
		owned      bool
		conditions []metav1.Condition
		wantPhase  v1alpha1.TaskPhase
		wantReason string
		wantText   string
	}{
		{name: "reports-failure", owned: true, conditions: []metav1.Condition{
			{Type: "Failed", Status: metav1.ConditionTrue, Reason: "SourceUnreachable", Message: "cluster prod is unreachable"},
		}, wantPhase: v1alpha1.TaskFailed, wantReason: controller.ReasonSynchronizationFailed, wantText: "cluster prod is unreachable"},
		{name: "reports-success", owned: true, conditions: []metav1.Condition{
			{Type: "Succeeded", Status: metav1.ConditionTrue, Reason: "Synchronized", Message: "42 objects"},
		}, wantPhase: v1alpha1.TaskSucceeded, wantReason: controller.ReasonSynchronizationSucceeded, wantText: "42 objects"},
		{name: "reports-nothing", owned: true,
			wantPhase: v1alpha1.TaskSucceeded, wantReason: controller.ReasonSynchronizationCreated},
		{name: "someone-elses", owned: false,
			wantPhase: v1alpha1.TaskFailed, wantReason: controller.ReasonNameConflict, wantText: "does not belong"},
	}
	// Set the scene with no controller running, then start one.
	for _, tt := range tests {
		task := makeRun(t, ns, tt.name, v1alpha1.PluginRunSync, syncConfig())
		mustCreate(t, task)
		sync := &v1alpha1.Synchronization{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: v1alpha1.SynchronizationName(tt.name)},
			Spec:       v1alpha1.SynchronizationSpec{Plugin: "kubernetes-to-kubernetes"},
		}
		if tt.owned {
			sync.OwnerReferences = []metav1.OwnerReference{{
				APIVersion: v1alpha1.GroupVersion.String(), Kind: "TaskRun", Name: task.Name, UID: task.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}}
		}
		mustCreate(t, sync)
		if tt.conditions != nil {
			for i := range tt.conditions {
				tt.conditions[i].LastTransitionTime = metav1.Now()
			}
			sync.Status.Conditions = tt.conditions
			if err := k8sClient.Status().Update(t.Context(), sync); err != nil {
				t.Fatalf("set synchronization status: %v", err)
			}
		}
	}
	startManager(t, ns)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := waitForRun(t, ns, tt.name, tt.wantPhase)
			c := succeededCondition(t, task)
			if c.Reason != tt.wantReason || !strings.Contains(c.Message, tt.wantText) {
				t.Errorf("condition = %s: %q, want %s saying %q", c.Reason, c.Message, tt.wantReason, tt.wantText)
			}
		})
	}
}

// sameJSON compares two JSON documents by meaning, not by spelling.
func sameJSON(t *testing.T, a, b *runtime.RawExtension) bool {
	t.Helper()
	if a == nil || b == nil {
		return a == b
	}
	var x, y any
	if err := json.Unmarshal(a.Raw, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b.Raw, &y); err != nil {
		t.Fatal(err)
	}
	return equality.Semantic.DeepEqual(x, y)
}
