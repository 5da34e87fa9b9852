package admission_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

const (
	kubectlConfig = `{"image":"bitnami/kubectl:1.31","command":["kubectl","get","pods"],"clusterRole":"cluster-admin"}`
	echoConfig    = `{"image":"busybox:1.36","command":["echo"]}`
)

// TestTaskIsARunbook: creating and editing a Task needs only the right to
// create and update Tasks: a user who may not create Pods, let alone bind
// cluster-admin, writes a Task that does both, and edits it. It is checked
// and defaulted as before (the namespace; no ServiceAccount, which belongs
// to a run), and fields that belong to runs are refused on a new Task.
func TestTaskIsARunbook(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "runbook")
	grant(t, ns, "author", tasksRule)
	author := as(t, "author")

	must(t, author.Create(ctx, newTask(ns, "kubectl", v1alpha1.PluginCustomImage, kubectlConfig)))
	task := getTask(t, ns, "kubectl")
	var cfg map[string]any
	must(t, json.Unmarshal(task.Spec.Config.Raw, &cfg))
	if cfg["namespace"] != ns || cfg["serviceAccountName"] != nil || task.Spec.Requester != nil {
		t.Errorf("stored config %s, requester %+v; want namespace %s defaulted, no serviceAccountName, no requester", task.Spec.Config.Raw, task.Spec.Requester, ns)
	}

	// An edit is checked again: a wrong field is refused, a right one stored and defaulted.
	task.Spec.Config.Raw = []byte(`{"image":"busybox:1.36","comand":["echo"]}`)
	refused(t, author.Update(ctx, task), `spec.config.comand`)
	task = getTask(t, ns, "kubectl")
	task.Spec.Config.Raw = []byte(`{"image":"busybox:1.37","command":["echo"],"clusterRole":"cluster-admin"}`)
	must(t, author.Update(ctx, task))
	if got := string(getTask(t, ns, "kubectl").Spec.Config.Raw); !strings.Contains(got, `"busybox:1.37"`) || !strings.Contains(got, `"namespace":"`+ns+`"`) {
		t.Errorf("edited config %s, want the new image and the namespace default", got)
	}

	withRequester := newTask(ns, "forged", v1alpha1.PluginCustomImage, echoConfig)
	withRequester.Spec.Requester = &v1alpha1.Requester{Username: "boss"}
	refused(t, author.Create(ctx, withRequester), "spec.requester: Forbidden: a Task runs nothing, so it has no requester")
	withTTL := newTask(ns, "ttl", v1alpha1.PluginCustomImage, echoConfig)
	withTTL.Spec.TTLSecondsAfterFinished = new(int32)
	refused(t, author.Create(ctx, withTTL), "spec.ttlSecondsAfterFinished: Forbidden")
}

// TestTaskRunSnapshot: a TaskRun of a Task records the Task's spec as it is
// then, the creator, the Task's label and an owner reference to it; a forged
// requester is replaced; editing the Task afterwards changes nothing of the run.
func TestTaskRunSnapshot(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "snapshot")
	must(t, k8s.Create(ctx, newTask(ns, "hello", v1alpha1.PluginCustomImage, echoConfig)))
	grant(t, ns, "oncall", readTasksRule, runsRule, rule("", "pods", "create"))
	out, err := kubectl(t, runYAML("hello-1", ns, "hello")+"  requester:\n    username: boss\n    groups: [system:masters]\n",
		"--as", "oncall", "--as-group", "team-x", "create", "-f", "-")
	if err != nil {
		t.Fatalf("create as oncall: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Warning: spec.requester is recorded by taskgate as the user who creates the TaskRun (oncall (groups team-x, system:authenticated)); the value supplied was replaced") {
		t.Errorf("no warning about the replaced requester:\n%s", out)
	}
	task := getTask(t, ns, "hello")
	run := getRun(t, ns, "hello-1")
	if r := run.Spec.Requester; r == nil || r.Username != "oncall" || strings.Contains(strings.Join(r.Groups, ","), "system:masters") {
		t.Errorf("stored requester %+v, want oncall's own userInfo", r)
	}
	if s := run.Spec.TaskSpec; s == nil || s.Plugin != task.Spec.Plugin || string(s.Config.Raw) != string(task.Spec.Config.Raw) {
		t.Errorf("snapshot %+v, want the Task's spec %s", s, task.Spec.Config.Raw)
	}
	if got := run.Labels[v1alpha1.TaskLabel]; got != v1alpha1.TaskLabelValue("hello") {
		t.Errorf("label %s = %q, want %q", v1alpha1.TaskLabel, got, "hello")
	}
	owner := metav1.GetControllerOf(run)
	if owner == nil || owner.Kind != "Task" || owner.APIVersion != v1alpha1.GroupVersion.String() || owner.Name != "hello" || owner.UID != task.UID ||
		owner.BlockOwnerDeletion != nil || len(run.OwnerReferences) != 1 {
		t.Errorf("owner references %+v, want the Task as controller, no blockOwnerDeletion", run.OwnerReferences)
	}

	task.Spec.Config.Raw = []byte(`{"image":"busybox:1.37","command":["false"]}`)
	must(t, k8s.Update(ctx, task))
	if got := string(getRun(t, ns, "hello-1").Spec.TaskSpec.Config.Raw); !strings.Contains(got, "busybox:1.36") {
		t.Errorf("the admitted run's snapshot changed with the Task: %s", got)
	}
	must(t, as(t, "oncall").Create(ctx, runOf(ns, "hello-2", "hello")))
	if got := string(getRun(t, ns, "hello-2").Spec.TaskSpec.Config.Raw); !strings.Contains(got, "busybox:1.37") {
		t.Errorf("a later run does not run the edited Task: %s", got)
	}
}

// TestTaskRunNeedsTheTaskAndItsRights: a run is admitted only for a user who
// may read the Task and do what it does; refused, nothing is stored, and the
// legitimate twin is admitted.
func TestTaskRunNeedsTheTaskAndItsRights(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "run-rights")
	must(t, k8s.Create(ctx, newTask(ns, "kubectl", v1alpha1.PluginCustomImage, kubectlConfig)))
	must(t, k8s.Create(ctx, newTask(ns, "hello", v1alpha1.PluginCustomImage, echoConfig)))
	pods := rule("", "pods", "create")
	grant(t, ns, "blind", runsRule, pods)                 // may not read Tasks
	grant(t, ns, "oncall", runsRule, readTasksRule, pods) // may not bind cluster-admin
	grant(t, ns, "sre", runsRule, readTasksRule, pods)    // may
	grantCluster(t, "sre", rule("rbac.authorization.k8s.io", "clusterroles", "bind"), rule("rbac.authorization.k8s.io", "clusterrolebindings", "create"))

	tests := []struct {
		name, user, task string
		want             string // empty: admitted
	}{
		{name: "a user who may not read the Task", user: "blind", task: "hello",
			want: `spec.taskRef.name: Forbidden: user "blind" may not get tasks.automation.astronetes.io hello in namespace run-rights`},
		{name: "the twin who may read it", user: "oncall", task: "hello"},
		{name: "a user who may not bind cluster-admin", user: "oncall", task: "kubectl",
			want: `spec.taskSpec.config.clusterRole: Forbidden: user "oncall" may not bind clusterroles.rbac.authorization.k8s.io cluster-admin`},
		{name: "a user who may", user: "sre", task: "kubectl"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := tt.task + "-" + string(rune('a'+i))
			err := as(t, tt.user).Create(ctx, runOf(ns, name, tt.task))
			if tt.want == "" {
				must(t, err)
				if r := getRun(t, ns, name).Spec.Requester; r == nil || r.Username != tt.user {
					t.Errorf("requester %+v, want %s", r, tt.user)
				}
				return
			}
			refused(t, err, tt.want)
			absentRun(t, ns, name)
		})
	}
}

// TestTaskRunOfMissingTask: a TaskRun naming no Task is refused with the
// name and the close names of the namespace's Tasks; a user who may not
// read Tasks learns neither.
func TestTaskRunOfMissingTask(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "missing")
	must(t, k8s.Create(ctx, newTask(ns, "hello-world", v1alpha1.PluginCustomImage, echoConfig)))
	grant(t, ns, "oncall", runsRule, readTasksRule, rule("", "pods", "create"))
	grant(t, ns, "blind", runsRule, rule("", "pods", "create"))

	err := as(t, "oncall").Create(ctx, runOf(ns, "typo", "helo-world"))
	refused(t, err, `spec.taskRef.name: Not found: "helo-world": no Task "helo-world" in namespace "missing"`)
	refused(t, err, `did you mean "hello-world"?`)
	absentRun(t, ns, "typo")

	err = as(t, "blind").Create(ctx, runOf(ns, "typo", "helo-world"))
	refused(t, err, `spec.taskRef.name: Forbidden: user "blind" may not get tasks.automation.astronetes.io helo-world`)
	if err != nil && strings.Contains(err.Error(), "hello-world") {
		t.Errorf("a user who may not read Tasks learns their names: %v", err)
	}
	absentRun(t, ns, "typo")
}

// TestConcurrencyForbid: a run of a Forbid Task is refused while another
// run of it has not finished, naming it; once it finished, the next run is
// admitted. An Allow Task runs twice at once.
func TestConcurrencyForbid(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "forbid")
	restore := newTask(ns, "restore", v1alpha1.PluginCustomImage, echoConfig)
	restore.Spec.ConcurrencyPolicy = v1alpha1.ConcurrencyForbid
	must(t, k8s.Create(ctx, restore))
	must(t, k8s.Create(ctx, newTask(ns, "hello", v1alpha1.PluginCustomImage, echoConfig)))

	must(t, k8s.Create(ctx, runOf(ns, "restore-1", "restore")))
	refused(t, k8s.Create(ctx, runOf(ns, "restore-2", "restore")),
		"spec.taskRef.name: Forbidden: TaskRun restore-1 of Task restore is still Pending; concurrencyPolicy Forbid lets one run at a time")
	absentRun(t, ns, "restore-2")

	// The controller's word, written here: running, then succeeded.
	first := getRun(t, ns, "restore-1")
	first.Status.Phase = v1alpha1.TaskRunning
	meta.SetStatusCondition(&first.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionSucceeded, Status: metav1.ConditionUnknown, Reason: "Running"})
	must(t, k8s.Status().Update(ctx, first))
	refused(t, k8s.Create(ctx, runOf(ns, "restore-2", "restore")), "TaskRun restore-1 of Task restore is still Running")
	first = getRun(t, ns, "restore-1")
	first.Status.Phase = v1alpha1.TaskSucceeded
	meta.SetStatusCondition(&first.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionSucceeded, Status: metav1.ConditionTrue, Reason: "Succeeded"})
	must(t, k8s.Status().Update(ctx, first))
	must(t, k8s.Create(ctx, runOf(ns, "restore-2", "restore")))

	// An inline run carrying the Task's label is not a run of it.
	fake := inlineRun(ns, "fake", v1alpha1.PluginCustomImage, echoConfig)
	fake.Labels = map[string]string{v1alpha1.TaskLabel: "hello"}
	must(t, k8s.Create(ctx, fake))
	if l, has := getRun(t, ns, "fake").Labels[v1alpha1.TaskLabel]; has {
		t.Errorf("an inline run keeps the Task label %q it was sent with", l)
	}
	must(t, k8s.Create(ctx, runOf(ns, "hello-1", "hello")))
	must(t, k8s.Create(ctx, runOf(ns, "hello-2", "hello")))
}

// TestTaskRefOrTaskSpec: exactly one of spec.taskRef and spec.taskSpec; an
// inline run is checked and defaulted at spec.taskSpec.
func TestTaskRefOrTaskSpec(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "ref-or-spec")
	must(t, k8s.Create(ctx, newTask(ns, "hello", v1alpha1.PluginCustomImage, echoConfig)))

	both := runOf(ns, "both", "hello")
	both.Spec.TaskSpec = inlineRun(ns, "", v1alpha1.PluginCustomImage, `{"image":"evil:1","command":["sh"]}`).Spec.TaskSpec
	refused(t, k8s.Create(ctx, both), "spec.taskSpec: Forbidden: set spec.taskRef (a Task in this namespace) or spec.taskSpec (plugin and config inline), not both")
	absentRun(t, ns, "both")
	refused(t, k8s.Create(ctx, &v1alpha1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: "neither", Namespace: ns}}), "spec.taskRef")
	absentRun(t, ns, "neither")

	refused(t, k8s.Create(ctx, inlineRun(ns, "bad", v1alpha1.PluginCustomImage, `{"image":"busybox:1.36","comand":["echo"]}`)),
		`spec.taskSpec.config.comand`)
	absentRun(t, ns, "bad")
	must(t, k8s.Create(ctx, inlineRun(ns, "one-off", v1alpha1.PluginCustomImage, echoConfig)))
	run := getRun(t, ns, "one-off")
	if !strings.Contains(string(run.Spec.TaskSpec.Config.Raw), `"namespace":"`+ns+`"`) || len(run.OwnerReferences) != 0 || run.Labels[v1alpha1.TaskLabel] != "" {
		t.Errorf("one-off run %+v %s: want its config defaulted, no Task owner, no Task label", run.ObjectMeta, run.Spec.TaskSpec.Config.Raw)
	}
}

// TestTaskRunImmutableAndFinalized: nobody changes a TaskRun's spec, and
// only the manager removes the cleanup finalizer, of a TaskRun and of a
// Task an earlier taskgate ran.
func TestTaskRunImmutableAndFinalized(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "run-immutable")
	grant(t, ns, "rita", tasksRule, runsRule, rule("automation.astronetes.io", "taskruns", "update", "patch"), rule("", "pods", "create"))
	run := inlineRun(ns, "guarded", v1alpha1.PluginCustomImage, echoConfig)
	run.Finalizers = []string{v1alpha1.Finalizer}
	must(t, as(t, "rita").Create(ctx, run))
	// The pair meets the CRD's rule before the validating webhook; the
	// single call answers first and names spec.requester.
	want := "spec is immutable: a TaskRun runs what was admitted"
	if singleCall {
		want = "spec.requester: Forbidden: spec.requester records who created the TaskRun"
	}
	for _, user := range []string{"rita", adminUser} {
		out, err := kubectlAsUser(t, user, "", "patch", "taskrun", "-n", ns, "guarded", "--type=merge", "-p", `{"spec":{"requester":{"username":"boss"}}}`)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("%s changed the requester: %v\n%s\nwant %q", user, err, out, want)
		}
	}
	if r := getRun(t, ns, "guarded").Spec.Requester; r == nil || r.Username != "rita" {
		t.Errorf("stored requester %+v, want rita", r)
	}
	strip := `[{"op":"remove","path":"/metadata/finalizers"}]`
	want = "metadata.finalizers: Forbidden: only taskgate's manager (" + managerUser + ") may remove the " + v1alpha1.Finalizer + " finalizer"
	for _, kind := range []string{"taskrun", "task"} {
		if kind == "task" {
			legacy := newTask(ns, "guarded", v1alpha1.PluginCustomImage, echoConfig)
			legacy.Finalizers = []string{v1alpha1.Finalizer}
			must(t, as(t, "rita").Create(ctx, legacy))
		}
		for _, user := range []string{"rita", adminUser} {
			if out, err := kubectlAsUser(t, user, "", "patch", kind, "-n", ns, "guarded", "--type=json", "-p", strip); err == nil || !strings.Contains(out, want) {
				t.Errorf("%s stripped the finalizer of a %s: %v\n%s", user, kind, err, out)
			}
		}
	}
	manager := managerClient(t)
	got := getRun(t, ns, "guarded")
	got.Finalizers = nil
	if err := manager.Update(ctx, got); err != nil {
		t.Errorf("the manager may not remove the finalizer of a TaskRun: %v", err)
	}
	task := getTask(t, ns, "guarded")
	task.Finalizers = nil
	if err := manager.Update(ctx, task); err != nil {
		t.Errorf("the manager may not remove the finalizer of a Task: %v", err)
	}
}

// managerClient is a client acting as the manager.
func managerClient(t *testing.T) client.Client {
	t.Helper()
	c, err := client.New(managerCfg, client.Options{Scheme: k8s.Scheme()})
	must(t, err)
	return c
}
