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

// builtinScopes knows the scopes of a stock Kubernetes' resources, for
// `taskgate validate` without a cluster and for a discovery that fails for
// a moment; anything else is unknown.
type builtinScopes struct{}

// builtinScope maps a built-in resource to whether it is cluster-scoped.
var builtinScope = map[schema.GroupResource]bool{
	{Resource: "namespaces"}:                                                             true,
	{Resource: "nodes"}:                                                                  true,
	{Resource: "persistentvolumes"}:                                                      true,
	{Group: rbacGroup, Resource: "clusterroles"}:                                         true,
	{Group: rbacGroup, Resource: "clusterrolebindings"}:                                  true,
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

	{Resource: "configmaps"}:                                     false,
	{Resource: "secrets"}:                                        false,
	{Resource: "pods"}:                                           false,
	{Resource: "services"}:                                       false,
	{Resource: "serviceaccounts"}:                                false,
	{Resource: "persistentvolumeclaims"}:                         false,
	{Group: "apps", Resource: "deployments"}:                     false,
	{Group: "apps", Resource: "statefulsets"}:                    false,
	{Group: "apps", Resource: "daemonsets"}:                      false,
	{Group: "apps", Resource: "replicasets"}:                     false,
	{Group: "batch", Resource: "jobs"}:                           false,
	{Group: "batch", Resource: "cronjobs"}:                       false,
	{Group: "networking.k8s.io", Resource: "ingresses"}:          false,
	{Group: "networking.k8s.io", Resource: "networkpolicies"}:    false,
	{Group: "policy", Resource: "poddisruptionbudgets"}:          false,
	{Group: "autoscaling", Resource: "horizontalpodautoscalers"}: false,
	{Group: rbacGroup, Resource: "roles"}:                        false,
	{Group: rbacGroup, Resource: "rolebindings"}:                 false,
}

// ClusterScoped implements ScopeResolver.
func (builtinScopes) ClusterScoped(gvr schema.GroupVersionResource) (bool, bool) {
	cs, known := builtinScope[gvr.GroupResource()]
	return cs, known
}

// scopeOf is the scope r is served in, known false when the API server does
// not serve it now (or, without a cluster, the built-in table lacks it).
func (a *Admitter) scopeOf(r v1alpha1.GroupVersionResource) (v1alpha1.ResourceScope, bool) {
	var res ScopeResolver = builtinScopes{}
	if a.Scopes != nil {
		res = a.Scopes
	}
	cs, known := res.ClusterScoped(schema.GroupVersionResource{Group: r.Group, Version: r.Version, Resource: r.Resource})
	switch {
	case !known:
		return "", false
	case cs:
		return v1alpha1.ScopeCluster, true
	}
	return v1alpha1.ScopeNamespaced, true
}
