package helm_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestTemplateServiceMonitor(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      []string
		monitors  int
		metricSvc int
	}{
		{name: "off by default", monitors: 0, metricSvc: 0},
		{name: "service only", args: []string{"--set", "metrics.service.enabled=true"}, monitors: 0, metricSvc: 1},
		{name: "service monitor", args: []string{"--set", "metrics.serviceMonitor.enabled=true"}, monitors: 1, metricSvc: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := render(t, tc.args...)
			monitors := m.find("ServiceMonitor")
			var metricSvcs []*corev1.Service
			for _, u := range m.find("Service") {
				if s := typed[corev1.Service](t, u); s.Spec.Ports[0].Name == "metrics" {
					metricSvcs = append(metricSvcs, s)
				}
			}
			if len(monitors) != tc.monitors || len(metricSvcs) != tc.metricSvc {
				t.Fatalf("got %d ServiceMonitors and %d metrics Services, want %d and %d",
					len(monitors), len(metricSvcs), tc.monitors, tc.metricSvc)
			}
			if tc.monitors == 1 {
				if monitors[0].GetAPIVersion() != "monitoring.coreos.com/v1" {
					t.Errorf("ServiceMonitor apiVersion %s", monitors[0].GetAPIVersion())
				}
				sel, _, _ := unstructuredField(monitors[0], "spec", "selector", "matchLabels")
				labels := map[string]string{}
				for k, v := range sel.(map[string]any) {
					labels[k] = v.(string)
				}
				if !selects(labels, metricSvcs[0].Labels) {
					t.Errorf("ServiceMonitor selector %v does not select the metrics Service %v", labels, metricSvcs[0].Labels)
				}
			}
		})
	}
}

func TestTemplateSynchronizationCRD(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want bool
	}{
		// Offline rendering cannot see whether the Astronetes CRD exists, so
		// auto never installs it there (helm install is tested in install_test.go).
		{name: "auto offline", want: false},
		{name: "true", args: []string{"--set", "synchronizationCRD.install=true"}, want: true},
		{name: "false", args: []string{"--set", "synchronizationCRD.install=false"}, want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var crds []*unstructured.Unstructured
			for _, crd := range render(t, tc.args...).find("CustomResourceDefinition") {
				if crd.GetName() != "tasks.automation.astronetes.io" && crd.GetName() != "taskruns.automation.astronetes.io" { // crds.enabled, crds_test.go
					crds = append(crds, crd)
				}
			}
			if got := len(crds) == 1; got != tc.want || len(crds) > 1 {
				t.Fatalf("rendered %d CRDs, want the Synchronization CRD: %v", len(crds), tc.want)
			}
			if !tc.want {
				return
			}
			crd := typed[apiextensionsv1.CustomResourceDefinition](t, crds[0])
			if crd.Name != "synchronizations.automation.astronetes.io" || crd.Spec.Names.Kind != "Synchronization" {
				t.Errorf("rendered CRD %s (%s)", crd.Name, crd.Spec.Names.Kind)
			}
			if crd.Annotations["helm.sh/resource-policy"] != "keep" {
				t.Error("the CRD must survive helm uninstall: deleting it deletes every Synchronization")
			}
		})
	}
	if out, err := helm(t, "template", releaseName, chartDir(), "--set", "synchronizationCRD.install=maybe"); err == nil {
		t.Errorf("install=maybe rendered:\n%s", out)
	}
}

func TestTemplateSyncSchemas(t *testing.T) {
	m := render(t, "--set-json", `syncSchemas={"my-plugin":{"type":"object","additionalProperties":false},"raw":"{\"type\":\"object\"}"}`)
	cm := one[corev1.ConfigMap](t, m, "ConfigMap")
	for _, key := range []string{"my-plugin.json", "raw.json"} {
		var schema map[string]any
		if err := json.Unmarshal([]byte(cm.Data[key]), &schema); err != nil || schema["type"] != "object" {
			t.Errorf("ConfigMap %s = %q (%v), want the schema as JSON", key, cm.Data[key], err)
		}
	}
	d := one[appsv1.Deployment](t, m, "Deployment")
	c := d.Spec.Template.Spec.Containers[0]
	if v := volume(t, d, "sync-schemas"); v.ConfigMap == nil || v.ConfigMap.Name != cm.Name {
		t.Errorf("sync-schemas volume %+v, want ConfigMap %s", v.VolumeSource, cm.Name)
	}
	var dir string
	for _, vm := range c.VolumeMounts {
		if vm.Name == "sync-schemas" {
			dir = vm.MountPath
		}
	}
	if dir == "" || !slices.Contains(c.Args, "--sync-schema-dir="+dir) {
		t.Errorf("args %q do not point --sync-schema-dir at the mount %q", c.Args, dir)
	}
	if _, err := helm(t, "template", releaseName, chartDir(), "--set-json", `syncSchemas={"Bad Name":{}}`); err == nil {
		t.Error("a schema name that is no plugin name rendered")
	}
}

func TestTemplateHalves(t *testing.T) {
	t.Run("controller only", func(t *testing.T) {
		m := render(t, "--set", "enableWebhooks=false")
		for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "Service", "Secret"} {
			if len(m.find(kind)) != 0 {
				t.Errorf("enableWebhooks=false still renders a %s", kind)
			}
		}
		d := one[appsv1.Deployment](t, m, "Deployment")
		args := d.Spec.Template.Spec.Containers[0].Args
		if !slices.Contains(args, "--enable-webhooks=false") || slices.Contains(args, "--cert-rotation") {
			t.Errorf("args %q", args)
		}
		cr := managerRole(t, m)
		if ruleFor(cr.Rules, "authorization.k8s.io", "subjectaccessreviews", "create") != nil {
			t.Error("the controller alone needs no SubjectAccessReviews")
		}
	})
	t.Run("webhooks only", func(t *testing.T) {
		m := render(t, "--set", "enableController=false")
		cr := managerRole(t, m)
		// Only preflight's impersonate-on:*:create on pods and bindings
		// (TestTemplateActAs); nothing the manager could use as itself.
		for _, res := range []string{"pods", "clusterrolebindings", "deployments", "synchronizations"} {
			if slices.ContainsFunc(cr.Rules, func(r rbacv1.PolicyRule) bool {
				return slices.Contains(r.Resources, res) && !slices.Equal(r.Verbs, createAs)
			}) {
				t.Errorf("webhooks only, yet the ClusterRole grants %s", res)
			}
		}
		if ruleFor(cr.Rules, "automation.astronetes.io", "tasks", "update") != nil {
			t.Error("webhooks only, yet the manager may update Tasks")
		}
	})
	if _, err := helm(t, "template", releaseName, chartDir(), "--set", "enableWebhooks=false", "--set", "enableController=false"); err == nil {
		t.Error("both halves off rendered")
	}
}

func TestTemplateValues(t *testing.T) {
	t.Run("one replica has no PDB", func(t *testing.T) {
		if got := render(t, "--set", "replicaCount=1").find("PodDisruptionBudget"); len(got) != 0 {
			t.Error("a PDB with minAvailable 1 over one replica blocks every drain")
		}
	})
	t.Run("transformation rules", func(t *testing.T) {
		// actAs=controller: the manager's own rights; requester mode is in TestTemplateActAs.
		m := render(t, "--set", "actAs=controller", "--set-json", `transformationRules=[{"apiGroups":["batch"],"resources":["cronjobs"]}]`)
		cr := managerRole(t, m)
		r := ruleFor(cr.Rules, "batch", "cronjobs", "patch")
		if r == nil || !slices.Equal(r.Verbs, []string{"get", "list", "patch"}) {
			t.Errorf("cronjobs rule = %+v, want get/list/patch", r)
		}
		if ruleFor(cr.Rules, "apps", "deployments", "patch") != nil {
			t.Error("the default rules stayed although the value replaced them")
		}
	})
	t.Run("pod placement and image", func(t *testing.T) {
		m := render(t, "--set", "image.tag=v9", "--set", "nodeSelector.pool=system",
			"--set", "podAnnotations.team=platform", "--set", "logLevel=debug", "--set", "webhook.timeoutSeconds=3",
			"--set", "controller.maxConcurrentReconciles=8", "--set", "controller.maxTransformationObjects=200",
			"--set", "controller.finishedTaskTTL=24h",
			"--set-json", `tolerations=[{"key":"dedicated","operator":"Exists"}]`)
		d := one[appsv1.Deployment](t, m, "Deployment")
		pod := d.Spec.Template
		c := pod.Spec.Containers[0]
		if c.Image != "ghcr.io/astronetes/taskgate:v9" || pod.Spec.NodeSelector["pool"] != "system" ||
			pod.Annotations["team"] != "platform" || len(pod.Spec.Tolerations) != 1 {
			t.Errorf("values not applied: image %s, nodeSelector %v, annotations %v, tolerations %v",
				c.Image, pod.Spec.NodeSelector, pod.Annotations, pod.Spec.Tolerations)
		}
		for _, want := range []string{"--log-level=debug", "--max-concurrent-reconciles=8", "--max-transformation-objects=200", "--finished-task-ttl=24h"} {
			if !slices.Contains(c.Args, want) {
				t.Errorf("args %q lack %s", c.Args, want)
			}
		}
		if !strings.Contains(toJSON(m.find("ValidatingWebhookConfiguration")[0].Object), `"timeoutSeconds":3`) {
			t.Error("webhook.timeoutSeconds not applied")
		}
	})
	t.Run("finished tasks kept by default", func(t *testing.T) {
		for _, a := range one[appsv1.Deployment](t, render(t), "Deployment").Spec.Template.Spec.Containers[0].Args {
			if strings.HasPrefix(a, "--finished-task-ttl") {
				t.Errorf("default values pass %s: finished Tasks must be kept unless the operator sets controller.finishedTaskTTL", a)
			}
		}
	})
	for _, bad := range [][]string{
		{"certs.mode=vault"}, {"webhook.timeoutSeconds=60"}, {"logFormat=xml"}, {"logLevel=trace"}, {"controller.maxTransformationObjects=-1"},
		{"controller.finishedTaskTTL=1d"}, {"controller.finishedTaskTTL=-1h"},
	} {
		t.Run("refuses "+bad[0], func(t *testing.T) {
			if _, err := helm(t, "template", releaseName, chartDir(), "--set", bad[0]); err == nil {
				t.Errorf("--set %s rendered", bad[0])
			}
		})
	}
}

// webhook.clientCAConfigMap mounts the CA and passes --webhook-client-ca to
// a file inside the mount; off by default; nothing without webhooks.
func TestTemplateWebhookClientCA(t *testing.T) {
	const flag = "--webhook-client-ca=/etc/taskgate/webhook-client-ca/ca.crt"
	for _, tc := range []struct {
		name string
		args []string
		want bool
	}{
		{name: "off by default"},
		{name: "set", args: []string{"--set", "webhook.clientCAConfigMap=apiserver-ca"}, want: true},
		{name: "no webhooks", args: []string{"--set", "webhook.clientCAConfigMap=apiserver-ca", "--set", "enableWebhooks=false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := one[appsv1.Deployment](t, render(t, tc.args...), "Deployment")
			pod := d.Spec.Template.Spec
			hasFlag := slices.Contains(pod.Containers[0].Args, flag)
			var mounted, volume bool
			for _, m := range pod.Containers[0].VolumeMounts {
				mounted = mounted || (m.Name == "webhook-client-ca" && strings.HasPrefix(strings.TrimPrefix(flag, "--webhook-client-ca="), m.MountPath+"/"))
			}
			for _, v := range pod.Volumes {
				volume = volume || (v.Name == "webhook-client-ca" && v.ConfigMap != nil && v.ConfigMap.Name == "apiserver-ca")
			}
			if hasFlag != tc.want || mounted != tc.want || volume != tc.want {
				t.Fatalf("flag %v, mount %v, volume %v; want all %v (args %v)", hasFlag, mounted, volume, tc.want, pod.Containers[0].Args)
			}
		})
	}
}
