package admission_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

const labelPatch = `"operations":[{"mergePatch":{"metadata":{"labels":{"a":"b"}}}}]`

// createTransformation creates a one-off transformation TaskRun as user
// and returns the error.
func createTransformation(t *testing.T, user, ns, name, resources string) error {
	t.Helper()
	run := inlineRun(ns, name, v1alpha1.PluginTransformation, `{"resources":`+resources+`,`+labelPatch+`}`)
	return as(t, user).Create(context.Background(), run)
}

// TestTransformationOfRBACKinds: patching roles or bindings through a run
// needs what the API server's escalation check would demand by hand.
func TestTransformationOfRBACKinds(t *testing.T) {
	ns := namespace(t, "rbac-kinds")
	const rbac = rbacv1.GroupName
	grant(t, ns, "role-patcher", runsRule, rule(rbac, "roles", "list", "patch"))
	grant(t, ns, "role-escalator", runsRule, rule(rbac, "roles", "list", "patch", "escalate"))
	grant(t, ns, "binding-patcher", runsRule, rule(rbac, "rolebindings", "list", "patch"))
	grant(t, ns, "binding-binder", runsRule, rule(rbac, "rolebindings", "list", "patch"), rule(rbac, "roles", "bind"), rule(rbac, "clusterroles", "bind"))
	roles := `[{"group":"rbac.authorization.k8s.io","version":"v1","resource":"roles"}]`
	bindings := `[{"group":"rbac.authorization.k8s.io","version":"v1","resource":"rolebindings"}]`
	tests := []struct {
		name, user, resources, want string
	}{
		{name: "patch roles without escalate", user: "role-patcher", resources: roles,
			want: `spec.taskSpec.config.resources[0]: Forbidden: user "role-patcher" may not escalate roles.rbac.authorization.k8s.io in namespace rbac-kinds: a patch of roles can grant any permission`},
		{name: "patch roles with escalate", user: "role-escalator", resources: roles},
		{name: "patch rolebindings without bind", user: "binding-patcher", resources: bindings,
			want: `may not bind roles.rbac.authorization.k8s.io in namespace rbac-kinds`},
		{name: "patch rolebindings with bind", user: "binding-binder", resources: bindings},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := createTransformation(t, tt.user, ns, "rbac-"+string(rune('a'+i)), tt.resources)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want refusal containing %q", err, tt.want)
			}
		})
	}
}

// TestScopeCheckedAndRecorded: a resource not served at admission is
// checked cluster-wide, so a user with every right in one namespace only is
// refused; the scope checked is recorded, and a contradicting one refused.
func TestScopeCheckedAndRecorded(t *testing.T) {
	ns := namespace(t, "scopes")
	grant(t, ns, "ns-owner", rbacv1.PolicyRule{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}})
	widgets := `[{"group":"example.com","version":"v1","resource":"widgets"}]`
	deployments := `[{"group":"apps","version":"v1","resource":"deployments"}]`

	err := createTransformation(t, "ns-owner", ns, "widgets", widgets)
	if err == nil || !strings.Contains(err.Error(), `user "ns-owner" may not list widgets.example.com cluster-wide`) {
		t.Errorf("not-served resource: got %v, want refused cluster-wide", err)
	}
	if err := createTransformation(t, "ns-owner", ns, "deployments", deployments); err != nil {
		t.Errorf("own namespace refused: %v", err)
	} else if got := storedScopes(t, getRun(t, ns, "deployments").Spec.TaskSpec.Config.Raw); got != "Namespaced" {
		t.Errorf("stored scope %q, want Namespaced", got)
	}
	err = createTransformation(t, "ns-owner", ns, "contradiction", `[{"group":"apps","version":"v1","resource":"deployments","scope":"Cluster"}]`)
	if err == nil || !strings.Contains(err.Error(), `spec.taskSpec.config.resources[0].scope: Invalid value: "Cluster": the API server serves apps/v1/deployments as Namespaced`) {
		t.Errorf("contradicting scope: got %v", err)
	}
	// The admin may list and patch anything cluster-wide: admitted, recorded
	// as Cluster, with the warning that it is not served.
	doc := taskYAML("admin-widgets", ns, v1alpha1.PluginTransformation, "resources: "+widgets+"\noperations: [{mergePatch: {metadata: {labels: {a: b}}}}]")
	out, err := kubectl(t, doc, "apply", "-f", "-")
	if err != nil || !strings.Contains(out, "does not serve example.com/v1/widgets now, so its rights are checked cluster-wide") {
		t.Errorf("admin: %v\n%s", err, out)
	} else if got := storedScopes(t, getTask(t, ns, "admin-widgets").Spec.Config.Raw); got != "Cluster" {
		t.Errorf("stored scope %q, want Cluster", got)
	}
}

func storedScopes(t *testing.T, config []byte) string {
	t.Helper()
	var cfg v1alpha1.TransformationConfig
	must(t, json.Unmarshal(config, &cfg))
	var scopes []string
	for _, r := range cfg.Resources {
		scopes = append(scopes, string(r.Scope))
	}
	return strings.Join(scopes, ",")
}

// TestMastersRequester: taskgate cannot act as system:masters, so a user
// whose rights come from it alone may write a Task but is refused a run at
// admission, told why: a run of the Task (they may not read it as taskgate
// would act) and a one-off run (they may not create its Pod).
func TestMastersRequester(t *testing.T) {
	ns := namespace(t, "masters")
	if out, err := kubectlAs(t, mastersKube, taskYAML("root", ns, v1alpha1.PluginCustomImage, plainImage), "apply", "-f", "-"); err != nil {
		t.Fatalf("the Task refused: %v\n%s", err, out)
	}
	oneOff := strings.Replace(runYAML("one-off", ns, "root"), "  taskRef:\n    name: root\n",
		"  taskSpec:\n    plugin: custom-image\n    config: {image: busybox:1.36, command: [echo]}\n", 1)
	for doc, want := range map[string]string{
		runYAML("root", ns, "root"): `user "` + mastersUser + `" may not get tasks.automation.astronetes.io root in namespace masters`,
		oneOff:                      `user "` + mastersUser + `" may not create pods in namespace masters`,
	} {
		out, err := kubectlAs(t, mastersKube, doc, "create", "-f", "-")
		if err == nil || !strings.Contains(out, want) ||
			!strings.Contains(out, "which Kubernetes does not let taskgate impersonate") || !strings.Contains(out, "kubeadm:cluster-admins") {
			t.Errorf("masters user: %v\n%s\nwant %q and the hint", err, out, want)
		}
	}
}
