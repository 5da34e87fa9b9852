package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/internal/images"
	"github.com/astronetes/taskgate/test/testutil"
)

// runTimeout bounds one run: a Pod on an idle node starts in seconds.
const runTimeout = 2 * time.Minute

// TestCustomImage runs custom-image's behaviours with real containers, in
// parallel, each in a namespace of its own. They are subtests of one test
// so that they finish before the release's tests (release_test.go), which
// end with the uninstall, start.
func TestCustomImage(t *testing.T) {
	for _, tc := range []struct {
		name string
		test func(*testing.T)
	}{
		{"HelloWorldSamplePrintsToItsLog", testHelloWorldSamplePrintsToItsLog},
		{"ExitCodeAndStderrReachTheRun", testExitCodeAndStderrReachTheRun},
		{"RetriesRunAFailingCommandAgain", testRetriesRunAFailingCommandAgain},
		{"TimeoutKillsTheContainer", testTimeoutKillsTheContainer},
		{"RestrictedNamespaceRunsAsNonRoot", testRestrictedNamespaceRunsAsNonRoot},
		{"EnvFromASecret", testEnvFromASecret},
		{"KubectlSampleReachesTheAPIServerWithItsClusterRole", testKubectlSampleReachesTheAPIServerWithItsClusterRole},
		{"KubectlWithoutClusterRoleIsRefusedInsideThePod", testKubectlWithoutClusterRoleIsRefusedInsideThePod},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t)
		})
	}
}

func testHelloWorldSamplePrintsToItsLog(t *testing.T) {
	ns := namespace(t, nil)
	plugin, cfg := sampleConfig(t, "custom-image-hello-world.yaml")
	r := runPlugin(t, ns, plugin, cfg, runTimeout)
	if r.Phase != v1alpha1.TaskSucceeded || r.ExitCode == nil || *r.ExitCode != 0 {
		t.Fatalf("hello-world: %s, exit code %v: %s", r.Phase, r.ExitCode, r.Message)
	}
	if got := podLog(t, r); strings.TrimSpace(got) != "hello world" {
		t.Errorf("kubectl logs: %q, want %q", got, "hello world")
	}
}

func testExitCodeAndStderrReachTheRun(t *testing.T) {
	ns := namespace(t, nil)
	r := runPlugin(t, ns, v1alpha1.PluginCustomImage, map[string]any{
		"image":   images.Busybox,
		"command": []string{"sh", "-c", "echo 'disk /data is full' >&2; exit 3"},
	}, runTimeout)
	if r.Phase != v1alpha1.TaskFailed || r.ExitCode == nil || *r.ExitCode != 3 {
		t.Fatalf("want Failed with exit code 3, got %s, %v: %s", r.Phase, r.ExitCode, r.Message)
	}
	// No termination message was written: FallbackToLogsOnError puts the
	// log's tail there, and the run says it.
	for _, want := range []string{"3", "disk /data is full"} {
		if !strings.Contains(r.Message, want) {
			t.Errorf("message %q lacks %q", r.Message, want)
		}
	}
}

func testRetriesRunAFailingCommandAgain(t *testing.T) {
	ns := namespace(t, nil)
	r := runPlugin(t, ns, v1alpha1.PluginCustomImage, map[string]any{
		"image":   images.Busybox,
		"command": []string{"sh", "-c", "echo attempt on $(hostname); exit 7"},
		"retries": 2,
	}, 2*runTimeout)
	if r.Phase != v1alpha1.TaskFailed {
		t.Fatalf("want Failed after every attempt, got %s: %s", r.Phase, r.Message)
	}
	if len(r.Attempts) != 3 {
		t.Fatalf("want 3 attempts (1 + retries 2), got %d: %+v", len(r.Attempts), r.Attempts)
	}
	pods := map[string]bool{}
	for _, a := range r.Attempts {
		if a.ExitCode == nil || *a.ExitCode != 7 {
			t.Errorf("attempt %s: exit code %v, want 7", a.Pod, a.ExitCode)
		}
		pods[a.Pod] = true
	}
	if len(pods) != 3 {
		t.Errorf("want a Pod per attempt, got %v", pods)
	}
}

func testTimeoutKillsTheContainer(t *testing.T) {
	ns := namespace(t, nil)
	start := time.Now()
	r := runPlugin(t, ns, v1alpha1.PluginCustomImage, map[string]any{
		"image":          images.Busybox,
		"command":        []string{"sleep", "3600"},
		"timeoutSeconds": 5,
	}, runTimeout)
	if r.Phase != v1alpha1.TaskFailed || r.Reason != "Timeout" {
		t.Fatalf("want Failed (Timeout), got %s (%s): %s", r.Phase, r.Reason, r.Message)
	}
	if d := time.Since(start); d > 90*time.Second {
		t.Errorf("a 5 s timeout took %s", d)
	}
	// The kubelet kills the container at the deadline: no `sleep 3600` is
	// left on this machine.
	waitNoProcess(t, "sleep", "3600")
}

// waitNoProcess waits until no process on this machine runs argv.
func waitNoProcess(t *testing.T, argv ...string) {
	t.Helper()
	want := strings.Join(argv, "\x00")
	deadline := time.Now().Add(time.Minute)
	for {
		var found []string
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			if _, err := strconv.Atoi(e.Name()); err != nil {
				continue
			}
			cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if strings.TrimRight(string(cmdline), "\x00") == want {
				found = append(found, e.Name())
			}
		}
		if len(found) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v still runs (pids %v)", argv, found)
		}
		time.Sleep(time.Second)
	}
}

func testRestrictedNamespaceRunsAsNonRoot(t *testing.T) {
	ns := namespace(t, map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})
	r := runPlugin(t, ns, v1alpha1.PluginCustomImage, map[string]any{
		"image":           images.Busybox,
		"command":         []string{"id", "-u"},
		"securityContext": map[string]any{"runAsNonRoot": true, "runAsUser": 1000},
	}, runTimeout)
	if r.Phase != v1alpha1.TaskSucceeded {
		t.Fatalf("want Succeeded, got %s: %s", r.Phase, r.Message)
	}
	if got := strings.TrimSpace(podLog(t, r)); got != "1000" {
		t.Errorf("id -u printed %q, want 1000", got)
	}
}

func testEnvFromASecret(t *testing.T) {
	ns := namespace(t, nil)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns}, StringData: map[string]string{"password": "s3cr3t-from-secret"}}
	if err := cluster.admin.Client.Create(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	r := runPlugin(t, ns, v1alpha1.PluginCustomImage, map[string]any{
		"image":   images.Busybox,
		"command": []string{"sh", "-c", `echo "password=$DB_PASSWORD"`},
		"env": []map[string]any{{"name": "DB_PASSWORD", "valueFrom": map[string]any{
			"secretKeyRef": map[string]any{"name": "db", "key": "password"}}}},
	}, runTimeout)
	if r.Phase != v1alpha1.TaskSucceeded {
		t.Fatalf("want Succeeded, got %s: %s", r.Phase, r.Message)
	}
	if got := strings.TrimSpace(podLog(t, r)); got != "password=s3cr3t-from-secret" {
		t.Errorf("log %q: the Secret's value did not reach the container", got)
	}
}

func testKubectlSampleReachesTheAPIServerWithItsClusterRole(t *testing.T) {
	ns := namespace(t, nil)
	plugin, cfg := sampleConfig(t, "custom-image-kubectl.yaml")
	r := runPlugin(t, ns, plugin, cfg, runTimeout)
	if r.Phase != v1alpha1.TaskSucceeded {
		t.Fatalf("want Succeeded, got %s: %s", r.Phase, r.Message)
	}
	// From inside the Pod, through the `kubernetes` Service (kube-proxy),
	// with the Pod's ServiceAccount token.
	if got := podLog(t, r); !strings.Contains(got, "Kubernetes control plane is running at https://") {
		t.Errorf("kubectl cluster-info printed:\n%s", got)
	}
	if r.BindingName == "" {
		t.Fatal("the run records no ClusterRoleBinding")
	}
	// After the run, the binding is gone.
	testutil.Eventually(t, "ClusterRoleBinding "+r.BindingName+" removed after the run", func() error {
		err := cluster.cp.Client.Get(context.Background(), client.ObjectKey{Name: r.BindingName}, &rbacv1.ClusterRoleBinding{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
}

func testKubectlWithoutClusterRoleIsRefusedInsideThePod(t *testing.T) {
	ns := namespace(t, nil)
	plugin, cfg := sampleConfig(t, "custom-image-kubectl.yaml")
	delete(cfg, "clusterRole")
	r := runPlugin(t, ns, plugin, cfg, runTimeout)
	// The Pod ran (an exit code), the API server refused the command.
	if r.Phase != v1alpha1.TaskFailed || r.ExitCode == nil || *r.ExitCode == 0 {
		t.Fatalf("want Failed with a non-zero exit code, got %s, %v: %s", r.Phase, r.ExitCode, r.Message)
	}
	if !strings.Contains(r.Message, "forbidden") {
		t.Errorf("message %q does not say RBAC refused", r.Message)
	}
}
