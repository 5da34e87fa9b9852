package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/go-logr/logr/funcr"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/internal/node"
	"github.com/astronetes/taskgate/test/testutil"
)

// --node: which node make run's Pods run on.
const (
	nodeAuto = "auto" // real when this machine can (root, packages, the probe Pod), else kwok
	nodeReal = "real" // a real node (internal/node), or fail
	nodeKwok = "kwok" // one node kwok simulates
)

// errFallback says that a real node could not start in --node=auto: main
// runs everything again with kwok.
type errFallback struct{ err error }

func (e errFallback) Error() string { return e.err.Error() }

// nodeConfig is the real node's configuration, under the state dir.
func nodeConfig(o options, out io.Writer) node.Config {
	return node.Config{
		Dir:            filepath.Join(o.stateDir, "node"),
		Assets:         o.assetsDir,
		RepoRoot:       testutil.RepoRoot(),
		TaskgateBinary: o.managerBinary,
		Log:            funcr.New(func(_, args string) { fmt.Fprintln(out, "    node:", args) }, funcr.Options{}),
	}
}

// resolveNode turns --node=auto into real or kwok, saying why when a real
// node cannot run here.
func resolveNode(o options, out io.Writer) (string, error) {
	if !o.nodes {
		return nodeKwok, nil // unused: no node at all
	}
	switch o.node {
	case nodeKwok:
		return nodeKwok, nil
	case nodeReal, nodeAuto:
		err := node.Check(nodeConfig(o, out))
		if err == nil {
			return nodeReal, nil
		}
		if o.node == nodeReal {
			return "", fmt.Errorf("--node=real: this machine cannot run a real node: %w", err)
		}
		fmt.Fprintf(out, "==> a real node cannot run here, so kwok simulates one (--node=real would fail instead):\n%s\n", indent(err.Error()))
		return nodeKwok, nil
	default:
		return "", fmt.Errorf("--node=%q: want %s, %s or %s", o.node, nodeAuto, nodeReal, nodeKwok)
	}
}

// prepareRealNode checks the machine and gives the node its address, before
// the control plane starts: kube-apiserver serves on it.
func prepareRealNode(ctx context.Context, o options, out io.Writer) (*node.Node, error) {
	n, err := node.Prepare(ctx, nodeConfig(o, out))
	if err != nil && o.node == nodeAuto {
		return n, errFallback{err}
	}
	return n, err
}

// startRealNode starts the node against the running control plane. In
// --node=auto a failure (the probe Pod did not print what it was told)
// becomes errFallback.
func startRealNode(ctx context.Context, o options, n *node.Node, cp *controlPlane) error {
	err := n.Start(ctx, cp.env)
	if err != nil && o.node == nodeAuto && ctx.Err() == nil {
		return errFallback{fmt.Errorf("the real node failed to start (logs in %s): %w", n.Logs(), err)}
	}
	return err
}

// realNote replaces the demo's note on simulated Pods.
const realNote = `Pods RAN FOR REAL on a node of this machine: containerd and runc, the kubelet and
kube-proxy (iptables), a bridge CNI network. No image was pulled from the Internet: the node's
registry serves images built here (busybox, kubectl, pause, taskgate) as docker.io, ghcr.io and
registry.k8s.io, as a mirror does in an air-gapped cluster; a connected cluster pulls as usual.`

// nodeNote is the demo's closing note on where the Pods ran.
func nodeNote(o options) string {
	if o.realNode {
		return realNote
	}
	return simulatedNote
}

// showRealPods prints what only a real node has: the logs of the
// custom-image samples' Pods, and that the kubectl sample's
// ClusterRoleBinding is gone once it ran.
func showRealPods(ctx context.Context, o options, cp *controlPlane, out io.Writer) error {
	if !o.realNode {
		return nil
	}
	k := kubectl{path: o.kubectl(), kubeconfig: cp.kubeconfig, cacheDir: filepath.Join(o.stateDir, "kube-cache"), out: out}
	var list v1alpha1.TaskRunList
	if err := cp.client.List(ctx, &list); err != nil {
		return err
	}
	fmt.Fprintln(out, "\n==> the custom-image samples' Pods ran; their logs, as `kubectl logs` shows them:")
	var errs []error
	for _, t := range list.Items {
		ci := t.Status.CustomImage
		if t.Plugin() != v1alpha1.PluginCustomImage || ci == nil || ci.PodName == "" {
			continue
		}
		if _, err := k.run(ctx, "logs", "-n", t.Namespace, "pod/"+ci.PodName); err != nil {
			errs = append(errs, fmt.Errorf("logs of %s/%s: %w", t.Namespace, ci.PodName, err))
		}
		if ci.ClusterRoleBindingName != "" {
			got, _ := k.runQuiet(ctx, "get", "clusterrolebinding", ci.ClusterRoleBindingName, "--ignore-not-found")
			if strings.TrimSpace(got) == "" {
				fmt.Fprintf(out, "ClusterRoleBinding %s (run %s's clusterRole while it ran): gone, as it should be\n", ci.ClusterRoleBindingName, t.Name)
			} else {
				errs = append(errs, fmt.Errorf("ClusterRoleBinding %s outlived its run:\n%s", ci.ClusterRoleBindingName, got))
			}
		}
	}
	return errors.Join(errs...)
}

// checkNothingLeft compares the machine with what it was before the real
// node started, and says so.
func checkNothingLeft(before node.Snapshot, dir string, out io.Writer) error {
	left := node.Diff(before, node.TakeSnapshot(dir))
	if len(left) > 0 {
		return fmt.Errorf("the real node left things behind:\n  %s", strings.Join(left, "\n  "))
	}
	fmt.Fprintln(out, "==> the real node left nothing behind: no process, mount, interface, iptables chain, cgroup or netns of it remains")
	return nil
}
