package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// Plugin names the automation a Task carries out.
// +kubebuilder:validation:Enum=custom-image;kubernetes-object-transformation;run-synchronization
type Plugin string

// The plugins a Task can name.
const (
	PluginCustomImage    Plugin = "custom-image"
	PluginTransformation Plugin = "kubernetes-object-transformation"
	PluginRunSync        Plugin = "run-synchronization"
)

// Plugins lists every plugin, in the order the docs give them.
var Plugins = []Plugin{PluginCustomImage, PluginTransformation, PluginRunSync}

// TaskSpec says which plugin runs and how. It is immutable: to run again,
// create a new Task (metadata.generateName works).
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable; create a new Task to run again"
type TaskSpec struct {
	// Plugin is the automation to run: custom-image (run a container image as a
	// Pod in the Task's namespace), kubernetes-object-transformation (patch
	// existing objects) or run-synchronization (create a Synchronization from a
	// template).
	// +required
	Plugin Plugin `json:"plugin"`

	// Config is the plugin's configuration. Its shape depends on spec.plugin and
	// is checked by the taskgate admission webhook against the plugin's JSON
	// Schema (`taskgate schemas` writes them out); defaults are filled in at
	// admission.
	// +required
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	Config runtime.RawExtension `json:"config"`

	// Requester is who created the Task, as the API server authenticated them.
	// The taskgate admission webhook sets it when the Task is created,
	// replacing anything supplied, and it cannot change afterwards (spec is
	// immutable). The controller sends every request that exercises or grants
	// rights (the Pod, the ClusterRoleBinding, each list and patch, the
	// Synchronization) impersonating this user, so the API server judges it as
	// the user's own request. Like a CertificateSigningRequest's
	// spec.username/groups.
	// +optional
	Requester *Requester `json:"requester,omitempty"`

	// TTLSecondsAfterFinished limits how long the Task is kept once it
	// finished (Succeeded or Failed): when status.completionTime plus this
	// many seconds has passed, the taskgate controller deletes the Task, and
	// with it (through owner references) its Pod, ServiceAccount or
	// Synchronization; its ClusterRoleBinding is removed when it finishes.
	// 0 deletes it as soon as it finished. Unset: the installation's default
	// applies (taskgate's --finished-task-ttl, chart value
	// controller.finishedTaskTTL; off unless set, keeping finished Tasks);
	// when set, this field wins over that default. Like a Job's
	// spec.ttlSecondsAfterFinished.
	// +optional
	// +kubebuilder:validation:Minimum=0
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`
}

// Requester is the identity of the user who created a Task: the userInfo of
// the create request, as the API server passed it to admission.
type Requester struct {
	// Username is the user's name, e.g. alice@example.com or
	// system:serviceaccount:<namespace>:<name>.
	Username string `json:"username"`
	// UID identifies the user across name changes, where the authenticator sets one.
	// +optional
	UID string `json:"uid,omitempty"`
	// Groups are the groups the user belongs to.
	// +optional
	// +listType=atomic
	Groups []string `json:"groups,omitempty"`
	// Extra holds the authenticator's additional attributes of the user.
	// +optional
	Extra map[string][]string `json:"extra,omitempty"`
}

// TaskPhase is a one-word summary of where a Task is, derived from its
// Succeeded condition.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed
type TaskPhase string

// The phases of a Task.
const (
	TaskPending   TaskPhase = "Pending"
	TaskRunning   TaskPhase = "Running"
	TaskSucceeded TaskPhase = "Succeeded"
	TaskFailed    TaskPhase = "Failed"
)

// ConditionSucceeded is the Task's main condition: Unknown while it runs, True
// once it succeeded, False once it failed.
const ConditionSucceeded = "Succeeded"

// TaskStatus is what the controller observed of the Task's run.
type TaskStatus struct {
	// Phase summarises the Succeeded condition: Pending, Running, Succeeded or Failed.
	// +optional
	Phase TaskPhase `json:"phase,omitempty"`

	// Message is the latest human-readable word on the run (the Succeeded
	// condition's message).
	// +optional
	Message string `json:"message,omitempty"`

	// Conditions hold the Task's conditions; "Succeeded" is always present once
	// the controller has seen the Task.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// StartTime is when the controller started carrying out the Task.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// CompletionTime is when the Task reached Succeeded or Failed.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// ObservedGeneration is the metadata.generation the status was written for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// CustomImage holds the custom-image plugin's results.
	// +optional
	CustomImage *CustomImageStatus `json:"customImage,omitempty"`

	// Transformation holds the kubernetes-object-transformation plugin's results.
	// +optional
	Transformation *TransformationStatus `json:"transformation,omitempty"`

	// Synchronization holds the run-synchronization plugin's results.
	// +optional
	Synchronization *SynchronizationRunStatus `json:"synchronization,omitempty"`
}

// CustomImageStatus reports the Pod a custom-image Task runs.
type CustomImageStatus struct {
	// PodName is the name of the Pod, in the Task's namespace.
	PodName string `json:"podName,omitempty"`
	// ServiceAccountName is the ServiceAccount the Pod runs as.
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// ServiceAccountUID is the UID of the ServiceAccount taskgate created for
	// the Task, recorded before anything is bound to it: a ServiceAccount of
	// that name with another UID was not created by taskgate for this Task
	// (someone created it first, or replaced it), and is never bound.
	// +optional
	ServiceAccountUID types.UID `json:"serviceAccountUID,omitempty"`
	// ClusterRoleBindingName is the ClusterRoleBinding created for
	// config.clusterRole, if any; it is removed when the Task finishes.
	ClusterRoleBindingName string `json:"clusterRoleBindingName,omitempty"`
	// ExitCode is the container's exit code once it terminated.
	// +optional
	ExitCode *int32 `json:"exitCode,omitempty"`
	// Attempt is the attempt running now, counted from 0 (the first Pod,
	// PodName); attempt n >= 1 runs Pod AttemptPodName(task, n). It is
	// written (a checkpoint) before that attempt's Pod is created, so a
	// restarted controller neither creates a second Pod for it nor skips it.
	// +optional
	Attempt int32 `json:"attempt,omitempty"`
	// Attempts records each finished attempt, in order.
	// +optional
	// +kubebuilder:validation:MaxItems=11
	// +listType=atomic
	Attempts []CustomImageAttempt `json:"attempts,omitempty"`
}

// CustomImageAttempt is how one of a custom-image Task's Pods ended.
type CustomImageAttempt struct {
	// Pod is the attempt's Pod; it is kept (owned by the Task) with its logs.
	Pod string `json:"pod"`
	// ExitCode is the container's exit code.
	// +optional
	ExitCode *int32 `json:"exitCode,omitempty"`
	// Reason is the kubelet's reason for the container's end (Error,
	// OOMKilled, Completed, ...).
	// +optional
	Reason string `json:"reason,omitempty"`
}

// TransformationStatus counts what a kubernetes-object-transformation did.
type TransformationStatus struct {
	// Matched is the number of objects the selection matched.
	Matched int32 `json:"matched"`
	// Patched is the number of objects whose resourceVersion moved.
	Patched int32 `json:"patched"`
	// Unchanged is the number of objects the operations left as they were.
	Unchanged int32 `json:"unchanged"`
	// Failed is the number of objects that could not be patched.
	Failed int32 `json:"failed"`
	// Failures names failed objects and why (at most 20 entries).
	// +optional
	Failures []ObjectFailure `json:"failures,omitempty"`
}

// ObjectFailure names one object a transformation could not patch.
type ObjectFailure struct {
	// Object is <group>/<resource> <namespace>/<name>.
	Object string `json:"object"`
	// Message says why.
	Message string `json:"message"`
}

// SynchronizationRunStatus reports the Synchronization a run-synchronization
// Task created.
type SynchronizationRunStatus struct {
	// Name of the Synchronization, in the Task's namespace.
	Name string `json:"name,omitempty"`
}

// Task is one run of an Astronetes automation plugin. It runs once, when it is
// created; its spec cannot change afterwards.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=tsk,categories=astronetes
// +kubebuilder:printcolumn:name="Plugin",type=string,JSONPath=`.spec.plugin`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`
type Task struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec says which plugin runs and with what configuration.
	// +required
	Spec TaskSpec `json:"spec"`

	// Status is what the controller observed.
	// +optional
	Status TaskStatus `json:"status,omitzero"`
}

// TaskList is a list of Tasks.
//
// +kubebuilder:object:root=true
type TaskList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Task `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Task{}, &TaskList{})
}
