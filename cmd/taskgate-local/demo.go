package main

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
)

//go:embed wrong-tasks.yaml
var wrongTasks []byte

// noNodesNote is said plainly (--nodes=false): a user who sees
// custom-image Tasks stay Pending must know that this is the cluster, not
// taskgate.
const noNodesNote = `No Pods run here: this control plane has no nodes (no kubelet, no scheduler),
so custom-image runs are admitted and get their Pod, but stay Pending.
Transformations and synchronizations need only the API server, so they finish.`

// simulatedNote is said as plainly: the Pods' phases are kwok's, not a
// container's.
const simulatedNote = `Pods are SIMULATED: kube-scheduler places them on ` + simulatedNode + `, a node kwok plays;
no container runs and no image is pulled. kwok marks a Pod Running and, ` + taskPodRunTime + ` later for
a custom-image run's Pod, Succeeded with exit code 0 (cmd/taskgate-local/kwok-stages.yaml),
so taskgate sees the lifecycle a kubelet would report, not what the command would do.`

// taskPodRunTime is taskgate-pod-complete's delay in kwok-stages.yaml.
const taskPodRunTime = "3s"

//go:embed wrong-taskrun.yaml
var wrongTaskRun []byte

// demo keeps the samples as Tasks (runbooks: nothing runs), shows the wrong
// Tasks and a TaskRun of a Task that does not exist refused, runs every
// sample with `taskgate run` as the user (hello-world twice), and prints the
// outcome.
func demo(ctx context.Context, o options, cp *controlPlane, mgr *manager, out io.Writer) error {
	samples, err := sampleFiles(o.samplesDir)
	if err != nil {
		return err
	}
	tasks, err := readTasks(samples)
	if err != nil {
		return err
	}
	if err := createTransformationTargets(ctx, cp, tasks, out); err != nil {
		return err
	}
	k := kubectl{path: o.kubectl(), kubeconfig: cp.kubeconfig, cacheDir: filepath.Join(o.stateDir, "kube-cache"), out: out}
	fmt.Fprintln(out, "\n==> the samples are Tasks: runbooks, checked and defaulted at admission; creating them runs nothing")
	for _, f := range samples {
		if _, err := k.run(ctx, "apply", "-f", f); err != nil {
			return fmt.Errorf("sample %s was not admitted: %w", f, err)
		}
	}
	_, _ = k.run(ctx, "get", "tasks", "-A")
	if seen, _ := k.run(ctx, "get", "taskruns,pods", "-A", "-l", v1alpha1.TaskLabel); !strings.Contains(seen, "No resources found") {
		return fmt.Errorf("something ran when the Tasks were created:\n%s", seen)
	}

	wrong := filepath.Join(o.stateDir, "wrong-tasks.yaml")
	if err := os.WriteFile(wrong, wrongTasks, 0o644); err != nil {
		return err
	}
	refusal, err := k.runQuiet(ctx, "apply", "-f", wrong)
	if err == nil {
		return fmt.Errorf("the wrong Tasks were admitted: is the webhook configured?\n%s", refusal)
	}
	fmt.Fprintln(out, "refused, as it should be: the message is below")

	fmt.Fprintln(out, "\n==> running each Task with `taskgate run` as the user (it creates a TaskRun; the run acts as its creator)")
	tg := taskgateCLI{path: o.managerBinary, kubeconfig: cp.kubeconfig, out: out}
	runs := 0
	for _, t := range tasks {
		times := 1
		if t.Name == gcDemoTask {
			times = 2 // two runs of one runbook, each with its own record and children
		}
		for range times {
			if _, err := tg.run(ctx, "run", t.Name, "-n", t.Namespace); err != nil {
				return fmt.Errorf("taskgate run %s: %w", t.Name, err)
			}
			runs++
		}
	}
	badRun := filepath.Join(o.stateDir, "wrong-taskrun.yaml")
	if err := os.WriteFile(badRun, wrongTaskRun, 0o644); err != nil {
		return err
	}
	runRefusal, err := k.runQuiet(ctx, "create", "-f", badRun)
	if err == nil {
		return fmt.Errorf("a TaskRun of a Task that does not exist was admitted:\n%s", runRefusal)
	}
	fmt.Fprintln(out, "refused, as it should be: the message is below")

	what := "transformations and synchronizations"
	if o.nodes {
		what = "every run"
	}
	fmt.Fprintf(out, "\n==> waiting up to %s for %s to finish\n", o.settleTimeout, what)
	settleErr := waitSettled(ctx, cp, o.settleTimeout, o.nodes, runs)
	if settleErr != nil {
		fmt.Fprintf(out, "    %v\n", settleErr)
	}
	if err := showRealPods(ctx, o, cp, out); err != nil { // a real node only (realnode.go)
		return err
	}
	fmt.Fprintln(out)
	views := [][]string{
		{"get", "tasks", "-A"},
		{"get", "taskruns", "-A"},
		// Who each run acts as: recorded by the webhook at admission.
		{"get", "taskruns", "-A", "-o", "custom-columns=NAMESPACE:.metadata.namespace,NAME:.metadata.name,TASK:.spec.taskRef.name,REQUESTER:.spec.requester.username,GROUPS:.spec.requester.groups"},
		{"get", "deployments", "-A"},
		{"get", "synchronizations", "-A", "--show-labels"},
	}
	if o.nodes {
		views = append(views, []string{"get", "pods", "-A", "-o", "wide", "--show-labels"})
	}
	for _, args := range views {
		_, _ = k.run(ctx, args...)
	}
	if o.nodes {
		if err := showGarbageCollection(ctx, cp, k, out); err != nil {
			return err
		}
		if err := showAggregatedRoles(ctx, cp, out); err != nil {
			return err
		}
	}
	showMetrics(mgr.metricsURL, out)

	fmt.Fprintf(out, "\n==> the wrong Tasks (%s) were refused:\n%s\n", rel(wrong), indent(refusal))
	fmt.Fprintf(out, "\n==> the TaskRun of a Task that does not exist (%s) was refused:\n%s\n", rel(badRun), indent(runRefusal))
	note := noNodesNote
	if o.nodes {
		note = nodeNote(o)
	}
	fmt.Fprintf(out, "\n%s\n\nThe manager's log: %s\nUse the cluster from another shell:\n\nexport KUBECONFIG=%s\n%s run hello-world --follow\n",
		note, rel(filepath.Join(o.stateDir, "manager.log")), cp.kubeconfig, rel(o.managerBinary))
	if o.exitAfterDemo {
		return settleErr
	}
	return nil
}

// taskgateCLI runs `taskgate` subcommands as the user, echoing the command
// and its output.
type taskgateCLI struct {
	path, kubeconfig string
	out              io.Writer
}

func (t taskgateCLI) run(ctx context.Context, args ...string) (string, error) {
	fmt.Fprintf(t.out, "\n$ %s %s\n", rel(t.path), strings.Join(args, " "))
	var buf bytes.Buffer
	cmd := exec.CommandContext(ctx, t.path, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+t.kubeconfig)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if s := strings.TrimSpace(buf.String()); s != "" {
		fmt.Fprintln(t.out, s)
	}
	return buf.String(), err
}

// sampleFiles lists the YAML files to apply, in name order; a kustomization
// file is not a Task.
func sampleFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("samples: %w", err)
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || name == "kustomization.yaml" || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
			continue
		}
		files = append(files, filepath.Join(dir, name))
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no sample YAML files in %s", dir)
	}
	sort.Strings(files)
	return files, nil
}

func readTasks(files []string) ([]v1alpha1.Task, error) {
	var tasks []v1alpha1.Task
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		r := utilyaml.NewYAMLReader(bufioReader(data))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			var t v1alpha1.Task
			if err := yaml.Unmarshal(doc, &t); err != nil || t.Kind != "Task" {
				continue
			}
			if t.Namespace == "" {
				t.Namespace = metav1.NamespaceDefault
			}
			tasks = append(tasks, t)
		}
	}
	return tasks, nil
}

// createTransformationTargets creates, before the Tasks are run, a Deployment with 3 replicas for every transformation sample that
// patches Deployments, matching its namespaces, names and labels.
func createTransformationTargets(ctx context.Context, cp *controlPlane, tasks []v1alpha1.Task, out io.Writer) error {
	for _, t := range tasks {
		if t.Spec.Plugin != v1alpha1.PluginTransformation {
			continue
		}
		var cfg v1alpha1.TransformationConfig
		if err := yaml.Unmarshal(t.Spec.Config.Raw, &cfg); err != nil {
			return fmt.Errorf("task %s: %w", t.Name, err)
		}
		if !patchesDeployments(cfg) {
			continue
		}
		namespaces := cfg.Namespaces
		if len(namespaces) == 0 {
			namespaces = []string{t.Namespace}
		}
		names := cfg.Names
		if len(names) == 0 {
			names = []string{"web"}
		}
		labels := map[string]string{"app": "demo"}
		if cfg.LabelSelector != nil {
			for k, v := range cfg.LabelSelector.MatchLabels {
				labels[k] = v
			}
		}
		for _, ns := range namespaces {
			if err := ensureNamespace(ctx, cp, ns); err != nil {
				return err
			}
			for _, name := range names {
				if err := createDeployment(ctx, cp, ns, name, labels); err != nil {
					return err
				}
				fmt.Fprintf(out, "==> created Deployment %s/%s (3 replicas) for Task %s to act on\n", ns, name, t.Name)
			}
		}
	}
	return nil
}

func patchesDeployments(cfg v1alpha1.TransformationConfig) bool {
	for _, r := range cfg.Resources {
		if r.Group == "apps" && r.Resource == "deployments" {
			return true
		}
	}
	return false
}

func ensureNamespace(ctx context.Context, cp *controlPlane, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := cp.client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return testutil.EnsureDefaultServiceAccount(ctx, cp.client, name)
}

func createDeployment(ctx context.Context, cp *controlPlane, ns, name string, labels map[string]string) error {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: "registry.k8s.io/pause:3.10",
				}}},
			},
		},
	}
	if err := cp.client.Create(ctx, d); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create deployment %s/%s: %w", ns, name, err)
	}
	return nil
}

// waitSettled waits until the demo's runs (want of them) have finished
// (without nodes, every run that needs no Pod) and fails when one did not,
// or did not succeed: every sample is meant to succeed.
func waitSettled(ctx context.Context, cp *controlPlane, timeout time.Duration, nodes bool, want int) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var list v1alpha1.TaskRunList
		err := cp.client.List(ctx, &list)
		var pending, failed []string
		for _, r := range list.Items {
			if !nodes && r.Plugin() == v1alpha1.PluginCustomImage {
				continue
			}
			switch r.Status.Phase {
			case v1alpha1.TaskSucceeded:
			case v1alpha1.TaskFailed:
				failed = append(failed, fmt.Sprintf("%s/%s (%s)", r.Namespace, r.Name, r.Status.Message))
			default:
				pending = append(pending, r.Namespace+"/"+r.Name)
			}
		}
		if err == nil && len(list.Items) < want {
			err = fmt.Errorf("%d TaskRuns exist, want %d", len(list.Items), want)
		}
		if err == nil && len(pending) == 0 {
			if len(failed) > 0 {
				return fmt.Errorf("runs failed: %s", strings.Join(failed, ", "))
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("still not finished after %s: %s (%v)", timeout, strings.Join(pending, ", "), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// kubectl runs the v1.37 kubectl as the user, echoing the command and its output.
type kubectl struct {
	path, kubeconfig, cacheDir string
	out                        io.Writer
}

func (k kubectl) run(ctx context.Context, args ...string) (string, error) {
	out, err := k.runQuiet(ctx, args...)
	if out != "" {
		fmt.Fprintln(k.out, out)
	}
	return out, err
}

// runQuiet echoes the command only. Paths are given relative to the working
// directory, so kubectl's messages read as the user would see them.
func (k kubectl) runQuiet(ctx context.Context, args ...string) (string, error) {
	shown := make([]string, len(args))
	for i, a := range args {
		shown[i] = rel(a)
	}
	fmt.Fprintf(k.out, "\n$ kubectl %s\n", strings.Join(shown, " "))
	full := append([]string{"--kubeconfig=" + k.kubeconfig, "--cache-dir=" + k.cacheDir}, shown...)
	var buf bytes.Buffer
	cmd := exec.CommandContext(ctx, k.path, full...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return strings.TrimSpace(buf.String()), err
}

// rel shortens absolute paths under the working directory for display.
func rel(p string) string {
	if !filepath.IsAbs(p) {
		return p
	}
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

func bufioReader(data []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(data)) }
