package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/schemas"
)

// The exit statuses of `taskgate run`.
const (
	exitSucceeded   = 0
	exitFailed      = 1
	exitNotStarted  = 2
	exitInterrupted = 130 // 128 + SIGINT, as a shell reports Ctrl-C
)

const runUsage = `Usage: taskgate run TASK [-n NAMESPACE] [--follow] [--kubeconfig FILE] [--context NAME]

Runs the Task TASK: creates a TaskRun of it (generateName "TASK-",
spec.taskRef.name TASK) as the current kubeconfig user and prints the
TaskRun's name. The kubeconfig is found as kubectl finds it (--kubeconfig,
else $KUBECONFIG, else ~/.kube/config); the namespace is -n, else the
context's, else default.

With --follow it then prints each change of the run's phase, with its
message, and for a custom-image run streams the log of each attempt's Pod,
until the run ends. Ctrl-C stops following; the run keeps going.

Exit status: 0 the run succeeded (without --follow: the TaskRun was created),
1 it failed, or was deleted or could not be followed before it ended, 2 no
run was started (refused by the API server or admission, Task not found,
bad usage), 130 interrupted while following.

Flags:
`

// runFlags are the parsed arguments of `taskgate run`.
type runFlags struct {
	task   string
	follow bool
	kube   clientcmd.ClientConfig
}

// parseRunFlags parses args, flags before or after TASK as kubectl allows.
func parseRunFlags(args []string, stderr io.Writer) (*runFlags, error) {
	fs := subcommandFlags("run", runUsage, stderr)
	var f runFlags
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	overrides := &clientcmd.ConfigOverrides{}
	fs.BoolVar(&f.follow, "follow", false, "print the run's phase changes and its Pod's log until it ends; the exit status is the run's")
	fs.StringVar(&rules.ExplicitPath, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, else ~/.kube/config)")
	fs.StringVar(&overrides.CurrentContext, "context", "", "kubeconfig context (default the current context)")
	for _, name := range []string{"n", "namespace"} {
		fs.StringVar(&overrides.Context.Namespace, name, "", "namespace of the Task and of its run (default the context's, else default)")
	}
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(positional) != 1 {
		fmt.Fprintf(stderr, "taskgate run: want one TASK, got %d arguments %q\n\n", len(positional), positional)
		fs.Usage()
		return nil, errors.New("usage")
	}
	f.task = positional[0]
	f.kube = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	return &f, nil
}

// runRun is `taskgate run`: it returns the process exit status. ctx ends
// on Ctrl-C; logs opens the Pods' log streams (the kubelet's, through the
// API server, outside tests).
func runRun(ctx context.Context, args []string, stdout, stderr io.Writer, logs logSourceFactory) int {
	f, err := parseRunFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitSucceeded
		}
		return exitNotStarted
	}
	cfg, err := f.kube.ClientConfig()
	if err != nil {
		fmt.Fprintln(stderr, "taskgate run: kubeconfig:", err)
		return exitNotStarted
	}
	namespace, _, err := f.kube.Namespace()
	if err != nil {
		fmt.Fprintln(stderr, "taskgate run: kubeconfig namespace:", err)
		return exitNotStarted
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: newScheme()})
	if err != nil {
		fmt.Fprintln(stderr, "taskgate run: client:", err)
		return exitNotStarted
	}
	run, err := startRun(ctx, c, namespace, f.task)
	switch {
	case err != nil && ctx.Err() != nil:
		fmt.Fprintf(stderr, "taskgate run: interrupted before the API server answered; a TaskRun of %s/%s may have been created (kubectl get taskruns -n %s)\n", namespace, f.task, namespace)
		return exitInterrupted
	case err != nil:
		fmt.Fprintln(stderr, "taskgate run:", err)
		return exitNotStarted
	}
	fmt.Fprintln(stdout, run.Name)
	if !f.follow {
		return exitSucceeded
	}
	src, err := logs(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "taskgate run: pod logs: %v; TaskRun %s/%s keeps running\n", err, run.Namespace, run.Name)
		return exitFailed
	}
	fl := &follower{c: c, logs: src, out: &lockedWriter{w: stdout}, stderr: stderr}
	return fl.exitStatus(ctx, run)
}

// startRun creates a TaskRun of Task namespace/task. It reads the Task
// first: without taskgate's webhook installed, the API server would store a
// TaskRun naming a Task that does not exist, and nothing would ever run it.
func startRun(ctx context.Context, c client.Client, namespace, task string) (*v1alpha1.TaskRun, error) {
	var t v1alpha1.Task
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: task}, &t); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("no Task %q in namespace %s%s: nothing to run", task, namespace, closeTasks(ctx, c, namespace, task))
		}
		return nil, fmt.Errorf("get Task %s/%s: %w", namespace, task, err)
	}
	run := &v1alpha1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, GenerateName: task + "-"},
		Spec:       v1alpha1.TaskRunSpec{TaskRef: &v1alpha1.TaskRef{Name: task}},
	}
	// The API server's answer is printed as it comes: an admission refusal
	// already says which webhook or policy refused and why.
	if err := c.Create(ctx, run); err != nil {
		return nil, fmt.Errorf("create a TaskRun of Task %s/%s: %w", namespace, task, err)
	}
	return run, nil
}

// maxListedTasks bounds the Tasks a "not found" message lists.
const maxListedTasks = 10

// closeTasks suggests the Task of namespace whose name is closest to
// task, or lists its Tasks, when the user may list them ("" otherwise).
func closeTasks(ctx context.Context, c client.Client, namespace, task string) string {
	var list v1alpha1.TaskList
	if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return ""
	}
	names := make([]string, len(list.Items))
	for i, t := range list.Items {
		names[i] = t.Name
	}
	slices.Sort(names)
	if near, ok := schemas.Nearest(task, names); ok {
		return fmt.Sprintf("; did you mean %q?", near)
	}
	switch {
	case len(names) == 0:
		return " (it has no Task)"
	case len(names) > maxListedTasks:
		names = append(names[:maxListedTasks], "...")
	}
	return " (its Tasks: " + strings.Join(names, ", ") + ")"
}
