package helm_test

import (
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/astronetes/taskgate/webhook"
)

func TestHelmLint(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{name: "defaults"},
		{name: "cert-manager", args: []string{"--set", "certs.mode=cert-manager"}},
		{name: "everything on", args: []string{"--set", "metrics.serviceMonitor.enabled=true",
			"--set", "synchronizationCRD.install=true", "--set", "allowedClusterRoles={view}", "--set", "networkPolicy.enabled=true"}},
		{name: "actAs controller", args: []string{"--set", "actAs=controller", "--set", "allowedClusterRoles={view}"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if out, err := helm(t, append([]string{"lint", "--strict", chartDir()}, tc.args...)...); err != nil {
				t.Fatalf("helm lint: %v\n%s", err, out)
			}
		})
	}
}

func TestTemplateDefaults(t *testing.T) {
	m := render(t)
	for _, kind := range []string{"ServiceMonitor", "ConfigMap", "Issuer", "Certificate", "PrometheusRule"} {
		if got := m.find(kind); len(got) != 0 {
			t.Errorf("defaults render %d %s, want none", len(got), kind)
		}
	}
	// The Task and TaskRun CRDs only (crds.enabled, tested in crds_test.go); the Synchronization CRD never offline.
	var names []string
	for _, crd := range m.find("CustomResourceDefinition") {
		names = append(names, crd.GetName())
	}
	if slices.Sort(names); !slices.Equal(names, []string{"taskruns.automation.astronetes.io", "tasks.automation.astronetes.io"}) {
		t.Errorf("defaults render the CRDs %v, want the Task and TaskRun CRDs only", names)
	}

	d := one[appsv1.Deployment](t, m, "Deployment")
	checkDeployment(t, d)
	args := d.Spec.Template.Spec.Containers[0].Args
	for _, want := range []string{"manager", "--leader-elect", "--cert-rotation", "--namespace=" + releaseNS,
		"--cert-secret-name=taskgate-webhook-cert", "--webhook-service-name=taskgate-webhook",
		"--mutating-webhook-configuration=taskgate-mutating", "--validating-webhook-configuration=taskgate-validating",
		"--cert-dir=/tmp/k8s-webhook-server/serving-certs", "--webhook-port=9443", "--access-review-cache-ttl=10s",
		"--act-as=requester", "--preflight=true"} {
		if !slices.Contains(args, want) {
			t.Errorf("manager args %q lack %q", args, want)
		}
	}
	if hasArgPrefix(args, "--allowed-cluster-roles") || hasArgPrefix(args, "--sync-schema-dir") || hasArgPrefix(args, "--max-transformation-objects") {
		t.Errorf("defaults pass an allow-list, schema dir or object bound: %q", args)
	}
	// cert-controller writes only the Secret and waits for the kubelet to
	// mount it: an emptyDir would never see a certificate.
	if certs := volume(t, d, "certs"); certs.Secret == nil || certs.Secret.SecretName != "taskgate-webhook-cert" {
		t.Errorf("self-signed certs volume = %+v, want the rotator's Secret taskgate-webhook-cert", certs.VolumeSource)
	}

	secret := one[corev1.Secret](t, m, "Secret")
	if secret.Name != "taskgate-webhook-cert" || len(secret.Data)+len(secret.StringData) != 0 {
		t.Errorf("Secret %s has data %v; the chart must ship it empty for the rotator", secret.Name, secret.Data)
	}

	svc := one[corev1.Service](t, m, "Service")
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 || svc.Spec.Ports[0].TargetPort.String() != "webhook" {
		t.Errorf("webhook Service ports = %+v, want 443 -> webhook", svc.Spec.Ports)
	}
	if !selects(svc.Spec.Selector, d.Spec.Template.Labels) {
		t.Errorf("Service selector %v does not select the Pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
	}

	mw := one[admissionv1.MutatingWebhookConfiguration](t, m, "MutatingWebhookConfiguration")
	vw := one[admissionv1.ValidatingWebhookConfiguration](t, m, "ValidatingWebhookConfiguration")
	checkWebhooks(t, mw, vw, svc)
	for _, obj := range []map[string]string{mw.Annotations, vw.Annotations} {
		if _, ok := obj["cert-manager.io/inject-ca-from"]; ok {
			t.Error("self-signed mode must not ask cert-manager to inject the CA")
		}
	}

	pdb := one[policyv1.PodDisruptionBudget](t, m, "PodDisruptionBudget")
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || !selects(pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("PDB = %+v, want minAvailable 1 selecting the manager", pdb.Spec)
	}

	cr := managerRole(t, m)
	checkLeastPrivilege(t, cr.Rules)
	if r := ruleFor(cr.Rules, "rbac.authorization.k8s.io", "clusterroles", "bind"); r != nil {
		t.Errorf("empty allowedClusterRoles must render no bind rule, got %+v", *r)
	}
	// Requester mode (the default): the children's rights only through
	// impersonation (the exact set: TestTemplateActAs).
	for _, no := range [][3]string{{"", "pods", "create"}, {"rbac.authorization.k8s.io", "clusterrolebindings", "create"},
		{"automation.astronetes.io", "synchronizations", "create"}, {"apps", "deployments", "patch"}, {"", "configmaps", "list"}} {
		if r := ruleFor(cr.Rules, no[0], no[1], no[2]); r != nil {
			t.Errorf("requester mode grants the manager %s %s itself: %+v", no[2], no[1], *r)
		}
	}
	for _, yes := range [][3]string{{"", "pods", "impersonate-on:user-info:create"}, {"authentication.k8s.io", "*", "impersonate:user-info"},
		{"rbac.authorization.k8s.io", "clusterrolebindings", "impersonate-on:user-info:create"}, {"apps", "deployments", "impersonate-on:user-info:patch"}} {
		if ruleFor(cr.Rules, yes[0], yes[1], yes[2]) == nil {
			t.Errorf("requester mode lacks %s on %s", yes[2], yes[1])
		}
	}
	for _, res := range []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations"} {
		r := ruleFor(cr.Rules, "admissionregistration.k8s.io", res, "update")
		if r == nil || len(r.ResourceNames) != 1 {
			t.Errorf("%s update rule = %+v, want one restricted to our configuration", res, r)
		}
	}
	role := one[rbacv1.Role](t, m, "Role")
	if ruleFor(role.Rules, "", "secrets", "update") == nil || ruleFor(role.Rules, "coordination.k8s.io", "leases", "update") == nil {
		t.Errorf("Role rules %+v lack secrets (rotation) or leases (leader election)", role.Rules)
	}
	checkBindings(t, m, d)
}

func TestTemplateCertManager(t *testing.T) {
	m := render(t, "--set", "certs.mode=cert-manager")
	if got := m.find("Secret"); len(got) != 0 {
		t.Errorf("cert-manager mode renders a Secret; cert-manager owns it")
	}
	cert := m.find("Certificate")
	issuer := m.find("Issuer")
	if len(cert) != 1 || len(issuer) != 1 {
		t.Fatalf("want one Certificate and one self-signed Issuer, got %d and %d", len(cert), len(issuer))
	}
	if self, _, _ := unstructuredField(issuer[0], "spec", "selfSigned"); self == nil {
		t.Errorf("Issuer is not selfSigned: %v", issuer[0].Object["spec"])
	}
	secretName, _, _ := unstructuredField(cert[0], "spec", "secretName")
	dnsNames, _, _ := unstructuredField(cert[0], "spec", "dnsNames")
	if !strings.Contains(toJSON(dnsNames), `"taskgate-webhook.taskgate-system.svc"`) {
		t.Errorf("Certificate dnsNames %v lack the webhook Service", dnsNames)
	}
	if ref, _, _ := unstructuredField(cert[0], "spec", "issuerRef", "name"); ref != issuer[0].GetName() {
		t.Errorf("Certificate issuerRef %v, want %s", ref, issuer[0].GetName())
	}

	d := one[appsv1.Deployment](t, m, "Deployment")
	checkDeployment(t, d)
	args := d.Spec.Template.Spec.Containers[0].Args
	if slices.Contains(args, "--cert-rotation") {
		t.Errorf("cert-manager mode must not run the built-in rotator: %q", args)
	}
	if v := volume(t, d, "certs"); v.Secret == nil || v.Secret.SecretName != secretName {
		t.Errorf("certs volume %+v, want the Certificate's Secret %v", v.VolumeSource, secretName)
	}

	svc := one[corev1.Service](t, m, "Service")
	mw := one[admissionv1.MutatingWebhookConfiguration](t, m, "MutatingWebhookConfiguration")
	vw := one[admissionv1.ValidatingWebhookConfiguration](t, m, "ValidatingWebhookConfiguration")
	checkWebhooks(t, mw, vw, svc)
	want := releaseNS + "/" + cert[0].GetName()
	for name, ann := range map[string]map[string]string{mw.Name: mw.Annotations, vw.Name: vw.Annotations} {
		if ann["cert-manager.io/inject-ca-from"] != want {
			t.Errorf("%s inject-ca-from = %q, want %q", name, ann["cert-manager.io/inject-ca-from"], want)
		}
	}

	cr := managerRole(t, m)
	checkLeastPrivilege(t, cr.Rules)
	if ruleFor(cr.Rules, "admissionregistration.k8s.io", "validatingwebhookconfigurations", "list") != nil {
		t.Error("cert-manager mode: the manager needs no access to webhook configurations")
	}
	if role := one[rbacv1.Role](t, m, "Role"); ruleFor(role.Rules, "", "secrets", "get") != nil {
		t.Error("cert-manager mode: the manager needs no access to Secrets")
	}
	checkBindings(t, m, d)
}

// TestTemplateAllowedClusterRoles: with actAs=controller the manager may
// bind exactly the listed roles (requester mode grants no bind at all:
// TestTemplateActAs); the webhook gets the list in both modes.
func TestTemplateAllowedClusterRoles(t *testing.T) {
	m := render(t, "--set", "actAs=controller", "--set", "allowedClusterRoles={view,edit}")
	cr := managerRole(t, m)
	checkLeastPrivilege(t, cr.Rules)
	var binds []rbacv1.PolicyRule
	for _, r := range cr.Rules {
		if slices.Contains(r.Verbs, "bind") {
			binds = append(binds, r)
		}
	}
	if len(binds) != 1 || !slices.Equal(binds[0].Resources, []string{"clusterroles"}) ||
		!slices.Equal(binds[0].ResourceNames, []string{"view", "edit"}) || !slices.Equal(binds[0].Verbs, []string{"bind"}) {
		t.Errorf("bind rules = %+v, want one: bind clusterroles [view edit]", binds)
	}
	d := one[appsv1.Deployment](t, m, "Deployment")
	if args := d.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--allowed-cluster-roles=view,edit") {
		t.Errorf("manager args %q lack the same allow-list", args)
	}
}

// TestTemplateSingleCall: webhook.singleCall renders one mutating webhook on
// the single-call path with reinvocationPolicy IfNeeded and no validating
// webhook, and the manager neither rotates nor may write a validating
// configuration.
func TestTemplateSingleCall(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{name: "self-signed", args: []string{"--set", "webhook.singleCall=true"}},
		{name: "cert-manager", args: []string{"--set", "webhook.singleCall=true", "--set", "certs.mode=cert-manager"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := render(t, tc.args...)
			if got := m.find("ValidatingWebhookConfiguration"); len(got) != 0 {
				t.Fatalf("single-call mode renders %d ValidatingWebhookConfigurations, want none", len(got))
			}
			mw := one[admissionv1.MutatingWebhookConfiguration](t, m, "MutatingWebhookConfiguration")
			if len(mw.Webhooks) != 1 {
				t.Fatalf("want one mutating webhook, got %d", len(mw.Webhooks))
			}
			h := mw.Webhooks[0]
			if s := h.ClientConfig.Service; s == nil || s.Path == nil || *s.Path != webhook.AdmitPath {
				t.Errorf("clientConfig.service %+v, want path %s", s, webhook.AdmitPath)
			}
			if h.ReinvocationPolicy == nil || *h.ReinvocationPolicy != admissionv1.IfNeededReinvocationPolicy {
				t.Errorf("reinvocationPolicy %v, want IfNeeded: a later mutating webhook's change must be validated again", h.ReinvocationPolicy)
			}
			if len(h.Rules) != 1 || !slices.Equal(h.Rules[0].Resources, []string{"tasks", "taskruns"}) ||
				!slices.Equal(h.Rules[0].Operations, []admissionv1.OperationType{admissionv1.Create, admissionv1.Update}) {
				t.Errorf("rules %+v, want tasks and taskruns CREATE/UPDATE (UPDATE carries a Task's edit and a TaskRun's immutability)", h.Rules)
			}
			if h.FailurePolicy == nil || *h.FailurePolicy != admissionv1.Fail || h.Name != "mtask.automation.astronetes.io" {
				t.Errorf("webhook %s failurePolicy %v, want mtask with Fail", h.Name, h.FailurePolicy)
			}
			d := one[appsv1.Deployment](t, m, "Deployment")
			args := d.Spec.Template.Spec.Containers[0].Args
			if slices.ContainsFunc(args, func(a string) bool { return strings.Contains(a, "taskgate-validating") }) {
				t.Errorf("args %q name a validating configuration", args)
			}
			if slices.Contains(args, "--cert-rotation") && !slices.Contains(args, "--validating-webhook-configuration=") {
				t.Errorf("args %q: the rotator must be told there is no validating configuration", args)
			}
			cr := managerRole(t, m)
			checkLeastPrivilege(t, cr.Rules)
			for _, r := range cr.Rules {
				if slices.Contains(r.Resources, "validatingwebhookconfigurations") {
					t.Errorf("single-call mode grants %+v on validating configurations", r)
				}
			}
			if tc.name == "cert-manager" && mw.Annotations["cert-manager.io/inject-ca-from"] == "" {
				t.Error("cert-manager mode: the mutating configuration lacks inject-ca-from")
			}
		})
	}
}

// TestTemplateCacheTTLs: the two cache durations reach the manager's flags,
// the preflight cache's only when it is on (its flag's default is off), and
// neither when the manager serves no webhooks; values that are not Go
// durations are refused by the values schema.
func TestTemplateCacheTTLs(t *testing.T) {
	for _, tc := range []struct {
		name, set string
		want      []string // flags the args hold
		lack      []string // flag prefixes the args must not hold
	}{
		{name: "defaults", want: []string{"--access-review-cache-ttl=10s"}, lack: []string{"--preflight-cache-ttl"}},
		{name: "access review set", set: "webhook.accessReviewCacheTTL=1m30s", want: []string{"--access-review-cache-ttl=1m30s"}},
		{name: "access review off", set: "webhook.accessReviewCacheTTL=0", want: []string{"--access-review-cache-ttl=0"}},
		{name: "preflight cache on", set: "webhook.preflightCacheTTL=10s", want: []string{"--preflight-cache-ttl=10s", "--preflight=true"}},
		{name: "preflight cache 0", set: "webhook.preflightCacheTTL=0", lack: []string{"--preflight-cache-ttl"}},
		{name: "preflight cache without preflight", set: "webhook.preflight=false,webhook.preflightCacheTTL=10s", want: []string{"--preflight=false"}, lack: []string{"--preflight-cache-ttl"}},
		{name: "controller only", set: "enableWebhooks=false,webhook.preflightCacheTTL=10s", lack: []string{"--access-review-cache-ttl", "--preflight-cache-ttl"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			if tc.set != "" {
				args = []string{"--set", tc.set}
			}
			d := one[appsv1.Deployment](t, render(t, args...), "Deployment")
			got := d.Spec.Template.Spec.Containers[0].Args
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Errorf("args %q lack %s", got, w)
				}
			}
			for _, l := range tc.lack {
				if hasArgPrefix(got, l) {
					t.Errorf("args %q hold %s", got, l)
				}
			}
		})
	}
	for _, bad := range []string{"webhook.accessReviewCacheTTL=10", "webhook.accessReviewCacheTTL=ten", "webhook.accessReviewCacheTTL=-1s", "webhook.preflightCacheTTL=10", "webhook.preflightCacheTTL=soon", "webhook.singleCall=maybe"} {
		t.Run("refuses "+bad, func(t *testing.T) {
			if _, err := helm(t, "template", releaseName, chartDir(), "--set", bad); err == nil {
				t.Errorf("--set %s rendered", bad)
			}
		})
	}
}
