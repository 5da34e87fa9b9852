package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// gcDemoTask is the sample whose deletion shows the garbage collector at
// work: config/samples/custom-image-hello-world.yaml, in "default".
const gcDemoTask = "hello-world"

// showGarbageCollection deletes one custom-image Task as a user would and
// waits until kube-controller-manager's garbage collector has removed its
// runs (owned by the Task) and their children (each run's Pod and
// ServiceAccount, owned by the run), as a CronJob's Jobs go with it.
func showGarbageCollection(ctx context.Context, cp *controlPlane, k kubectl, out io.Writer) error {
	sel := v1alpha1.TaskLabel + "=" + v1alpha1.TaskLabelValue(gcDemoTask)
	children, err := taskChildren(ctx, cp, metav1Default, gcDemoTask)
	if err != nil {
		return err
	}
	if len(children) == 0 {
		return fmt.Errorf("Task %s has no TaskRun, Pod or ServiceAccount to collect", gcDemoTask)
	}
	fmt.Fprintf(out, "\n==> deleting Task %s: kube-controller-manager's garbage collector removes its runs and their children (owner references)\n", gcDemoTask)
	_, _ = k.run(ctx, "get", "taskruns,pods,serviceaccounts", "-n", metav1Default, "-l", sel)
	if _, err := k.run(ctx, "delete", "task", gcDemoTask, "-n", metav1Default); err != nil {
		return fmt.Errorf("delete Task %s: %w", gcDemoTask, err)
	}
	start := time.Now()
	deadline := time.After(90 * time.Second)
	for {
		left, err := taskChildren(ctx, cp, metav1Default, gcDemoTask)
		if err == nil && len(left) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("the garbage collector left %v of Task %s after 90s (%v)", left, gcDemoTask, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
	_, _ = k.run(ctx, "get", "taskruns,pods,serviceaccounts", "-n", metav1Default, "-l", sel)
	fmt.Fprintf(out, "garbage collected: %s, %.1fs after the Task was deleted\n", strings.Join(children, ", "), time.Since(start).Seconds())
	return nil
}

const metav1Default = "default"

// taskChildren lists the TaskRuns, Pods and ServiceAccounts labelled as the Task's.
func taskChildren(ctx context.Context, cp *controlPlane, ns, task string) ([]string, error) {
	opts := []client.ListOption{client.InNamespace(ns), client.MatchingLabels{v1alpha1.TaskLabel: v1alpha1.TaskLabelValue(task)}}
	var runs v1alpha1.TaskRunList
	if err := cp.client.List(ctx, &runs, opts...); err != nil {
		return nil, err
	}
	var pods corev1.PodList
	if err := cp.client.List(ctx, &pods, opts...); err != nil {
		return nil, err
	}
	var sas corev1.ServiceAccountList
	if err := cp.client.List(ctx, &sas, opts...); err != nil {
		return nil, err
	}
	var names []string
	for _, r := range runs.Items {
		names = append(names, "taskrun/"+r.Name)
	}
	for _, p := range pods.Items {
		names = append(names, "pod/"+p.Name)
	}
	for _, sa := range sas.Items {
		names = append(names, "serviceaccount/"+sa.Name)
	}
	return names, nil
}

// showAggregatedRoles reports the rules kube-controller-manager's
// clusterrole-aggregation controller gathered into edit and view, which are
// empty without it, and waits until each holds the chart's Task rules.
func showAggregatedRoles(ctx context.Context, cp *controlPlane, out io.Writer) error {
	var counts []string
	for _, name := range []string{"admin", "edit", "view"} {
		var role rbacv1.ClusterRole
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := cp.client.Get(ctx, client.ObjectKey{Name: name}, &role)
			if err == nil && grantsTasks(role.Rules) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("ClusterRole %s has no rules on Tasks after 30s: is kube-controller-manager aggregating? (%v)", name, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
		counts = append(counts, fmt.Sprintf("%s %d", name, len(role.Rules)))
	}
	fmt.Fprintf(out, "\n==> aggregated ClusterRoles (rules, Tasks among them): %s\n", strings.Join(counts, ", "))
	return nil
}

// grantsTasks reports whether rules name automation.astronetes.io tasks.
func grantsTasks(rules []rbacv1.PolicyRule) bool {
	for _, r := range rules {
		if slices.Contains(r.APIGroups, v1alpha1.GroupVersion.Group) && slices.Contains(r.Resources, "tasks") {
			return true
		}
	}
	return false
}

// showMetrics prints the manager's own series from its metrics endpoint.
func showMetrics(url string, out io.Writer) {
	fmt.Fprintf(out, "\n==> metrics (%s), taskgate's series (histogram buckets left out):\n", url)
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintf(out, "    unreachable: %v\n", err)
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "taskgate_") && !strings.Contains(line, "_bucket{") {
			if n < 12 {
				fmt.Fprintf(out, "    %s\n", line)
			}
			n++
		}
	}
	if n > 12 {
		fmt.Fprintf(out, "    ... %d more\n", n-12)
	}
}
