package security_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
)

// With taskgate's webhooks out of the way (enableWebhooks=false, or their
// configurations deleted), nobody can name somebody else as the requester
// the controller acts as: the chart's ValidatingAdmissionPolicy, run by the
// API server itself, stores a TaskRun only if spec.requester is its creator.
// A user who writes their own identity there still gets their run.
func TestRequesterPolicyWithoutWebhooks(t *testing.T) {
	removeWebhooks(t)
	ns := newNamespace(t, "")
	grant(t, ns, "mallory", taskRights, rule("", "pods", "create"))
	mallory := as(t, "mallory")
	config := `{"image":"busybox:1.36","command":["true"],"namespace":"` + ns + `"}`

	forged := inlineRun(ns, "forged", config)
	forged.Spec.Requester = &v1alpha1.Requester{Username: "root", Groups: []string{adminGroup, "system:authenticated"}}
	mustRefuse(t, mallory.c.Create(context.Background(), forged), "spec.requester must be the user who creates the TaskRun (mallory)")
	mustRefuse(t, mallory.c.Create(context.Background(), inlineRun(ns, "anonymous", config)), "spec.requester must be")
	absent(t, &v1alpha1.TaskRun{}, client.ObjectKey{Namespace: ns, Name: "forged"})

	own := inlineRun(ns, "own", config)
	own.Spec.Requester = &v1alpha1.Requester{Username: "mallory", Groups: []string{"system:authenticated"}}
	must(t, mallory.c.Create(context.Background(), own))
	waitPod(t, ns, v1alpha1.PodName("own"))
}

// With the webhooks out of the way, a TaskRun that names a Task cannot
// carry a snapshot other than that Task's spec at that moment: the chart's
// snapshot policy refuses it, so nobody runs an admin's runbook with a
// command of their own under its name. The honest snapshot is stored.
func TestSnapshotPolicyWithoutWebhooks(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "")
	must(t, as(t, "root", adminGroup).c.Create(ctx, newTask(ns, "runbook", v1alpha1.PluginCustomImage, `{"image":"busybox:1.36","command":["true"],"namespace":"`+ns+`"}`)))
	stored := &v1alpha1.Task{}
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "runbook"}, stored))
	removeWebhooks(t)
	grant(t, ns, "mallory", taskRights, rule("", "pods", "create"))
	mallory := as(t, "mallory")
	me := &v1alpha1.Requester{Username: "mallory", Groups: []string{"system:authenticated"}}

	forged := inlineRun(ns, "forged", `{"image":"busybox:1.36","command":["sh","-c","steal"],"namespace":"`+ns+`"}`)
	forged.Spec.TaskRef, forged.Spec.Requester = &v1alpha1.TaskRef{Name: "runbook"}, me
	mustRefuse(t, mallory.c.Create(ctx, forged), "spec.taskSpec")
	absent(t, &v1alpha1.TaskRun{}, client.ObjectKey{Namespace: ns, Name: "forged"})

	honest := inlineRun(ns, "honest", string(stored.Spec.Config.Raw))
	honest.Spec.TaskRef, honest.Spec.Requester = &v1alpha1.TaskRef{Name: "runbook"}, me
	must(t, mallory.c.Create(ctx, honest))
}

// inlineRun is a one-off TaskRun of a custom-image config, as sent without
// the webhook: nothing filled in.
func inlineRun(ns, name, config string) *v1alpha1.TaskRun {
	return &v1alpha1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.TaskRunSpec{TaskSpec: &v1alpha1.PluginSpec{Plugin: v1alpha1.PluginCustomImage,
			Config: runtime.RawExtension{Raw: []byte(config)}}},
	}
}

// removeWebhooks deletes taskgate's webhook configurations for the rest of
// the test and puts them back afterwards.
func removeWebhooks(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	testutil.RemoveWebhooks(t, k8s)
	// The API server's webhook configuration informer follows within a moment:
	// wait until a TaskRun without a webhook default reaches the policy alone.
	ns := newNamespace(t, "")
	probe := inlineRun(ns, "probe", `{"image":"busybox:1.36","command":["true"]}`)
	testutil.Eventually(t, "the requester policy refusing a TaskRun without the webhooks", func() error {
		if err := k8s.Create(ctx, probe.DeepCopy()); err == nil || !strings.Contains(err.Error(), "spec.requester must be") {
			return fmt.Errorf("create: %v, want the policy's refusal (spec.requester must be ...)", err)
		}
		return nil
	})
}
