package main

import (
	"fmt"
	"slices"
	"strings"
)

// ruleRow is one row of the table of what each mode can express.
type ruleRow struct {
	rule, taskgate, policies string
	// policyRef, when set, is text the bench policies say for this rule
	// (TestLoadPolicies checks it is there): the claim is enforced in the
	// measured mode, not only possible.
	policyRef string
}

// ruleTable compares taskgate's admission with the VAP+MAP mode's policies
// (test/load/policies), rule by rule.
var ruleTable = []ruleRow{
	{"Required fields per plugin (`image`, `command`; `resources`, `operations`; `template.spec.plugin`)",
		"yes (JSON Schema)", "yes, one CEL validation per field", "spec.config.image: Required value"},
	{"Unknown fields refused", "yes, at every level the schema closes, with a did-you-mean suggestion",
		"yes at the top level of `spec.config` (the unknown keys and the accepted ones are listed); no suggestion (CEL has no edit distance); nested levels need one rule each", "unknown field(s)"},
	{"The rest of the JSON Schema (types, bounds, patterns, `env[].valueFrom` exactly one, `securityContext`'s restricted subset, tolerations, quantities, the synchronization plugins' own schemas, `--sync-schema-dir`)",
		"yes: the embedded schemas are the rules, and an operator adds sync schemas without a rebuild",
		"only rule by rule, a second hand-kept copy of the schemas in CEL (the bench policy has `timeoutSeconds`, `retries`, `serviceAccountName`); a new sync schema means editing the policy", ""},
	{"Every bad field in one answer", "yes, one cause per field (422 with `details.causes`)",
		"no: the first failing validation's message only, no causes", ""},
	{"Field-path messages", "yes, `field.Error`s with path, bad value and how to fix it",
		"only as text the policy author writes into each message (as here)", "spec.config.namespace: Invalid value"},
	{"Namespace rule (`spec.config.namespace` is the Task's)", "yes", "yes", "remove this field or set it to"},
	{"A Task's edits checked and defaulted as its create", "yes", "yes (the policies match UPDATE too)", ""},
	{"A Task records no requester", "yes (refused, unless an earlier taskgate stored it)", "yes (refused unless unchanged by the update)", "a Task runs nothing, so it has no requester"},
	{"TaskRun `taskRef` resolved: the Task's spec recorded as the run's snapshot, its label and owner reference added",
		"yes, one read of the Task from the API server per TaskRun (never a cache), with a did-you-mean for a missing Task",
		"yes, with the namespace's Tasks as params of a MutatingAdmissionPolicy (every Task of the namespace evaluated for every TaskRun, from the API server's informer); a missing Task leaves no snapshot and is refused by name, without suggestions; the label's length-safe form of a name over 63 characters needs a SHA-256, which CEL lacks", "spec.taskRef.name: Not found"},
	{"The snapshot is the named Task's as stored now", "yes (written by the webhook)", "yes (a ValidatingAdmissionPolicy with the Tasks as params)", "as stored now"},
	{"A one-off TaskRun's inline `spec.taskSpec` checked as a Task's spec", "yes, the same schemas and rules",
		"only with every config rule copied again over `spec.taskSpec.config`; not in the bench policy", ""},
	{"`concurrencyPolicy: Forbid` refused at admission while a run of the Task is going", "yes (lists the Task's runs)", "no: CEL cannot list objects", ""},
	{"`bind` check of `clusterRole`, and create ClusterRoleBindings, for the TaskRun's creator", "yes, SubjectAccessReview (cached 10 s)",
		"yes, CEL's `authorizer`, in process (no round trip)", "needs the bind verb"},
	{"Access checks for the run's identity (create Pods; list and patch per resource and namespace; create Synchronizations)",
		"yes, for the identity the run is judged by: the TaskRun's creator as the controller will impersonate them (`actas.Effective`, without `system:masters`), or the request's full userInfo in `--act-as=controller`",
		"yes, but for the request's user as authenticated (or a ServiceAccount, `authorizer.serviceAccount`): CEL's `authorizer` cannot drop `system:masters` from the user's groups or ask about another user", "lists and patches these resources as you"},
	{"Transformation scope from discovery (namespaced or cluster-scoped; a contradicting `scope` refused)",
		"yes (RESTMapper)", "no: CEL cannot read discovery; every resource is checked per namespace", ""},
	{"Preflight: server-side dry-run of a TaskRun's Pod and binding as its creator (PodSecurity, quotas, other admission)",
		"yes (on by default)", "no: CEL makes no API requests", ""},
	{"Task defaults: `namespace`, `timeoutSeconds`, `retries`; a transformation's `namespaces`",
		"yes, one JSON patch", "yes, one JSON patch (MutatingAdmissionPolicy)", "/spec/config/timeoutSeconds"},
	{"TaskRun `spec.requester` recorded from userInfo and checked", "yes", "yes (recorded by a mutating policy, checked by a validating one)", "spec.requester: Invalid value"},
	{"TaskRun `spec` immutable", "yes (and the CRD's `self == oldSelf`)", "the CRD's rule, which the API server checks first", ""},
	{"Only the manager removes the cleanup finalizer", "yes (the manager's user learned at start)", "yes, with the manager's user name written into the policy", "metadata.finalizers: Forbidden"},
	{"Warnings (untagged image, `cluster-admin`)", "yes", "possible with a second binding of `validationActions: [Warn]`; not in the bench policy", ""},
	{"Availability", "a Deployment the API server calls (`failurePolicy: Fail`: Task and TaskRun creates stop while it is down)", "inside the API server: nothing else to run", ""},
}

// p1VAPSection compares taskgate's admission with the built-in admission
// policies, from P1's figures: each taskgate mode ÷ VAP+MAP beside ÷ no-op
// and ÷ no webhooks, and what each can express.
func (r *report) p1VAPSection() string {
	var b strings.Builder
	b.WriteString("\n## P1 against Kubernetes' built-in admission policies (VAP+MAP)\n\n")
	b.WriteString("A platform team's alternative to taskgate's webhooks today: ValidatingAdmissionPolicies and MutatingAdmissionPolicies (`admissionregistration.k8s.io/v1`, CEL evaluated inside the API server, no webhook), " +
		"written to enforce what CEL can of taskgate's rules ([`test/load/policies`](test/load/policies)): for Tasks, required fields per plugin, unknown fields, the namespace rule, no requester, the finalizer, and the defaults as one JSON patch; " +
		"for TaskRuns, the `taskRef` resolved into the snapshot with the Task's label and owner reference (the namespace's Tasks as the policies' params), the snapshot checked against the Task, the requester recorded and checked, the access checks through CEL's `authorizer`, the finalizer. The mode is one of P1's, measured in the same rounds as the others, interleaved; its probe proves the policies are at work (a Task naming another namespace refused with the policy's message, a Task's defaults and a TaskRun's requester filled in) and gone in every other mode.\n\n")
	for _, p := range []*p1Result{r.p1, r.p1Run} {
		if p == nil || !p.hasVAP() {
			continue
		}
		r.p1VAPRows(&b, p)
	}
	b.WriteString("What each can express (\"in the bench policy\" rules are enforced in the measured mode; `TestPolicies` checks them against a real API server):\n\n")
	var rules [][]string
	for _, row := range ruleTable {
		pol := row.policies
		if row.policyRef != "" {
			pol += " — in the bench policy"
		}
		rules = append(rules, []string{row.rule, row.taskgate, pol})
	}
	table(&b, []string{"rule", "taskgate", "VAP+MAP"}, rules)
	return b.String()
}

// p1VAPRows writes one P1 row's comparison with VAP+MAP: each taskgate mode
// ÷ VAP+MAP beside ÷ no-op and ÷ no webhooks, and by sample.
func (r *report) p1VAPRows(b *strings.Builder, p *p1Result) {
	fmt.Fprintf(b, "%s creates:\n\n", p.kind)
	if concs := p.concurrencies(); len(concs) > 0 && p.lat[concs[0]][modePreflightCache] != nil {
		b.WriteString("`preflight cache` and `single-call, preflight cache` are what-ifs: the shipped options plus `webhook.Options.PreflightCacheTTL` = 10 s (`--preflight-cache-ttl=10s`), which reuses a requester's clean preflight pass for runs that differ from it only in their names, as the access-review cache reuses allowed answers.\n\n")
	}
	var rows [][]string
	for _, c := range p.concurrencies() {
		vap, noop, none := p.lat[c][modeVAP], p.lat[c][modeNoop], p.lat[c][modeNone]
		for _, m := range []string{modeTaskgate, modeOneTrip, modePreflightCache, modeOneTripPreCache, modeVAP} {
			l, ok := p.lat[c][m]
			if !ok {
				continue
			}
			rows = append(rows, []string{fmt.Sprint(c), m, ms(l.Median()), ms(l.P99()),
				fmt.Sprintf("%.2f / %.2f", ratio(l.Median(), vap.Median()), ratio(l.P99(), vap.P99())),
				fmt.Sprintf("%.2f / %.2f", ratio(l.Median(), noop.Median()), ratio(l.P99(), noop.P99())),
				fmt.Sprintf("%.2f / %.2f", ratio(l.Median(), none.Median()), ratio(l.P99(), none.P99()))})
			if m == modeVAP {
				continue
			}
			name := m
			if m == modeTaskgate {
				name = "taskgate (the pair)"
			}
			r.sum(fmt.Sprintf("P1 %s create median, %s ÷ VAP+MAP, concurrency %d", p.kind, name, c),
				fmt.Sprintf("%.2f", ratio(l.Median(), vap.Median())), "(reported)", "")
		}
	}
	table(b, []string{"concurrency", "mode", "median", "p99", "÷ VAP+MAP (median / p99)", "÷ no-op (median / p99)", "÷ no webhooks (median / p99)"}, rows)
	b.WriteString("Median by sample (ms)" + map[string]string{kindTask: ":", kindTaskRun: ": the custom-image samples pay the preflight, which VAP+MAP cannot do (see the notes):"}[p.kind] + "\n\n")
	var modes []string
	for _, m := range []string{modeTaskgate, modeOneTrip, modePreflightCache, modeOneTripPreCache, modeVAP, modeNoop, modeNone} {
		if slices.Contains(p.modes, m) {
			modes = append(modes, m)
		}
	}
	p.sampleTable(b, p.concurrencies(), modes)
}

// hasVAP says whether P1 measured the VAP+MAP mode.
func (p *p1Result) hasVAP() bool {
	for _, l := range p.lat {
		if _, ok := l[modeVAP]; ok {
			return true
		}
	}
	return false
}
