package main

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/runtime"
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

// The policies of modeVAP: for Tasks, policies/task-rules.yaml (the
// ValidatingAdmissionPolicy and its binding) and policies/task-defaults.yaml
// (the MutatingAdmissionPolicy and its binding); for TaskRuns,
// policies/taskrun-rules.yaml and policies/taskrun-defaults.yaml (two of
// each, one with the Tasks of the namespace as params).
//
//go:embed policies/*.yaml
var policyFiles embed.FS

// policyFileNames are the files of modeVAP, in the order they are applied.
var policyFileNames = []string{"policies/task-rules.yaml", "policies/task-defaults.yaml", "policies/taskrun-rules.yaml", "policies/taskrun-defaults.yaml"}

// policySet is the policies and bindings of modeVAP.
type policySet struct {
	validating        []*admissionregv1.ValidatingAdmissionPolicy
	validatingBinding []*admissionregv1.ValidatingAdmissionPolicyBinding
	mutating          []*admissionregv1.MutatingAdmissionPolicy
	mutatingBinding   []*admissionregv1.MutatingAdmissionPolicyBinding
}

// loadPolicies parses the embedded policy files strictly (an unknown field
// is an error, not a rule silently left out) and checks that each policy
// has exactly one binding and each binding a policy.
func loadPolicies() (*policySet, error) {
	p := &policySet{}
	for _, name := range policyFileNames {
		data, err := policyFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		if err := p.add(name, data); err != nil {
			return nil, err
		}
	}
	var policies, bound []string
	for _, v := range p.validating {
		policies = append(policies, "validating "+v.Name)
	}
	for _, m := range p.mutating {
		policies = append(policies, "mutating "+m.Name)
	}
	for _, b := range p.validatingBinding {
		bound = append(bound, "validating "+b.Spec.PolicyName)
	}
	for _, b := range p.mutatingBinding {
		bound = append(bound, "mutating "+b.Spec.PolicyName)
	}
	slices.Sort(policies)
	slices.Sort(bound)
	if len(p.validating) == 0 || len(p.mutating) == 0 || !slices.Equal(policies, bound) {
		return nil, fmt.Errorf("policies: want validating and mutating policies, each with one binding; policies %q, bindings of %q", policies, bound)
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
			obj = push(&p.validating)
		case "ValidatingAdmissionPolicyBinding":
			obj = push(&p.validatingBinding)
		case "MutatingAdmissionPolicy":
			obj = push(&p.mutating)
		case "MutatingAdmissionPolicyBinding":
			obj = push(&p.mutatingBinding)
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
	var out [][2]client.Object
	for _, o := range p.validating {
		out = append(out, [2]client.Object{o, &admissionregv1.ValidatingAdmissionPolicy{}})
	}
	for _, o := range p.mutating {
		out = append(out, [2]client.Object{o, &admissionregv1.MutatingAdmissionPolicy{}})
	}
	for _, o := range p.validatingBinding {
		out = append(out, [2]client.Object{o, &admissionregv1.ValidatingAdmissionPolicyBinding{}})
	}
	for _, o := range p.mutatingBinding {
		out = append(out, [2]client.Object{o, &admissionregv1.MutatingAdmissionPolicyBinding{}})
	}
	return out
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
// policies and the mutating policies' patch expressions: what the rules
// table points into.
func (p *policySet) messages() string {
	var b strings.Builder
	for _, v := range p.validating {
		for _, x := range v.Spec.Validations {
			b.WriteString(x.Message + "\n" + x.MessageExpression + "\n")
		}
	}
	for _, m := range p.mutating {
		for _, x := range m.Spec.Mutations {
			if x.JSONPatch != nil {
				b.WriteString(x.JSONPatch.Expression + "\n")
			}
			if x.ApplyConfiguration != nil {
				b.WriteString(x.ApplyConfiguration.Expression + "\n")
			}
		}
	}
	return b.String()
}

// The probe's Tasks: a custom-image Task that every rule admits, and one
// that names another namespace, which taskgate and the policy refuse, each
// with its own words; and the Task in "default" whose runs the probe
// creates.
const (
	probeRunbook     = "probe-runbook"
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
// are those of mode: the wrong Task is refused by the policy (modeVAP) or by
// a webhook (taskgate's modes) and admitted otherwise; in modeVAP a good
// Task gets its defaults, and a TaskRun of probeRunbook its snapshot and
// spec.requester, from the mutating policies (so the API server has the
// Tasks as the policies' params), and in the modes that change nothing both
// come back as sent.
func (e *benchEnv) probeRules(ctx context.Context, mode string) error {
	wrong := probeTask("probe-wrong", probeWrongConfig)
	err := e.admin.Client.Create(ctx, wrong, client.DryRunAll)
	if err := wantRefusal(mode, err); err != nil {
		return fmt.Errorf("probe, wrong Task: %w", err)
	}
	switch mode {
	case modeVAP, modeNoop, modeNone:
	default:
		return nil // taskgate's webhooks default as the policies do
	}
	good, run := probeTask("probe", probeGoodConfig), kit.NewTaskRun("default", "", probeRunbook)
	if err := e.admin.Client.Create(ctx, good, client.DryRunAll); err != nil {
		return fmt.Errorf("probe, good Task: %w", err)
	}
	if err := e.admin.Client.Create(ctx, run, client.DryRunAll); err != nil {
		return fmt.Errorf("probe, good TaskRun: %w", err)
	}
	if mode != modeVAP {
		if run.Spec.Requester != nil || run.Spec.TaskSpec != nil || !sameJSON(good.Spec.Config.Raw, []byte(probeGoodConfig)) {
			return fmt.Errorf("probe: mode %s changes nothing, but the Task came back with config %s, the TaskRun with requester %+v and snapshot %+v (a mutating policy still at work?)",
				mode, good.Spec.Config.Raw, run.Spec.Requester, run.Spec.TaskSpec)
		}
		return nil
	}
	if err := wantDefaults(good); err != nil {
		return err
	}
	if run.Spec.TaskSpec == nil || !sameJSON(run.Spec.TaskSpec.Config.Raw, []byte(probeGoodConfig)) {
		return fmt.Errorf("probe: TaskRun of %s came back with snapshot %+v, want the Task's spec (the policies' params not synced yet?)", probeRunbook, run.Spec.TaskSpec)
	}
	return wantRequester(run, e.admin.Name)
}

// probeTask is a Task in "default" named name (generated when "").
func probeTask(name, config string) *v1alpha1.Task {
	t := &v1alpha1.Task{Spec: v1alpha1.TaskSpec{PluginSpec: v1alpha1.PluginSpec{Plugin: v1alpha1.PluginCustomImage}}}
	t.Namespace, t.Name = "default", name
	if name == "" {
		t.GenerateName = "probe-"
	}
	t.Spec.Config.Raw = []byte(config)
	return t
}

// probeRun is a one-off custom-image TaskRun in "default", its name generated.
func probeRun(config string) *v1alpha1.TaskRun {
	return kit.NewInlineRun("default", "", &v1alpha1.PluginSpec{Plugin: v1alpha1.PluginCustomImage, Config: runtime.RawExtension{Raw: []byte(config)}})
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
func wantDefaults(t *v1alpha1.Task) error {
	var cfg v1alpha1.CustomImageConfig
	if err := json.Unmarshal(t.Spec.Config.Raw, &cfg); err != nil {
		return fmt.Errorf("probe, good Task's config: %w", err)
	}
	switch {
	case cfg.Namespace != t.Namespace:
		return fmt.Errorf("probe: spec.config.namespace %q, want the default %q", cfg.Namespace, t.Namespace)
	case cfg.TimeoutSeconds == nil || *cfg.TimeoutSeconds != 3600:
		return fmt.Errorf("probe: spec.config.timeoutSeconds %v, want the default 3600", cfg.TimeoutSeconds)
	case t.Spec.Requester != nil:
		return fmt.Errorf("probe: a Task with spec.requester %+v: a Task records none", t.Spec.Requester)
	}
	return nil
}

// wantRequester checks that the mutating policy recorded user as the
// TaskRun's requester, as taskgate's mutating webhook does.
func wantRequester(run *v1alpha1.TaskRun, user string) error {
	if run.Spec.Requester == nil || run.Spec.Requester.Username != user {
		return fmt.Errorf("probe: TaskRun spec.requester %+v, want user %q", run.Spec.Requester, user)
	}
	return nil
}

// sameJSON says whether a and b are the same JSON value.
func sameJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// push appends a new, zero T to *list and returns it, to decode into.
func push[T any](list *[]*T) *T {
	v := new(T)
	*list = append(*list, v)
	return v
}
