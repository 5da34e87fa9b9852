package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
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
	wrong := &v1alpha1.Task{ObjectMeta: metav1.ObjectMeta{Name: "wrong", Namespace: ns}, Spec: v1alpha1.TaskSpec{PluginSpec: v1alpha1.PluginSpec{
		Plugin: v1alpha1.PluginCustomImage, Config: rawJSON(t, map[string]any{"image": images.Busybox, "command": []string{"true"}, "imagge": "typo"})}}}
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
	// The upgraded release admits and runs. Right after `helm upgrade
	// --wait` returns, a webhook call may still time out for a moment (the
	// API server's connection to a replaced Pod, Service endpoints being
	// updated): a minute is allowed, and the time is logged.
	ns := namespace(t, nil)
	plugin, cfg := sampleConfig(t, "custom-image-hello-world.yaml")
	raw := rawJSON(t, cfg)
	upgraded := time.Now()
	var key client.ObjectKey
	testutil.EventuallyEvery(t, time.Minute, time.Second, "the upgraded release to admit a run", func() error {
		var err error
		key, err = createRun(ns, "e2e-", plugin, raw)
		return err
	})
	t.Logf("UPGRADE: the first run was admitted %s after helm upgrade --wait returned", time.Since(upgraded).Round(100*time.Millisecond))
	if r := waitRun(t, key, runTimeout); r.Phase != v1alpha1.TaskSucceeded {
		t.Errorf("hello-world after the upgrade: %s: %s", r.Phase, r.Message)
	}
}

// TestReleaseLeaderTakeover takes the leader away while runs are in
// flight, twice: its Pod deleted (the manager gets SIGTERM and releases its
// Lease: the other replica takes over within seconds), and its process killed
// with SIGKILL on the node (the Lease is not released: once it expires, a
// live manager takes it, the other replica or the killed one's restarted
// container, whichever retries first). Every run completes, exactly once.
func TestReleaseLeaderTakeover(t *testing.T) {
	for _, tc := range []struct {
		name string
		kill func(t *testing.T, pod string)
		// within bounds the takeover, given the Lease's duration.
		within func(lease time.Duration) time.Duration
	}{
		{"PodDeleted", deletePod, func(time.Duration) time.Duration { return 10 * time.Second }},
		// The follower sees the Lease expire up to one retry period (2 s,
		// jittered up to 1.2x) late and takes it on its next retry: lease
		// + 4.8 s, and 5 s more for a loaded machine (measured: 14.3-19.4 s).
		{"ProcessKilled", killManagerProcess, func(lease time.Duration) time.Duration { return lease + 10*time.Second }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, lease := takeover(t, tc.kill)
			t.Logf("TAKEOVER %s: %s (lease duration %s)", tc.name, d.Round(100*time.Millisecond), lease)
			if max := tc.within(lease); d > max {
				t.Errorf("takeover took %s, more than %s", d, max)
			}
			if f := os.Getenv("TASKGATE_E2E_TAKEOVER_FILE"); f != "" {
				line := fmt.Sprintf("%s %.1f s (lease duration %s)\n", tc.name, d.Seconds(), lease)
				if fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
					_, _ = fh.WriteString(line)
					_ = fh.Close()
				}
			}
		})
	}
}

// deletePod deletes pod as `kubectl delete pod` does, with its grace
// period: the manager stops and releases its Lease. (With
// --grace-period=0 the kubelet kills it a second later, and on a loaded
// machine that came before the release once: 18.5 s, the kill -9 case.)
func deletePod(t *testing.T, pod string) {
	t.Helper()
	if err := cluster.cp.Client.Delete(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: pod, Namespace: releaseNamespace}}); err != nil {
		t.Fatalf("delete leader Pod %s: %v", pod, err)
	}
}

// killManagerProcess sends SIGKILL to the manager of pod on this machine
// (the node is here): found by its command line and its HOSTNAME, which
// the kubelet sets to the Pod's name.
func killManagerProcess(t *testing.T, pod string) {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		environ, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if strings.HasPrefix(string(cmdline), "/taskgate\x00manager\x00") &&
			slices.Contains(strings.Split(string(environ), "\x00"), "HOSTNAME="+pod) {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatalf("kill -9 %d (%s): %v", pid, pod, err)
			}
			return
		}
	}
	t.Fatalf("no manager process of Pod %s on this machine", pod)
}

// takeover starts runs, takes the leader away with kill once their Pods
// exist, and returns how long until another replica held the Lease, and
// the Lease's duration. It checks that every run then completes once, and
// waits until both replicas are Ready again.
func takeover(t *testing.T, kill func(*testing.T, string)) (time.Duration, time.Duration) {
	ctx := context.Background()
	ns := namespace(t, nil)
	old, lease, err := leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oldIdentity := *lease.Spec.HolderIdentity
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
	kill(t, old)
	var d time.Duration
	var holder string
	testutil.EventuallyEvery(t, 2*leaseDuration+30*time.Second, 100*time.Millisecond, "another manager to take the Lease", func() error {
		var l *coordinationv1.Lease
		holder, l, err = leader(ctx)
		if err != nil {
			return err
		}
		if *l.Spec.HolderIdentity == oldIdentity {
			return fmt.Errorf("still held by %s", oldIdentity)
		}
		d = time.Since(killed)
		return nil
	})
	who := "the other replica"
	if holder == old {
		who = "the killed manager's own Pod, its container restarted"
	}
	t.Logf("the Lease went from %s to %s", oldIdentity, who)
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
		t.Fatal(err)
	}
	return d, leaseDuration
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
