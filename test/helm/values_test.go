package helm_test

import (
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/utils/ptr"
)

func TestTemplateImage(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{name: "defaults", want: "ghcr.io/astronetes/taskgate:0.1.0"},
		{name: "digest", args: []string{"--set", "image.digest=" + digest}, want: "ghcr.io/astronetes/taskgate:0.1.0@" + digest},
		{name: "global registry replaces the host", args: []string{"--set", "global.imageRegistry=mirror.example.com/ghcr/"},
			want: "mirror.example.com/ghcr/astronetes/taskgate:0.1.0"},
		{name: "global registry prefixes a repository without host", args: []string{"--set", "global.imageRegistry=mirror.example.com:5000",
			"--set", "image.repository=astronetes/taskgate", "--set", "image.tag=v2"}, want: "mirror.example.com:5000/astronetes/taskgate:v2"},
		{name: "registry, tag and digest", args: []string{"--set", "global.imageRegistry=localhost:5000", "--set", "image.tag=v3",
			"--set", "image.digest=" + digest}, want: "localhost:5000/astronetes/taskgate:v3@" + digest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := one[appsv1.Deployment](t, render(t, tc.args...), "Deployment")
			if got := d.Spec.Template.Spec.Containers[0].Image; got != tc.want {
				t.Errorf("image %q, want %q", got, tc.want)
			}
			// The helm test Pod runs the same image.
			pod := one[corev1.Pod](t, renderWithTests(t, tc.args...), "Pod")
			if got := pod.Spec.Containers[0].Image; got != tc.want {
				t.Errorf("test Pod image %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTemplateNamespaceOverride(t *testing.T) {
	const ns = "platform-admission"
	m := renderWithTests(t, "--set", "namespaceOverride="+ns, "--set", "metrics.serviceMonitor.enabled=true",
		"--set", "networkPolicy.enabled=true", "--set", "prometheusRule.enabled=true", "--set", "grafanaDashboard.enabled=true")
	cluster := map[string]bool{"ClusterRole": true, "ClusterRoleBinding": true, "CustomResourceDefinition": true,
		"MutatingWebhookConfiguration": true, "ValidatingWebhookConfiguration": true,
		"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true}
	for _, o := range m {
		if cluster[o.GetKind()] {
			continue
		}
		if o.GetNamespace() != ns {
			t.Errorf("%s %s in namespace %q, want %q", o.GetKind(), o.GetName(), o.GetNamespace(), ns)
		}
	}
	d := one[appsv1.Deployment](t, m, "Deployment")
	if args := d.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--namespace="+ns) {
		t.Errorf("manager args %q lack --namespace=%s (the rotator's Secret and Lease)", args, ns)
	}
	for _, w := range one[admissionv1.ValidatingWebhookConfiguration](t, m, "ValidatingWebhookConfiguration").Webhooks {
		if w.ClientConfig.Service.Namespace != ns {
			t.Errorf("webhook %s calls a Service in %q", w.Name, w.ClientConfig.Service.Namespace)
		}
	}
	for _, o := range m.find("ClusterRoleBinding") {
		for _, s := range typed[rbacv1.ClusterRoleBinding](t, o).Subjects {
			if s.Kind == rbacv1.ServiceAccountKind && s.Namespace != ns {
				t.Errorf("ClusterRoleBinding %s binds %s/%s", o.GetName(), s.Namespace, s.Name)
			}
		}
	}
	for _, o := range m.find("RoleBinding") {
		for _, s := range typed[rbacv1.RoleBinding](t, o).Subjects {
			if s.Namespace != ns {
				t.Errorf("RoleBinding %s binds %s/%s", o.GetName(), s.Namespace, s.Name)
			}
		}
	}
	cm := render(t, "--set", "certs.mode=cert-manager", "--set", "namespaceOverride="+ns)
	mw := one[admissionv1.MutatingWebhookConfiguration](t, cm, "MutatingWebhookConfiguration")
	if got := mw.Annotations["cert-manager.io/inject-ca-from"]; got != ns+"/taskgate-webhook-cert" {
		t.Errorf("inject-ca-from %q", got)
	}
	// The dashboard may go where Grafana's sidecar looks.
	dash := render(t, "--set", "grafanaDashboard.enabled=true", "--set", "grafanaDashboard.namespace=monitoring")
	if got := one[corev1.ConfigMap](t, dash, "ConfigMap").Namespace; got != "monitoring" {
		t.Errorf("dashboard in %q, want monitoring", got)
	}
}

func TestTemplatePodOverrides(t *testing.T) {
	t.Run("defaults are restricted", func(t *testing.T) {
		d := one[appsv1.Deployment](t, render(t), "Deployment")
		pod, ctr := d.Spec.Template.Spec, d.Spec.Template.Spec.Containers[0]
		if sc := pod.SecurityContext; sc == nil || !ptr.Deref(sc.RunAsNonRoot, false) || ptr.Deref(sc.RunAsUser, 0) != 65532 ||
			sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("pod securityContext %+v", sc)
		}
		if sc := ctr.SecurityContext; sc == nil || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) || ptr.Deref(sc.AllowPrivilegeEscalation, true) ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("container securityContext %+v", sc)
		}
		if len(pod.TopologySpreadConstraints) != 0 || len(ctr.Env) != 1 {
			t.Errorf("defaults: spread %v, env %v", pod.TopologySpreadConstraints, ctr.Env)
		}
	})
	t.Run("overrides merge into the defaults", func(t *testing.T) {
		d := one[appsv1.Deployment](t, render(t, "--set", "podSecurityContext.runAsUser=1000", "--set", "podSecurityContext.fsGroup=null",
			"--set", "securityContext.readOnlyRootFilesystem=false"), "Deployment")
		pod, ctr := d.Spec.Template.Spec.SecurityContext, d.Spec.Template.Spec.Containers[0].SecurityContext
		if ptr.Deref(pod.RunAsUser, 0) != 1000 || pod.FSGroup != nil || !ptr.Deref(pod.RunAsNonRoot, false) {
			t.Errorf("pod securityContext %+v: want runAsUser 1000, no fsGroup, the rest kept", pod)
		}
		if ptr.Deref(ctr.ReadOnlyRootFilesystem, true) || ptr.Deref(ctr.AllowPrivilegeEscalation, true) {
			t.Errorf("container securityContext %+v: want readOnlyRootFilesystem false, the rest kept", ctr)
		}
	})
	t.Run("extraArgs, extraEnv, topologySpreadConstraints", func(t *testing.T) {
		d := one[appsv1.Deployment](t, render(t,
			"--set-json", `extraArgs=["--log-level=debug","--access-review-denial-cache-ttl=1s"]`,
			"--set-json", `extraEnv=[{"name":"GOMAXPROCS","value":"2"},{"name":"NODE","valueFrom":{"fieldRef":{"fieldPath":"spec.nodeName"}}}]`,
			"--set-json", `topologySpreadConstraints=[{"maxSkew":1,"topologyKey":"topology.kubernetes.io/zone","whenUnsatisfiable":"ScheduleAnyway"},`+
				`{"maxSkew":2,"topologyKey":"kubernetes.io/hostname","whenUnsatisfiable":"DoNotSchedule","labelSelector":{"matchLabels":{"own":"x"}}}]`),
			"Deployment")
		spec, ctr := d.Spec.Template.Spec, d.Spec.Template.Spec.Containers[0]
		if n := len(ctr.Args); n < 2 || ctr.Args[n-2] != "--log-level=debug" || ctr.Args[n-1] != "--access-review-denial-cache-ttl=1s" {
			t.Errorf("args %q: want extraArgs last, so they win over the chart's", ctr.Args)
		}
		if len(ctr.Env) != 3 || ctr.Env[0].Name != "POD_NAMESPACE" || ctr.Env[1].Value != "2" || ctr.Env[2].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
			t.Errorf("env %+v", ctr.Env)
		}
		tsc := spec.TopologySpreadConstraints
		if len(tsc) != 2 {
			t.Fatalf("topologySpreadConstraints %+v", tsc)
		}
		if tsc[0].LabelSelector == nil || !selects(tsc[0].LabelSelector.MatchLabels, d.Spec.Template.Labels) ||
			tsc[0].LabelSelector.MatchLabels["app.kubernetes.io/component"] != "manager" || tsc[0].WhenUnsatisfiable != corev1.ScheduleAnyway {
			t.Errorf("a constraint without labelSelector must select the manager Pods: %+v", tsc[0])
		}
		if tsc[1].LabelSelector.MatchLabels["own"] != "x" || len(tsc[1].LabelSelector.MatchLabels) != 1 || tsc[1].MaxSkew != 2 {
			t.Errorf("a constraint's own labelSelector must be kept: %+v", tsc[1])
		}
	})
}

func TestTemplateWebhookSelectors(t *testing.T) {
	m := render(t, "--set-json", `webhook.namespaceSelector={"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system"]}]}`,
		"--set-json", `webhook.objectSelector={"matchLabels":{"team":"platform"}}`)
	mw := one[admissionv1.MutatingWebhookConfiguration](t, m, "MutatingWebhookConfiguration").Webhooks[0]
	vw := one[admissionv1.ValidatingWebhookConfiguration](t, m, "ValidatingWebhookConfiguration").Webhooks[0]
	for name, w := range map[string]struct{ ns, obj any }{
		"mutating": {mw.NamespaceSelector, mw.ObjectSelector}, "validating": {vw.NamespaceSelector, vw.ObjectSelector},
	} {
		if got := toJSON(w.ns); got != `{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system"]}]}` {
			t.Errorf("%s namespaceSelector %s", name, got)
		}
		if got := toJSON(w.obj); got != `{"matchLabels":{"team":"platform"}}` {
			t.Errorf("%s objectSelector %s", name, got)
		}
	}
	// The defaults match every Task (the API server's default for a missing selector).
	d := render(t)
	if w := one[admissionv1.ValidatingWebhookConfiguration](t, d, "ValidatingWebhookConfiguration").Webhooks[0]; w.NamespaceSelector != nil || w.ObjectSelector != nil {
		t.Errorf("default selectors %v %v, want none", w.NamespaceSelector, w.ObjectSelector)
	}
	// A Task the webhooks skip runs unchecked: only as its creator, never with the manager's rights.
	for _, args := range [][]string{
		{"--set", "actAs=controller", "--set-json", `webhook.objectSelector={"matchLabels":{"a":"b"}}`},
		{"--set", "requesterPolicy.enabled=false", "--set-json", `webhook.namespaceSelector={"matchLabels":{"a":"b"}}`},
	} {
		out, err := helm(t, append([]string{"template", releaseName, chartDir()}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "need actAs=requester and requesterPolicy.enabled") {
			t.Errorf("%v rendered (err %v):\n%.300s", args, err, out)
		}
	}
}

func TestTemplateTaskCRD(t *testing.T) {
	crd := func(args ...string) *apiextensionsv1.CustomResourceDefinition {
		for _, o := range render(t, args...).find("CustomResourceDefinition") {
			if o.GetName() == "tasks.automation.astronetes.io" {
				return typed[apiextensionsv1.CustomResourceDefinition](t, o)
			}
		}
		return nil
	}
	c := crd()
	if c == nil {
		t.Fatal("defaults render no Task CRD")
	}
	if c.Annotations["helm.sh/resource-policy"] != "keep" || c.Labels["app.kubernetes.io/managed-by"] != "Helm" || c.Spec.Names.Kind != "Task" {
		t.Errorf("Task CRD annotations %v labels %v", c.Annotations, c.Labels)
	}
	if c := crd("--set", "crds.keep=false"); c == nil || c.Annotations["helm.sh/resource-policy"] != "" {
		t.Errorf("crds.keep=false: %v", c)
	}
	if c := crd("--set", "crds.enabled=false"); c != nil {
		t.Error("crds.enabled=false rendered the Task CRD")
	}
}

// renderWithTests is render with the helm test hooks, as `helm template` prints them.
func renderWithTests(t *testing.T, args ...string) manifest {
	t.Helper()
	out, err := helm(t, append([]string{"template", releaseName, chartDir(), "--namespace", releaseNS}, args...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v", args, err)
	}
	return decode(t, out)
}

func TestTemplateTestHook(t *testing.T) {
	m := renderWithTests(t)
	var hooks []string
	for _, o := range m {
		if o.GetAnnotations()["helm.sh/hook"] == "test" {
			hooks = append(hooks, o.GetKind())
			if p := o.GetAnnotations()["helm.sh/hook-delete-policy"]; p != "before-hook-creation,hook-succeeded" {
				t.Errorf("%s %s hook-delete-policy %q", o.GetKind(), o.GetName(), p)
			}
		}
	}
	slices.Sort(hooks)
	if !slices.Equal(hooks, []string{"Pod", "Role", "RoleBinding", "ServiceAccount"}) {
		t.Fatalf("test hooks %v", hooks)
	}
	pod := one[corev1.Pod](t, m, "Pod")
	if pod.Spec.ServiceAccountName != "taskgate-test" || pod.Spec.RestartPolicy != corev1.RestartPolicyNever ||
		!slices.Equal(pod.Spec.Containers[0].Args, []string{"selftest", "--namespace=" + releaseNS, "--timeout=2m"}) {
		t.Errorf("test Pod %+v", pod.Spec)
	}
	if sc := pod.Spec.Containers[0].SecurityContext; sc == nil || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) {
		t.Errorf("test Pod container securityContext %+v: restricted like the manager's", sc)
	}
	var role *rbacv1.Role
	for _, o := range m.find("Role") {
		if o.GetName() == "taskgate-test" {
			role = typed[rbacv1.Role](t, o)
		}
	}
	if role == nil || len(role.Rules) != 1 || toJSON(role.Rules[0]) != `{"verbs":["create"],"apiGroups":["automation.astronetes.io"],"resources":["tasks"]}` {
		t.Errorf("test Role %+v: want create tasks only", role)
	}
	for _, args := range [][]string{{"--set", "tests.enabled=false"}, {"--set", "enableWebhooks=false"}} {
		if got := renderWithTests(t, args...).find("Pod"); len(got) != 0 {
			t.Errorf("%v renders a test Pod", args)
		}
	}
}
