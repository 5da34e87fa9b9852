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

// PluginSpec is what runs: a plugin and its configuration. A Task holds one
// as its runbook; a TaskRun holds the snapshot of one it runs.
type PluginSpec struct {
	// Plugin is the automation to run: custom-image (run a container image as a
	// Pod in the namespace), kubernetes-object-transformation (patch existing
	// objects) or run-synchronization (create a Synchronization from a
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
}

// ConcurrencyPolicy says whether runs of one Task may overlap.
// +kubebuilder:validation:Enum=Allow;Forbid
type ConcurrencyPolicy string

// The concurrency policies of a Task.
const (
	// ConcurrencyAllow lets runs of a Task overlap (the default).
	ConcurrencyAllow ConcurrencyPolicy = "Allow"
	// ConcurrencyForbid refuses a TaskRun while another run of the same Task
	// has not finished: at admission, and in the controller for runs admitted
	// at the same instant (the later one fails, naming the earlier).
	ConcurrencyForbid ConcurrencyPolicy = "Forbid"
)

// TaskSpec is a runbook: a plugin with its configuration, to be run later by
// TaskRuns. Creating or editing a Task runs nothing; a run records the spec
// as it was when the run was admitted, so an edit changes later runs only.
type TaskSpec struct {
	PluginSpec `json:",inline"`

	// ConcurrencyPolicy says whether runs of this Task may overlap: Allow (the
	// default) or Forbid (a TaskRun is refused while another run of this Task
	// has not finished), like a CronJob's.
	// +optional
	ConcurrencyPolicy ConcurrencyPolicy `json:"concurrencyPolicy,omitempty"`

	// SuccessfulRunsHistoryLimit is how many succeeded TaskRuns of this Task
	// are kept; older ones are deleted with their children. Unset: the
	// installation's default (taskgate's --successful-runs-history-limit,
	// 3 unless set). Like a CronJob's successfulJobsHistoryLimit.
	// +optional
	// +kubebuilder:validation:Minimum=0
	SuccessfulRunsHistoryLimit *int32 `json:"successfulRunsHistoryLimit,omitempty"`

	// FailedRunsHistoryLimit is how many failed TaskRuns of this Task are
	// kept. Unset: the installation's default (--failed-runs-history-limit,
	// 1 unless set). Like a CronJob's failedJobsHistoryLimit.
	// +optional
	// +kubebuilder:validation:Minimum=0
	FailedRunsHistoryLimit *int32 `json:"failedRunsHistoryLimit,omitempty"`

	// Requester is deprecated and ignored: a Task created by taskgate before
	// TaskRuns recorded its creator here. It is kept so that nothing such a
	// Task holds is lost; a run's requester is the TaskRun's.
	// +optional
	Requester *Requester `json:"requester,omitempty"`

	// TTLSecondsAfterFinished is deprecated and ignored on Tasks: set it on
	// the TaskRun. Kept so that a Task created by an earlier taskgate loses
	// nothing.
	// +optional
	// +kubebuilder:validation:Minimum=0
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`
}

// Requester is the identity of the user who created a TaskRun: the userInfo
// of the create request, as the API server passed it to admission.
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

// TaskPhase is a one-word summary of where a run is, derived from its
// Succeeded condition.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed
type TaskPhase string

// The phases of a run.
const (
	TaskPending   TaskPhase = "Pending"
	TaskRunning   TaskPhase = "Running"
	TaskSucceeded TaskPhase = "Succeeded"
	TaskFailed    TaskPhase = "Failed"
)

// ConditionSucceeded is a TaskRun's main condition: Unknown while it runs,
// True once it succeeded, False once it failed.
const ConditionSucceeded = "Succeeded"

// TaskRunStatus is what the controller observed of a run.
type TaskRunStatus struct {
	// Phase summarises the Succeeded condition: Pending, Running, Succeeded or Failed.
	// +optional
	Phase TaskPhase `json:"phase,omitempty"`

	// Message is the latest human-readable word on the run (the Succeeded
	// condition's message).
	// +optional
	Message string `json:"message,omitempty"`

	// Conditions hold the run's conditions; "Succeeded" is always present once
	// the controller has seen the run.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// StartTime is when the controller started carrying out the run.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// CompletionTime is when the run reached Succeeded or Failed.
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
	// PodName is the name of the Pod, in the run's namespace.
	PodName string `json:"podName,omitempty"`
	// ServiceAccountName is the ServiceAccount the Pod runs as.
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// ServiceAccountUID is the UID of the ServiceAccount taskgate created for
	// the run, recorded before anything is bound to it: a ServiceAccount of
	// that name with another UID was not created by taskgate for this Task
	// (someone created it first, or replaced it), and is never bound.
	// +optional
	ServiceAccountUID types.UID `json:"serviceAccountUID,omitempty"`
	// PodUID is the UID of the Pod taskgate created for the current attempt,
	// recorded once it exists: a Pod of that name with another UID is not
	// this run's and is never followed, deleted or adopted.
	// +optional
	PodUID types.UID `json:"podUID,omitempty"`
	// CreationToken is written (a checkpoint) before the current attempt's
	// Pod is created, and put on that Pod as the annotation
	// automation.astronetes.io/creation-token. A controller that stopped
	// between creating the Pod and recording PodUID recognises its own Pod
	// by it; a Pod found under the attempt's name in the same reconcile that
	// wrote the token was created by somebody else, and the run fails
	// NameConflict instead of adopting it.
	// +optional
	CreationToken string `json:"creationToken,omitempty"`
	// ClusterRoleBindingName is the ClusterRoleBinding created for
	// config.clusterRole, if any; it is removed when the run finishes.
	ClusterRoleBindingName string `json:"clusterRoleBindingName,omitempty"`
	// ExitCode is the container's exit code once it terminated.
	// +optional
	ExitCode *int32 `json:"exitCode,omitempty"`
	// Attempt is the attempt running now, counted from 0 (the first Pod,
	// PodName); attempt n >= 1 runs Pod AttemptPodName(run, n). It is
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

// CustomImageAttempt is how one of a custom-image run's Pods ended.
type CustomImageAttempt struct {
	// Pod is the attempt's Pod; it is kept (owned by the TaskRun) with its logs.
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
// run created.
type SynchronizationRunStatus struct {
	// Name of the Synchronization, in the run's namespace.
	Name string `json:"name,omitempty"`
}

// TaskStatus says how a Task's runs went.
type TaskStatus struct {
	// LastRun is the most recently created TaskRun of this Task.
	// +optional
	LastRun *RunReference `json:"lastRun,omitempty"`

	// ActiveRuns counts this Task's TaskRuns that have not finished.
	// +optional
	ActiveRuns int32 `json:"activeRuns,omitempty"`

	// TaskRunStatus holds, on a Task created by taskgate before TaskRuns, how
	// that Task's own run went (phase, conditions, results). It is kept so
	// that nothing is lost on upgrade; taskgate never sets it on a Task now,
	// and never runs such a Task again.
	TaskRunStatus `json:",inline"`
}

// RunReference summarises one TaskRun of a Task.
type RunReference struct {
	// Name of the TaskRun, in the Task's namespace.
	Name string `json:"name"`
	// Phase of the TaskRun: Pending, Running, Succeeded or Failed.
	// +optional
	Phase TaskPhase `json:"phase,omitempty"`
	// StartTime is when the run started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime is when the run finished.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
}

// Task is a runbook: a configurable, reusable unit of work. It names a plugin
// and its configuration, checked and defaulted at admission; it runs nothing
// until a TaskRun names it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=tsk,categories=astronetes
// +kubebuilder:printcolumn:name="Plugin",type=string,JSONPath=`.spec.plugin`
// +kubebuilder:printcolumn:name="Last Run",type=string,JSONPath=`.status.lastRun.name`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.lastRun.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Task struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the runbook: which plugin runs, and with what configuration.
	// +required
	Spec TaskSpec `json:"spec"`

	// Status says how the Task's runs went.
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
