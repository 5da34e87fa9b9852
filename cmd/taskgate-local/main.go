// Command taskgate-local is `make run`: taskgate on one machine with nothing
// installed. It starts a real control plane (etcd + kube-apiserver through
// controller-runtime's envtest, then kube-controller-manager, kube-scheduler
// and kwok playing one node: see nodes.go), installs the CRDs and the webhook
// configurations of config/webhook, runs the real `taskgate manager` binary
// against it, applies the samples and one wrong Task with kubectl as a user
// would, prints what happened (every sample finished, a deleted Task's
// children garbage collected, the metrics) and leaves a kubeconfig for the
// user. Pods are simulated: kwok writes their status, no container runs. As
// in a real cluster, the manager holds only the chart's RBAC and the user is
// an ordinary admin (see rbac.go), so Tasks act as their creator through
// constrained impersonation. It runs until SIGINT/SIGTERM (or, with
// --exit-after-demo, until the demo is printed) and then stops everything it
// started.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/astronetes/taskgate/internal/node"
	"github.com/astronetes/taskgate/test/testutil"
)

// options are the command-line flags; paths are relative to the repository root.
type options struct {
	stateDir      string
	managerBinary string
	assetsDir     string
	crdDir        string
	samplesDir    string
	chartDir      string
	webhookConfig string
	nodes         bool
	node          string // --node: auto, real or kwok
	realNode      bool   // --node resolved: a real node (internal/node), not kwok
	exitAfterDemo bool
	settleTimeout time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.stateDir, "state-dir", ".run", "directory for the kubeconfig, the manager log and the control plane's data; wiped at start")
	flag.StringVar(&o.managerBinary, "manager-binary", "bin/taskgate", "the taskgate binary to run as the manager (make build)")
	flag.StringVar(&o.assetsDir, "assets", testutil.AssetsDir(), "directory holding etcd, kube-apiserver, kubectl and helm (make envtest); default $KUBEBUILDER_ASSETS, else the Makefile's ENVTEST_DIR")
	flag.StringVar(&o.crdDir, "crd-dir", "config/crd", "directory of the CRDs to install (Task and Synchronization)")
	flag.StringVar(&o.samplesDir, "samples", "config/samples", "directory of sample Tasks to apply")
	flag.StringVar(&o.chartDir, "chart", "charts/taskgate", "the Helm chart whose manager ClusterRole the manager runs with")
	flag.StringVar(&o.webhookConfig, "webhook-config", "config/webhook/manifests.yaml", "the webhook configurations to install (config/webhook-single-call/manifests.yaml for single-call mode); renamed taskgate-local-* and pointed at the local manager")
	flag.BoolVar(&o.nodes, "nodes", true, "also run kube-controller-manager, kube-scheduler and kwok with one simulated node, so Pods are scheduled and (simulated) run; false: etcd and kube-apiserver only")
	flag.StringVar(&o.node, "node", nodeAuto, "with --nodes, the node Pods run on: real (containerd, kubelet, kube-proxy: needs root and `make envtest-node`; see docs/real-node.md), kwok (simulated), or auto: real when this machine can run it and its start-up probe passes, else kwok")
	flag.BoolVar(&o.exitAfterDemo, "exit-after-demo", false, "stop everything and exit once the demo is printed, instead of waiting for Ctrl-C")
	flag.DurationVar(&o.settleTimeout, "settle-timeout", 90*time.Second, "how long to wait for the samples to finish")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, o, os.Stdout)
	if fb := (errFallback{}); errors.As(err, &fb) && ctx.Err() == nil {
		fmt.Printf("==> the real node did not start, so kwok simulates one instead:\n%s\n", indent(fb.err.Error()))
		o.node = nodeKwok
		err = run(ctx, o, os.Stdout)
	}
	switch {
	case err != nil && ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "taskgate-local: interrupted; everything it started is stopped")
		os.Exit(130)
	case err != nil:
		fmt.Fprintln(os.Stderr, "taskgate-local:", err)
		os.Exit(1)
	}
}

// run starts everything, shows the demo and tears everything down again, also
// when a step fails or a signal arrives half-way.
func run(ctx context.Context, o options, out io.Writer) (err error) {
	if err := o.resolve(); err != nil {
		return err
	}
	say := func(format string, args ...any) { fmt.Fprintf(out, "==> "+format+"\n", args...) }

	mode, err := resolveNode(o, out)
	if err != nil {
		return err
	}
	o.realNode = o.nodes && mode == nodeReal
	var rn *node.Node
	if o.realNode {
		// Registered first, so it runs last: after everything has stopped.
		before := node.TakeSnapshot(nodeConfig(o, out).Dir)
		defer func() {
			if rn != nil {
				err = errors.Join(err, rn.Release(context.Background()), checkNothingLeft(before, nodeConfig(o, out).Dir, out))
			}
		}()
		say("preparing a real node (its own address %s on a bridge of its own)", node.DefaultNetwork.NodeIP)
		if rn, err = prepareRealNode(ctx, o, out); err != nil {
			return errors.Join(err, rn.Release(context.Background()))
		}
	}

	say("starting etcd and kube-apiserver from %s", o.assetsDir)
	cp, err := startControlPlane(o, rn)
	defer func() {
		say("stopping the control plane")
		err = errors.Join(err, cp.stop())
	}()
	if rn != nil {
		// Runs before the control plane stops: the node's workloads are
		// deleted through it.
		defer func() {
			say("stopping the real node: its Pods, kube-proxy (and its iptables rules), the kubelet, containerd, kube-scheduler, kube-controller-manager")
			err = errors.Join(err, rn.Stop(context.Background()))
		}()
	}
	if err != nil {
		return err
	}
	say("control plane up at %s; CRDs installed, and %s (from %s)", cp.env.Config.Host, strings.Join(cp.webhookNames, ", "), rel(o.webhookConfig))
	if err := grantRBAC(ctx, o, cp); err != nil {
		return err
	}
	// kube-controller-manager creates it in a real cluster; with --nodes=false
	// there is none, and with it the controller may not have got there yet.
	// A Pod (or preflight's dry-run of one) that names no ServiceAccount is
	// refused without it.
	if err := testutil.EnsureDefaultServiceAccount(ctx, cp.client, "default"); err != nil {
		return err
	}
	say("users: %s (group %s, bound to cluster-admin) for kubectl; %s (the chart's actAs=requester ClusterRole) for the manager; neither is in system:masters",
		adminUser, adminsGroup, managerUser)

	var n *nodes
	if o.realNode {
		say("starting kube-controller-manager, kube-scheduler, containerd, the kubelet and kube-proxy: a real node, %s", rn.Name())
		if err := startRealNode(ctx, o, rn, cp); err != nil {
			return err
		}
		say("node %s Ready; a probe Pod ran and printed its line. Pods RUN FOR REAL here (node logs in %s)", rn.Name(), rel(rn.Logs()))
	} else if o.nodes {
		say("starting kube-controller-manager, kube-scheduler and kwok (one simulated node, %s)", simulatedNode)
		n, err = startNodes(ctx, o, cp)
		defer func() {
			say("stopping kwok, kube-scheduler and kube-controller-manager")
			err = errors.Join(err, n.stop())
		}()
		if err != nil {
			return err
		}
		say("node %s Ready. Its Pods are SIMULATED by kwok: no container runs, no image is pulled; kwok writes the status a kubelet would (Running, then Succeeded %s later for a Task's Pod)",
			simulatedNode, taskPodRunTime)
	}

	mgr, err := startManager(ctx, o, cp)
	defer func() {
		if mgr != nil {
			say("stopping the manager")
			err = errors.Join(err, mgr.stop())
		}
	}()
	if err != nil {
		return err
	}
	say("manager ready (pid %d, webhooks on https://127.0.0.1:%d, log %s)", mgr.cmd.Process.Pid, cp.webhookPort, mgr.logPath)
	say("metrics: %s", mgr.metricsURL)

	if err := demo(ctx, o, cp, mgr, out); err != nil {
		return err
	}
	if o.exitAfterDemo {
		return nil
	}
	fmt.Fprintln(out, "\nRunning; press Ctrl-C to stop the manager and the control plane.")
	var componentExited <-chan string
	if n != nil {
		componentExited = n.exited()
	}
	if rn != nil {
		componentExited = rn.Exited()
	}
	select {
	case name := <-componentExited:
		return fmt.Errorf("%s exited on its own", name)
	case <-ctx.Done():
		fmt.Fprintln(out)
		return nil
	case <-mgr.exited:
		return fmt.Errorf("the manager exited on its own; see %s", mgr.logPath)
	}
}

// resolve makes every path absolute and checks that the inputs exist, so a
// missing `make envtest` or `make build` is reported before anything starts.
func (o *options) resolve() error {
	for _, p := range []*string{&o.stateDir, &o.managerBinary, &o.assetsDir, &o.crdDir, &o.samplesDir, &o.chartDir, &o.webhookConfig} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	for _, bin := range []string{"etcd", "kube-apiserver", "kubectl", "helm"} {
		if _, err := os.Stat(filepath.Join(o.assetsDir, bin)); err != nil {
			return fmt.Errorf("%s not found in %s: run `make envtest` first", bin, o.assetsDir)
		}
	}
	if o.nodes {
		for _, bin := range controlPlaneBinaries {
			if _, err := os.Stat(filepath.Join(o.assetsDir, bin)); err != nil {
				return fmt.Errorf("%s not found in %s: run `make envtest-run` first (or pass --nodes=false)", bin, o.assetsDir)
			}
		}
	}
	if _, err := os.Stat(o.managerBinary); err != nil {
		return fmt.Errorf("manager binary %s not found: run `make build` first", o.managerBinary)
	}
	if _, err := os.Stat(o.crdDir); err != nil {
		return fmt.Errorf("CRD directory: %w", err)
	}
	return nil
}

func (o *options) kubectl() string { return filepath.Join(o.assetsDir, "kubectl") }
func (o *options) helm() string    { return filepath.Join(o.assetsDir, "helm") }
