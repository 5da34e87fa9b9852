package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// fakeScopes is what discovery says: cluster-scoped or not; absent is not served.
type fakeScopes map[string]bool

func (f fakeScopes) ClusterScoped(gvr schema.GroupVersionResource) (bool, bool) {
	cs, known := f[gvr.Resource]
	return cs, known
}

var testDiscovery = fakeScopes{"deployments": false, "roles": false, "rolebindings": false, "clusterroles": true, "clusterrolebindings": true, "nodes": true}

// resourcesOf returns spec.config.resources of a defaulted Task.
func resourcesOf(t *testing.T, tk *v1alpha1.Task) []v1alpha1.GroupVersionResource {
	t.Helper()
	var c v1alpha1.TransformationConfig
	if err := json.Unmarshal(tk.Spec.Config.Raw, &c); err != nil {
		t.Fatal(err)
	}
	return c.Resources
}

func TestTransformationScope(t *testing.T) {
	const ops = "operations: [{mergePatch: {a: 1}}]"
	tests := []struct {
		name      string
		resources string
		noCluster bool     // no discovery: the built-in table only
		want      []string // scopes after defaulting
		wantErr   string
		wantWarn  string
		wantNS    []string // namespaces of the checks, in order ("" cluster-wide)
	}{
		{name: "namespaced by discovery", resources: "[{group: apps, version: v1, resource: deployments}]",
			want: []string{"Namespaced"}, wantNS: []string{"shop", "shop"}},
		{name: "cluster-scoped by discovery", resources: "[{version: v1, resource: nodes}]", want: []string{"Cluster"}, wantNS: []string{"", ""}},
		{name: "not served: checked cluster-wide, with a warning", resources: "[{group: example.com, version: v1, resource: widgets}]",
			want: []string{"Cluster"}, wantWarn: "spec.config.resources[0]: the API server does not serve example.com/v1/widgets now, so its rights are checked cluster-wide",
			wantNS: []string{"", ""}},
		{name: "not served, Cluster supplied", resources: "[{group: example.com, version: v1, resource: widgets, scope: Cluster}]",
			want: []string{"Cluster"}, wantWarn: "does not serve", wantNS: []string{"", ""}},
		{name: "not served, Namespaced supplied: refused", resources: "[{group: example.com, version: v1, resource: widgets, scope: Namespaced}]",
			wantErr: `spec.config.resources[0].scope: Invalid value: "Namespaced": the API server does not serve example.com/v1/widgets now, so taskgate cannot confirm it is namespaced`},
		{name: "contradicts discovery: refused", resources: "[{group: apps, version: v1, resource: deployments, scope: Cluster}]",
			wantErr: `spec.config.resources[0].scope: Invalid value: "Cluster": the API server serves apps/v1/deployments as Namespaced: leave scope out (taskgate fills it in) or set it to Namespaced`},
		{name: "cluster-scoped supplied as Namespaced: refused", resources: "[{version: v1, resource: nodes, scope: Namespaced}]",
			wantErr: `spec.config.resources[0].scope: Invalid value: "Namespaced": the API server serves v1/nodes as Cluster`},
		{name: "agreeing scope kept", resources: "[{group: apps, version: v1, resource: deployments, scope: Namespaced}]",
			want: []string{"Namespaced"}, wantNS: []string{"shop", "shop"}},
		{name: "no cluster: unknown left for the webhook", resources: "[{group: example.com, version: v1, resource: widgets}, {group: apps, version: v1, resource: deployments}]",
			noCluster: true, want: []string{"", "Namespaced"}, wantNS: []string{"", "", "shop", "shop"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAdmitter(t)
			if !tt.noCluster {
				a.Scopes = testDiscovery
			}
			tk := task(v1alpha1.PluginTransformation, "{resources: "+tt.resources+", "+ops+"}")
			if errs := a.Default(tk); len(errs) > 0 {
				t.Fatal(errs)
			}
			errs, warnings := a.Validate(tk)
			if tt.wantErr != "" {
				if !strings.Contains(errs.ToAggregate().Error(), tt.wantErr) {
					t.Errorf("errors %v, want %q", errs, tt.wantErr)
				}
				return
			}
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			if w := strings.Join(warnings, "\n"); (tt.wantWarn == "") != (w == "") || !strings.Contains(w, tt.wantWarn) {
				t.Errorf("warnings %q, want %q", warnings, tt.wantWarn)
			}
			for i, r := range resourcesOf(t, tk) {
				if string(r.Scope) != tt.want[i] {
					t.Errorf("resources[%d].scope = %q, want %q", i, r.Scope, tt.want[i])
				}
			}
			var ns []string
			for _, c := range a.AccessChecks(tk) {
				ns = append(ns, c.Attributes.Namespace)
			}
			if fmt.Sprint(ns) != fmt.Sprint(tt.wantNS) {
				t.Errorf("checks in namespaces %q, want %q", ns, tt.wantNS)
			}
		})
	}
}

// TestRBACKindChecks: patching RBAC objects asks what the API server's
// escalation check would ask of a patch whose result admission cannot see.
func TestRBACKindChecks(t *testing.T) {
	tests := []struct {
		resource string
		want     []string // "verb resource namespace"
	}{
		{resource: "roles", want: []string{"list roles shop", "patch roles shop", "escalate roles shop"}},
		{resource: "clusterroles", want: []string{"list clusterroles ", "patch clusterroles ", "escalate clusterroles "}},
		{resource: "rolebindings", want: []string{"list rolebindings shop", "patch rolebindings shop", "bind roles shop", "bind clusterroles shop"}},
		{resource: "clusterrolebindings", want: []string{"list clusterrolebindings ", "patch clusterrolebindings ", "bind clusterroles "}},
	}
	for _, tt := range tests {
		t.Run(tt.resource, func(t *testing.T) {
			a := newTestAdmitter(t)
			a.Scopes = testDiscovery
			tk := task(v1alpha1.PluginTransformation, "{resources: [{group: rbac.authorization.k8s.io, version: v1, resource: "+tt.resource+"}], operations: [{mergePatch: {a: 1}}]}")
			if errs := a.Default(tk); len(errs) > 0 {
				t.Fatal(errs)
			}
			checks := a.AccessChecks(tk)
			var got []string
			for _, c := range checks {
				got = append(got, c.Attributes.Verb+" "+c.Attributes.Resource+" "+c.Attributes.Namespace)
				if c.Attributes.Name != "" {
					t.Errorf("check %v names one object; the patch target's role is unknown at admission", c.Attributes)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("checks %q, want %q", got, tt.want)
			}
			// A user with list and patch only is refused, and told why.
			allowed := map[string]bool{}
			for _, c := range checks[:2] {
				allowed[c.Attributes.Verb+" "+c.Attributes.Resource+" "+c.Attributes.Namespace+" "] = true
			}
			errs, err := authorize(context.Background(), fakeAuthz{allowed}, authenticationv1.UserInfo{Username: "alice"}, checks, "")
			if err != nil || len(errs) != len(checks)-2 {
				t.Fatalf("refusals %v (%v), want %d", errs, err, len(checks)-2)
			}
			if !strings.Contains(errs[0].Detail, "taskgate cannot see at admission") {
				t.Errorf("refusal %q does not say why", errs[0].Detail)
			}
		})
	}
}

// TestAccessCheckCap: at most MaxAccessChecks SubjectAccessReviews per
// review; a Task needing more is refused before any is sent, told to split.
func TestAccessCheckCap(t *testing.T) {
	namespaces := func(n int) string {
		ns := make([]string, n)
		for i := range ns {
			ns[i] = fmt.Sprintf("ns-%d", i)
		}
		return "[" + strings.Join(ns, ", ") + "]"
	}
	tests := []struct {
		name, config string
		checks       int
		refused      bool
	}{
		{name: "one resource in 32 namespaces: 64", checks: 64,
			config: "{resources: [{group: apps, version: v1, resource: deployments}], namespaces: " + namespaces(32) + "}"},
		{name: "one resource in 33 namespaces: 66", checks: 66, refused: true,
			config: "{resources: [{group: apps, version: v1, resource: deployments}], namespaces: " + namespaces(33) + "}"},
		{name: "roles in 21 namespaces: 63", checks: 63,
			config: "{resources: [{group: rbac.authorization.k8s.io, version: v1, resource: roles}], namespaces: " + namespaces(21) + "}"},
		{name: "rolebindings in 17 namespaces: 68", checks: 68, refused: true,
			config: "{resources: [{group: rbac.authorization.k8s.io, version: v1, resource: rolebindings}], namespaces: " + namespaces(17) + "}"},
		{name: "cluster-scoped resources ignore namespaces", checks: 2 * 32,
			config: "{resources: [" + strings.Repeat("{version: v1, resource: nodes}, ", 31) + "{version: v1, resource: nodes}], namespaces: " + namespaces(64) + "}"},
	}
	a := newTestAdmitter(t)
	a.Scopes = testDiscovery
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk := task(v1alpha1.PluginTransformation, strings.TrimSuffix(tt.config, "}")+", operations: [{mergePatch: {a: 1}}]}")
			if errs := a.Default(tk); len(errs) > 0 {
				t.Fatal(errs)
			}
			c, _ := a.load(tk)
			tc, _ := decodeTyped[v1alpha1.TransformationConfig](c)
			if n := transformationCheckCount(a, tc); n != tt.checks {
				t.Errorf("counted %d checks, want %d", n, tt.checks)
			}
			if n := len(a.AccessChecks(tk)); n != tt.checks {
				t.Errorf("built %d checks, want %d", n, tt.checks)
			}
			errs, _ := a.Validate(tk)
			want := fmt.Sprintf("spec.config.namespaces: Invalid value: the transformation needs %d access checks", tt.checks)
			if got := errs.ToAggregate(); tt.refused != (got != nil && strings.Contains(got.Error(), want)) {
				t.Errorf("errors %v, refused want %v (%q)", got, tt.refused, want)
			}
			if tt.refused && !strings.Contains(errs.ToAggregate().Error(), "more than 64: split it into several Tasks") {
				t.Errorf("refusal %v does not say how to split", errs)
			}
		})
	}
	// authorize refuses to send more, whoever builds the list.
	many := make([]AccessCheck, MaxAccessChecks+1)
	if _, err := authorize(context.Background(), fakeAuthz{}, authenticationv1.UserInfo{Username: "a"}, many, ""); err == nil {
		t.Errorf("authorize sent %d checks", len(many))
	}
}

// TestUpdateRestoresScopes: kubectl apply of an unchanged file replaces
// resources with the file's list, which has no scope; the mutating webhooks
// put the recorded scope back, so the second apply is not a spec change,
// while a real change of resources is an edit, defaulted and checked again.
func TestUpdateRestoresScopes(t *testing.T) {
	stored := withRequester(taskJSON("kubernetes-object-transformation",
		`{"namespaces":["shop"],"operations":[{"mergePatch":{"a":1}}],"resources":[{"group":"apps","resource":"deployments","scope":"Namespaced","version":"v1"}]}`), `{"username":"alice"}`)
	applied := withRequester(taskJSON("kubernetes-object-transformation",
		`{"namespaces":["shop"],"operations":[{"mergePatch":{"a":1}}],"resources":[{"group":"apps","resource":"deployments","version":"v1"}]}`), `{"username":"alice"}`)
	changed := withRequester(taskJSON("kubernetes-object-transformation",
		`{"namespaces":["shop"],"operations":[{"mergePatch":{"a":1}}],"resources":[{"group":"apps","resource":"statefulsets","version":"v1"}]}`), `{"username":"alice"}`)
	mutate, validate, admit := NewHandlers(&Validator{Admitter: newTestAdmitter(t), Authz: fakeAuthz{}})

	_, m := serve(mutate, review(admissionv1.Update, applied, stored, false), "application/json")
	o, patched := outcomeOf(t, applied, m.Response)
	if !o.Allowed || len(m.Response.Patch) == 0 {
		t.Fatalf("mutate: %+v, patch %s: want the scope restored", o, m.Response.Patch)
	}
	if _, v := serve(validate, review(admissionv1.Update, patched, stored, false), "application/json"); !v.Response.Allowed {
		t.Errorf("validate after restore refused: %+v", v.Response.Result)
	}
	if _, s := serve(admit, review(admissionv1.Update, applied, stored, false), "application/json"); !s.Response.Allowed || len(s.Response.Patch) == 0 {
		t.Errorf("single call: allowed %v, patch %s; want allowed with the scope restored", s.Response.Allowed, s.Response.Patch)
	}
	// A Task is editable: a real change is defaulted (its scope recorded)
	// and checked again, and a wrong one refused.
	if _, s := serve(admit, review(admissionv1.Update, changed, stored, false), "application/json"); !s.Response.Allowed ||
		!strings.Contains(string(s.Response.Patch), `"resource":"statefulsets","scope":"Namespaced"`) {
		t.Errorf("single call: an edit was %+v, patch %s; want it admitted with its scope recorded", s.Response.Result, s.Response.Patch)
	}
	wrong := []byte(strings.Replace(string(changed), `"resource":"statefulsets"`, `"resourcee":"statefulsets"`, 1))
	for name, h := range map[string]http.Handler{"single call": admit, "validate": validate} {
		_, out := serve(h, review(admissionv1.Update, wrong, stored, false), "application/json")
		if out.Response.Allowed || !strings.Contains(out.Response.Result.Message, "spec.config.resources[0].resourcee") {
			t.Errorf("%s: a wrong edit was %+v, want refused naming spec.config.resources[0].resourcee", name, out.Response.Result)
		}
	}
}
