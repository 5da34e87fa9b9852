package webhook

import (
	"encoding/json"
	"fmt"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/schemas"
)

// What a transformation's access checks ask, and the scope they ask it in.

const rbacGroup = "rbac.authorization.k8s.io"

// Texts of the scope and cap refusals, as constants so tests and docs quote
// them exactly.
const (
	warnNotServed = "the API server does not serve %s now, so its rights are checked cluster-wide; " +
		"the Task fails unless it is served when the Task runs"
	errScopeContradicts = "the API server serves %s as %s: leave scope out (taskgate fills it in) or set it to %s"
	errScopeUnconfirmed = "the API server does not serve %s now, so taskgate cannot confirm it is namespaced " +
		"and checks it cluster-wide: leave scope out or set it to Cluster, or create the Task once %s is served"
	errTooManyChecks = "the transformation needs %d access checks (list and patch of each resource in each namespace, " +
		"one or two more for RBAC kinds), more than %d: split it into several Tasks with fewer resources or namespaces each"
)

// checkedScope is the scope r's rights are checked in: the one recorded at
// admission, else discovery's, else (not served) Cluster, so that a resource
// that turns up cluster-scoped later was checked as such.
func checkedScope(a *Admitter, r v1alpha1.GroupVersionResource) v1alpha1.ResourceScope {
	if r.Scope != "" {
		return r.Scope
	}
	if s, known := a.scopeOf(r); known {
		return s
	}
	return v1alpha1.ScopeCluster
}

// checkedNamespaces are the namespaces r's rights are checked in; "" is
// cluster-wide.
func checkedNamespaces(a *Admitter, r v1alpha1.GroupVersionResource, namespaces []string) []string {
	if checkedScope(a, r) == v1alpha1.ScopeCluster || len(namespaces) == 0 {
		return []string{""}
	}
	return namespaces
}

// validateScope refuses a scope that contradicts discovery, and a
// Namespaced one discovery cannot confirm; it warns of a resource not served.
func validateScope(a *Admitter, r v1alpha1.GroupVersionResource, at *field.Path) (*field.Error, string) {
	served, known := a.scopeOf(r)
	var warning string
	if !known && a.Scopes != nil {
		warning = fmt.Sprintf(warnNotServed, r)
	}
	switch {
	case r.Scope == "":
		return nil, warning
	case known && r.Scope != served:
		return field.Invalid(at.Child("scope"), string(r.Scope), fmt.Sprintf(errScopeContradicts, r.String(), served, served)), warning
	case !known && a.Scopes != nil && r.Scope == v1alpha1.ScopeNamespaced:
		return field.Invalid(at.Child("scope"), string(r.Scope), fmt.Sprintf(errScopeUnconfirmed, r.String(), r.String())), warning
	}
	return nil, warning
}

// resourceChecks are the checks for transforming r in namespace ns ("":
// cluster-wide): list and patch, and what RBAC's escalation prevention
// demands of a patch to an RBAC object (rbacChecks).
func resourceChecks(r v1alpha1.GroupVersionResource, ns string, at *field.Path) []AccessCheck {
	where := "cluster-wide"
	if ns != "" {
		where = "in namespace " + ns
	}
	checks := make([]AccessCheck, 0, 4)
	for _, verb := range []string{"list", "patch"} {
		checks = append(checks, AccessCheck{
			Field:      at,
			Attributes: authorizationv1.ResourceAttributes{Verb: verb, Group: r.Group, Version: r.Version, Resource: r.Resource, Namespace: ns},
			Why:        fmt.Sprintf("the transformation would %s %s %s on your behalf", verb, r.String(), where),
		})
	}
	return append(checks, rbacChecks(r, ns, at)...)
}

// Why texts of the RBAC-kind checks.
const (
	whyEscalate = "a patch of %s can grant any permission, and the API server lets it through only if you hold every " +
		"permission it would grant or may escalate them; taskgate cannot see at admission which rules the patched objects " +
		"will hold, so it asks for escalate (you cannot grant through a Task what you could not grant by hand)"
	whyBind = "a patch of %s can point it at any role or add subjects, and the API server lets it through only if you " +
		"hold every permission of the role or may bind it; taskgate cannot see at admission which role the patched " +
		"objects will name, so it asks for bind on every %s"
)

// rbacChecks are the extra checks for patching RBAC objects in ns: the API
// server's escalation check on a patch whose result admission cannot see.
// A RoleBinding may name a Role or a ClusterRole (bind is checked in the
// binding's namespace); a ClusterRoleBinding only a ClusterRole.
func rbacChecks(r v1alpha1.GroupVersionResource, ns string, at *field.Path) []AccessCheck {
	if r.Group != rbacGroup {
		return nil
	}
	check := func(verb, resource, why string) AccessCheck {
		return AccessCheck{Field: at, Why: why,
			Attributes: authorizationv1.ResourceAttributes{Verb: verb, Group: rbacGroup, Resource: resource, Namespace: ns}}
	}
	switch r.Resource {
	case "roles", "clusterroles":
		return []AccessCheck{check("escalate", r.Resource, fmt.Sprintf(whyEscalate, r.Resource))}
	case "rolebindings":
		return []AccessCheck{
			check("bind", "roles", fmt.Sprintf(whyBind, r.Resource, "Role")),
			check("bind", "clusterroles", fmt.Sprintf(whyBind, r.Resource, "ClusterRole")),
		}
	case "clusterrolebindings":
		return []AccessCheck{check("bind", "clusterroles", fmt.Sprintf(whyBind, r.Resource, "ClusterRole"))}
	}
	return nil
}

// transformationCheckCount is len(Access) without building the checks, so
// that a Task asking for thousands is refused cheaply.
func transformationCheckCount(a *Admitter, c *v1alpha1.TransformationConfig) int {
	n := 0
	for _, r := range c.Resources {
		per := 2 + len(rbacChecks(r, "", nil))
		n += per * len(checkedNamespaces(a, r, c.Namespaces))
	}
	return n
}

// restoreScopes puts back the resources[i].scope that admission filled in
// at create and an update dropped: kubectl apply replaces a list whole
// with the one in the file, which has no scope, so without this the second
// apply of an unchanged file would be a spec change. Only an absent scope
// of the same group, version and resource at the same index is restored;
// any other difference stays a spec change. It returns the config to store
// and whether it changed anything.
func restoreScopes(oldRaw, newRaw []byte) ([]byte, bool) {
	oldCfg, errOld := schemas.DecodeJSON(oldRaw)
	newCfg, errNew := schemas.DecodeJSON(newRaw)
	if errOld != nil || errNew != nil {
		return nil, false
	}
	oldRes, _ := asObject(oldCfg)["resources"].([]any)
	newRes, _ := asObject(newCfg)["resources"].([]any)
	changed := false
	for i, r := range newRes {
		cur, isObj := r.(map[string]any)
		if !isObj || i >= len(oldRes) {
			continue
		}
		prev, _ := oldRes[i].(map[string]any)
		scope, had := prev["scope"]
		if _, has := cur["scope"]; has || !had {
			continue
		}
		if prev["group"] != cur["group"] || prev["version"] != cur["version"] || prev["resource"] != cur["resource"] {
			continue
		}
		cur["scope"] = scope
		changed = true
	}
	if !changed {
		return nil, false
	}
	out, err := json.Marshal(newCfg)
	if err != nil {
		return nil, false
	}
	return out, true
}

func asObject(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}
