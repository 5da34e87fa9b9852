package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/load/kit"
	"github.com/astronetes/taskgate/test/testutil"
)

// TestLoadPolicies checks that the embedded policies parse strictly, bind
// each other, and say every rule the rules table claims for VAP+MAP.
func TestLoadPolicies(t *testing.T) {
	p, err := loadPolicies()
	if err != nil {
		t.Fatal(err)
	}
	text := p.messages()
	for _, r := range ruleTable {
		if r.policyRef == "" {
			continue
		}
		if !strings.Contains(text, r.policyRef) {
			t.Errorf("rules table, %q: the policies say nothing like %q", r.rule, r.policyRef)
		}
	}
	if len(p.validating.Spec.Validations) == 0 || len(p.mutating.Spec.Mutations) == 0 {
		t.Error("a policy without rules")
	}
}

func TestParseModes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", p1Modes},
		{"VAP+MAP/taskgate/no-op/no webhooks", []string{modeVAP, modeTaskgate, modeNoop, modeNone}},
		{" taskgate / no-op / no webhooks / single-call, cache off ", []string{modeTaskgate, modeNoop, modeNone, modeBoth}},
	} {
		got, err := parseModes(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parseModes(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"taskgate/no-op", "taskgate/no-op/no webhooks/vap", "taskgate/no-op/no webhooks/no-op"} {
		if _, err := parseModes(bad); err == nil {
			t.Errorf("parseModes(%q): no error", bad)
		}
	}
}

func TestProfileName(t *testing.T) {
	for in, want := range map[string]string{"single-call, cache off": "single-call-cache-off", modeVAP: "vap+map", modeNone: "no-webhooks"} {
		if got := profileName(in); got != want {
			t.Errorf("profileName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPolicies installs the VAP+MAP mode's policies on a real API server
// and checks, by dry-run creates, that they admit the seed samples with
// taskgate's defaults and refuse what the rules table says they refuse,
// with their messages; and that the finalizer rule holds on a real update.
func TestPolicies(t *testing.T) {
	cp, err := kit.StartControlPlane("../..")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Error(err)
		}
	})
	ctx := t.Context()
	admin, err := cp.AddAdmin(ctx, "bench-admin")
	if err != nil {
		t.Fatal(err)
	}
	p, err := loadPolicies()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.apply(ctx, cp.Client, true); err != nil {
		t.Fatal(err)
	}
	// alice may create Tasks and Pods in "default", nothing else.
	alice := impersonating(t, cp, "alice", []rbacv1.PolicyRule{
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"tasks"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create"}},
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := admin.Client.Create(ctx, probeTask("probe-wrong", probeWrongConfig), client.DryRunAll)
		if wantRefusal(modeVAP, err) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("policies not enforced after 30s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	samples, err := kit.Samples("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range samples {
		task := kit.NewTask(s, "default", s.Name)
		if err := admin.Client.Create(ctx, task, client.DryRunAll); err != nil {
			t.Errorf("sample %s refused: %v", s.Name, err)
			continue
		}
		if task.Spec.Requester == nil || task.Spec.Requester.Username != admin.Name || !slices.Contains(task.Spec.Requester.Groups, kit.AdminGroup) {
			t.Errorf("sample %s: spec.requester %+v, want %s in %s", s.Name, task.Spec.Requester, admin.Name, kit.AdminGroup)
		}
		var cfg map[string]any
		if err := json.Unmarshal(task.Spec.Config.Raw, &cfg); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{}
		switch task.Spec.Plugin {
		case v1alpha1.PluginCustomImage:
			want = map[string]any{"namespace": "default", "serviceAccountName": s.Name + "-task", "timeoutSeconds": 3600.0, "retries": 0.0}
		case v1alpha1.PluginTransformation:
			want = map[string]any{"namespaces": []any{"default"}}
		}
		for k, v := range want {
			if got, ok := cfg[k]; !ok || !equalJSON(got, v) {
				t.Errorf("sample %s: spec.config.%s = %v, want the default %v", s.Name, k, got, v)
			}
		}
	}
	if err := wantDefaults(mustCreate(t, admin.Client, probeTask("probe", probeGoodConfig)), admin.Name); err != nil {
		t.Error(err)
	}

	for _, tc := range []struct {
		name, plugin, config string
		as                   client.Client
		want                 string
	}{
		{"no image", "custom-image", `{"command":["true"]}`, admin.Client, "spec.config.image: Required value"},
		{"empty command", "custom-image", `{"image":"busybox:1.36","command":[]}`, admin.Client, "spec.config.command: Required value"},
		{"unknown field", "custom-image", `{"image":"busybox:1.36","command":["true"],"imagePullPolicy":"Always"}`, admin.Client, `spec.config: unknown field(s) "imagePullPolicy"`},
		{"other namespace", "custom-image", probeWrongConfig, admin.Client, namespaceRule},
		{"bad serviceAccountName", "custom-image", `{"image":"busybox:1.36","command":["true"],"serviceAccountName":"Not_A_Name"}`, admin.Client, "spec.config.serviceAccountName: Invalid value"},
		{"timeout out of range", "custom-image", `{"image":"busybox:1.36","command":["true"],"timeoutSeconds":0}`, admin.Client, "spec.config.timeoutSeconds: Invalid value"},
		{"bind without the right", "custom-image", `{"image":"busybox:1.36","command":["true"],"clusterRole":"cluster-admin"}`, alice, `binding ClusterRole "cluster-admin" needs the bind verb`},
		{"transformation without resources", "kubernetes-object-transformation", `{"operations":[{"mergePatch":{}}]}`, admin.Client, "spec.config.resources: Required value"},
		{"two patches in one operation", "kubernetes-object-transformation", `{"resources":[{"version":"v1","resource":"configmaps"}],"operations":[{"mergePatch":{},"jsonPatch":[]}]}`, admin.Client, "spec.config.operations: Invalid value"},
		{"transformation without list and patch", "kubernetes-object-transformation", `{"resources":[{"version":"v1","resource":"configmaps"}],"operations":[{"mergePatch":{}}]}`, alice, "spec.config.resources: Forbidden"},
		{"unknown sync plugin", "run-synchronization", `{"template":{"spec":{"plugin":"kuberentes-to-kubernetes"}}}`, admin.Client, "spec.config.template.spec.plugin: Unsupported value"},
		{"sync without create", "run-synchronization", `{"template":{"spec":{"plugin":"kubernetes-to-kubernetes"}}}`, alice, "spec.config.template: Forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := &v1alpha1.Task{Spec: v1alpha1.TaskSpec{Plugin: v1alpha1.Plugin(tc.plugin)}}
			task.Namespace, task.Name = "default", "bad"
			task.Spec.Config.Raw = []byte(tc.config)
			err := tc.as.Create(ctx, task, client.DryRunAll)
			if err == nil || !strings.Contains(err.Error(), vapDenied) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("want the policy's refusal %q, got %v", tc.want, err)
			}
		})
	}

	// Two bad fields: the API server answers with the first failing
	// validation's message only (the rules table says so).
	two := probeTask("two-bad", `{"command":["true"],"imagePullPolicy":"Always"}`)
	err = admin.Client.Create(ctx, two, client.DryRunAll)
	if err == nil || !strings.Contains(err.Error(), "spec.config.image: Required value") || strings.Contains(err.Error(), "unknown field(s)") {
		t.Errorf("two bad fields: want the first validation's message only, got %v", err)
	}

	// Only the manager may remove the finalizer (a real create and update).
	task := probeTask("with-finalizer", probeGoodConfig)
	task.Finalizers = []string{v1alpha1.Finalizer}
	task = mustCreate(t, admin.Client, task)
	task.Finalizers = nil
	if err := admin.Client.Update(ctx, task); err == nil || !strings.Contains(err.Error(), "metadata.finalizers: Forbidden") {
		t.Errorf("finalizer removed by %s: want the policy's refusal, got %v", admin.Name, err)
	}
}

// mustCreate dry-runs the create of task (or creates it, when it has
// finalizers) and returns it as the API server answered.
func mustCreate(t *testing.T, c client.Client, task *v1alpha1.Task) *v1alpha1.Task {
	t.Helper()
	var opts []client.CreateOption
	if len(task.Finalizers) == 0 {
		opts = append(opts, client.DryRunAll)
	}
	if err := c.Create(t.Context(), task, opts...); err != nil {
		t.Fatalf("create %s: %v", task.Name, err)
	}
	return task
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// impersonating is a client of cp's admin impersonating user, who holds
// rules in namespace default only.
func impersonating(t *testing.T, cp *kit.ControlPlane, user string, rules []rbacv1.PolicyRule) client.Client {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: "default"}, Rules: rules}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: "default"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}}
	for _, o := range []client.Object{role, binding} {
		if err := cp.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	c, err := testutil.Impersonating(cp.Config, user, "system:authenticated")
	if err != nil {
		t.Fatal(err)
	}
	return c
}
