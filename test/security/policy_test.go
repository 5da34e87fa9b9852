package security_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
)

// With taskgate's webhooks out of the way (enableWebhooks=false, or their
// configurations deleted), nobody can name somebody else as the requester
// the controller acts as: the chart's ValidatingAdmissionPolicy, run by the
// API server itself, stores a Task only if spec.requester is its creator.
// A user who writes their own identity there still gets their Task run.
func TestRequesterPolicyWithoutWebhooks(t *testing.T) {
	removeWebhooks(t)
	ns := newNamespace(t, "")
	grant(t, ns, "mallory", taskRights, rule("", "pods", "create"))
	mallory := as(t, "mallory")
	config := `{"image":"busybox:1.36","command":["true"],"namespace":"` + ns + `"}`

	forged := newTask(ns, "forged", v1alpha1.PluginCustomImage, config)
	forged.Spec.Requester = &v1alpha1.Requester{Username: "root", Groups: []string{adminGroup, "system:authenticated"}}
	mustRefuse(t, mallory.create(t, forged), "spec.requester must be the user who creates the Task (mallory)")
	mustRefuse(t, mallory.create(t, newTask(ns, "anonymous", v1alpha1.PluginCustomImage, config)), "spec.requester must be")
	absent(t, &v1alpha1.Task{}, client.ObjectKey{Namespace: ns, Name: "forged"})

	own := newTask(ns, "own", v1alpha1.PluginCustomImage, config)
	own.Spec.Requester = &v1alpha1.Requester{Username: "mallory", Groups: []string{"system:authenticated"}}
	must(t, mallory.create(t, own))
	waitPod(t, ns, v1alpha1.PodName("own"))
}

// removeWebhooks deletes taskgate's webhook configurations for the rest of
// the test and puts them back afterwards.
func removeWebhooks(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	saved, err := testutil.WebhookConfigurations(ctx, k8s)
	must(t, err)
	for _, obj := range saved {
		must(t, k8s.Delete(ctx, obj))
	}
	t.Cleanup(func() {
		for _, obj := range saved {
			obj.SetResourceVersion("")
			obj.SetUID("")
			if err := k8s.Create(ctx, obj); err != nil {
				t.Errorf("restore %s: %v", obj.GetName(), err)
			}
		}
	})
	// The API server's webhook configuration informer follows within a moment:
	// wait until a Task without a webhook default reaches the policy alone.
	ns := newNamespace(t, "")
	probe := newTask(ns, "probe", v1alpha1.PluginCustomImage, `{"image":"busybox:1.36","command":["true"]}`)
	testutil.Eventually(t, "the requester policy refusing a Task without the webhooks", func() error {
		if err := k8s.Create(ctx, probe.DeepCopy()); err == nil || !strings.Contains(err.Error(), "spec.requester must be") {
			return fmt.Errorf("create: %v, want the policy's refusal (spec.requester must be ...)", err)
		}
		return nil
	})
}
