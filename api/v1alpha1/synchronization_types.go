package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// SynchronizationSpec is the part of an Astronetes Synchronization that
// run-synchronization Tasks fill from their template.
type SynchronizationSpec struct {
	// RestartPolicy is passed through to the Astronetes operator.
	// +optional
	RestartPolicy string `json:"restartPolicy,omitempty"`
	// Plugin is the synchronization plugin, e.g. kubernetes-to-kubernetes.
	Plugin string `json:"plugin"`
	// Config is the synchronization plugin's configuration.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	Config *runtime.RawExtension `json:"config,omitempty"`
}

// SynchronizationStatus is written by the Astronetes operator; taskgate only
// reads its conditions.
type SynchronizationStatus struct {
	// Conditions as reported by the synchronization's operator.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Synchronization is a minimal copy of the Astronetes Synchronization API, so
// run-synchronization works on clusters without the Astronetes operator. The
// chart installs its CRD only when asked; the Astronetes one takes precedence.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=astronetes
// +kubebuilder:printcolumn:name="Plugin",type=string,JSONPath=`.spec.plugin`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Synchronization struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec SynchronizationSpec `json:"spec"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	Status SynchronizationStatus `json:"status,omitempty"`
}

// SynchronizationList is a list of Synchronizations.
//
// +kubebuilder:object:root=true
type SynchronizationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Synchronization `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Synchronization{}, &SynchronizationList{})
}
