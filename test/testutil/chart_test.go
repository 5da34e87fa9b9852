package testutil

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

var chartDir = filepath.Join("..", "..", "charts", "taskgate")

// hasVerb says whether a rule of role grants verb on group/resource (and,
// when names is set, exactly those resourceNames).
func hasVerb(role *rbacv1.ClusterRole, group, resource, verb string, names ...string) bool {
	for _, r := range role.Rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) &&
			(len(names) == 0 || slices.Equal(r.ResourceNames, names)) {
			return true
		}
	}
	return false
}

// TestChartClusterRole checks that the values reach the rendered role: the
// mode decides who holds pods create, allowedClusterRoles the bind rule,
// transformationRules the kinds, certs.mode the rotator's rules.
func TestChartClusterRole(t *testing.T) {
	rules := ChartRules([]rbacv1.PolicyRule{{APIGroups: []string{"example.com"}, Resources: []string{"widgets"}, Verbs: []string{"ignored"}}})
	if len(rules) != 1 || len(rules[0]) != 2 {
		t.Fatalf("ChartRules = %v, want apiGroups and resources only", rules)
	}
	const custom = "transformationRules:\n  - apiGroups: [example.com]\n    resources: [widgets]\nallowedClusterRoles: [view]\n"
	requester, err := ChartClusterRole(t.Context(), HelmPath(), chartDir, "actAs: requester\ncerts:\n  mode: cert-manager\n"+custom)
	if err != nil {
		t.Fatal(err)
	}
	if requester.Name != "taskgate-manager" {
		t.Errorf("name = %s, want taskgate-manager", requester.Name)
	}
	if hasVerb(requester, "", "pods", "create") || hasVerb(requester, "rbac.authorization.k8s.io", "clusterroles", "bind") {
		t.Error("requester mode: the manager holds a child's rights itself")
	}
	if !hasVerb(requester, "", "pods", "impersonate-on:user-info:create") ||
		!hasVerb(requester, "example.com", "widgets", "impersonate-on:user-info:patch") || hasVerb(requester, "", "configmaps", "impersonate-on:user-info:patch") {
		t.Error("requester mode: impersonate-on rules do not follow the values")
	}
	if hasVerb(requester, "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "list") {
		t.Error("certs.mode=cert-manager: the rotator's rules are rendered")
	}
	controller, err := ChartClusterRole(t.Context(), HelmPath(), chartDir, "actAs: controller\n"+custom)
	if err != nil {
		t.Fatal(err)
	}
	if !hasVerb(controller, "", "pods", "create") || !hasVerb(controller, "rbac.authorization.k8s.io", "clusterroles", "bind", "view") ||
		!hasVerb(controller, "example.com", "widgets", "patch") || !hasVerb(controller, "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "list") {
		t.Errorf("controller mode: rules do not follow the values: %v", controller.Rules)
	}
	for _, r := range controller.Rules {
		for _, v := range r.Verbs {
			if strings.HasPrefix(v, "impersonate") {
				t.Errorf("controller mode: %s rendered", v)
			}
		}
	}
	if _, err := ChartClusterRole(t.Context(), HelmPath(), chartDir, "transformationRules:\n  - resources: [x]\n"); err == nil ||
		!strings.Contains(err.Error(), "missing property 'apiGroups'") {
		// values.schema.json refuses it before the template's own check runs.
		t.Errorf("a chart error: %v, want helm's message", err)
	}
}
