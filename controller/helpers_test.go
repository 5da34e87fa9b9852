package controller

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

func TestExitMessage(t *testing.T) {
	tests := []struct {
		name string
		term corev1.ContainerStateTerminated
		want string
	}{
		{name: "code only", term: corev1.ContainerStateTerminated{ExitCode: 3},
			want: "pod p: container task exited with code 3"},
		{name: "code and reason", term: corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error"},
			want: "pod p: container task exited with code 3 (Error)"},
		{name: "code, reason and message", term: corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled", Message: "out of memory"},
			want: "pod p: container task exited with code 137 (OOMKilled): out of memory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exitMessage("p", &tt.term); got != tt.want {
				t.Errorf("exitMessage() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestObjectRef(t *testing.T) {
	tests := []struct {
		name    string
		gvr     schema.GroupVersionResource
		ns, obj string
		want    string
	}{
		{name: "namespaced", gvr: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"},
			ns: "shop", obj: "web", want: "apps/deployments shop/web"},
		{name: "core group", gvr: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"},
			ns: "shop", obj: "cfg", want: "core/configmaps shop/cfg"},
		{name: "cluster scoped", gvr: schema.GroupVersionResource{Version: "v1", Resource: "namespaces"},
			obj: "shop", want: "core/namespaces shop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := objectRef(tt.gvr, tt.ns, tt.obj); got != tt.want {
				t.Errorf("objectRef() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCompile(t *testing.T) {
	raw := func(s string) *runtime.RawExtension { return &runtime.RawExtension{Raw: []byte(s)} }
	resources := []v1alpha1.GroupVersionResource{{Group: "apps", Version: "v1", Resource: "deployments"}}
	tests := []struct {
		name      string
		cfg       v1alpha1.TransformationConfig
		wantTypes []types.PatchType
		wantSel   string
		wantErr   bool
	}{
		{name: "operations in order", cfg: v1alpha1.TransformationConfig{Resources: resources, Operations: []v1alpha1.TransformationOperation{
			{JSONPatch: raw(`[{"op":"replace","path":"/spec/replicas","value":1}]`)},
			{MergePatch: raw(`{"metadata":{"annotations":{"a":"b"}}}`)},
		}}, wantTypes: []types.PatchType{types.JSONPatchType, types.MergePatchType}},
		{name: "label selector", cfg: v1alpha1.TransformationConfig{Resources: resources,
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}},
			Operations:    []v1alpha1.TransformationOperation{{MergePatch: raw(`{}`)}}},
			wantTypes: []types.PatchType{types.MergePatchType}, wantSel: "tier=web"},
		{name: "both patches in one operation", cfg: v1alpha1.TransformationConfig{Resources: resources,
			Operations: []v1alpha1.TransformationOperation{{JSONPatch: raw(`[]`), MergePatch: raw(`{}`)}}}, wantErr: true},
		{name: "empty operation", cfg: v1alpha1.TransformationConfig{Resources: resources,
			Operations: []v1alpha1.TransformationOperation{{}}}, wantErr: true},
		{name: "no operations", cfg: v1alpha1.TransformationConfig{Resources: resources}, wantErr: true},
		{name: "bad selector", cfg: v1alpha1.TransformationConfig{Resources: resources,
			LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}},
			Operations:    []v1alpha1.TransformationOperation{{MergePatch: raw(`{}`)}}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops, sel, err := compile(&tt.cfg)
			if tt.wantErr {
				if !errors.Is(err, errInvalidConfig) {
					t.Fatalf("compile() error = %v, want errInvalidConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("compile() error = %v", err)
			}
			if len(ops) != len(tt.wantTypes) {
				t.Fatalf("got %d operations, want %d", len(ops), len(tt.wantTypes))
			}
			for i, op := range ops {
				if op.patchType != tt.wantTypes[i] {
					t.Errorf("operations[%d] type = %q, want %q", i, op.patchType, tt.wantTypes[i])
				}
			}
			if sel.String() != tt.wantSel {
				t.Errorf("selector = %q, want %q", sel.String(), tt.wantSel)
			}
		})
	}
}

func TestNewSynchronizationTaskLabelWins(t *testing.T) {
	task := &v1alpha1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: "t", Namespace: "ns"},
		Spec: v1alpha1.TaskRunSpec{TaskRef: &v1alpha1.TaskRef{Name: "runbook"}}}
	cfg := &v1alpha1.RunSynchronizationConfig{Template: v1alpha1.SynchronizationTemplate{
		Metadata: v1alpha1.SynchronizationTemplateMeta{
			Labels:      map[string]string{"team": "a", v1alpha1.TaskLabel: "spoofed", v1alpha1.TaskRunLabel: "spoofed"},
			Annotations: map[string]string{"note": "x"},
		},
		Spec: v1alpha1.SynchronizationSpec{Plugin: "kubernetes-to-kubernetes"},
	}}
	sync := newSynchronization(task, cfg)
	if sync.Name != v1alpha1.SynchronizationName("t") || sync.Namespace != "ns" {
		t.Errorf("name = %s/%s", sync.Namespace, sync.Name)
	}
	if sync.Labels[v1alpha1.TaskLabel] != "runbook" || sync.Labels[v1alpha1.TaskRunLabel] != "t" || sync.Labels["team"] != "a" || sync.Annotations["note"] != "x" {
		t.Errorf("metadata = %v %v", sync.Labels, sync.Annotations)
	}
	// A one-off run has no Task: the template's task label is dropped.
	task.Spec.TaskRef = nil
	if l := newSynchronization(task, cfg).Labels; l[v1alpha1.TaskLabel] != "" || l[v1alpha1.TaskRunLabel] != "t" {
		t.Errorf("one-off run's labels = %v, want no task label and taskrun=t", l)
	}
	if cfg.Template.Metadata.Labels[v1alpha1.TaskLabel] != "spoofed" {
		t.Error("the Task's config was modified")
	}
}
