package webhook

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/yaml"
)

// admissionCases are the seed samples and every invalid schema case, as
// Task JSON keyed by file.
func admissionCases(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("../config/samples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	invalid, err := filepath.Glob("../schemas/testdata/*/invalid/*.yaml")
	if err != nil || len(files) == 0 || len(invalid) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range append(files, invalid...) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := yaml.YAMLToJSON(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[strings.TrimPrefix(f, "../")] = raw
	}
	return out
}

// outcome is what the API server makes of its webhooks' answers.
type outcome struct {
	Allowed  bool
	Code     int32
	Message  string
	Causes   string
	Warnings []string
	Stored   string // the object after the patches, when allowed
}

func outcomeOf(t *testing.T, obj []byte, resp *admissionv1.AdmissionResponse) (outcome, []byte) {
	t.Helper()
	o := outcome{Allowed: resp.Allowed, Warnings: resp.Warnings}
	if r := resp.Result; r != nil && !resp.Allowed {
		o.Code, o.Message = r.Code, r.Message
		if r.Details != nil {
			b, _ := json.Marshal(r.Details.Causes)
			o.Causes = string(b)
		}
	}
	if len(resp.Patch) > 0 {
		p, err := jsonpatch.DecodePatch(resp.Patch)
		if err != nil {
			t.Fatalf("patch %s: %v", resp.Patch, err)
		}
		if obj, err = p.Apply(obj); err != nil {
			t.Fatalf("apply patch %s: %v", resp.Patch, err)
		}
	}
	if o.Allowed {
		o.Stored = string(obj)
	}
	return o, obj
}

// TestSingleCallMatchesPair: for every sample and invalid case, with access
// checks allowed, denied or failing, the single-call webhook answers as the
// API server would answer after the pair (mutate, apply the patch, then
// validate): same verdict, status, causes, warnings and stored object.
func TestSingleCallMatchesPair(t *testing.T) {
	a := newTestAdmitter(t)
	for _, authz := range []struct {
		name  string
		authz Authorizer
	}{
		{"access allowed", &scriptedAuthz{next: allow}},
		{"access denied", &scriptedAuthz{next: deny}},
		{"access check fails", &scriptedAuthz{next: fail}},
	} {
		for _, kind := range []string{"Task", "TaskRun"} {
			mutate, validate, admit := NewHandlers(&Validator{Admitter: a, Authz: authz.authz})
			if kind == "TaskRun" {
				mutate, validate, admit = runReviewHandlers(&Validator{Admitter: a, Authz: authz.authz})
			}
			for name, obj := range admissionCases(t) {
				if kind == "TaskRun" {
					obj = asInlineRun(t, obj)
				}
				t.Run(authz.name+"/"+kind+"/"+name, func(t *testing.T) {
					_, m := serve(mutate, review(admissionv1.Create, obj, nil, false), "application/json")
					pair, patched := outcomeOf(t, obj, m.Response)
					if pair.Allowed {
						_, v := serve(validate, review(admissionv1.Create, patched, nil, false), "application/json")
						pair, _ = outcomeOf(t, patched, v.Response)
						pair.Warnings = append(m.Response.Warnings, v.Response.Warnings...)
						if pair.Allowed {
							pair.Stored = string(patched)
						}
					}
					_, s := serve(admit, review(admissionv1.Create, obj, nil, false), "application/json")
					single, _ := outcomeOf(t, obj, s.Response)
					if !reflect.DeepEqual(single, pair) {
						t.Errorf("single call:\n%+v\npair:\n%+v", single, pair)
					}
					if strings.Contains(name, "/invalid/") && single.Allowed {
						t.Errorf("invalid case admitted")
					}
					if !single.Allowed {
						return
					}
					// A reinvocation (another webhook changed the Task since)
					// sees the defaulted Task: nothing more to patch, still allowed.
					_, again := serve(admit, review(admissionv1.Create, []byte(single.Stored), nil, false), "application/json")
					if !again.Response.Allowed || len(again.Response.Patch) > 0 {
						t.Errorf("reinvocation: allowed %v, patch %s", again.Response.Allowed, again.Response.Patch)
					}
				})
			}
		}
	}
}

// asInlineRun turns a Task's JSON into a one-off TaskRun of its spec.
func asInlineRun(t *testing.T, task []byte) []byte {
	t.Helper()
	var obj map[string]any
	if err := json.Unmarshal(task, &obj); err != nil {
		t.Fatal(err)
	}
	obj["kind"] = "TaskRun"
	spec, _ := obj["spec"].(map[string]any)
	obj["spec"] = map[string]any{"taskSpec": map[string]any{"plugin": spec["plugin"], "config": spec["config"]}}
	out, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSingleCallUpdateAndDelete(t *testing.T) {
	admit := SingleCallHandler(newTestAdmitter(t), &scriptedAuthz{next: deny})
	good := taskJSON("custom-image", `{"image":"busybox:1.36","command":["echo"]}`)
	labeled := []byte(strings.Replace(string(good), `"namespace":"shop"`, `"namespace":"shop","labels":{"team":"a"}`, 1))
	tests := []struct {
		name        string
		op          admissionv1.Operation
		obj, old    []byte
		wantAllowed bool
		wantText    string
	}{
		{name: "wrong edit refused", op: admissionv1.Update, obj: taskJSON("custom-image", `{"image":"busybox:1.37","comand":["echo"]}`), old: good,
			wantText: "spec.config.comand"},
		{name: "label change allowed, no access checks", op: admissionv1.Update, obj: labeled, old: good, wantAllowed: true},
		{name: "old object not a Task", op: admissionv1.Update, obj: good, old: []byte(`{"spec":5}`), wantText: "must be an object"},
		{name: "delete allowed", op: admissionv1.Delete, old: good, wantAllowed: true},
	}
	_, _, admitRun := runReviewHandlers(&Validator{Admitter: newTestAdmitter(t), Authz: &scriptedAuthz{next: deny}})
	run := runJSON("custom-image", `{"image":"busybox:1.36","command":["echo"]}`)
	tests = append(tests, struct {
		name        string
		op          admissionv1.Operation
		obj, old    []byte
		wantAllowed bool
		wantText    string
	}{name: "run spec change refused", op: admissionv1.Update, obj: runJSON("custom-image", `{"image":"busybox:1.37","command":["echo"]}`), old: run,
		wantText: "spec is immutable"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := admit
			if strings.HasPrefix(tt.name, "run ") {
				h = admitRun
			}
			code, out := serve(h, review(tt.op, tt.obj, tt.old, false), "application/json")
			if code != 200 || out.Response == nil {
				t.Fatalf("HTTP %d, %+v", code, out)
			}
			if out.Response.Allowed != tt.wantAllowed || len(out.Response.Patch) > 0 {
				t.Errorf("allowed %v (want %v), patch %s", out.Response.Allowed, tt.wantAllowed, out.Response.Patch)
			}
			if tt.wantText != "" && (out.Response.Result == nil || !strings.Contains(out.Response.Result.Message, tt.wantText)) {
				t.Errorf("result %+v, want %q", out.Response.Result, tt.wantText)
			}
		})
	}
}
