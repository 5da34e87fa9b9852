package main

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/load/kit"
)

// modeVAP is Kubernetes' built-in alternative to taskgate's webhooks: a
// ValidatingAdmissionPolicy and a MutatingAdmissionPolicy
// (admissionregistration.k8s.io/v1, CEL evaluated inside the API server)
// enforcing what CEL can of taskgate's rules, no webhook configuration.
const modeVAP = "VAP+MAP"

// The policies of modeVAP: policies/task-rules.yaml (the
// ValidatingAdmissionPolicy and its binding) and policies/task-defaults.yaml
// (the MutatingAdmissionPolicy and its binding).
//
//go:embed policies/*.yaml
var policyFiles embed.FS

// policySet is the four objects of modeVAP.
type policySet struct {
	validating        *admissionregv1.ValidatingAdmissionPolicy
	validatingBinding *admissionregv1.ValidatingAdmissionPolicyBinding
	mutating          *admissionregv1.MutatingAdmissionPolicy
	mutatingBinding   *admissionregv1.MutatingAdmissionPolicyBinding
}

// loadPolicies parses the embedded policy files strictly (an unknown field
// is an error, not a rule silently left out) and checks that each policy
// has its binding.
func loadPolicies() (*policySet, error) {
	p := &policySet{}
	for _, name := range []string{"policies/task-rules.yaml", "policies/task-defaults.yaml"} {
		data, err := policyFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		if err := p.add(name, data); err != nil {
			return nil, err
		}
	}
	switch {
	case p.validating == nil || p.validatingBinding == nil || p.mutating == nil || p.mutatingBinding == nil:
		return nil, errors.New("policies: want a ValidatingAdmissionPolicy, a MutatingAdmissionPolicy and a binding of each")
	case p.validatingBinding.Spec.PolicyName != p.validating.Name:
		return nil, fmt.Errorf("policies: ValidatingAdmissionPolicyBinding binds %q, not %q", p.validatingBinding.Spec.PolicyName, p.validating.Name)
	case p.mutatingBinding.Spec.PolicyName != p.mutating.Name:
		return nil, fmt.Errorf("policies: MutatingAdmissionPolicyBinding binds %q, not %q", p.mutatingBinding.Spec.PolicyName, p.mutating.Name)
	}
	return p, nil
}

// add parses the YAML documents of one file into p.
func (p *policySet) add(file string, data []byte) error {
	for i, doc := range bytes.Split(data, []byte("\n---")) {
		var meta struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return fmt.Errorf("%s, document %d: %w", file, i+1, err)
		}
		if meta.APIVersion != admissionregv1.SchemeGroupVersion.String() {
			return fmt.Errorf("%s, document %d: apiVersion %q, want %s", file, i+1, meta.APIVersion, admissionregv1.SchemeGroupVersion)
		}
		var obj any
		switch meta.Kind {
		case "ValidatingAdmissionPolicy":
			obj = fresh(&p.validating)
		case "ValidatingAdmissionPolicyBinding":
			obj = fresh(&p.validatingBinding)
		case "MutatingAdmissionPolicy":
			obj = fresh(&p.mutating)
		case "MutatingAdmissionPolicyBinding":
			obj = fresh(&p.mutatingBinding)
		default:
			return fmt.Errorf("%s, document %d: unexpected kind %q", file, i+1, meta.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return fmt.Errorf("%s, document %d (%s): %w", file, i+1, meta.Kind, err)
		}
	}
	return nil
}

// objects are the policies and bindings, policies first (a binding of a
// policy not yet seen matches nothing), each with an empty object of its
// kind to read into.
func (p *policySet) objects() [][2]client.Object {
	return [][2]client.Object{
		{p.validating, &admissionregv1.ValidatingAdmissionPolicy{}},
		{p.mutating, &admissionregv1.MutatingAdmissionPolicy{}},
		{p.validatingBinding, &admissionregv1.ValidatingAdmissionPolicyBinding{}},
		{p.mutatingBinding, &admissionregv1.MutatingAdmissionPolicyBinding{}},
	}
}

// apply installs the policies (on) or removes them (off); the probe then
// waits until the API server enforces what the cluster holds.
func (p *policySet) apply(ctx context.Context, c client.Client, on bool) error {
	for _, o := range p.objects() {
		want, existing := o[0], o[1]
		existing.SetName(want.GetName())
		var err error
		if on {
			err = kit.ApplyObject(ctx, c, want.DeepCopyObject().(client.Object), existing)
		} else {
			err = kit.ApplyObject(ctx, c, nil, existing)
		}
		if err != nil {
			return fmt.Errorf("%T %s: %w", want, want.GetName(), err)
		}
	}
	return nil
}

// messages are the message and messageExpression texts of the validating
// policy and the mutating policy's patch expressions: what the rules table
// points into.
func (p *policySet) messages() string {
	var b strings.Builder
	for _, v := range p.validating.Spec.Validations {
		b.WriteString(v.Message + "\n" + v.MessageExpression + "\n")
	}
	for _, m := range p.mutating.Spec.Mutations {
		if m.JSONPatch != nil {
			b.WriteString(m.JSONPatch.Expression + "\n")
		}
		if m.ApplyConfiguration != nil {
			b.WriteString(m.ApplyConfiguration.Expression + "\n")
		}
	}
	return b.String()
}

// The probe's Tasks: a custom-image Task that every rule admits, and one
// that names another namespace, which taskgate and the policy refuse, each
// with its own words.
const (
	probeGoodConfig  = `{"image":"busybox:1.36","command":["true"]}`
	probeWrongConfig = `{"image":"busybox:1.36","command":["true"],"namespace":"elsewhere"}`
	// vapDenied starts the API server's refusal by a ValidatingAdmissionPolicy.
	vapDenied = "ValidatingAdmissionPolicy 'taskgate-bench-task-rules'"
	// webhookDenied starts the API server's refusal by a webhook.
	webhookDenied = "admission webhook "
	// namespaceRule is the field both refusals name.
	namespaceRule = "spec.config.namespace: Invalid value: \"elsewhere\""
)

// probeRules checks, by dry-run creates as e.admin, that the rules at work
// are those of mode: the wrong Task is refused by the policy (modeVAP) or
// by a webhook (taskgate's modes) and admitted otherwise, and a good Task
// gets its defaults and spec.requester from the mutating policy in modeVAP
// and comes back as sent in the modes that change nothing.
func (e *benchEnv) probeRules(ctx context.Context, mode string) error {
	wrong := probeTask("probe-wrong", probeWrongConfig)
	err := e.admin.Client.Create(ctx, wrong, client.DryRunAll)
	if err := wantRefusal(mode, err); err != nil {
		return fmt.Errorf("probe, wrong Task: %w", err)
	}
	switch mode {
	case modeVAP, modeNoop, modeNone:
	default:
		return nil // taskgate's webhooks default as the policy does
	}
	good := probeTask("probe", probeGoodConfig)
	if err := e.admin.Client.Create(ctx, good, client.DryRunAll); err != nil {
		return fmt.Errorf("probe, good Task: %w", err)
	}
	if mode != modeVAP {
		if good.Spec.Requester != nil || !sameJSON(good.Spec.Config.Raw, []byte(probeGoodConfig)) {
			return fmt.Errorf("probe: mode %s changes nothing, but the Task came back with config %s, requester %+v (the mutating policy still at work?)",
				mode, good.Spec.Config.Raw, good.Spec.Requester)
		}
		return nil
	}
	return wantDefaults(good, e.admin.Name)
}

func probeTask(name, config string) *v1alpha1.Task {
	t := &v1alpha1.Task{Spec: v1alpha1.TaskSpec{Plugin: v1alpha1.PluginCustomImage}}
	t.Namespace, t.Name = "default", name
	t.Spec.Config.Raw = []byte(config)
	return t
}

// wantRefusal says whether err is the answer mode gives the wrong Task.
func wantRefusal(mode string, err error) error {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	switch mode {
	case modeNoop, modeNone:
		if err != nil {
			return fmt.Errorf("refused in mode %s, which checks nothing: %w", mode, err)
		}
	case modeVAP:
		if !strings.Contains(msg, vapDenied) || !strings.Contains(msg, namespaceRule) {
			return fmt.Errorf("want the policy's refusal (%s ... %s), got %v", vapDenied, namespaceRule, err)
		}
	default: // taskgate's webhooks
		if !strings.Contains(msg, webhookDenied) || strings.Contains(msg, vapDenied) || !strings.Contains(msg, namespaceRule) {
			return fmt.Errorf("want taskgate's refusal (%s... %s) and no policy's, got %v", webhookDenied, namespaceRule, err)
		}
	}
	return nil
}

// wantDefaults checks what the mutating policy fills into the good probe
// Task, as taskgate's mutating webhook does.
func wantDefaults(t *v1alpha1.Task, user string) error {
	var cfg v1alpha1.CustomImageConfig
	if err := json.Unmarshal(t.Spec.Config.Raw, &cfg); err != nil {
		return fmt.Errorf("probe, good Task's config: %w", err)
	}
	switch {
	case cfg.Namespace != t.Namespace:
		return fmt.Errorf("probe: spec.config.namespace %q, want the default %q", cfg.Namespace, t.Namespace)
	case cfg.ServiceAccountName != v1alpha1.DefaultServiceAccountName(t.Name):
		return fmt.Errorf("probe: spec.config.serviceAccountName %q, want the default %q", cfg.ServiceAccountName, v1alpha1.DefaultServiceAccountName(t.Name))
	case t.Spec.Requester == nil || t.Spec.Requester.Username != user:
		return fmt.Errorf("probe: spec.requester %+v, want user %q", t.Spec.Requester, user)
	}
	return nil
}

// sameJSON says whether a and b are the same JSON value.
func sameJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// fresh sets *dst to a new, zero T and returns it, to decode into.
func fresh[T any](dst **T) *T {
	*dst = new(T)
	return *dst
}
