package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/internal/images"
	"github.com/astronetes/taskgate/test/testutil"
)

// The release's tests run in this file's order, after the custom-image
// tests (files run in name order), and end with the uninstall.

func TestReleaseServesWebhooksThroughItsService(t *testing.T) {
	ctx := context.Background()
	// The manager's own rotation wrote the caBundle the API server uses.
	var vwc admissionregistrationv1.ValidatingWebhookConfigurationList
	if err := cluster.cp.Client.List(ctx, &vwc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range vwc.Items {
		for _, w := range c.Webhooks {
			if w.ClientConfig.Service == nil || w.ClientConfig.Service.Namespace != releaseNamespace {
				continue
			}
			found = true
			if len(w.ClientConfig.CABundle) == 0 {
				t.Errorf("webhook %s of %s has no caBundle", w.Name, c.Name)
			}
		}
	}
	if !found {
		t.Fatalf("no validating webhook of the release calls a Service in %s", releaseNamespace)
	}
	// A wrong Task is refused by the webhook (through the Service, by the
	// API server), naming the field.
	ns := namespace(t, nil)
	wrong := &v1alpha1.Task{ObjectMeta: metav1.ObjectMeta{Name: "wrong", Namespace: ns}, Spec: v1alpha1.TaskSpec{
		Plugin: v1alpha1.PluginCustomImage, Config: rawJSON(t, map[string]any{"image": images.Busybox, "command": []string{"true"}, "imagge": "typo"})}}
	err := cluster.admin.Client.Create(ctx, wrong)
	if err == nil || !strings.Contains(err.Error(), "imagge") {
		t.Fatalf("a Task with an unknown config field: %v, want a refusal naming imagge", err)
	}
	if !strings.Contains(err.Error(), "admission webhook") {
		t.Errorf("refused, but not by a webhook: %v", err)
	}
}

func TestReleaseHelmTestPasses(t *testing.T) {
	if _, err := helm(t, "test", releaseName, "--namespace", releaseNamespace, "--timeout", "3m"); err != nil {
		t.Fatal(err)
	}
}

func TestReleaseImageRunsTheBinaryBuiltHere(t *testing.T) {
	// `taskgate version` of the binary the image holds, run by the node,
	// against the same binary run here.
	want, err := command(nil, cluster.taskgate, nil, "version")
	if err != nil {
		t.Fatal(err)
	}
	ns := namespace(t, nil)
	r := runPlugin(t, ns, v1alpha1.PluginCustomImage, map[string]any{
		"image": images.Taskgate, "command": []string{"/taskgate", "version"},
		"securityContext": map[string]any{"runAsNonRoot": true},
	}, runTimeout)
	if r.Phase != v1alpha1.TaskSucceeded {
		t.Fatalf("taskgate version in the image: %s: %s", r.Phase, r.Message)
	}
	if got := podLog(t, r); strings.TrimSpace(got) != strings.TrimSpace(want) || strings.TrimSpace(got) == "" {
		t.Errorf("the image's taskgate version: %q, this binary's: %q", got, want)
	}
}

func TestReleaseUpgradeRollsBothReplicas(t *testing.T) {
	ctx := context.Background()
	args := append([]string{"upgrade", releaseName, filepath.Join(testutil.RepoRoot(), "charts", "taskgate"),
		"--namespace", releaseNamespace, "--wait", "--timeout", "4m", "--set", "logLevel=debug"}, chartValues...)
	if _, err := helm(t, args...); err != nil {
		t.Fatal(err)
	}
	if err := waitReplicasReady(ctx, 2, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	out, err := helm(t, "history", releaseName, "--namespace", releaseNamespace)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "deployed") || !strings.Contains(out, "superseded") {
		t.Errorf("helm history after an upgrade:\n%s", out)
	}
	// The upgraded release admits and runs.
	ns := namespace(t, nil)
	plugin, cfg := sampleConfig(t, "custom-image-hello-world.yaml")
	if r := runPlugin(t, ns, plugin, cfg, runTimeout); r.Phase != v1alpha1.TaskSucceeded {
		t.Errorf("hello-world after the upgrade: %s: %s", r.Phase, r.Message)
	}
}

// TestReleaseLeaderTakeover kills the leader's Pod (no grace: its Lease is
// not released) while runs are in flight: the other replica takes the
// Lease within the lease duration and every run completes exactly once.
func TestReleaseLeaderTakeover(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, nil)
	old, lease, err := leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leaseDuration := time.Duration(ptr.Deref(lease.Spec.LeaseDurationSeconds, 15)) * time.Second
	const runs = 4
	var keys []client.ObjectKey
	for i := 0; i < runs; i++ {
		keys = append(keys, startRun(t, ns, "inflight-", v1alpha1.PluginCustomImage,
			map[string]any{"image": images.Busybox, "command": []string{"sh", "-c", "sleep 8; echo done"}}))
	}
	// Wait until the runs' Pods exist: in flight, not merely admitted.
	testutil.EventuallyWithin(t, time.Minute, "every run's Pod created", func() error {
		var pods corev1.PodList
		if err := cluster.cp.Client.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			return err
		}
		if len(pods.Items) < runs {
			return fmt.Errorf("%d Pods", len(pods.Items))
		}
		return nil
	})
	killed := time.Now()
	if err := cluster.cp.Client.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: old, Namespace: releaseNamespace}},
		client.GracePeriodSeconds(0)); err != nil {
		t.Fatalf("kill leader %s: %v", old, err)
	}
	var takeover time.Duration
	testutil.EventuallyEvery(t, 2*leaseDuration+30*time.Second, 100*time.Millisecond, "another replica to take the Lease", func() error {
		holder, _, err := leader(ctx)
		if err != nil {
			return err
		}
		if holder == old {
			return fmt.Errorf("still held by %s", old)
		}
		takeover = time.Since(killed)
		return nil
	})
	t.Logf("leader %s killed; another replica took the Lease after %s (lease duration %s)", old, takeover.Round(100*time.Millisecond), leaseDuration)
	if takeover > leaseDuration+5*time.Second {
		t.Errorf("takeover took %s, more than the lease duration %s (+5 s of retry period)", takeover, leaseDuration)
	}
	if f := os.Getenv("TASKGATE_E2E_TAKEOVER_FILE"); f != "" {
		_ = os.WriteFile(f, []byte(fmt.Sprintf("%.1f\n", takeover.Seconds())), 0o644)
	}
	// Every run completes, exactly once: one attempt, one Pod.
	for _, key := range keys {
		r := waitRun(t, key, 2*time.Minute)
		if r.Phase != v1alpha1.TaskSucceeded {
			t.Errorf("run %s: %s: %s", key, r.Phase, r.Message)
		}
		if len(r.Attempts) > 1 {
			t.Errorf("run %s: attempts %+v, want exactly one", key, r.Attempts)
		}
	}
	var pods corev1.PodList
	if err := cluster.cp.Client.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != runs {
		t.Errorf("%d Pods for %d runs: a run ran twice", len(pods.Items), runs)
	}
	if err := waitReplicasReady(ctx, 2, 2*time.Minute); err != nil {
		t.Error(err)
	}
}

func TestReleaseUninstallLeavesNothingRunning(t *testing.T) {
	ctx := context.Background()
	if _, err := helm(t, "uninstall", releaseName, "--namespace", releaseNamespace, "--wait", "--timeout", "3m"); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWithin(t, 2*time.Minute, "the release's Pods gone", func() error {
		var pods corev1.PodList
		if err := cluster.cp.Client.List(ctx, &pods, client.InNamespace(releaseNamespace)); err != nil {
			return err
		}
		if len(pods.Items) > 0 {
			return fmt.Errorf("%d Pods left", len(pods.Items))
		}
		return nil
	})
	var vwc admissionregistrationv1.ValidatingWebhookConfigurationList
	var mwc admissionregistrationv1.MutatingWebhookConfigurationList
	if err := cluster.cp.Client.List(ctx, &vwc); err != nil {
		t.Fatal(err)
	}
	if err := cluster.cp.Client.List(ctx, &mwc); err != nil {
		t.Fatal(err)
	}
	if len(vwc.Items)+len(mwc.Items) > 0 {
		t.Errorf("webhook configurations left after uninstall: %d validating, %d mutating", len(vwc.Items), len(mwc.Items))
	}
	// crds.keep (the default): the CRD, and so every Task, stays.
	if err := cluster.cp.Client.List(ctx, &v1alpha1.TaskList{}); err != nil {
		if apierrors.IsNotFound(err) {
			t.Errorf("the Task CRD was removed by uninstall, crds.keep says it stays")
		} else {
			t.Error(err)
		}
	}
}
