package webhook

import (
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// ScopeResolver tells whether a resource is cluster-scoped. known is false
// when it cannot tell (the resource is not served, or no cluster is at hand).
type ScopeResolver interface {
	ClusterScoped(gvr schema.GroupVersionResource) (clusterScoped, known bool)
}

// MapperScopes resolves scopes through the API server's discovery.
type MapperScopes struct{ Mapper meta.RESTMapper }

// ClusterScoped implements ScopeResolver.
func (m MapperScopes) ClusterScoped(gvr schema.GroupVersionResource) (bool, bool) {
	gvk, err := m.Mapper.KindFor(gvr)
	if err != nil {
		return builtinScopes{}.ClusterScoped(gvr)
	}
	mapping, err := m.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return builtinScopes{}.ClusterScoped(gvr)
	}
	return mapping.Scope.Name() == meta.RESTScopeNameRoot, true
}

// builtinScopes knows the cluster-scoped resources of a stock Kubernetes, for
// `taskgate validate` without a cluster. Anything else counts as namespaced.
type builtinScopes struct{}

var clusterScopedBuiltins = map[schema.GroupResource]bool{
	{Resource: "namespaces"}:        true,
	{Resource: "nodes"}:             true,
	{Resource: "persistentvolumes"}: true,
	{Group: "rbac.authorization.k8s.io", Resource: "clusterroles"}:                       true,
	{Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"}:                true,
	{Group: "storage.k8s.io", Resource: "storageclasses"}:                                true,
	{Group: "storage.k8s.io", Resource: "csidrivers"}:                                    true,
	{Group: "storage.k8s.io", Resource: "volumeattachments"}:                             true,
	{Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"}:               true,
	{Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations"}:   true,
	{Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations"}: true,
	{Group: "scheduling.k8s.io", Resource: "priorityclasses"}:                            true,
	{Group: "networking.k8s.io", Resource: "ingressclasses"}:                             true,
	{Group: "node.k8s.io", Resource: "runtimeclasses"}:                                   true,
	{Group: "apiregistration.k8s.io", Resource: "apiservices"}:                           true,
	{Group: "certificates.k8s.io", Resource: "certificatesigningrequests"}:               true,
}

// ClusterScoped implements ScopeResolver.
func (builtinScopes) ClusterScoped(gvr schema.GroupVersionResource) (bool, bool) {
	if clusterScopedBuiltins[gvr.GroupResource()] {
		return true, true
	}
	return false, false
}

func (a *Admitter) clusterScoped(r v1alpha1.GroupVersionResource) bool {
	var res ScopeResolver = builtinScopes{}
	if a.Scopes != nil {
		res = a.Scopes
	}
	cs, _ := res.ClusterScoped(schema.GroupVersionResource{Group: r.Group, Version: r.Version, Resource: r.Resource})
	return cs
}
