package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// The typed forms of spec.config, one per plugin. The JSON Schemas in
// schemas/ are the contract users see; these mirror them for Go code and are
// decoded only after a config passed its schema.

// CustomImageConfig is spec.config of a custom-image Task.
type CustomImageConfig struct {
	Image              string                       `json:"image"`
	Command            []string                     `json:"command"`
	Args               []string                     `json:"args,omitempty"`
	Env                []corev1.EnvVar              `json:"env,omitempty"`
	Resources          *corev1.ResourceRequirements `json:"resources,omitempty"`
	Namespace          string                       `json:"namespace,omitempty"`
	ServiceAccountName string                       `json:"serviceAccountName,omitempty"`
	ClusterRole        string                       `json:"clusterRole,omitempty"`
	TimeoutSeconds     *int64                       `json:"timeoutSeconds,omitempty"`
	// Retries is how many times a Pod whose container exits non-zero is
	// replaced by a new one (0 to 10); the timeout covers all attempts.
	Retries *int32 `json:"retries,omitempty"`
	// SecurityContext is merged over the container's defaults
	// (children.Pod); the schema admits only what PodSecurity restricted allows.
	SecurityContext              *CustomImageSecurityContext   `json:"securityContext,omitempty"`
	NodeSelector                 map[string]string             `json:"nodeSelector,omitempty"`
	Tolerations                  []corev1.Toleration           `json:"tolerations,omitempty"`
	ImagePullSecrets             []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
	AutomountServiceAccountToken *bool                         `json:"automountServiceAccountToken,omitempty"`
}

// CustomImageSecurityContext is the part of a container's securityContext a
// custom-image Task may set. It is a type of its own, not
// corev1.SecurityContext, so that nothing PodSecurity restricted forbids
// (privileged: true, procMount, added capabilities other than
// NET_BIND_SERVICE, ...) can even be expressed past the schema.
type CustomImageSecurityContext struct {
	RunAsUser                *int64                   `json:"runAsUser,omitempty"`
	RunAsGroup               *int64                   `json:"runAsGroup,omitempty"`
	RunAsNonRoot             *bool                    `json:"runAsNonRoot,omitempty"`
	ReadOnlyRootFilesystem   *bool                    `json:"readOnlyRootFilesystem,omitempty"`
	AllowPrivilegeEscalation *bool                    `json:"allowPrivilegeEscalation,omitempty"`
	Privileged               *bool                    `json:"privileged,omitempty"`
	SeccompProfile           *corev1.SeccompProfile   `json:"seccompProfile,omitempty"`
	Capabilities             *CustomImageCapabilities `json:"capabilities,omitempty"`
}

// CustomImageCapabilities are the capabilities added to the container; all
// others are always dropped.
type CustomImageCapabilities struct {
	Add []corev1.Capability `json:"add,omitempty"`
}

// GroupVersionResource names a kind of object a transformation patches.
type GroupVersionResource struct {
	Group    string `json:"group,omitempty"`
	Version  string `json:"version"`
	Resource string `json:"resource"`
	// Scope is the scope admission checked the requester's rights in:
	// ScopeNamespaced (in each listed namespace) or ScopeCluster
	// (cluster-wide, also for a resource not served at admission). The
	// webhook fills it in; the controller fails the Task with ScopeChanged
	// when the resource is cluster-scoped at run time but was checked as
	// namespaced.
	Scope ResourceScope `json:"scope,omitempty"`
}

// String spells r as in an API path, "<group>/<version>/<resource>", or
// "<version>/<resource>" for the core group: how taskgate's messages name a
// resource, at admission and at run time alike.
func (r GroupVersionResource) String() string {
	if r.Group == "" {
		return r.Version + "/" + r.Resource
	}
	return r.Group + "/" + r.Version + "/" + r.Resource
}

// ResourceScope is where a transformation's rights were checked.
type ResourceScope string

// The scopes of ResourceScope.
const (
	ScopeNamespaced ResourceScope = "Namespaced"
	ScopeCluster    ResourceScope = "Cluster"
)

// TransformationOperation is one patch, applied in order; exactly one field is set.
type TransformationOperation struct {
	// JSONPatch is an RFC 6902 JSON patch (a list of operations).
	JSONPatch *runtime.RawExtension `json:"jsonPatch,omitempty"`
	// MergePatch is an RFC 7386 JSON merge patch.
	MergePatch *runtime.RawExtension `json:"mergePatch,omitempty"`
}

// TransformationConfig is spec.config of a kubernetes-object-transformation Task.
type TransformationConfig struct {
	Resources     []GroupVersionResource    `json:"resources"`
	Namespaces    []string                  `json:"namespaces,omitempty"`
	Names         []string                  `json:"names,omitempty"`
	LabelSelector *metav1.LabelSelector     `json:"labelSelector,omitempty"`
	Operations    []TransformationOperation `json:"operations"`
}

// SynchronizationTemplateMeta is the metadata a run-synchronization template
// gives the Synchronization.
type SynchronizationTemplateMeta struct {
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// SynchronizationTemplate is the Synchronization a run-synchronization Task creates.
type SynchronizationTemplate struct {
	Metadata SynchronizationTemplateMeta `json:"metadata,omitempty"`
	Spec     SynchronizationSpec         `json:"spec"`
}

// RunSynchronizationConfig is spec.config of a run-synchronization Task.
type RunSynchronizationConfig struct {
	Template SynchronizationTemplate `json:"template"`
}
