package helm_test

import (
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestTaskRunPolicies: the chart's policies stand behind a TaskRun's
// requester and snapshot at CREATE (test/admission runs them against the API
// server with the webhooks gone): the requester policy over taskruns, and a
// snapshot policy whose parameters are the Tasks of the request's namespace,
// admitting when the named Task is not there.
func TestTaskRunPolicies(t *testing.T) {
	m := render(t)
	policies := byName[admissionv1.ValidatingAdmissionPolicy](t, m, "ValidatingAdmissionPolicy")
	bindings := byName[admissionv1.ValidatingAdmissionPolicyBinding](t, m, "ValidatingAdmissionPolicyBinding")
	for _, name := range []string{"taskgate-requester", "taskgate-snapshot"} {
		p, b := policies[name], bindings[name]
		if p == nil || b == nil {
			t.Fatalf("policy or binding %s not rendered (policies %v)", name, policies)
		}
		rules := p.Spec.MatchConstraints.ResourceRules
		if len(rules) != 1 || !slices.Equal(rules[0].Resources, []string{"taskruns"}) ||
			!slices.Equal(rules[0].Operations, []admissionv1.OperationType{admissionv1.Create}) {
			t.Errorf("%s matches %+v, want taskruns CREATE", name, rules)
		}
		if p.Spec.FailurePolicy == nil || *p.Spec.FailurePolicy != admissionv1.Fail || !slices.Equal(b.Spec.ValidationActions, []admissionv1.ValidationAction{admissionv1.Deny}) {
			t.Errorf("%s: failurePolicy %v, actions %v; want Fail and Deny", name, p.Spec.FailurePolicy, b.Spec.ValidationActions)
		}
	}
	snap, ref := policies["taskgate-snapshot"], bindings["taskgate-snapshot"].Spec.ParamRef
	if k := snap.Spec.ParamKind; k == nil || k.Kind != "Task" || k.APIVersion != "automation.astronetes.io/v1alpha1" {
		t.Errorf("snapshot paramKind %+v, want Task", k)
	}
	if ref == nil || ref.Selector == nil || ref.Namespace != "" || ref.Name != "" ||
		ref.ParameterNotFoundAction == nil || *ref.ParameterNotFoundAction != admissionv1.AllowAction {
		t.Errorf("snapshot paramRef %+v, want every Task of the request's namespace, Allow when none", ref)
	}
	if e := snap.Spec.Validations[0].Expression; !strings.Contains(e, "params.spec.config") || !strings.Contains(e, "object.spec.taskRef.name") {
		t.Errorf("snapshot expression %q does not compare the named Task's config", e)
	}
	if m := render(t, "--set", "requesterPolicy.enabled=false"); len(m.find("ValidatingAdmissionPolicy")) != 0 {
		t.Error("requesterPolicy.enabled=false still renders policies")
	}
}

// byName decodes the rendered objects of kind, by name.
func byName[T any, P interface {
	*T
	GetName() string
}](t *testing.T, m manifest, kind string) map[string]*T {
	t.Helper()
	out := map[string]*T{}
	for _, o := range m.find(kind) {
		obj := P(new(T))
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, obj); err != nil {
			t.Fatalf("decode %s %s: %v", kind, o.GetName(), err)
		}
		out[obj.GetName()] = obj
	}
	return out
}

// TestManagerTaskRunRules: both halves read TaskRuns (the webhook lists a
// Task's unfinished runs for concurrencyPolicy Forbid); only the controller
// writes them, their status and their finalizers.
func TestManagerTaskRunRules(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      []string
		write     bool
		webhookOK bool
	}{
		{name: "both halves", write: true, webhookOK: true},
		{name: "webhooks only", args: []string{"--set", "enableController=false"}, webhookOK: true},
		{name: "controller only", args: []string{"--set", "enableWebhooks=false"}, write: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cr := managerRole(t, render(t, tc.args...))
			for _, verb := range []string{"get", "list", "watch"} {
				for _, res := range []string{"tasks", "taskruns"} {
					if ruleFor(cr.Rules, "automation.astronetes.io", res, verb) == nil {
						t.Errorf("the manager may not %s %s", verb, res)
					}
				}
			}
			for _, w := range [][2]string{{"taskruns", "update"}, {"taskruns", "patch"}, {"taskruns", "delete"}, {"tasks", "update"}, {"tasks", "patch"},
				{"taskruns/status", "update"}, {"taskruns/status", "patch"}, {"tasks/status", "update"}, {"taskruns/finalizers", "update"}} {
				if got := ruleFor(cr.Rules, "automation.astronetes.io", w[0], w[1]) != nil; got != tc.write {
					t.Errorf("the manager may %s %s: %v, want %v", w[1], w[0], got, tc.write)
				}
			}
			if got := ruleFor(cr.Rules, "authorization.k8s.io", "subjectaccessreviews", "create") != nil; got != tc.webhookOK {
				t.Errorf("subjectaccessreviews create: %v, want %v", got, tc.webhookOK)
			}
		})
	}
}
