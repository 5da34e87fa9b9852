package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
)

// runEnv is the control plane of TestRunCommand: a real kube-apiserver with
// the CRDs of config/crd and neither taskgate's webhooks nor its
// controller. Each case plays the controller itself (it writes the
// TaskRun's status), and the kubelet too (fakeKubelet serves the Pods'
// logs), which envtest has none of.
type runEnv struct {
	cp    *testutil.ControlPlane
	admin client.Client
	// kubeconfig is the file of the user who runs `taskgate run`, a
	// cluster admin through a group.
	kubeconfig string
}

func startRunEnv(t *testing.T) *runEnv {
	t.Helper()
	cp, err := testutil.StartControlPlane(testutil.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Error(err)
		}
	})
	alice, err := cp.AddAdmin(context.Background(), "alice", "taskgate-run-admins")
	if err != nil {
		t.Fatal(err)
	}
	return &runEnv{cp: cp, admin: cp.Client, kubeconfig: alice.Kubeconfig}
}

// namespace creates a namespace for one case, with a Task of plugin in it.
func (e *runEnv) namespace(t *testing.T, name, task string, plugin v1alpha1.Plugin) {
	t.Helper()
	ctx := context.Background()
	if err := e.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	configs := map[v1alpha1.Plugin]string{
		v1alpha1.PluginCustomImage:    `{"image":"busybox:1.36","command":["echo","hi"]}`,
		v1alpha1.PluginTransformation: `{"resources":[{"group":"apps","version":"v1","resource":"deployments"}],"operations":[{"jsonPatch":[{"op":"replace","path":"/spec/replicas","value":1}]}]}`,
	}
	tk := &v1alpha1.Task{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: task},
		Spec: v1alpha1.TaskSpec{PluginSpec: v1alpha1.PluginSpec{Plugin: plugin}}}
	tk.Spec.Config.Raw = []byte(configs[plugin])
	if err := e.admin.Create(ctx, tk); err != nil {
		t.Fatal(err)
	}
}

// command is one `taskgate run` running in-process.
type command struct {
	stdout, stderr testutil.SyncBuffer
	code           chan int
	cancel         context.CancelFunc // Ctrl-C
}

func (e *runEnv) start(kubelet *fakeKubelet, args ...string) *command {
	ctx, cancel := context.WithCancel(context.Background())
	c := &command{code: make(chan int, 1), cancel: cancel}
	logs := func(*rest.Config) (logSource, error) { return kubelet, nil }
	go func() { c.code <- runRun(ctx, args, &c.stdout, &c.stderr, logs) }()
	return c
}

// exit waits for the command's exit status.
func (c *command) exit(t *testing.T) int {
	t.Helper()
	defer c.cancel()
	select {
	case code := <-c.code:
		return code
	case <-time.After(testutil.WaitTimeout):
		t.Fatalf("taskgate run did not end\nstdout:\n%s\nstderr:\n%s", c.stdout.String(), c.stderr.String())
	}
	return -1
}

// waitOutput waits until stdout holds want.
func (c *command) waitOutput(t *testing.T, want string) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("%q on stdout", want), func() error {
		if !strings.Contains(c.stdout.String(), want) {
			return fmt.Errorf("stdout:\n%s\nstderr:\n%s", c.stdout.String(), c.stderr.String())
		}
		return nil
	})
}

// runOf waits for the one TaskRun of namespace and checks that stdout
// names it first.
func (e *runEnv) runOf(t *testing.T, c *command, namespace, task string) *v1alpha1.TaskRun {
	t.Helper()
	var run v1alpha1.TaskRun
	testutil.Eventually(t, "the TaskRun", func() error {
		var list v1alpha1.TaskRunList
		if err := e.admin.List(context.Background(), &list, client.InNamespace(namespace)); err != nil {
			return err
		}
		if len(list.Items) != 1 {
			return fmt.Errorf("%d TaskRuns in %s; stderr: %s", len(list.Items), namespace, c.stderr.String())
		}
		run = list.Items[0]
		return nil
	})
	if !strings.HasPrefix(run.Name, task+"-") || run.TaskName() != task {
		t.Errorf("TaskRun %s runs Task %q; want generateName %s- and spec.taskRef.name %s", run.Name, run.TaskName(), task, task)
	}
	c.waitOutput(t, run.Name+"\n")
	if first, _, _ := strings.Cut(c.stdout.String(), "\n"); first != run.Name {
		t.Errorf("first line of stdout %q, want the TaskRun's name %q", first, run.Name)
	}
	return &run
}

// setStatus plays the controller: it writes the run's status as change
// leaves it, with the Succeeded condition the phase goes with.
func (e *runEnv) setStatus(t *testing.T, run *v1alpha1.TaskRun, phase v1alpha1.TaskPhase, msg string, change func(*v1alpha1.TaskRunStatus)) {
	t.Helper()
	cond := map[v1alpha1.TaskPhase]metav1.ConditionStatus{v1alpha1.TaskRunning: metav1.ConditionUnknown,
		v1alpha1.TaskSucceeded: metav1.ConditionTrue, v1alpha1.TaskFailed: metav1.ConditionFalse}[phase]
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur v1alpha1.TaskRun
		if err := e.admin.Get(context.Background(), client.ObjectKeyFromObject(run), &cur); err != nil {
			return err
		}
		s := &cur.Status
		s.Phase, s.Message = phase, msg
		s.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionSucceeded, Status: cond, Reason: string(phase),
			Message: msg, LastTransitionTime: metav1.Now()}}
		if s.StartTime == nil {
			s.StartTime = ptr.To(metav1.Now())
		}
		if finished(phase) {
			s.CompletionTime = ptr.To(metav1.Now())
		}
		if change != nil {
			change(s)
		}
		return e.admin.Status().Update(context.Background(), &cur)
	})
	if err != nil {
		t.Fatalf("write the status of TaskRun %s: %v", run.Name, err)
	}
}

// inOrder checks that out holds each of wants, in that order.
func inOrder(t *testing.T, out string, wants ...string) {
	t.Helper()
	rest := out
	for _, w := range wants {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Errorf("output lacks %q after what came before:\n%s", w, out)
			return
		}
		rest = rest[i+len(w):]
	}
}

func TestRunCommand(t *testing.T) {
	e := startRunEnv(t)
	t.Run("usage", func(t *testing.T) { testRunUsage(t) })
	t.Run("phases to Succeeded and Failed", func(t *testing.T) { testRunPhases(t, e) })
	t.Run("custom-image attempts' logs", func(t *testing.T) { testRunLogs(t, e) })
	t.Run("refused", func(t *testing.T) { testRunRefused(t, e) })
	t.Run("kubeconfig", func(t *testing.T) { testRunKubeconfig(t, e) })
	t.Run("interrupted or deleted", func(t *testing.T) { testRunStopped(t, e) })
}

func testRunUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "no Task", wantCode: 2, wantErr: "want one TASK, got 0 arguments"},
		{name: "two Tasks", args: []string{"a", "b"}, wantCode: 2, wantErr: `want one TASK, got 2 arguments ["a" "b"]`},
		{name: "unknown flag", args: []string{"a", "--folow"}, wantCode: 2, wantErr: "flag provided but not defined: -folow"},
		{name: "help", args: []string{"-h"}, wantCode: 0, wantErr: "Usage: taskgate run TASK"},
		{name: "no kubeconfig", args: []string{"a", "--kubeconfig", "/nonexistent/kubeconfig"}, wantCode: 2, wantErr: "taskgate run: kubeconfig:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := run(append([]string{"run"}, tt.args...), nil, &stdout, &stderr)
			if code != tt.wantCode || !strings.Contains(stderr.String(), tt.wantErr) || stdout.Len() > 0 {
				t.Errorf("exit %d, want %d; stderr lacks %q or stdout is not empty\nstdout: %s\nstderr: %s",
					code, tt.wantCode, tt.wantErr, stdout.String(), stderr.String())
			}
		})
	}
}

func testRunPhases(t *testing.T, e *runEnv) {
	tests := []struct {
		name     string
		end      v1alpha1.TaskPhase
		message  string
		wantCode int
	}{
		{name: "succeeded", end: v1alpha1.TaskSucceeded, message: "patched 3 of 3 objects", wantCode: 0},
		{name: "failed", end: v1alpha1.TaskFailed, message: "2 objects could not be patched", wantCode: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := "run-phases-" + tt.name
			e.namespace(t, ns, "scale-down", v1alpha1.PluginTransformation)
			c := e.start(newFakeKubelet(), "scale-down", "-n", ns, "--follow", "--kubeconfig", e.kubeconfig)
			run := e.runOf(t, c, ns, "scale-down")
			c.waitOutput(t, "TaskRun "+run.Name+": Pending: waiting for the taskgate controller\n")
			e.setStatus(t, run, v1alpha1.TaskRunning, "patching 3 objects", nil)
			c.waitOutput(t, "TaskRun "+run.Name+": Running: patching 3 objects\n")
			e.setStatus(t, run, tt.end, tt.message, nil)
			if code := c.exit(t); code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstderr: %s", code, tt.wantCode, c.stderr.String())
			}
			inOrder(t, c.stdout.String(), run.Name+"\n", ": Pending", ": Running: patching 3 objects\n",
				fmt.Sprintf("TaskRun %s: %s: %s\n", run.Name, tt.end, tt.message))
		})
	}
}

// TestAttemptPod: the Pod whose log is streamed for each attempt, from the
// status as the controller writes it.
func TestAttemptPod(t *testing.T) {
	withStatus := func(ci *v1alpha1.CustomImageStatus) *v1alpha1.TaskRun {
		return &v1alpha1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: "r"}, Status: v1alpha1.TaskRunStatus{CustomImage: ci}}
	}
	retried := &v1alpha1.CustomImageStatus{Attempt: 2, PodName: "r-task-2",
		Attempts: []v1alpha1.CustomImageAttempt{{Pod: "r-task"}, {Pod: "r-task-1"}}}
	tests := []struct {
		name    string
		run     *v1alpha1.TaskRun
		attempt int32
		wantPod string // "" for none yet
	}{
		{name: "no status yet", run: &v1alpha1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: "r"}}},
		{name: "first attempt before its Pod is named", run: withStatus(&v1alpha1.CustomImageStatus{}), wantPod: "r-task"},
		{name: "first attempt named", run: withStatus(&v1alpha1.CustomImageStatus{PodName: "r-task"}), wantPod: "r-task"},
		{name: "next attempt not reached", run: withStatus(&v1alpha1.CustomImageStatus{PodName: "r-task"}), attempt: 1},
		{name: "finished attempt recorded", run: withStatus(retried), attempt: 1, wantPod: "r-task-1"},
		{name: "current attempt named", run: withStatus(retried), attempt: 2, wantPod: "r-task-2"},
		{name: "current attempt checkpointed, Pod not created", run: withStatus(&v1alpha1.CustomImageStatus{Attempt: 1,
			Attempts: []v1alpha1.CustomImageAttempt{{Pod: "r-task"}}}), attempt: 1, wantPod: "r-task-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod, ok := attemptPod(tt.run, tt.attempt)
			if pod != tt.wantPod || ok != (tt.wantPod != "") {
				t.Errorf("attemptPod(attempt %d) = %q, %v; want %q", tt.attempt, pod, ok, tt.wantPod)
			}
		})
	}
}
