//go:build controlplane

// The tests of `make run` as it runs: with kube-controller-manager,
// kube-scheduler and kwok beside etcd and kube-apiserver. They need the
// binaries that `make envtest-run` builds (minutes on a cold machine), so
// they are behind the controlplane build tag and `make test-run`, and CI's
// `make test` keeps its pace; a missing binary fails them, never skips.
package run_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/astronetes/taskgate/test/testutil"
)

func TestDemoWithNodes(t *testing.T) {
	for _, bin := range []string{"kube-controller-manager", "kube-scheduler", "kwok"} {
		if _, err := os.Stat(filepath.Join(testutil.AssetsDir(), bin)); err != nil {
			t.Fatalf("%s missing in %s: run `make envtest-run` (make test-run does)", bin, testutil.AssetsDir())
		}
	}
	// Not --exit-after-demo: the cluster stays up for the checks below, as
	// it does for a user after `make run`.
	p := start(t)
	deadline := time.Now().Add(6 * time.Minute)
	for !strings.Contains(p.out.String(), "Running; press Ctrl-C") {
		if _, exited := p.wait(200 * time.Millisecond); exited || time.Now().After(deadline) {
			t.Fatalf("taskgate-local did not finish its demo (exited=%v):\n%s", exited, p.out)
		}
	}
	text := p.out.String()
	t.Logf("output:\n%s", text)
	// The leftover check at the end proves something only if every
	// component names the state dir in its command line.
	running := strings.Join(leftovers(p.state), "\n")
	for _, bin := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "taskgate"} {
		if !strings.Contains(running, "/"+bin+" ") {
			t.Errorf("no running %s names the state dir; the leftover check would miss it:\n%s", bin, running)
		}
	}

	// Every run finished, custom-image ones included: their Pods were
	// scheduled onto kwok's node and (simulated) ran to completion. Five
	// runs: one of each sample, hello-world twice.
	runs := taskRunsTable(text)
	if len(runs) < 6 {
		t.Fatalf("want a header and 5 runs in the TaskRun table:\n%s", strings.Join(runs, "\n"))
	}
	for _, row := range runs[1:] {
		if !slices.Contains(strings.Fields(row), "Succeeded") {
			t.Errorf("run not Succeeded: %s", row)
		}
	}
	for _, plugin := range []string{"custom-image", "kubernetes-object-transformation", "run-synchronization"} {
		if !hasRow(runs, plugin, "Succeeded") {
			t.Errorf("no Succeeded %s run", plugin)
		}
	}
	if tables := tasksTables(text); len(tables) == 0 || !hasRow(tables[len(tables)-1], "custom-image", "Succeeded") {
		t.Errorf("no custom-image Task whose last run Succeeded in the last Task table")
	}
	for _, want := range []string{
		"Pods are SIMULATED",
		"no container runs",
		"node kwok-node-0 Ready",

		"==> aggregated ClusterRoles (rules, Tasks among them): admin ",
		"No resources found in default namespace.",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(text, "No Pods run here") {
		t.Error("output says no Pods run, with nodes")
	}
	if !regexp.MustCompile(`(?m)^default\s+\S+-task\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+kwok-node-0\s`).MatchString(text) {
		t.Error("no run's Pod on kwok-node-0 in `kubectl get pods -A -o wide`")
	}
	// Deleting the Task hello-world took its two runs and their Pods
	// (owner references, kube-controller-manager's garbage collector); each
	// run's ServiceAccount went when the run finished.
	if !regexp.MustCompile(`garbage collected: taskrun/hello-world-\S+, taskrun/hello-world-\S+, pod/hello-world-\S+-task, pod/hello-world-\S+-task[, ]`).MatchString(text) {
		t.Error("output lacks the garbage collection of Task hello-world's two runs and their Pods")
	}

	k := func(args ...string) (string, error) {
		return runTool(t, filepath.Join(testutil.AssetsDir(), "kubectl"), append([]string{"--kubeconfig=" + filepath.Join(p.state, "kubeconfig")}, args...)...)
	}

	// Garbage collection, checked from outside: the deleted Task and its
	// runs, their Pods and ServiceAccounts are gone, the other Tasks' are
	// not.
	if out, err := k("get", "task", "hello-world", "-n", "default"); err == nil || !strings.Contains(out, "NotFound") {
		t.Errorf("Task hello-world still there after the demo deleted it: %s", out)
	}
	if out, _ := k("get", "taskruns,pods,serviceaccounts", "-n", "default", "-l", "automation.astronetes.io/task=hello-world", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Errorf("hello-world's runs or their children outlived it:\n%s", out)
	}
	if out, err := k("get", "pods", "-n", "default", "-l", "automation.astronetes.io/task=kubectl", "-o", "jsonpath={range .items[*]}{.status.phase} {.spec.nodeName}{end}"); err != nil || out != "Succeeded kwok-node-0" {
		t.Errorf("the Pod of Task kubectl's run: %q (%v), want one, Succeeded on kwok-node-0", out, err)
	}

	// Namespace lifecycle: kube-controller-manager empties and removes a
	// deleted namespace (kubectl delete waits for that).
	if out, err := k("create", "namespace", "lifecycle"); err != nil {
		t.Fatalf("create namespace: %v\n%s", err, out)
	}
	if out, err := k("create", "configmap", "x", "-n", "lifecycle"); err != nil {
		t.Fatalf("create configmap: %v\n%s", err, out)
	}
	if out, err := k("delete", "namespace", "lifecycle", "--timeout=90s"); err != nil {
		t.Errorf("namespace lifecycle not removed: %v\n%s", err, out)
	}

	// The metrics endpoint: printed, answering, on loopback only.
	m := metricsLine.FindStringSubmatch(text)
	if m == nil {
		t.Fatal("no \"==> metrics: http://127.0.0.1:<port>/metrics\" line")
	}
	port, _ := strconv.Atoi(m[2])
	checkMetrics(t, m[1], port)

	// The chart installs into this cluster beside make run's own objects:
	// none of them takes a name a release called taskgate renders.
	if out, _ := k("get", "mutatingwebhookconfigurations,validatingwebhookconfigurations", "-o", "name"); !strings.Contains(out, "taskgate-local-mutating") || !strings.Contains(out, "taskgate-local-validating") {
		t.Errorf("make run's webhook configurations are not named taskgate-local-*:\n%s", out)
	}
	helmHome := t.TempDir()
	helm := func(args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(testutil.AssetsDir(), "helm"), append(args, "--kubeconfig", filepath.Join(p.state, "kubeconfig"))...)
		cmd.Dir = testutil.RepoRoot()
		cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+filepath.Join(helmHome, "config"),
			"HELM_CACHE_HOME="+filepath.Join(helmHome, "cache"), "HELM_DATA_HOME="+filepath.Join(helmHome, "data"))
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	// crds.enabled=false: make run installed the Task CRD itself, as a
	// platform that manages its CRDs does (chart README, "Upgrading").
	if out, err := helm("install", "taskgate", "charts/taskgate", "--namespace", "taskgate-system", "--create-namespace", "--set", "crds.enabled=false"); err != nil {
		t.Errorf("helm install into make run's cluster: %v\n%s", err, out)
	} else if out, _ := k("get", "mutatingwebhookconfigurations,validatingwebhookconfigurations", "-o", "name"); !strings.Contains(out, "/taskgate-mutating") || !strings.Contains(out, "/taskgate-validating") {
		t.Errorf("after helm install, the release's webhook configurations are missing:\n%s", out)
	}

	p.interrupt(t, 2*time.Minute) // the fuller control plane takes longer to stop
}

// TestInterruptedWithNodes sends SIGTERM while kube-controller-manager,
// kube-scheduler and kwok start: everything started so far must stop.
func TestInterruptedWithNodes(t *testing.T) {
	p := start(t)
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(p.out.String(), "starting kube-controller-manager") {
		if _, exited := p.wait(100 * time.Millisecond); exited || time.Now().After(deadline) {
			t.Fatalf("the components did not start:\n%s", p.out)
		}
	}
	// Until kube-controller-manager runs, so there is more to stop than
	// etcd and kube-apiserver.
	for !strings.Contains(strings.Join(leftovers(p.state), "\n"), "/kube-controller-manager ") {
		if _, exited := p.wait(50 * time.Millisecond); exited || time.Now().After(deadline) {
			t.Fatalf("kube-controller-manager did not start:\n%s", p.out)
		}
	}
	p.interrupt(t, time.Minute)
}

// runTool runs a binary and returns its combined output, trimmed.
func runTool(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return strings.TrimSpace(string(b)), err
}
