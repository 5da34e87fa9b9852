package main

import (
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
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

// component is one of the processes above, started with the state dir in
// its command line (kubeconfig, log) so that nothing it leaves is missed.
type component struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	exited  chan struct{}
	waitErr error
}

// nodes is the fuller control plane, stopped in reverse order of start.
type nodes struct {
	components []*component
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
	kubeconfig := func(user string, groups ...string) (string, error) {
		path := filepath.Join(o.stateDir, user+".kubeconfig")
		return path, cp.writeKubeconfig(path, user, groups...)
	}

	kcmKube, err := kubeconfig(kcmUser)
	if err != nil {
		return n, err
	}
	kcmPort, err := freePort()
	if err != nil {
		return n, err
	}
	// No --authentication-kubeconfig or --authorization-kubeconfig: their
	// secure port serves /healthz only (always allowed), and envtest's API
	// server has no request-header CA for delegated authentication to read.
	if err := n.start(ctx, o, "kube-controller-manager", "https", kcmPort,
		"--kubeconfig="+kcmKube,
		"--use-service-account-credentials=true",
		"--root-ca-file="+caFile,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(kcmPort),
		"--cert-dir="+filepath.Join(o.stateDir, "kube-controller-manager"),
	); err != nil {
		return n, err
	}

	schedKube, err := kubeconfig(schedulerUser)
	if err != nil {
		return n, err
	}
	schedPort, err := freePort()
	if err != nil {
		return n, err
	}
	if err := n.start(ctx, o, "kube-scheduler", "https", schedPort,
		"--kubeconfig="+schedKube,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(schedPort),
		"--cert-dir="+filepath.Join(o.stateDir, "kube-scheduler"),
	); err != nil {
		return n, err
	}

	kwokKube, err := kubeconfig(kwokUser, "system:masters")
	if err != nil {
		return n, err
	}
	stages := filepath.Join(o.stateDir, "kwok-stages.yaml")
	if err := os.WriteFile(stages, kwokStages, 0o600); err != nil {
		return n, err
	}
	kwokPort, err := freePort()
	if err != nil {
		return n, err
	}
	if err := n.start(ctx, o, "kwok", "http", kwokPort,
		"--kubeconfig="+kwokKube,
		"--config="+stages,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector="+kwokManageAnnotation+"=fake",
		"--node-lease-duration-seconds=40",
		"--server-address=127.0.0.1:"+strconv.Itoa(kwokPort),
	); err != nil {
		return n, err
	}

	if err := registerNode(ctx, cp); err != nil {
		return n, err
	}
	return n, waitNodeReady(ctx, cp, 90*time.Second)
}

// start runs one component and waits until its /healthz answers 200.
func (n *nodes) start(ctx context.Context, o options, name, scheme string, port int, args ...string) error {
	c := &component{name: name, logPath: filepath.Join(o.stateDir, name+".log"), exited: make(chan struct{})}
	var err error
	if c.logFile, err = os.Create(c.logPath); err != nil {
		return err
	}
	c.cmd = exec.Command(filepath.Join(o.assetsDir, name), args...)
	c.cmd.Stdout, c.cmd.Stderr = c.logFile, c.logFile
	// Its own process group, as the manager's: Ctrl-C reaches this program,
	// which stops the components in order.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		_ = c.logFile.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	n.components = append(n.components, c)
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.exited)
	}()

	url := fmt.Sprintf("%s://127.0.0.1:%d/healthz", scheme, port)
	// The components serve /healthz with a self-signed certificate of their
	// own; it is read here only to learn that they are up.
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // a liveness probe on loopback
	}}
	deadline := time.After(90 * time.Second)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if resp, err := hc.Get(url); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.exited:
			return fmt.Errorf("%s exited: %v\n%s", name, c.waitErr, tail(c.logPath, 20))
		case <-deadline:
			return fmt.Errorf("%s not healthy after 90s at %s\n%s", name, url, tail(c.logPath, 20))
		case <-tick.C:
		}
	}
}

// exited is closed when any component exits on its own.
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

// stop sends SIGTERM to each component's process group, last started
// first, and SIGKILL to one that has not exited after 10 seconds.
func (n *nodes) stop() error {
	var errs []error
	for i := len(n.components) - 1; i >= 0; i-- {
		c := n.components[i]
		pgid := c.cmd.Process.Pid
		select {
		case <-c.exited:
		default:
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-c.exited:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
				<-c.exited
				errs = append(errs, fmt.Errorf("%s ignored SIGTERM for 10s and was killed", c.name))
			}
		}
		_ = c.logFile.Close()
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
