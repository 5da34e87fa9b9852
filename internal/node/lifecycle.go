package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/keyutil"
	"k8s.io/utils/ptr"

	"github.com/astronetes/taskgate/internal/images"
)

// serviceAccountKeys is the key pair kube-apiserver signs ServiceAccount
// tokens with (private) and checks them with (public), PEM-encoded.
func serviceAccountKeys() (private, public []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if private, err = keyutil.MarshalPrivateKeyToPEM(key); err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	return private, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// waitReady waits until the kubelet has registered the Node and reports it
// Ready.
func (n *Node) waitReady(ctx context.Context, timeout time.Duration) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		node, err := n.client.CoreV1().Nodes().Get(ctx, n.cfg.Name, metav1.GetOptions{})
		if err != nil {
			last = err
			return false, nil
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				last = fmt.Errorf("Ready=%s: %s", c.Status, c.Message)
				return c.Status == corev1.ConditionTrue, nil
			}
		}
		last = errors.New("no Ready condition yet")
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("node %s not Ready after %s (%v)\n%s", n.cfg.Name, timeout, last, tail(filepath.Join(n.cfg.Dir, "kubelet.log"), 25))
	}
	return nil
}

// probeText is what the probe Pod prints.
const probeText = "taskgate-node-probe ok"

// probe runs busybox printing probeText in a Pod, with the image pulled
// through the node's registry, and reads its log through the API server
// (kubelet, containerd, runc, CNI and the kubelet's serving certificate).
func (n *Node) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	pods := n.client.CoreV1().Pods(metav1.NamespaceDefault)
	// kube-controller-manager makes the default ServiceAccount a moment
	// after the namespace exists; admission refuses a Pod before that.
	var pod *corev1.Pod
	err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		var err error
		pod, err = pods.Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "taskgate-node-probe"},
			Spec: corev1.PodSpec{
				RestartPolicy:                 corev1.RestartPolicyNever,
				TerminationGracePeriodSeconds: ptr.To[int64](0),
				AutomountServiceAccountToken:  ptr.To(false),
				Containers:                    []corev1.Container{{Name: "probe", Image: images.Busybox, Command: []string{"echo", probeText}}},
			},
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return false, pods.Delete(ctx, "taskgate-node-probe", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
		}
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("create the probe Pod: %w", err)
	}
	defer func() {
		_ = pods.Delete(context.Background(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	}()
	var phase corev1.PodPhase
	err = wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		p, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		phase = p.Status.Phase
		if phase == corev1.PodFailed {
			return false, fmt.Errorf("probe Pod failed: %s", podSummary(p))
		}
		pod = p
		return phase == corev1.PodSucceeded, nil
	})
	if err != nil {
		return fmt.Errorf("probe Pod (phase %s, %s): %w\n%s", phase, podSummary(pod), err, tail(filepath.Join(n.cfg.Dir, "kubelet.log"), 15))
	}
	logs, err := pods.GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("probe Pod's log through the API server: %w", err)
	}
	if strings.TrimSpace(string(logs)) != probeText {
		return fmt.Errorf("probe Pod printed %q, want %q", logs, probeText)
	}
	n.cfg.Log.Info("probe Pod ran", "log", strings.TrimSpace(string(logs)))
	return nil
}

// podSummary is a Pod's container states, for errors.
func podSummary(p *corev1.Pod) string {
	if p == nil {
		return "no pod"
	}
	var parts []string
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			parts = append(parts, fmt.Sprintf("%s: %s", c.Type, c.Message))
		}
	}
	for _, s := range p.Status.ContainerStatuses {
		switch {
		case s.State.Waiting != nil:
			parts = append(parts, fmt.Sprintf("%s waiting: %s %s", s.Name, s.State.Waiting.Reason, s.State.Waiting.Message))
		case s.State.Terminated != nil:
			parts = append(parts, fmt.Sprintf("%s terminated: %s exit %d %s", s.Name, s.State.Terminated.Reason, s.State.Terminated.ExitCode, s.State.Terminated.Message))
		}
	}
	return strings.Join(parts, "; ")
}

// Stop deletes the node's workloads, stops kube-proxy (and removes its
// rules), the kubelet, containerd, kube-scheduler, kube-controller-manager
// and the registry, and removes every trace of the node from the machine.
// Call it before the control plane stops (the workloads are deleted
// through it), and Release after; it is safe to call after any failure,
// and more than once. The node's address stays until Release: the
// kube-apiserver serving there hangs on its way out without it.
func (n *Node) Stop(ctx context.Context) error {
	if n == nil || n.stopped {
		return nil
	}
	n.stopped = true
	var errs []error
	if n.client != nil && n.kubeletRunning() {
		errs = append(errs, n.drain(ctx))
	}
	// Last started first: kube-proxy, kubelet, containerd, scheduler, kcm.
	for i := len(n.procs) - 1; i >= 0; i-- {
		p := n.procs[i]
		if p == n.kubeProxy {
			errs = append(errs, p.stop(10*time.Second))
			if _, err := run(ctx, filepath.Join(n.cfg.Assets, "kube-proxy"), "--config="+n.proxyConf, "--cleanup"); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if n.containerd != nil && p == n.containerd.proc && p.running() {
			errs = append(errs, n.containerd.removeContainers(ctx))
		}
		errs = append(errs, p.stop(20*time.Second))
	}
	if n.registry != nil {
		errs = append(errs, n.registry.stop())
	}
	errs = append(errs, removeLeftovers(ctx, n.cfg.Dir, true), n.removeData())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop the node (logs in %s): %w", n.cfg.Dir, err)
	}
	return nil
}

// Release removes the node's address, once kube-apiserver, which served
// there, has stopped; after Stop (which it calls, if it was not), nothing
// of the node remains.
func (n *Node) Release(ctx context.Context) error {
	if n == nil {
		return nil
	}
	if err := n.Stop(ctx); err != nil {
		return err
	}
	if err := deleteLinks(ctx, false); err != nil {
		return fmt.Errorf("remove the node's address: %w", err)
	}
	return nil
}

func (n *Node) kubeletRunning() bool {
	for _, p := range n.procs {
		if p.name == "kubelet" {
			return p.running()
		}
	}
	return false
}

// drain cordons the Node, deletes every Pod (their controllers' new ones
// stay Pending) and waits until containerd runs no container: the kubelet
// then has torn down every Pod's network and volumes itself.
func (n *Node) drain(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	patch := []byte(`{"spec":{"unschedulable":true}}`)
	if _, err := n.client.CoreV1().Nodes().Patch(ctx, n.cfg.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("cordon %s: %w", n.cfg.Name, err)
	}
	var last string
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := n.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + n.cfg.Name})
		if err != nil {
			return false, nil
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil {
				_ = n.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](1)})
			}
		}
		out, err := n.containerd.ctr(ctx, "tasks", "ls")
		if err != nil {
			return false, nil
		}
		running := 0
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "RUNNING") {
				running++
			}
		}
		last = fmt.Sprintf("%d Pods on the node, %d containers running", len(pods.Items), running)
		return len(pods.Items) == 0 && running == 0, nil
	})
	if err != nil {
		return fmt.Errorf("drain %s: %s: %w", n.cfg.Name, last, err)
	}
	return nil
}
