package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// selftestField is the unknown config field of the selftest's wrong Task:
// the CRD keeps spec.config as it is (x-kubernetes-preserve-unknown-fields),
// so only the webhook's plugin schema can refuse it.
const selftestField = "taskgateSelftest"

// webhookNames are the chart's webhooks (mtask in single-call mode refuses
// by itself, vtask otherwise); a refusal must come from one of them.
var webhookNames = []string{"vtask.automation.astronetes.io", "mtask.automation.astronetes.io"}

// errWebhookUnreachable marks an attempt whose refusal did not come from the
// webhook's decision (it was not called, or not reachable): worth retrying
// while a fresh install starts.
var errWebhookUnreachable = errors.New("the webhook did not answer")

const selftestUsage = `Usage: taskgate selftest [--namespace NS] [--timeout 1m]

Proves the admission webhooks answer: sends a server-side dry run of a Task
with an unknown config field and passes only when taskgate's webhook refuses
it, naming the field. Nothing is stored. The chart's helm test hook runs it.
Exit status: 0 refused as expected, 1 otherwise, 2 usage.
`

func runSelftest(args []string, stdout, stderr io.Writer) int {
	fset := subcommandFlags("selftest", selftestUsage, stderr)
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = "default"
	}
	namespace := fset.String("namespace", ns, "namespace of the dry-run Task (default $POD_NAMESPACE, else default)")
	timeout := fset.Duration("timeout", time.Minute, "how long to retry while the webhook is not answering yet")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "taskgate selftest: unexpected arguments %q\n", fset.Args())
		return 2
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		fmt.Fprintln(stderr, "taskgate selftest: kubernetes config:", err)
		return 1
	}
	c, err := client.New(cfg, client.Options{Scheme: newScheme()})
	if err != nil {
		fmt.Fprintln(stderr, "taskgate selftest: client:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	msg, err := selftest(ctx, c, *namespace, 2*time.Second)
	if err != nil {
		fmt.Fprintln(stderr, "taskgate selftest: FAIL:", err)
		return 1
	}
	fmt.Fprintln(stdout, "taskgate selftest: ok, the webhook refused a wrong Task:", msg)
	return 0
}

// selftest dry-runs the creation of a wrong Task in namespace and returns
// the webhook's refusal. It retries every interval while the webhook is not
// answering (a fresh install), until ctx ends; any other outcome (admitted,
// refused by something else) fails at once.
func selftest(ctx context.Context, c client.Client, namespace string, interval time.Duration) (string, error) {
	for {
		msg, err := selftestOnce(ctx, c, namespace)
		if err == nil || !errors.Is(err, errWebhookUnreachable) {
			return msg, err
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-time.After(interval):
		}
	}
}

func selftestOnce(ctx context.Context, c client.Client, namespace string) (string, error) {
	task := &v1alpha1.Task{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "taskgate-selftest-", Namespace: namespace},
		Spec:       v1alpha1.TaskSpec{PluginSpec: v1alpha1.PluginSpec{Plugin: v1alpha1.PluginTransformation}},
	}
	task.Spec.Config.Raw = []byte(`{"resources":[{"group":"apps","version":"v1","resource":"deployments"}],` +
		`"operations":[{"jsonPatch":[{"op":"replace","path":"/spec/replicas","value":1}]}],"` +
		selftestField + `":"this field does not exist"}`)
	err := c.Create(ctx, task, client.DryRunAll)
	return judge(err, ctx.Err() != nil, namespace)
}

// judge reads the API server's answer to the selftest's dry run: only a
// refusal by taskgate's webhook naming the unknown field passes; timedOut
// says the attempt's context ended (no answer in time).
func judge(err error, timedOut bool, namespace string) (string, error) {
	if err == nil {
		return "", fmt.Errorf("a Task with the unknown field spec.config.%s was admitted in namespace %s: "+
			"the taskgate webhooks are not called for Tasks (webhook configurations missing, or their selectors leave this namespace out)", selftestField, namespace)
	}
	msg := err.Error()
	switch {
	case timedOut:
		return "", fmt.Errorf("%w before the timeout: %s", errWebhookUnreachable, msg)
	case strings.Contains(msg, "failed calling webhook"):
		return "", fmt.Errorf("%w: %s", errWebhookUnreachable, msg)
	case apierrors.IsForbidden(err) && strings.Contains(msg, "cannot create resource"):
		return "", fmt.Errorf("not allowed to create Tasks in %s (the test's RBAC): %s", namespace, msg)
	case !deniedByWebhook(msg):
		return "", fmt.Errorf("refused, but not by taskgate's webhooks %v: %s", webhookNames, msg)
	case !strings.Contains(msg, selftestField):
		return "", fmt.Errorf("the webhook refused the Task without naming spec.config.%s: %s", selftestField, msg)
	}
	return msg, nil
}

func deniedByWebhook(msg string) bool {
	for _, name := range webhookNames {
		if strings.Contains(msg, fmt.Sprintf("admission webhook %q denied the request", name)) {
			return true
		}
	}
	return false
}
