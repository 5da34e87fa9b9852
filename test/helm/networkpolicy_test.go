package helm_test

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

func TestTemplateNetworkPolicy(t *testing.T) {
	if got := render(t).find("NetworkPolicy"); len(got) != 0 {
		t.Fatalf("defaults render %d NetworkPolicies, want none", len(got))
	}
	for _, tc := range []struct {
		name        string
		args        []string
		webhookFrom int // peers on the webhook port rule; 0 means any source
		metrics     bool
	}{
		{name: "enabled", args: []string{"--set", "networkPolicy.enabled=true"}},
		{name: "restricted", args: []string{"--set", "networkPolicy.enabled=true",
			"--set-json", `networkPolicy.webhookFrom=[{"ipBlock":{"cidr":"10.0.0.0/24"}}]`,
			"--set-json", `networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]`},
			webhookFrom: 1, metrics: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := render(t, tc.args...)
			np := one[networkingv1.NetworkPolicy](t, m, "NetworkPolicy")
			d := one[appsv1.Deployment](t, m, "Deployment")
			if !selects(np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels) || np.Namespace != releaseNS {
				t.Errorf("podSelector %v does not select the manager Pods %v", np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels)
			}
			if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
				t.Errorf("policyTypes %v, want Ingress only", np.Spec.PolicyTypes)
			}
			byPort := map[int32][]networkingv1.NetworkPolicyPeer{}
			for _, r := range np.Spec.Ingress {
				if len(r.Ports) != 1 {
					t.Fatalf("ingress rule %+v: want one port per rule", r)
				}
				byPort[r.Ports[0].Port.IntVal] = r.From
			}
			if from, ok := byPort[9443]; !ok || len(from) != tc.webhookFrom {
				t.Errorf("webhook port 9443 from %+v (present %v), want %d peers", from, ok, tc.webhookFrom)
			}
			if from, ok := byPort[8081]; !ok || len(from) != 0 {
				t.Errorf("health port 8081 must be open to the kubelet (any source): %+v, %v", from, ok)
			}
			if _, ok := byPort[8080]; ok != tc.metrics {
				t.Errorf("metrics port rule present %v, want %v", ok, tc.metrics)
			}
			if len(byPort) != 2+map[bool]int{true: 1}[tc.metrics] {
				t.Errorf("unexpected ports in %+v", np.Spec.Ingress)
			}
		})
	}
}
