package admission_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
)

// installPolicies creates the chart's ValidatingAdmissionPolicies and their
// bindings (templates/requester-policy.yaml), for the whole suite: every
// TaskRun the webhooks admit must pass them too.
func installPolicies(ctx context.Context) error {
	objs, err := testutil.Render(ctx, testutil.HelmPath(), filepath.Join(testutil.RepoRoot(), "charts", "taskgate"), "", "templates/requester-policy.yaml")
	if err != nil {
		return err
	}
	if len(objs) == 0 {
		return fmt.Errorf("templates/requester-policy.yaml rendered nothing")
	}
	for i := range objs {
		if err := k8s.Create(ctx, &objs[i]); err != nil {
			return fmt.Errorf("create %s %s: %w", objs[i].GetKind(), objs[i].GetName(), err)
		}
	}
	return nil
}

// TestPoliciesWithoutWebhooks: with taskgate's webhooks out of the way, the
// chart's policies, run by the API server itself, refuse a TaskRun with a
// forged requester, without a snapshot, or with a snapshot that is not the
// named Task's; a user who writes their own identity and the Task's exact
// spec gets their TaskRun stored.
func TestPoliciesWithoutWebhooks(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "policies")
	must(t, k8s.Create(ctx, newTask(ns, "hello", v1alpha1.PluginCustomImage, echoConfig)))
	grant(t, ns, "mallory", runsRule, readTasksRule, tasksRule, rule("", "pods", "create"))
	task := getTask(t, ns, "hello") // defaulted by the webhook while it was there
	removeWebhooks(t, ns)
	mallory := as(t, "mallory")
	own := &v1alpha1.Requester{Username: "mallory", Groups: []string{"system:authenticated"}}

	forged := runOf(ns, "forged", "hello")
	forged.Spec.TaskSpec = task.Spec.PluginSpec.DeepCopy()
	forged.Spec.Requester = &v1alpha1.Requester{Username: "root", Groups: []string{adminGroup, "system:authenticated"}}
	refused(t, mallory.Create(ctx, forged), "spec.requester must be the user who creates the TaskRun (mallory)")
	absentRun(t, ns, "forged")

	bare := runOf(ns, "bare", "hello")
	bare.Spec.Requester = own
	// Refused by the snapshot's presence or by its equality to the Task,
	// whichever policy the API server evaluates first.
	refused(t, mallory.Create(ctx, bare), "spec.taskSpec must be ")
	absentRun(t, ns, "bare")

	swapped := runOf(ns, "swapped", "hello")
	swapped.Spec.Requester = own
	swapped.Spec.TaskSpec = inlineRun(ns, "", v1alpha1.PluginCustomImage, `{"image":"evil:1","command":["sh"],"namespace":"`+ns+`"}`).Spec.TaskSpec
	refused(t, mallory.Create(ctx, swapped), "spec.taskSpec must be the spec.plugin and spec.config of Task hello as stored now")
	absentRun(t, ns, "swapped")

	twin := runOf(ns, "twin", "hello")
	twin.Spec.Requester = own
	twin.Spec.TaskSpec = task.Spec.PluginSpec.DeepCopy()
	must(t, mallory.Create(ctx, twin))
	if got := getRun(t, ns, "twin").Spec.Requester; got == nil || got.Username != "mallory" {
		t.Errorf("stored requester %+v, want mallory", got)
	}
}

// removeWebhooks deletes taskgate's webhook configurations for the rest of
// the test and puts them back afterwards, waiting each time until the API
// server follows.
func removeWebhooks(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	probe := runOf(ns, "probe", "missing-task") // the webhook refuses it, the policies do not look
	probe.Spec.TaskSpec = inlineRun(ns, "", v1alpha1.PluginCustomImage, echoConfig).Spec.TaskSpec
	probe.Spec.Requester = &v1alpha1.Requester{Username: adminUser}
	t.Cleanup(func() { // after the configurations are back (cleanups run last first)
		testutil.Eventually(t, "the webhooks back", func() error {
			if err := k8s.Create(ctx, probe.DeepCopy()); err == nil || !strings.Contains(err.Error(), "no Task") {
				_ = k8s.Delete(ctx, probe.DeepCopy())
				return fmt.Errorf("create: %v, want the webhook's refusal", err)
			}
			return nil
		})
	})
	testutil.RemoveWebhooks(t, k8s)
	// The API server's webhook configuration informer follows within a
	// moment: wait until the requester policy alone answers.
	testutil.Eventually(t, "the requester policy answering without the webhooks", func() error {
		if err := k8s.Create(ctx, probe.DeepCopy()); err == nil || !strings.Contains(err.Error(), "spec.requester must be") {
			_ = k8s.Delete(ctx, probe.DeepCopy())
			return fmt.Errorf("create: %v, want the policy's refusal (spec.requester must be ...)", err)
		}
		return nil
	})
}
