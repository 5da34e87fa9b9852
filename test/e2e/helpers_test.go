package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
)

// runResult is a finished run as the tests read it. It is the one shape
// the tests see, so that what a run is (a TaskRun) is said in createRun
// and waitRun alone.
type runResult struct {
	Namespace, Name string
	Phase           v1alpha1.TaskPhase
	Message         string
	Reason          string
	PodName         string
	ExitCode        *int32
	Attempts        []v1alpha1.CustomImageAttempt
	BindingName     string
}

// runPlugin creates, as the e2e admin, a run of plugin with config in
// namespace ns and waits up to timeout until it has finished (Succeeded or
// Failed). config is anything that marshals to the plugin's config.
func runPlugin(t *testing.T, ns string, plugin v1alpha1.Plugin, config any, timeout time.Duration) runResult {
	t.Helper()
	return waitRun(t, startRun(t, ns, "e2e-", plugin, config), timeout)
}

// startRun creates a run of plugin with config in ns, named from prefix,
// and returns its key. With waitRun, the one place that says what a run
// is.
func startRun(t *testing.T, ns, prefix string, plugin v1alpha1.Plugin, config any) client.ObjectKey {
	t.Helper()
	key, err := createRun(ns, prefix, plugin, rawJSON(t, config))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// createRun is startRun returning the error (admission's refusal, say):
// a TaskRun with the plugin and config inline (spec.taskSpec).
func createRun(ns, prefix string, plugin v1alpha1.Plugin, config runtime.RawExtension) (client.ObjectKey, error) {
	run := &v1alpha1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix, Namespace: ns},
		Spec:       v1alpha1.TaskRunSpec{TaskSpec: &v1alpha1.PluginSpec{Plugin: plugin, Config: config}},
	}
	if err := cluster.admin.Client.Create(context.Background(), run); err != nil {
		return client.ObjectKey{}, fmt.Errorf("create a %s run in %s: %w", plugin, ns, err)
	}
	return client.ObjectKeyFromObject(run), nil
}

// waitRun waits up to timeout until the run has finished and returns it.
func waitRun(t *testing.T, key client.ObjectKey, timeout time.Duration) runResult {
	t.Helper()
	var run v1alpha1.TaskRun
	testutil.EventuallyWithin(t, timeout, fmt.Sprintf("run %s to finish", key), func() error {
		if err := cluster.admin.Client.Get(context.Background(), key, &run); err != nil {
			return err
		}
		if run.Status.Phase != v1alpha1.TaskSucceeded && run.Status.Phase != v1alpha1.TaskFailed {
			return fmt.Errorf("phase %q: %s", run.Status.Phase, run.Status.Message)
		}
		return nil
	})
	st := run.Status
	r := runResult{Namespace: key.Namespace, Name: key.Name, Phase: st.Phase, Message: st.Message}
	for _, c := range st.Conditions {
		if c.Type == v1alpha1.ConditionSucceeded {
			r.Reason = c.Reason
		}
	}
	if ci := st.CustomImage; ci != nil {
		r.PodName, r.ExitCode, r.Attempts, r.BindingName = ci.PodName, ci.ExitCode, ci.Attempts, ci.ClusterRoleBindingName
	}
	t.Logf("run %s: %s (%s): %s", key, r.Phase, r.Reason, r.Message)
	return r
}

// sampleConfig is the plugin and config of a sample Task of config/samples.
func sampleConfig(t *testing.T, file string) (v1alpha1.Plugin, map[string]any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "config", "samples", file))
	if err != nil {
		t.Fatal(err)
	}
	var task v1alpha1.Task
	if err := yaml.UnmarshalStrict(data, &task); err != nil {
		t.Fatalf("sample %s: %v", file, err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(task.Spec.Config.Raw, &cfg); err != nil {
		t.Fatalf("sample %s config: %v", file, err)
	}
	return task.Spec.Plugin, cfg
}

// namespace creates a namespace of the test's own with labels, deleted
// when the test ends.
func namespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-", Labels: labels}}
	if err := cluster.cp.Client.Create(ctx, ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() { _ = cluster.cp.Client.Delete(context.Background(), ns) })
	// kube-controller-manager makes the default ServiceAccount; a Pod's
	// admission (and taskgate's preflight) needs it.
	testutil.Eventually(t, "default ServiceAccount in "+ns.Name, func() error {
		return cluster.cp.Client.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "default"}, &corev1.ServiceAccount{})
	})
	return ns.Name
}

// kubectl runs the built kubectl as the e2e admin and returns its output.
func kubectl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return command(t, filepath.Join(testutil.AssetsDir(), "kubectl"), nil, append([]string{"--kubeconfig", cluster.admin.Kubeconfig}, args...)...)
}

// helm runs the built helm as the e2e admin, with helm homes of its own.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return command(t, testutil.HelmPath(), helmEnv(), append([]string{"--kubeconfig", cluster.admin.Kubeconfig}, args...)...)
}

func helmEnv() []string {
	return []string{"HELM_CONFIG_HOME=" + filepath.Join(cluster.helmHome, "config"),
		"HELM_CACHE_HOME=" + filepath.Join(cluster.helmHome, "cache"), "HELM_DATA_HOME=" + filepath.Join(cluster.helmHome, "data")}
}

// command runs bin with args (t may be nil: set-up) for up to 5 minutes.
func command(t *testing.T, bin string, env []string, args ...string) (string, error) {
	if t != nil {
		t.Helper()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if t != nil {
		t.Logf("$ %s %s\n%s", filepath.Base(bin), strings.Join(args, " "), out.String())
	}
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w", filepath.Base(bin), strings.Join(args, " "), err)
	}
	return out.String(), nil
}

// podLog is `kubectl logs` of a run's Pod.
func podLog(t *testing.T, r runResult) string {
	t.Helper()
	if r.PodName == "" {
		t.Fatalf("run %s/%s has no Pod", r.Namespace, r.Name)
	}
	out, err := kubectl(t, "logs", "-n", r.Namespace, "pod/"+r.PodName)
	if err != nil {
		t.Fatalf("kubectl logs: %v", err)
	}
	return out
}

// rawJSON is v as a Task's config.
func rawJSON(t *testing.T, v any) runtime.RawExtension {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return runtime.RawExtension{Raw: raw}
}
