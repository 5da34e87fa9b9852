// Package v1alpha1 holds the automation.astronetes.io/v1alpha1 API types that
// taskgate admits (Task) and creates (Synchronization), plus the typed form of
// each plugin's spec.config.
//
// +kubebuilder:object:generate=true
// +groupName=automation.astronetes.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "automation.astronetes.io", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
