package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TaskRef names the Task a TaskRun runs.
type TaskRef struct {
	// Name of a Task in the TaskRun's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// TaskRunSpec says what one run executes and on whose behalf.
//
// +kubebuilder:validation:XValidation:rule="has(self.taskRef) || has(self.taskSpec)",message="set spec.taskRef.name (a Task in this namespace) or spec.taskSpec (plugin and config inline)"
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: a TaskRun runs what was admitted; create a new TaskRun to run again"
type TaskRunSpec struct {
	// TaskRef names the Task to run, in the TaskRun's namespace. At admission
	// taskgate copies that Task's spec.plugin and spec.config into
	// spec.taskSpec, so the run carries out the Task exactly as it was then:
	// editing or deleting the Task later does not change it.
	// +optional
	TaskRef *TaskRef `json:"taskRef,omitempty"`

	// TaskSpec is what runs. Set it (without taskRef) for a one-off run that
	// needs no Task; with taskRef, admission fills it from the Task and any
	// value sent is replaced.
	// +optional
	TaskSpec *PluginSpec `json:"taskSpec,omitempty"`

	// Requester is who created the TaskRun, as the API server authenticated
	// them. The taskgate admission webhook sets it when the TaskRun is
	// created, replacing anything supplied, and it cannot change afterwards.
	// The controller sends every request that exercises or grants rights (the
	// Pod, the ClusterRoleBinding, each list and patch, the Synchronization)
	// impersonating this user, so the API server judges it as the user's own
	// request. Like a CertificateSigningRequest's spec.username/groups.
	// +optional
	Requester *Requester `json:"requester,omitempty"`

	// TTLSecondsAfterFinished limits how long the TaskRun is kept once it
	// finished: when status.completionTime plus this many seconds has passed,
	// the controller deletes it, and with it (owner references) its Pods,
	// ServiceAccount or Synchronization. 0 deletes it as soon as it finished.
	// Unset: the installation's default (--finished-task-ttl, chart value
	// controller.finishedTaskTTL; off unless set). Like a Job's.
	// +optional
	// +kubebuilder:validation:Minimum=0
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`
}

// TaskRun is one execution of a Task (spec.taskRef) or of a plugin
// configuration given inline (spec.taskSpec). It acts as the user who created
// it: everything it does that exercises or grants rights is sent
// impersonating spec.requester.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=tr;tskr,categories=astronetes
// +kubebuilder:printcolumn:name="Task",type=string,JSONPath=`.spec.taskRef.name`
// +kubebuilder:printcolumn:name="Plugin",type=string,JSONPath=`.spec.taskSpec.plugin`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`
type TaskRun struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec says what runs and as whom.
	// +required
	Spec TaskRunSpec `json:"spec"`

	// Status is what the controller observed of the run.
	// +optional
	Status TaskRunStatus `json:"status,omitzero"`
}

// Plugin is the plugin the run executes ("" before admission filled the snapshot).
func (r *TaskRun) Plugin() Plugin {
	if r.Spec.TaskSpec == nil {
		return ""
	}
	return r.Spec.TaskSpec.Plugin
}

// TaskName is the Task the run belongs to, "" for a one-off run.
func (r *TaskRun) TaskName() string {
	if r.Spec.TaskRef == nil {
		return ""
	}
	return r.Spec.TaskRef.Name
}

// TaskRunList is a list of TaskRuns.
//
// +kubebuilder:object:root=true
type TaskRunList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TaskRun `json:"items"`
}

func init() {
	SchemeBuilder.Register(&TaskRun{}, &TaskRunList{})
}
