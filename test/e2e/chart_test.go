package e2e_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/internal/images"
	"github.com/astronetes/taskgate/test/testutil"
)

// chartValues install the chart as a user of an air-gapped cluster would:
// the image from the node's registry (images.Taskgate), two replicas, the
// manager's own certificate rotation (certs.mode self-signed, the default).
var chartValues = []string{"--set", "image.tag=" + imageTag(), "--set", "replicaCount=2"}

func imageTag() string { return images.Taskgate[strings.LastIndex(images.Taskgate, ":")+1:] }

// leaseName is the manager's leader election Lease (--leader-election-id's
// default), in the release's namespace.
const leaseName = "taskgate.automation.astronetes.io"

// installChart installs charts/taskgate into a namespace that enforces
// PodSecurity restricted (as dist/install.yaml's does) and waits until
// both replicas are Ready.
func installChart(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: releaseNamespace,
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}}
	if err := cluster.cp.Client.Create(ctx, ns); err != nil {
		return fmt.Errorf("create namespace %s: %w", releaseNamespace, err)
	}
	args := append([]string{"--kubeconfig", cluster.admin.Kubeconfig, "install", releaseName,
		filepath.Join(testutil.RepoRoot(), "charts", "taskgate"), "--namespace", releaseNamespace,
		"--wait", "--timeout", "4m"}, chartValues...)
	if out, err := command(nil, testutil.HelmPath(), helmEnv(), args...); err != nil {
		return fmt.Errorf("%w\n%s\n%s", err, out, describeRelease(ctx))
	}
	return waitReplicasReady(ctx, 2, 2*time.Minute)
}

// waitReplicasReady waits until the Deployment has want updated, Ready
// replicas and no other.
func waitReplicasReady(ctx context.Context, want int32, timeout time.Duration) error {
	var dep appsv1.Deployment
	err := testutil.Poll(timeout, func() error {
		if err := cluster.cp.Client.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: releaseName}, &dep); err != nil {
			return err
		}
		s := dep.Status
		if s.ObservedGeneration != dep.Generation || s.UpdatedReplicas != want || s.ReadyReplicas != want || s.Replicas != want {
			return fmt.Errorf("replicas %d, updated %d, ready %d, want %d", s.Replicas, s.UpdatedReplicas, s.ReadyReplicas, want)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("deployment %s/%s: %w\n%s", releaseNamespace, releaseName, err, describeRelease(ctx))
	}
	return nil
}

// describeRelease is the release's Pods and their states, for failures.
func describeRelease(ctx context.Context) string {
	var pods corev1.PodList
	if err := cluster.cp.Client.List(ctx, &pods, client.InNamespace(releaseNamespace)); err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "pod %s: %s", p.Name, p.Status.Phase)
		for _, cs := range p.Status.ContainerStatuses {
			fmt.Fprintf(&b, " %s ready=%v restarts=%d", cs.Name, cs.Ready, cs.RestartCount)
			if cs.State.Waiting != nil {
				fmt.Fprintf(&b, " waiting %s: %s", cs.State.Waiting.Reason, cs.State.Waiting.Message)
			}
			if cs.LastTerminationState.Terminated != nil {
				fmt.Fprintf(&b, " last exit %d: %s", cs.LastTerminationState.Terminated.ExitCode, cs.LastTerminationState.Terminated.Message)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// leader is the Pod holding the manager's Lease, and the Lease (whose
// holderIdentity also names the process: a restarted container in the same
// Pod is a new holder).
func leader(ctx context.Context) (string, *coordinationv1.Lease, error) {
	var lease coordinationv1.Lease
	if err := cluster.cp.Client.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: leaseName}, &lease); err != nil {
		return "", nil, err
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		return "", &lease, fmt.Errorf("lease %s has no holder", leaseName)
	}
	// controller-runtime's identity is "<hostname>_<uuid>"; a Pod's
	// hostname is its name.
	return strings.SplitN(*lease.Spec.HolderIdentity, "_", 2)[0], &lease, nil
}
