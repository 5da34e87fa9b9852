package helm_test

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// grants flattens rules into "group|resource|verb" strings (a resourceNames
// rule adds "|name" per name), so a ClusterRole can be compared with the
// exact set it must grant. The rotator's webhook-configuration rules are
// left out: they are checked in template_test.go.
func grants(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		for _, g := range r.APIGroups {
			if g == "admissionregistration.k8s.io" {
				continue
			}
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					if len(r.ResourceNames) == 0 {
						out = append(out, g+"|"+res+"|"+v)
					}
					for _, n := range r.ResourceNames {
						out = append(out, g+"|"+res+"|"+v+"|"+n)
					}
				}
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// expand builds grant strings for several resources of a group and verbs.
func expand(group string, resources []string, verbs ...string) []string {
	var out []string
	for _, r := range resources {
		for _, v := range verbs {
			out = append(out, group+"|"+r+"|"+v)
		}
	}
	return out
}

var (
	createAs = []string{"impersonate-on:user-info:create", "impersonate-on:serviceaccount:create"}
	patchAs  = []string{"impersonate-on:user-info:list", "impersonate-on:user-info:patch",
		"impersonate-on:serviceaccount:list", "impersonate-on:serviceaccount:patch"}
)

// ownGrants are what the manager holds as itself in both modes.
func ownGrants() []string {
	var g []string
	g = append(g, expand("automation.astronetes.io", []string{"tasks"}, "get", "list", "watch", "update", "patch")...)
	g = append(g, expand("automation.astronetes.io", []string{"taskruns"}, "get", "list", "watch", "update", "patch", "delete")...)
	g = append(g, expand("automation.astronetes.io", []string{"tasks/status", "taskruns/status"}, "get", "update", "patch")...)
	g = append(g, expand("automation.astronetes.io", []string{"tasks/finalizers", "taskruns/finalizers"}, "update")...)
	g = append(g, expand("", []string{"events"}, "create", "patch")...)
	g = append(g, expand("events.k8s.io", []string{"events"}, "create", "patch")...)
	g = append(g, expand("", []string{"serviceaccounts"}, "get", "list", "watch", "create", "delete")...)
	g = append(g, expand("authorization.k8s.io", []string{"subjectaccessreviews"}, "create")...)
	g = append(g, expand("authentication.k8s.io", []string{"selfsubjectreviews"}, "create")...)
	return g
}

// requesterGrants is the brief's requester-mode ClusterRole with the
// default transformationRules: no pods create, no clusterrolebindings
// create, no bind, nothing on the transformation kinds but impersonate-on.
func requesterGrants() []string {
	g := ownGrants()
	g = append(g, expand("", []string{"pods"}, "get", "list", "watch", "delete")...)
	g = append(g, expand("rbac.authorization.k8s.io", []string{"clusterrolebindings"}, "get", "list", "watch", "delete")...)
	g = append(g, expand("automation.astronetes.io", []string{"synchronizations"}, "get", "list", "watch")...)
	g = append(g, expand("authentication.k8s.io", []string{"*"}, identityVerbs...)...)
	g = append(g, expand("", []string{"pods"}, createAs...)...)
	g = append(g, expand("rbac.authorization.k8s.io", []string{"clusterrolebindings"}, createAs...)...)
	g = append(g, expand("automation.astronetes.io", []string{"synchronizations"}, createAs...)...)
	g = append(g, expand("authentication.k8s.io", []string{"selfsubjectreviews"}, "impersonate-on:user-info:create")...)
	g = append(g, expand("apps", []string{"deployments", "statefulsets", "daemonsets"}, patchAs...)...)
	g = append(g, expand("", []string{"configmaps"}, patchAs...)...)
	sort.Strings(g)
	return g
}

// controllerGrants is today's ClusterRole: the manager holds the children's rights.
func controllerGrants(allowed ...string) []string {
	g := ownGrants()
	g = append(g, expand("", []string{"pods"}, "get", "list", "watch", "create", "delete")...)
	g = append(g, expand("rbac.authorization.k8s.io", []string{"clusterrolebindings"}, "get", "list", "watch", "create", "delete")...)
	g = append(g, expand("automation.astronetes.io", []string{"synchronizations"}, "get", "list", "watch", "create")...)
	g = append(g, expand("apps", []string{"deployments", "statefulsets", "daemonsets"}, "get", "list", "patch")...)
	g = append(g, expand("", []string{"configmaps"}, "get", "list", "patch")...)
	for _, r := range allowed {
		g = append(g, "rbac.authorization.k8s.io|clusterroles|bind|"+r)
	}
	sort.Strings(g)
	return g
}

func TestTemplateActAs(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantArgs []string
		want     []string
	}{
		{name: "default is requester", want: requesterGrants(),
			wantArgs: []string{"--act-as=requester", "--preflight=true"}},
		{name: "requester ignores allowedClusterRoles for RBAC", args: []string{"--set", "allowedClusterRoles={view,edit}"},
			want: requesterGrants(), wantArgs: []string{"--act-as=requester", "--allowed-cluster-roles=view,edit"}},
		{name: "controller", args: []string{"--set", "actAs=controller"}, want: controllerGrants(),
			wantArgs: []string{"--act-as=controller", "--preflight=true"}},
		{name: "controller with allow-list", args: []string{"--set", "actAs=controller", "--set", "allowedClusterRoles={view,edit}"},
			want: controllerGrants("view", "edit"), wantArgs: []string{"--act-as=controller", "--allowed-cluster-roles=view,edit"}},
		{name: "preflight off", args: []string{"--set", "webhook.preflight=false"}, want: requesterGrants(),
			wantArgs: []string{"--preflight=false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := render(t, tc.args...)
			cr := managerRole(t, m)
			checkLeastPrivilege(t, cr.Rules)
			if got := grants(cr.Rules); !slices.Equal(got, tc.want) {
				t.Errorf("ClusterRole grants differ from the mode's rules\n extra:   %v\n missing: %v", minus(got, tc.want), minus(tc.want, got))
			}
			args := one[appsv1.Deployment](t, m, "Deployment").Spec.Template.Spec.Containers[0].Args
			for _, w := range tc.wantArgs {
				if !slices.Contains(args, w) {
					t.Errorf("manager args %q lack %s", args, w)
				}
			}
		})
	}
	t.Run("transformation rules", func(t *testing.T) {
		m := render(t, "--set-json", `transformationRules=[{"apiGroups":["batch"],"resources":["cronjobs"]}]`)
		g := grants(managerRole(t, m).Rules)
		for _, want := range expand("batch", []string{"cronjobs"}, patchAs...) {
			if !slices.Contains(g, want) {
				t.Errorf("requester mode lacks %s", want)
			}
		}
		if slices.ContainsFunc(g, func(s string) bool {
			return strings.HasPrefix(s, "apps|") || (strings.HasPrefix(s, "batch|") && !strings.Contains(s, "impersonate-on:"))
		}) {
			t.Errorf("requester mode grants the manager its own rights on transformation kinds, or kept the defaults: %v", g)
		}
	})
	t.Run("webhooks only", func(t *testing.T) {
		// Preflight dry-runs the Pod and binding as the requester: the
		// webhook half needs exactly those impersonate-on rules.
		g := grants(managerRole(t, render(t, "--set", "enableController=false")).Rules)
		for _, want := range append(expand("authentication.k8s.io", []string{"*"}, identityVerbs...),
			append(expand("", []string{"pods"}, createAs...), expand("rbac.authorization.k8s.io", []string{"clusterrolebindings"}, createAs...)...)...) {
			if !slices.Contains(g, want) {
				t.Errorf("webhooks only with preflight: lacks %s", want)
			}
		}
		g = grants(managerRole(t, render(t, "--set", "enableController=false", "--set", "webhook.preflight=false")).Rules)
		if slices.ContainsFunc(g, func(s string) bool { return strings.Contains(s, "impersonate") }) {
			t.Errorf("webhooks only without preflight impersonates: %v", g)
		}
	})
	for _, bad := range []string{"actAs=root", "actAs=", "webhook.preflight=maybe"} {
		t.Run("refuses "+bad, func(t *testing.T) {
			if _, err := helm(t, "template", releaseName, chartDir(), "--set", bad); err == nil {
				t.Errorf("--set %s rendered", bad)
			}
		})
	}
}

func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// notes renders NOTES.txt offline: helm template never prints it, so a copy
// of the chart carries it as a ConfigMap rendered with tpl.
func notes(t *testing.T, args ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "taskgate")
	if err := os.CopyFS(dir, os.DirFS(chartDir())); err != nil {
		t.Fatalf("copy chart: %v", err)
	}
	if err := os.Rename(filepath.Join(dir, "templates", "NOTES.txt"), filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatal(err)
	}
	tmpl := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: {{ tpl (.Files.Get \"notes.txt\") . | toJson }}\n"
	if err := os.WriteFile(filepath.Join(dir, "templates", "notes-test.yaml"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := helm(t, append([]string{"template", releaseName, dir, "--namespace", releaseNS, "--show-only", "templates/notes-test.yaml"}, args...)...)
	if err != nil {
		t.Fatalf("helm template NOTES %v: %v", args, err)
	}
	return one[corev1.ConfigMap](t, decode(t, out), "ConfigMap").Data["notes"]
}

func TestNotes(t *testing.T) {
	const unavailable = "constrained impersonation\n(Kubernetes 1.36+) is not available"
	for _, tc := range []struct {
		name          string
		args          []string
		want, wantNot []string
	}{
		{name: "requester on 1.35", args: []string{"--kube-version", "1.35.4"},
			want: []string{unavailable, "every Task will FAIL", "--set actAs=controller", "weaker"}},
		{name: "requester on a vendor 1.35", args: []string{"--kube-version", "v1.35.2-eks-4096"}, want: []string{unavailable}},
		{name: "requester on 1.36", args: []string{"--kube-version", "1.36.0"},
			want: []string{"Tasks act as the users who create them", `"constrained impersonation works"`}, wantNot: []string{"WARNING"}},
		{name: "controller on 1.35", args: []string{"--kube-version", "1.35.0", "--set", "actAs=controller"},
			want: []string{"actAs=controller: Tasks run with the manager's own rights", "allowedClusterRoles is empty"}, wantNot: []string{"WARNING"}},
		{name: "requester needs no allow-list note", args: []string{"--kube-version", "1.37.2"}, wantNot: []string{"allowedClusterRoles is empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := notes(t, tc.args...)
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("NOTES lack %q:\n%s", w, text)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(text, w) {
					t.Errorf("NOTES contain %q:\n%s", w, text)
				}
			}
		})
	}
}
