package children

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

func TestSecurityContext(t *testing.T) {
	defaults := func() *corev1.SecurityContext {
		return &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		}
	}
	tests := []struct {
		name string
		sc   *v1alpha1.CustomImageSecurityContext
		want func() *corev1.SecurityContext
	}{
		{name: "defaults", want: defaults},
		{name: "non-root user", sc: &v1alpha1.CustomImageSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](1000)},
			want: func() *corev1.SecurityContext {
				d := defaults()
				d.RunAsNonRoot, d.RunAsUser = ptr.To(true), ptr.To[int64](1000)
				return d
			}},
		{name: "everything", sc: &v1alpha1.CustomImageSecurityContext{
			RunAsGroup: ptr.To[int64](3), ReadOnlyRootFilesystem: ptr.To(true), Privileged: ptr.To(false),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("p.json")},
			Capabilities:   &v1alpha1.CustomImageCapabilities{Add: []corev1.Capability{"NET_BIND_SERVICE"}},
		}, want: func() *corev1.SecurityContext {
			d := defaults()
			d.RunAsGroup, d.ReadOnlyRootFilesystem = ptr.To[int64](3), ptr.To(true)
			d.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("p.json")}
			d.Capabilities.Add = []corev1.Capability{"NET_BIND_SERVICE"}
			return d
		}},
		{name: "what only a bypassed webhook lets through is ignored", sc: &v1alpha1.CustomImageSecurityContext{
			Privileged: ptr.To(true), AllowPrivilegeEscalation: ptr.To(true),
			Capabilities: &v1alpha1.CustomImageCapabilities{Add: []corev1.Capability{"SYS_ADMIN"}},
		}, want: defaults},
		{name: "empty capabilities keep drop ALL", sc: &v1alpha1.CustomImageSecurityContext{Capabilities: &v1alpha1.CustomImageCapabilities{}},
			want: defaults},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SecurityContext(tt.sc); !equality.Semantic.DeepEqual(got, tt.want()) {
				t.Errorf("SecurityContext() = %+v, want %+v", got, tt.want())
			}
		})
	}
}

// The placement fields reach the Pod as given, and the container keeps its
// log tail as the termination message.
func TestPodPlacement(t *testing.T) {
	task := &v1alpha1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: "t-1", Namespace: "ns", UID: "u"},
		Spec: v1alpha1.TaskRunSpec{TaskRef: &v1alpha1.TaskRef{Name: "t"}}}
	cfg := &v1alpha1.CustomImageConfig{
		Image: "busybox:1.36", Command: []string{"true"},
		NodeSelector:                 map[string]string{"kubernetes.io/os": "linux"},
		Tolerations:                  []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
		ImagePullSecrets:             []corev1.LocalObjectReference{{Name: "reg"}},
		AutomountServiceAccountToken: ptr.To(false),
	}
	pod := Pod(task, cfg, "sa")
	spec := pod.Spec
	if spec.NodeSelector["kubernetes.io/os"] != "linux" || len(spec.Tolerations) != 1 || spec.Tolerations[0].Key != "k" ||
		len(spec.ImagePullSecrets) != 1 || spec.ImagePullSecrets[0].Name != "reg" || !ptr.Equal(spec.AutomountServiceAccountToken, ptr.To(false)) {
		t.Errorf("pod spec = %+v", spec)
	}
	if pod.Labels[v1alpha1.TaskLabel] != "t" || pod.Labels[v1alpha1.TaskRunLabel] != "t-1" || pod.OwnerReferences[0].Kind != "TaskRun" {
		t.Errorf("pod labels %v, owners %v: want the Task's and the run's names, owned by the TaskRun", pod.Labels, pod.OwnerReferences)
	}
	if p := spec.Containers[0].TerminationMessagePolicy; p != corev1.TerminationMessageFallbackToLogsOnError {
		t.Errorf("terminationMessagePolicy = %q", p)
	}
}
