package admission_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
	"github.com/astronetes/taskgate/webhook"
)

// TestPreflightCacheRequesters: with --preflight-cache-ttl on, one user's
// clean preflight never stands in for another's. Two narrow users, alice and
// bob, may both create Pods in one namespace (a Role, nothing else), and a
// ValidatingAdmissionPolicy refuses Pods that bob creates there, as an
// organisation's own policy might. Through the real API server, dry runs
// sent impersonating each user: alice's identical Tasks pass (the cache
// serves her second one); bob's, after alice's pass is remembered, is still
// refused in the policy's words, and stays refused.
func TestPreflightCacheRequesters(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "pf-cache")
	const policy = "taskgate-test-no-pods-by-bob"
	must(t, k8s.Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-creator", Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create"}}},
	}))
	must(t, k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-creators", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-creator"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"},
			{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "bob"}},
	}))
	fail := admissionregistrationv1.Fail
	vap := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: policy},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: `request.userInfo.username != "bob"`,
				Message:    "bob may not run Pods here",
			}},
		},
	}
	must(t, k8s.Create(ctx, vap))
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), vap) })
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policy},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{corev1.LabelMetadataName: ns},
			}},
		},
	}
	must(t, k8s.Create(ctx, binding))
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), binding) })

	manager, err := client.New(managerCfg, client.Options{Scheme: testutil.Scheme()})
	must(t, err)
	f, err := actas.NewFactory(actas.ModeRequester, managerCfg, testutil.Scheme(), manager.RESTMapper())
	must(t, err)
	alice := &v1alpha1.Requester{Username: "alice", Groups: []string{"system:authenticated"}}
	bob := &v1alpha1.Requester{Username: "bob", Groups: []string{"system:authenticated"}}

	// The policy takes a moment to be enforced: wait until a dry-run Pod as
	// bob is refused, so no pass of bob's is remembered before it counts.
	bobClients, err := f.For(bob)
	must(t, err)
	testutil.Eventually(t, "the policy to refuse bob's Pods", func() error {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-", Namespace: ns},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36"}}}}
		err := bobClients.Client.Create(ctx, pod, client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), "bob may not run Pods here") {
			return errors.New("bob's dry-run Pod not refused yet")
		}
		return nil
	})

	p := &webhook.Preflight{Clients: f.For, CacheTTL: time.Minute}
	const config = `{"image":"busybox:1.36","command":["echo","hi"]}`
	errText := func(name string, r *v1alpha1.Requester) string {
		run := inlineRun(ns, name, v1alpha1.PluginCustomImage, config)
		run.Spec.Requester = r
		errs, _ := p.CustomImage(ctx, run, r)
		if len(errs) == 0 {
			return ""
		}
		return errs.ToAggregate().Error()
	}
	for _, step := range []struct {
		task string
		r    *v1alpha1.Requester
		want string // empty: admitted
	}{
		{"alice-1", alice, ""},
		{"bob-1", bob, "bob may not run Pods here"},
		{"alice-2", alice, ""}, // the legitimate repeat still passes
		{"bob-2", bob, "bob may not run Pods here"},
	} {
		got := errText(step.task, step.r)
		switch {
		case step.want == "" && got != "":
			t.Errorf("%s's Task %s refused: %s; want it admitted", step.r.Username, step.task, got)
		case step.want != "" && !strings.Contains(got, step.want):
			t.Errorf("%s's Task %s: %q; want the policy's refusal %q (another user's remembered pass must not admit it)", step.r.Username, step.task, got, step.want)
		}
	}
}
