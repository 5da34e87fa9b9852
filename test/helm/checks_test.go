package helm_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// checkDeployment asserts what every rendering must keep: two replicas, the
// restricted Pod Security profile, resources and probes.
func checkDeployment(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas = %v, want 2", d.Spec.Replicas)
	}
	pod := d.Spec.Template.Spec
	if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext = %+v, want runAsNonRoot and seccomp RuntimeDefault", psc)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("container has no securityContext")
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
		t.Error("container runAsNonRoot is not true")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("container readOnlyRootFilesystem is not true")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("container allowPrivilegeEscalation is not false")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0:
		t.Errorf("capabilities = %+v, want drop ALL and add nothing", sc.Capabilities)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Error("container seccompProfile is not RuntimeDefault")
	case sc.Privileged != nil && *sc.Privileged:
		t.Error("container is privileged")
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[res]; !ok {
			t.Errorf("no %s request", res)
		}
		if _, ok := c.Resources.Limits[res]; !ok {
			t.Errorf("no %s limit", res)
		}
	}
	for probe, path := range map[*corev1.Probe]string{c.LivenessProbe: "/healthz", c.ReadinessProbe: "/readyz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || probe.HTTPGet.Port.String() != "health" {
			t.Errorf("probe for %s = %+v, want an HTTP GET of %s on port \"health\"", path, probe, path)
		}
	}
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "health" && p.ContainerPort == 8081 }) {
		t.Errorf("no health port 8081 in %+v", c.Ports)
	}
	if !slices.Contains(c.Args, "--leader-elect") {
		t.Errorf("args %q lack --leader-elect", c.Args)
	}
	aff := pod.Affinity
	if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 ||
		len(aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 0 {
		t.Fatalf("affinity = %+v, want one preferred pod anti-affinity term", aff)
	}
	term := aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
	if term.TopologyKey != corev1.LabelHostname || !selects(term.LabelSelector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("anti-affinity term = %+v, want hostname spreading of the manager Pods", term)
	}
	if tmp := volume(t, d, "tmp"); tmp.EmptyDir == nil || !mounted(c, "tmp", "/tmp", false) {
		t.Errorf("want a writable emptyDir at /tmp beside the read-only root file system, got %+v", tmp.VolumeSource)
	}
	if !mounted(c, "certs", "/tmp/k8s-webhook-server/serving-certs", true) || !slices.Contains(c.Args, "--cert-dir=/tmp/k8s-webhook-server/serving-certs") {
		t.Errorf("the certificate is not mounted read-only at --cert-dir: %+v", c.VolumeMounts)
	}
	if d.Spec.Template.Spec.ServiceAccountName != "taskgate" {
		t.Errorf("serviceAccountName = %q", d.Spec.Template.Spec.ServiceAccountName)
	}
}

// checkWebhooks asserts that both webhooks touch Tasks and TaskRuns only, fail closed,
// have no side effects, time out quickly and point at the webhook Service.
func checkWebhooks(t *testing.T, mw *admissionv1.MutatingWebhookConfiguration, vw *admissionv1.ValidatingWebhookConfiguration, svc *corev1.Service) {
	t.Helper()
	if len(mw.Webhooks) != 1 || len(vw.Webhooks) != 1 {
		t.Fatalf("want one webhook per configuration, got %d and %d", len(mw.Webhooks), len(vw.Webhooks))
	}
	m, v := mw.Webhooks[0], vw.Webhooks[0]
	type hook struct {
		name, wantName, wantPath string
		cc                       admissionv1.WebhookClientConfig
		rules                    []admissionv1.RuleWithOperations
		fail                     *admissionv1.FailurePolicyType
		side                     *admissionv1.SideEffectClass
		timeout                  *int32
		versions                 []string
	}
	for _, h := range []hook{
		{m.Name, "mtask.automation.astronetes.io", "/mutate-automation-astronetes-io-v1alpha1-task", m.ClientConfig, m.Rules, m.FailurePolicy, m.SideEffects, m.TimeoutSeconds, m.AdmissionReviewVersions},
		{v.Name, "vtask.automation.astronetes.io", "/validate-automation-astronetes-io-v1alpha1-task", v.ClientConfig, v.Rules, v.FailurePolicy, v.SideEffects, v.TimeoutSeconds, v.AdmissionReviewVersions},
	} {
		if h.name != h.wantName {
			t.Errorf("webhook name %q, want %q", h.name, h.wantName)
		}
		s := h.cc.Service
		if s == nil || s.Name != svc.Name || s.Namespace != releaseNS || s.Path == nil || *s.Path != h.wantPath || (s.Port != nil && *s.Port != 443) {
			t.Errorf("%s clientConfig.service = %+v, want %s/%s:443%s", h.name, s, releaseNS, svc.Name, h.wantPath)
		}
		if h.cc.URL != nil || len(h.cc.CABundle) != 0 {
			t.Errorf("%s: no URL and no caBundle in the chart (the injector fills it)", h.name)
		}
		if len(h.rules) != 1 {
			t.Fatalf("%s has %d rules, want 1", h.name, len(h.rules))
		}
		r := h.rules[0]
		if !slices.Equal(r.APIGroups, []string{"automation.astronetes.io"}) || !slices.Equal(r.APIVersions, []string{"v1alpha1"}) ||
			!slices.Equal(r.Resources, []string{"tasks", "taskruns"}) ||
			!slices.Equal(r.Operations, []admissionv1.OperationType{admissionv1.Create, admissionv1.Update}) {
			t.Errorf("%s rule = %+v, want tasks and taskruns CREATE/UPDATE only", h.name, r)
		}
		if h.fail == nil || *h.fail != admissionv1.Fail {
			t.Errorf("%s failurePolicy = %v, want Fail", h.name, h.fail)
		}
		if h.side == nil || *h.side != admissionv1.SideEffectClassNone {
			t.Errorf("%s sideEffects = %v, want None", h.name, h.side)
		}
		if h.timeout == nil || *h.timeout < 1 || *h.timeout > 10 {
			t.Errorf("%s timeoutSeconds = %v, want 1..10", h.name, h.timeout)
		}
		if !slices.Equal(h.versions, []string{"v1"}) {
			t.Errorf("%s admissionReviewVersions = %v", h.name, h.versions)
		}
	}
}

// checkLeastPrivilege refuses wildcards and the write verbs nothing needs.
// The one wildcard allowed is the identity rule of constrained
// impersonation: resource "*" in authentication.k8s.io with only the
// impersonate:user-info and impersonate:serviceaccount verbs, because RBAC
// cannot match userextras/<any key> otherwise.
func checkLeastPrivilege(t *testing.T, rules []rbacv1.PolicyRule) {
	t.Helper()
	for _, r := range rules {
		if isIdentityRule(r) {
			continue
		}
		for _, list := range [][]string{r.APIGroups, r.Resources, r.Verbs, r.ResourceNames} {
			if slices.Contains(list, "*") {
				t.Errorf("wildcard in rule %+v", r)
			}
		}
		for _, verb := range []string{"escalate", "impersonate", "deletecollection"} {
			if slices.Contains(r.Verbs, verb) {
				t.Errorf("rule %+v grants %s", r, verb)
			}
		}
		if slices.Contains(r.Resources, "secrets") {
			t.Errorf("the ClusterRole grants Secrets cluster-wide: %+v", r)
		}
	}
}

// checkBindings asserts that the bindings give the roles to the Pods' ServiceAccount.
func checkBindings(t *testing.T, m manifest, d *appsv1.Deployment) {
	t.Helper()
	sa := one[corev1.ServiceAccount](t, m, "ServiceAccount")
	if sa.Name != d.Spec.Template.Spec.ServiceAccountName {
		t.Errorf("ServiceAccount %s is not the Pods' %s", sa.Name, d.Spec.Template.Spec.ServiceAccountName)
	}
	crb := one[rbacv1.ClusterRoleBinding](t, m, "ClusterRoleBinding")
	rb := one[rbacv1.RoleBinding](t, m, "RoleBinding")
	cr := managerRole(t, m)
	role := one[rbacv1.Role](t, m, "Role")
	want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: releaseNS}}
	if crb.RoleRef.Name != cr.Name || crb.RoleRef.Kind != "ClusterRole" || !slices.Equal(crb.Subjects, want) {
		t.Errorf("ClusterRoleBinding = %+v\nwant ClusterRole %s bound to %v", crb, cr.Name, want)
	}
	if rb.RoleRef.Name != role.Name || rb.RoleRef.Kind != "Role" || !slices.Equal(rb.Subjects, want) || rb.Namespace != releaseNS {
		t.Errorf("RoleBinding = %+v\nwant Role %s in %s bound to %v", rb, role.Name, releaseNS, want)
	}
}

// identityVerbs are the only verbs the wildcard identity rule may carry.
var identityVerbs = []string{"impersonate:user-info", "impersonate:serviceaccount"}

func isIdentityRule(r rbacv1.PolicyRule) bool {
	return slices.Equal(r.APIGroups, []string{"authentication.k8s.io"}) && slices.Equal(r.Resources, []string{"*"}) &&
		len(r.ResourceNames) == 0 && slices.Equal(r.Verbs, identityVerbs)
}

func mounted(c corev1.Container, name, path string, readOnly bool) bool {
	return slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.Name == name && m.MountPath == path && m.ReadOnly == readOnly
	})
}

func ruleFor(rules []rbacv1.PolicyRule, group, resource, verb string) *rbacv1.PolicyRule {
	for i, r := range rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) {
			return &rules[i]
		}
	}
	return nil
}

func volume(t *testing.T, d *appsv1.Deployment, name string) corev1.Volume {
	t.Helper()
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %q", name)
	return corev1.Volume{}
}

// selects reports whether a label selector's matchLabels match labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func hasArgPrefix(args []string, prefix string) bool {
	return slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, prefix) })
}

func unstructuredField(u *unstructured.Unstructured, fields ...string) (any, bool, error) {
	return unstructured.NestedFieldNoCopy(u.Object, fields...)
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
