package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
)

// fakeKubelet plays the kubelet's part of a Pod's log, which envtest has
// none of: a Pod's log is there once the test says what its container
// wrote (terminated), each line stamped as the kubelet stamps it; before,
// opening it fails as the API server does for a Pod not created yet.
type fakeKubelet struct {
	mu    sync.Mutex
	logs  map[string][]string // pod name: stamped lines
	opens map[string]int      // pod name: Stream calls
	// served counts the streams of a pod that found its log.
	served map[string]int
	// breakFirst makes the first stream of a pod break after that many lines.
	breakFirst map[string]int
}

func newFakeKubelet() *fakeKubelet {
	return &fakeKubelet{logs: map[string][]string{}, opens: map[string]int{}, served: map[string]int{}, breakFirst: map[string]int{}}
}

// wrote records what pod's container wrote, a line each, a millisecond
// apart (all within one second, as a burst of output is).
func (k *fakeKubelet) wrote(pod string, lines ...string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	at := time.Now().Truncate(time.Second)
	for i, l := range lines {
		k.logs[pod] = append(k.logs[pod], at.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano)+" "+l+"\n")
	}
}

func (k *fakeKubelet) opened(pod string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.opens[pod]
}

func (k *fakeKubelet) Stream(_ context.Context, _, pod, container string, since *metav1.Time) (io.ReadCloser, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.opens[pod]++
	lines, ok := k.logs[pod]
	if !ok || container != "task" {
		return nil, apierrors.NewNotFound(corev1.Resource("pods"), pod)
	}
	k.served[pod]++
	var out []string
	for _, l := range lines {
		// The API server's sinceTime has a second's precision.
		if at, _ := time.Parse(time.RFC3339Nano, strings.Fields(l)[0]); since == nil || !at.Before(since.Time.Truncate(time.Second)) {
			out = append(out, l)
		}
	}
	var err error = io.EOF
	if n, ok := k.breakFirst[pod]; ok && k.served[pod] == 1 {
		out, err = out[:n], io.ErrUnexpectedEOF
	}
	return io.NopCloser(&brokenReader{r: strings.NewReader(strings.Join(out, "")), err: err}), nil
}

// brokenReader reads r, then ends with err (io.EOF: the container ended).
type brokenReader struct {
	r   io.Reader
	err error
}

func (b *brokenReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if errors.Is(err, io.EOF) {
		err = b.err
	}
	return n, err
}

// testRunLogs: a custom-image run's first attempt fails, the second
// (a new Pod, not there yet when the run names it) succeeds; its log's
// stream breaks once. Each line is printed once, in order, after the
// Pod's name.
func testRunLogs(t *testing.T, e *runEnv) {
	ns := "run-logs"
	e.namespace(t, ns, "diagnose", v1alpha1.PluginCustomImage)
	kubelet := newFakeKubelet()
	c := e.start(kubelet, "diagnose", "--namespace", ns, "--kubeconfig", e.kubeconfig, "--follow")
	run := e.runOf(t, c, ns, "diagnose")
	pod0, pod1 := v1alpha1.PodName(run.Name), v1alpha1.AttemptPodName(run.Name, 1)
	c.waitOutput(t, ": Pending")

	kubelet.wrote(pod0, "checking the database", "connection refused")
	e.setStatus(t, run, v1alpha1.TaskRunning, "attempt 1 of 2", func(s *v1alpha1.TaskRunStatus) {
		s.CustomImage = &v1alpha1.CustomImageStatus{PodName: pod0}
	})
	c.waitOutput(t, "connection refused\n")

	// As the controller does: the next attempt is checkpointed (podName
	// cleared) before its Pod is created, and named once it is.
	e.setStatus(t, run, v1alpha1.TaskRunning, "attempt 2 of 2", func(s *v1alpha1.TaskRunStatus) {
		s.CustomImage.Attempt, s.CustomImage.PodName = 1, ""
		s.CustomImage.Attempts = []v1alpha1.CustomImageAttempt{{Pod: pod0, ExitCode: ptrTo[int32](1), Reason: "Error"}}
	})
	testutil.Eventually(t, "a try at the log of the second Pod before it exists", func() error {
		if kubelet.opened(pod1) == 0 {
			return errors.New("not opened yet")
		}
		return nil
	})
	e.setStatus(t, run, v1alpha1.TaskRunning, "attempt 2 of 2", func(s *v1alpha1.TaskRunStatus) { s.CustomImage.PodName = pod1 })
	kubelet.mu.Lock()
	kubelet.breakFirst[pod1] = 1
	kubelet.mu.Unlock()
	kubelet.wrote(pod1, "checking the database", "database is up", "diagnosis: ok")
	c.waitOutput(t, "diagnosis: ok\n")

	e.setStatus(t, run, v1alpha1.TaskSucceeded, "the container exited 0", nil)
	if code := c.exit(t); code != 0 {
		t.Errorf("exit %d, want 0\nstderr: %s", code, c.stderr.String())
	}
	out := c.stdout.String()
	p0, p1 := "[pod/"+pod0+"/task] ", "[pod/"+pod1+"/task] "
	inOrder(t, out, ": Running: attempt 1 of 2\n", p0+"checking the database\n", p0+"connection refused\n",
		": Running: attempt 2 of 2\n", p1+"checking the database\n", p1+"database is up\n", p1+"diagnosis: ok\n",
		": Succeeded: the container exited 0\n")
	if n := strings.Count(out, p1+"checking the database\n"); n != 1 {
		t.Errorf("the line before the broken stream printed %d times, want once:\n%s", n, out)
	}
	if n := kubelet.opened(pod1); n < 3 {
		t.Errorf("the second Pod's log opened %d times, want a try before it existed, the broken stream and its resumption", n)
	}
}

func ptrTo[T any](v T) *T { return &v }

// testRunRefused: no run is started (exit 2) when the Task does not exist,
// when the user may not create TaskRuns, or when admission refuses; the
// API server's refusal is printed as it gave it.
func testRunRefused(t *testing.T, e *runEnv) {
	ctx := context.Background()
	ns := "run-refused"
	e.namespace(t, ns, "hello-world", v1alpha1.PluginTransformation)
	if err := e.admin.Create(ctx, frozenTask(ns)); err != nil {
		t.Fatal(err)
	}
	freeze(t, e, ns)
	reader := readOnlyUser(t, e)
	tests := []struct {
		name       string
		kubeconfig string
		task       string
		wantErr    []string
	}{
		{name: "Task not found", kubeconfig: e.kubeconfig, task: "helo-world",
			wantErr: []string{`taskgate run: no Task "helo-world" in namespace run-refused; did you mean "hello-world"?: nothing to run`}},
		{name: "no right to create TaskRuns", kubeconfig: reader, task: "hello-world",
			wantErr: []string{"taskgate run: create a TaskRun of Task run-refused/hello-world:", `User "reader" cannot create resource "taskruns" in API group "automation.astronetes.io" in the namespace "run-refused"`}},
		{name: "admission refuses", kubeconfig: e.kubeconfig, task: "frozen",
			wantErr: []string{"ValidatingAdmissionPolicy 'taskgate-run-test-freeze' with binding 'taskgate-run-test-freeze' denied request: runs of frozen are suspended"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.start(newFakeKubelet(), tt.task, "-n", ns, "--kubeconfig", tt.kubeconfig, "--follow")
			if code := c.exit(t); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(c.stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, c.stderr.String())
				}
			}
			if c.stdout.String() != "" {
				t.Errorf("stdout %q, want nothing: no run was started", c.stdout.String())
			}
		})
	}
	var runs v1alpha1.TaskRunList
	if err := e.admin.List(ctx, &runs, client.InNamespace(ns)); err != nil || len(runs.Items) != 0 {
		t.Errorf("%d TaskRuns (%v), want none", len(runs.Items), err)
	}
}

func frozenTask(ns string) *v1alpha1.Task {
	tk := &v1alpha1.Task{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "frozen"},
		Spec: v1alpha1.TaskSpec{PluginSpec: v1alpha1.PluginSpec{Plugin: v1alpha1.PluginCustomImage}}}
	tk.Spec.Config.Raw = []byte(`{"image":"busybox:1.36","command":["true"]}`)
	return tk
}

// freeze installs a ValidatingAdmissionPolicy that refuses TaskRuns of
// Task "frozen" in ns: admission's refusal, without taskgate's webhook.
func freeze(t *testing.T, e *runEnv, ns string) {
	t.Helper()
	ctx := context.Background()
	name := "taskgate-run-test-freeze"
	policy := &admissionregv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptrTo(admissionregv1.Fail),
			MatchConstraints: &admissionregv1.MatchResources{ResourceRules: []admissionregv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregv1.RuleWithOperations{Operations: []admissionregv1.OperationType{admissionregv1.Create},
					Rule: admissionregv1.Rule{APIGroups: []string{v1alpha1.GroupVersion.Group}, APIVersions: []string{"*"}, Resources: []string{"taskruns"}}}}}},
			Validations: []admissionregv1.Validation{{Expression: `object.spec.taskRef.name != "frozen"`, Message: "runs of frozen are suspended"}},
		}}
	binding := &admissionregv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: name,
			ValidationActions: []admissionregv1.ValidationAction{admissionregv1.Deny},
			MatchResources: &admissionregv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}}}}
	for _, o := range []client.Object{policy, binding} {
		if err := e.admin.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, "the policy in force", func() error {
		probe := &v1alpha1.TaskRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "frozen-"},
			Spec: v1alpha1.TaskRunSpec{TaskRef: &v1alpha1.TaskRef{Name: "frozen"}}}
		if err := e.admin.Create(ctx, probe, client.DryRunAll); err == nil {
			return errors.New("a TaskRun of frozen is still admitted")
		}
		return nil
	})
}

// readOnlyUser is a user who may read Tasks and TaskRuns but not create
// them; it returns the user's kubeconfig.
func readOnlyUser(t *testing.T, e *runEnv) string {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "taskgate-run-test-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"tasks", "taskruns"}, Verbs: []string{"get", "list", "watch"}}}}
	if err := e.admin.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	if err := e.cp.BindClusterRole(ctx, role.Name, role.Name, testutil.UserSubject("reader")); err != nil {
		t.Fatal(err)
	}
	u, err := e.cp.AddUser(envtest.User{Name: "reader"})
	if err != nil {
		t.Fatal(err)
	}
	return u.Kubeconfig
}

// testRunKubeconfig: the kubeconfig is found as kubectl finds it
// ($KUBECONFIG), the namespace is the context's unless -n says otherwise,
// and --context picks another context. Without --follow the command
// prints the run's name and ends.
func testRunKubeconfig(t *testing.T, e *runEnv) {
	cfg, err := clientcmd.LoadFromFile(e.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	current := cfg.Contexts[cfg.CurrentContext]
	current.Namespace = "run-kc-current"
	other := current.DeepCopy()
	other.Namespace = "run-kc-other"
	cfg.Contexts["other"] = other
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", path)
	for _, ns := range []string{"run-kc-current", "run-kc-other", "run-kc-flag"} {
		e.namespace(t, ns, "hello-world", v1alpha1.PluginTransformation)
	}
	tests := []struct {
		name   string
		args   []string
		wantNS string
	}{
		{name: "context's namespace", wantNS: "run-kc-current"},
		{name: "--context", args: []string{"--context", "other"}, wantNS: "run-kc-other"},
		{name: "-n over the context's", args: []string{"--context", "other", "-n", "run-kc-flag"}, wantNS: "run-kc-flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.start(newFakeKubelet(), append(tt.args, "hello-world")...)
			if code := c.exit(t); code != 0 {
				t.Fatalf("exit %d, want 0\nstderr: %s", code, c.stderr.String())
			}
			run := e.runOf(t, c, tt.wantNS, "hello-world")
			if got := c.stdout.String(); got != run.Name+"\n" {
				t.Errorf("stdout %q, want only the TaskRun's name %q", got, run.Name)
			}
		})
	}
}

// testRunStopped: Ctrl-C stops following (exit 130, the run is left
// running, and the command says so); a run deleted while followed ends
// the command with exit 1.
func testRunStopped(t *testing.T, e *runEnv) {
	tests := []struct {
		name     string
		stop     func(e *runEnv, c *command, run *v1alpha1.TaskRun) error
		wantCode int
		wantErr  string
		wantRun  bool
	}{
		{name: "Ctrl-C", wantCode: 130, wantRun: true, wantErr: "interrupted: stopped following; TaskRun run-stopped-ctrl-c/%s keeps running",
			stop: func(_ *runEnv, c *command, _ *v1alpha1.TaskRun) error { c.cancel(); return nil }},
		{name: "deleted", wantCode: 1, wantErr: "TaskRun run-stopped-deleted/%s was deleted before it finished",
			stop: func(e *runEnv, _ *command, run *v1alpha1.TaskRun) error {
				return e.admin.Delete(context.Background(), run)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := "run-stopped-" + strings.ToLower(tt.name)
			e.namespace(t, ns, "restore", v1alpha1.PluginTransformation)
			c := e.start(newFakeKubelet(), "restore", "-n", ns, "--follow", "--kubeconfig", e.kubeconfig)
			run := e.runOf(t, c, ns, "restore")
			e.setStatus(t, run, v1alpha1.TaskRunning, "restoring", nil)
			c.waitOutput(t, ": Running: restoring\n")
			if err := tt.stop(e, c, run); err != nil {
				t.Fatal(err)
			}
			if code := c.exit(t); code != tt.wantCode {
				t.Errorf("exit %d, want %d", code, tt.wantCode)
			}
			if want := fmt.Sprintf(tt.wantErr, run.Name); !strings.Contains(c.stderr.String(), want) {
				t.Errorf("stderr lacks %q:\n%s", want, c.stderr.String())
			}
			err := e.admin.Get(context.Background(), client.ObjectKeyFromObject(run), &v1alpha1.TaskRun{})
			if exists := err == nil; exists != tt.wantRun {
				t.Errorf("TaskRun exists: %v (%v), want %v", exists, err, tt.wantRun)
			}
		})
	}
}
