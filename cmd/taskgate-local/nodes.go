package main

import (
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/test/testutil"
)

// The fuller control plane beside envtest's etcd and kube-apiserver:
// kube-controller-manager (garbage collector, namespace lifecycle,
// aggregated ClusterRoles, ReplicaSets, ServiceAccounts), kube-scheduler,
// and kwok's controller, which plays the kubelet of one simulated node.
// hack/envtest-bins.sh builds all three from the Go module proxy
// (`make envtest-run`, WITH_CONTROLPLANE=1).
var controlPlaneBinaries = []string{"kube-controller-manager", "kube-scheduler", "kwok"}

// kwokStages is how kwok plays the kubelet: see the file's header.
//
//go:embed kwok-stages.yaml
var kwokStages []byte

// simulatedNode is the one Node kwok manages, chosen by its annotation.
const (
	simulatedNode        = "kwok-node-0"
	kwokManageAnnotation = "kwok.x-k8s.io/node"
)

// Identities of the components. kube-controller-manager and kube-scheduler
// are the users the API server's bootstrap RBAC already binds
// (system:kube-controller-manager, which with
// --use-service-account-credentials gives each controller a ServiceAccount
// of its own in kube-system, as kubeadm runs it; system:kube-scheduler).
// kwok's controller stands in for a kubelet and the node controller at once
// and is in system:masters, as kwokctl runs it: nothing about its rights is
// under test here.
const (
	kcmUser       = "system:kube-controller-manager"
	schedulerUser = "system:kube-scheduler"
	kwokUser      = "kwok-controller"
)

// nodes is the fuller control plane, stopped in reverse order of start.
type nodes struct {
	components []*process
}

// startNodes starts kube-controller-manager, kube-scheduler and kwok,
// registers the simulated node and waits until it is Ready. The returned
// nodes is never nil, so stop is safe after a failure half-way.
func startNodes(ctx context.Context, o options, cp *controlPlane) (*nodes, error) {
	n := &nodes{}
	caFile := filepath.Join(o.stateDir, "cluster-ca.crt")
	if err := os.WriteFile(caFile, cp.env.Config.CAData, 0o600); err != nil {
		return n, err
	}
	// component starts one of them on a free port as user (in groups), with
	// a kubeconfig of that user's; args gets the kubeconfig's path and the port.
	component := func(name, scheme, user string, groups []string, args func(kubeconfig string, port int) []string) error {
		kubeconfig := filepath.Join(o.stateDir, user+".kubeconfig")
		if err := cp.writeKubeconfig(kubeconfig, user, groups...); err != nil {
			return err
		}
		port, err := testutil.FreePort()
		if err != nil {
			return err
		}
		return n.start(ctx, o, name, scheme, port, args(kubeconfig, port)...)
	}

	// kube-controller-manager and kube-scheduler take the same flags for
	// their kubeconfig, leader election and secure port.
	kubeComponent := func(name, user string, extra ...string) error {
		return component(name, "https", user, nil, func(kubeconfig string, port int) []string {
			return append([]string{
				"--kubeconfig=" + kubeconfig,
				"--leader-elect=false",
				"--bind-address=127.0.0.1",
				"--secure-port=" + strconv.Itoa(port),
				"--cert-dir=" + filepath.Join(o.stateDir, name),
			}, extra...)
		})
	}
	// No --authentication-kubeconfig or --authorization-kubeconfig: their
	// secure port serves /healthz only (always allowed), and envtest's API
	// server has no request-header CA for delegated authentication to read.
	if err := kubeComponent("kube-controller-manager", kcmUser,
		"--use-service-account-credentials=true", "--root-ca-file="+caFile); err != nil {
		return n, err
	}
	if err := kubeComponent("kube-scheduler", schedulerUser); err != nil {
		return n, err
	}
	stages := filepath.Join(o.stateDir, "kwok-stages.yaml")
	if err := os.WriteFile(stages, kwokStages, 0o600); err != nil {
		return n, err
	}
	if err := component("kwok", "http", kwokUser, []string{"system:masters"}, func(kubeconfig string, port int) []string {
		return []string{
			"--kubeconfig=" + kubeconfig,
			"--config=" + stages,
			"--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector=" + kwokManageAnnotation + "=fake",
			"--node-lease-duration-seconds=40",
			"--server-address=127.0.0.1:" + strconv.Itoa(port),
		}
	}); err != nil {
		return n, err
	}

	if err := registerNode(ctx, cp); err != nil {
		return n, err
	}
	return n, waitNodeReady(ctx, cp, 90*time.Second)
}

// start runs one component and waits until its /healthz answers 200.
func (n *nodes) start(ctx context.Context, o options, name, scheme string, port int, args ...string) error {
	url := fmt.Sprintf("%s://127.0.0.1:%d/healthz", scheme, port)
	// The components serve /healthz with a self-signed certificate of their
	// own; it is read here only to learn that they are up.
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // a liveness probe on loopback
	}}
	healthy := func() bool {
		resp, err := hc.Get(url)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	p, err := startProcess(ctx, name, filepath.Join(o.assetsDir, name), filepath.Join(o.stateDir, name+".log"), nil, healthy, args...)
	if p != nil {
		n.components = append(n.components, p)
	}
	return err
}

// exited receives the name of the first component that exits on its own.
func (n *nodes) exited() <-chan string {
	ch := make(chan string, len(n.components))
	for _, c := range n.components {
		go func() {
			<-c.exited
			ch <- c.name + " (log " + c.logPath + ")"
		}()
	}
	return ch
}

// stop stops the components, last started first, each with 10 seconds
// for a graceful shutdown.
func (n *nodes) stop() error {
	var errs []error
	for i := len(n.components) - 1; i >= 0; i-- {
		errs = append(errs, n.components[i].stop(10*time.Second))
	}
	return errors.Join(errs...)
}

// registerNode creates the Node kwok plays: what a kubelet registers, with
// kwok's annotation and no taints, so every Pod may run there.
func registerNode(ctx context.Context, cp *controlPlane) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        simulatedNode,
		Annotations: map[string]string{kwokManageAnnotation: "fake"},
		Labels: map[string]string{
			"kubernetes.io/hostname": simulatedNode, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
			"type": "kwok",
		},
	}}
	if err := cp.client.Create(ctx, node); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("register node %s: %w", simulatedNode, err)
	}
	return nil
}

// waitNodeReady waits until kwok reports the node Ready.
func waitNodeReady(ctx context.Context, cp *controlPlane, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var node corev1.Node
		err := cp.client.Get(ctx, client.ObjectKey{Name: simulatedNode}, &node)
		if err == nil {
			for _, c := range node.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not Ready after %s (%v)", simulatedNode, timeout, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
