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
	"k8s.io/apimachinery/pkg/runtime"
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
	for _, v := range p.validating {
		if len(v.Spec.Validations) == 0 {
			t.Errorf("validating policy %s without rules", v.Name)
		}
	}
	for _, m := range p.mutating {
		if len(m.Spec.Mutations) == 0 {
			t.Errorf("mutating policy %s without rules", m.Name)
		}
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
// and checks, by creates (dry-run unless said), that they admit the seed
// samples as Tasks with taskgate's defaults and TaskRuns of them with the
// snapshot, requester, label and owner reference taskgate's webhooks write,
// and refuse what the rules table says they refuse, with their messages;
// and that the finalizer rule holds on a real update.
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
	// alice may create Tasks, TaskRuns and Pods in "default", nothing else.
	alice := impersonating(t, cp, "alice", []rbacv1.PolicyRule{
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"tasks", "taskruns"}, Verbs: []string{"create"}},
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
	tasks := map[string]*v1alpha1.Task{}
	for _, s := range samples {
		task := kit.NewTask(s, "default", s.Name)
		if err := admin.Client.Create(ctx, task); err != nil { // stored: the TaskRuns below name it
			t.Errorf("sample %s refused: %v", s.Name, err)
			continue
		}
		tasks[s.Name] = task
		if task.Spec.Requester != nil {
			t.Errorf("sample %s: spec.requester %+v on a Task", s.Name, task.Spec.Requester)
		}
		var cfg map[string]any
		if err := json.Unmarshal(task.Spec.Config.Raw, &cfg); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{}
		switch task.Spec.Plugin {
		case v1alpha1.PluginCustomImage:
			want = map[string]any{"namespace": "default", "timeoutSeconds": 3600.0, "retries": 0.0}
		case v1alpha1.PluginTransformation:
			want = map[string]any{"namespaces": []any{"default"}}
		}
		for k, v := range want {
			if got, ok := cfg[k]; !ok || !equalJSON(got, v) {
				t.Errorf("sample %s: spec.config.%s = %v, want the default %v", s.Name, k, got, v)
			}
		}
		if _, ok := cfg["serviceAccountName"]; ok {
			t.Errorf("sample %s: a Task defaulted with a serviceAccountName, which belongs to the run", s.Name)
		}
	}
	if err := wantDefaults(mustCreate(t, admin.Client, probeTask("probe", probeGoodConfig))); err != nil {
		t.Error(err)
	}
	// A TaskRun of each sample: the snapshot, the requester, the label and
	// the owner reference, as taskgate's webhooks write them. The policies'
	// params come from the API server's informer: wait until it has the
	// Tasks.
	for name, task := range tasks {
		var run *v1alpha1.TaskRun
		testutil.EventuallyWithin(t, 30*time.Second, "a TaskRun of "+name+" admitted", func() error {
			run = kit.NewTaskRun("default", name+"-run", name)
			return admin.Client.Create(ctx, run, client.DryRunAll)
		})
		switch {
		case run.Spec.TaskSpec == nil || run.Spec.TaskSpec.Plugin != task.Spec.Plugin || !sameJSON(run.Spec.TaskSpec.Config.Raw, task.Spec.Config.Raw):
			t.Errorf("TaskRun of %s: spec.taskSpec %+v, want the Task's spec", name, run.Spec.TaskSpec)
		case run.Spec.Requester == nil || run.Spec.Requester.Username != admin.Name || !slices.Contains(run.Spec.Requester.Groups, kit.AdminGroup):
			t.Errorf("TaskRun of %s: spec.requester %+v, want %s in %s", name, run.Spec.Requester, admin.Name, kit.AdminGroup)
		case run.Labels[v1alpha1.TaskLabel] != name:
			t.Errorf("TaskRun of %s: labels %v", name, run.Labels)
		case len(run.OwnerReferences) != 1 || run.OwnerReferences[0].UID != task.UID || run.OwnerReferences[0].Controller == nil || !*run.OwnerReferences[0].Controller:
			t.Errorf("TaskRun of %s: owner references %+v, want Task %s (%s) as controller", name, run.OwnerReferences, name, task.UID)
		}
	}
	if err := wantRequester(mustCreateRun(t, admin.Client, probeRun(probeGoodConfig)), admin.Name); err != nil {
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
		{"transformation without resources", "kubernetes-object-transformation", `{"operations":[{"mergePatch":{}}]}`, admin.Client, "spec.config.resources: Required value"},
		{"two patches in one operation", "kubernetes-object-transformation", `{"resources":[{"version":"v1","resource":"configmaps"}],"operations":[{"mergePatch":{},"jsonPatch":[]}]}`, admin.Client, "spec.config.operations: Invalid value"},
		{"unknown sync plugin", "run-synchronization", `{"template":{"spec":{"plugin":"kuberentes-to-kubernetes"}}}`, admin.Client, "spec.config.template.spec.plugin: Unsupported value"},
	} {
		t.Run("Task, "+tc.name, func(t *testing.T) {
			task := probeTask("bad", tc.config)
			task.Spec.Plugin = v1alpha1.Plugin(tc.plugin)
			err := tc.as.Create(ctx, task, client.DryRunAll)
			if err == nil || !strings.Contains(err.Error(), vapDenied) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("want the policy's refusal %q, got %v", tc.want, err)
			}
		})
	}
	t.Run("Task with a requester", func(t *testing.T) {
		task := probeTask("with-requester", probeGoodConfig)
		task.Spec.Requester = &v1alpha1.Requester{Username: admin.Name}
		if err := admin.Client.Create(ctx, task, client.DryRunAll); err == nil || !strings.Contains(err.Error(), "a Task runs nothing, so it has no requester") {
			t.Errorf("want the policy's refusal, got %v", err)
		}
	})
	// The legitimate twins of the access refusals below: alice may run what
	// she may do by hand.
	if err := alice.Create(ctx, probeRun(probeGoodConfig), client.DryRunAll); err != nil {
		t.Errorf("alice's custom-image TaskRun refused: %v", err)
	}
	for _, tc := range []struct {
		name, plugin, config string
		taskRef              string
		as                   client.Client
		want                 string
	}{
		{name: "bind without the right", plugin: "custom-image", config: `{"image":"busybox:1.36","command":["true"],"clusterRole":"cluster-admin"}`, as: alice, want: `binding ClusterRole "cluster-admin" needs the bind verb`},
		{name: "transformation without list and patch", plugin: "kubernetes-object-transformation", config: `{"resources":[{"version":"v1","resource":"configmaps"}],"operations":[{"mergePatch":{}}]}`, as: alice, want: "spec.taskSpec.config.resources: Forbidden"},
		{name: "sync without create", plugin: "run-synchronization", config: `{"template":{"spec":{"plugin":"kubernetes-to-kubernetes"}}}`, as: alice, want: "spec.taskSpec.config.template: Forbidden"},
		{name: "a Task that does not exist", taskRef: "no-such-task", as: admin.Client, want: `spec.taskRef.name: Not found: "no-such-task"`},
		{name: "a run of kubectl without the bind right", taskRef: "kubectl", as: alice, want: `binding ClusterRole "cluster-admin" needs the bind verb`},
	} {
		t.Run("TaskRun, "+tc.name, func(t *testing.T) {
			run := kit.NewTaskRun("default", "bad", tc.taskRef)
			if tc.taskRef == "" {
				run = kit.NewInlineRun("default", "bad", &v1alpha1.PluginSpec{Plugin: v1alpha1.Plugin(tc.plugin), Config: runtime.RawExtension{Raw: []byte(tc.config)}})
			}
			err := tc.as.Create(ctx, run, client.DryRunAll)
			if err == nil || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy 'taskgate-bench-taskrun-rules'") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("want the policy's refusal %q, got %v", tc.want, err)
			}
		})
	}
	t.Run("TaskRun with a forged snapshot", func(t *testing.T) {
		// The mutating policy replaces a snapshot sent with taskRef; the
		// validating one would refuse one that differs from the Task.
		run := kit.NewTaskRun("default", "forged", "hello-world")
		run.Spec.TaskSpec = &v1alpha1.PluginSpec{Plugin: v1alpha1.PluginCustomImage, Config: runtime.RawExtension{Raw: []byte(`{"image":"evil:1","command":["sh"]}`)}}
		if err := admin.Client.Create(ctx, run, client.DryRunAll); err != nil {
			t.Fatalf("create: %v", err)
		}
		if !sameJSON(run.Spec.TaskSpec.Config.Raw, tasks["hello-world"].Spec.Config.Raw) {
			t.Errorf("snapshot %s stored, want the Task's %s", run.Spec.TaskSpec.Config.Raw, tasks["hello-world"].Spec.Config.Raw)
		}
	})

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

// mustCreateRun dry-runs the create of run and returns it as the API
// server answered.
func mustCreateRun(t *testing.T, c client.Client, run *v1alpha1.TaskRun) *v1alpha1.TaskRun {
	t.Helper()
	if err := c.Create(t.Context(), run, client.DryRunAll); err != nil {
		t.Fatalf("create TaskRun: %v", err)
	}
	return run
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
