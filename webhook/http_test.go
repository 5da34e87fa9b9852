package webhook

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

func review(op admissionv1.Operation, obj, old []byte, dryRun bool) []byte {
	ar := admissionv1.AdmissionReview{Request: &admissionv1.AdmissionRequest{
		UID:       types.UID("0000-1111"),
		Kind:      metav1.GroupVersionKind{Group: "automation.astronetes.io", Version: "v1alpha1", Kind: "Task"},
		Resource:  metav1.GroupVersionResource{Group: "automation.astronetes.io", Version: "v1alpha1", Resource: "tasks"},
		Namespace: "shop", Operation: op, DryRun: &dryRun,
		UserInfo: authenticationv1.UserInfo{Username: "alice"},
		Object:   runtime.RawExtension{Raw: obj}, OldObject: runtime.RawExtension{Raw: old},
	}}
	ar.SetGroupVersionKind(reviewGVK)
	b, _ := json.Marshal(ar)
	return b
}

func taskJSON(plugin, config string) []byte {
	return []byte(`{"apiVersion":"automation.astronetes.io/v1alpha1","kind":"Task","metadata":{"name":"t1","namespace":"shop"},"spec":{"plugin":"` + plugin + `","config":` + config + `}}`)
}

// runJSON is a one-off TaskRun of config, as taskJSON is a Task.
func runJSON(plugin, config string) []byte {
	return []byte(`{"apiVersion":"automation.astronetes.io/v1alpha1","kind":"TaskRun","metadata":{"name":"t1","namespace":"shop"},"spec":{"taskSpec":{"plugin":"` + plugin + `","config":` + config + `}}}`)
}

// testRunHandlers are the TaskRun handlers for an Admitter and an Authorizer.
func testRunHandlers(a *Admitter, authz Authorizer) (mutate, validate, single *ReviewHandler) {
	return runReviewHandlers(&Validator{Admitter: a, Authz: authz})
}

// runReviewHandlers are the TaskRun handlers of the three webhooks, for
// reviews whatever their resource says (review() says tasks).
func runReviewHandlers(v *Validator) (mutate, validate, single *ReviewHandler) {
	m, val, s := runHandlers(v)
	return NewReviewHandler(&admission.Webhook{Handler: m}), NewReviewHandler(&admission.Webhook{Handler: val}), NewReviewHandler(&admission.Webhook{Handler: s})
}

// TestHandlersDispatchByResource: one path serves both kinds; a review of
// taskruns goes to the TaskRun rules, of tasks to the Task rules.
func TestHandlersDispatchByResource(t *testing.T) {
	_, validate, _ := NewHandlers(&Validator{Admitter: newTestAdmitter(t), Authz: fakeAuthz{}})
	body := review(admissionv1.Create, runJSON("custom-image", `{"image":"a:1","command":["x"],"namespace":"shop"}`), nil, false)
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &ar); err != nil {
		t.Fatal(err)
	}
	ar.Request.Resource.Resource, ar.Request.Kind.Kind = "taskruns", "TaskRun"
	body, _ = json.Marshal(ar)
	_, out := serve(validate, body, "application/json")
	if out.Response.Allowed || !strings.Contains(out.Response.Result.Message, "must be the user who creates the TaskRun") {
		t.Errorf("a TaskRun review: %+v, want the TaskRun's requester rule", out.Response.Result)
	}
	_, out = serve(validate, review(admissionv1.Create, taskJSON("custom-image", `{"image":"a:1","command":["x"]}`), nil, false), "application/json")
	if !out.Response.Allowed {
		t.Errorf("a Task review: %+v, want it admitted with no access check", out.Response.Result)
	}
}

func serve(h http.Handler, body []byte, contentType string) (int, admissionv1.AdmissionReview) {
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out admissionv1.AdmissionReview
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

func TestReviewHandler(t *testing.T) {
	// alice may create Pods in shop, all a plain custom-image Task needs.
	mutate, validate := Handlers(newTestAdmitter(t), fakeAuthz{map[string]bool{"create pods shop ": true}})
	_, validateRun, _ := testRunHandlers(newTestAdmitter(t), fakeAuthz{map[string]bool{"create pods shop ": true}})
	good := taskJSON("custom-image", `{"image":"busybox:1.36","command":["echo"]}`)
	goodRun := runJSON("custom-image", `{"image":"busybox:1.36","command":["echo"],"namespace":"shop"}`)
	tests := []struct {
		name        string
		handler     http.Handler
		body        []byte
		contentType string
		wantHTTP    int
		wantAllowed bool
		wantCode    int32
		wantText    string
	}{
		{name: "empty body", handler: validate, body: nil, wantHTTP: 400, wantCode: 400},
		{name: "not JSON", handler: validate, body: []byte("{nope"), wantHTTP: 400, wantCode: 400, wantText: "not an AdmissionReview"},
		{name: "no request", handler: mutate, body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), wantHTTP: 400, wantCode: 400},
		{name: "v1beta1 refused", handler: mutate, body: bytes.Replace(review(admissionv1.Create, good, nil, false), []byte(`admission.k8s.io/v1"`), []byte(`admission.k8s.io/v1beta1"`), 1), wantHTTP: 400, wantCode: 400},
		{name: "wrong content type", handler: mutate, body: review(admissionv1.Create, good, nil, false), contentType: "text/plain", wantHTTP: 400, wantCode: 400},
		{name: "object not a Task", handler: validate, body: review(admissionv1.Create, []byte(`{"spec": 5}`), nil, false), wantHTTP: 200, wantCode: 422, wantText: "spec: Invalid value: must be an object, not a JSON number"},
		{name: "plugin of the wrong type", handler: mutate, body: review(admissionv1.Create, []byte(`{"spec": {"plugin": 7}}`), nil, false), wantHTTP: 200, wantCode: 422, wantText: "spec.plugin: Invalid value: must be a string"},
		{name: "object not JSON", handler: mutate, body: review(admissionv1.Create, nil, nil, false), wantHTTP: 200, wantCode: 400},
		{name: "mutate patches defaults", handler: mutate, body: review(admissionv1.Create, good, nil, false), wantHTTP: 200, wantAllowed: true},
		{name: "dry-run validated the same", handler: validateRun, body: review(admissionv1.Create, withRequester(goodRun, `{"username":"alice"}`), nil, true), wantHTTP: 200, wantAllowed: true},
		{name: "a Task needs no access check", handler: validate, body: review(admissionv1.Create, taskJSON("custom-image", `{"image":"a:1","command":["x"],"clusterRole":"cluster-admin"}`), nil, false),
			wantHTTP: 200, wantAllowed: true},
		{name: "a new Task with a requester is refused", handler: validate, body: review(admissionv1.Create, withRequester(good, `{"username":"alice"}`), nil, false),
			wantHTTP: 200, wantCode: 422, wantText: "spec.requester: Forbidden: a Task runs nothing"},
		{name: "validate refuses a run the mutating webhook did not record", handler: validateRun, body: review(admissionv1.Create, goodRun, nil, false),
			wantHTTP: 200, wantCode: 422, wantText: "spec.requester: Invalid value: must be the user who creates the TaskRun (alice)"},
		{name: "validate refuses a requester another webhook rewrote", handler: validateRun, body: review(admissionv1.Create, withRequester(goodRun, `{"username":"admin"}`), nil, false),
			wantHTTP: 200, wantCode: 422, wantText: "another mutating webhook changed it"},
		{name: "a run's access is checked", handler: validateRun, body: review(admissionv1.Create,
			withRequester(runJSON("custom-image", `{"image":"a:1","command":["x"],"namespace":"shop","clusterRole":"view"}`), `{"username":"alice"}`), nil, false),
			wantHTTP: 200, wantCode: 422, wantText: `spec.taskSpec.config.clusterRole: Forbidden: user "alice" may not bind`},
		{name: "invalid is 422 with causes", handler: validate, body: review(admissionv1.Create, taskJSON("custom-image", `{"imagee":"x"}`), nil, false),
			wantHTTP: 200, wantCode: 422, wantText: `did you mean "image"?`},
		{name: "unknown plugin refused by the mutating webhook", handler: mutate, body: review(admissionv1.Create, taskJSON("custom-imag", `{}`), nil, false),
			wantHTTP: 200, wantCode: 422, wantText: `did you mean "custom-image"?`},
		{name: "a Task's spec may change", handler: validate, body: review(admissionv1.Update, good, taskJSON("custom-image", `{"image":"busybox:1.37","command":["echo"]}`), false),
			wantHTTP: 200, wantAllowed: true},
		{name: "a run's spec may not", handler: validateRun, body: review(admissionv1.Update, goodRun, runJSON("custom-image", `{"image":"busybox:1.37","command":["echo"]}`), false),
			wantHTTP: 200, wantCode: 422, wantText: "spec: Forbidden: spec is immutable: a TaskRun runs what was admitted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := tt.contentType
			if ct == "" {
				ct = "application/json"
			}
			code, out := serve(tt.handler, tt.body, ct)
			if code != tt.wantHTTP {
				t.Fatalf("HTTP %d, want %d", code, tt.wantHTTP)
			}
			if out.Response == nil {
				t.Fatal("no AdmissionReview response")
			}
			if out.Response.Allowed != tt.wantAllowed {
				t.Errorf("allowed = %v, want %v (%+v)", out.Response.Allowed, tt.wantAllowed, out.Response.Result)
			}
			if tt.wantCode != 0 && (out.Response.Result == nil || out.Response.Result.Code != tt.wantCode) {
				t.Errorf("result %+v, want code %d", out.Response.Result, tt.wantCode)
			}
			if tt.wantText != "" && (out.Response.Result == nil || !strings.Contains(out.Response.Result.Message, tt.wantText)) {
				t.Errorf("result %+v, want message containing %q", out.Response.Result, tt.wantText)
			}
			if tt.wantCode == 422 && (out.Response.Result.Details == nil || len(out.Response.Result.Details.Causes) == 0) {
				t.Errorf("422 without causes: %+v", out.Response.Result)
			}
			if tt.wantHTTP == 200 && out.Response.UID != "0000-1111" {
				t.Errorf("response uid %q, want the request's", out.Response.UID)
			}
		})
	}
}

func TestMutatePatch(t *testing.T) {
	mutate, _ := Handlers(newTestAdmitter(t), nil)
	_, out := serve(mutate, review(admissionv1.Create, taskJSON("custom-image", `{"image":"busybox:1.36","command":["echo"]}`), nil, false), "application/json")
	if out.Response.PatchType == nil || *out.Response.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("no JSON patch: %+v", out.Response)
	}
	var ops []struct {
		Op    string          `json:"op"`
		Path  string          `json:"path"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(out.Response.Patch, &ops); err != nil {
		t.Fatal(err)
	}
	// One operation on spec.config, nothing else (requester, status,
	// metadata) touched: a Task runs nothing, so it records nobody.
	if len(ops) != 1 || ops[0].Op != "replace" || ops[0].Path != "/spec/config" {
		t.Fatalf("patch %s, want a replace of /spec/config alone", out.Response.Patch)
	}
	var cfg v1alpha1.CustomImageConfig
	if err := json.Unmarshal(ops[0].Value, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Namespace != "shop" || cfg.ServiceAccountName != "" || cfg.TimeoutSeconds == nil || *cfg.TimeoutSeconds != 3600 ||
		cfg.Image != "busybox:1.36" || len(cfg.Command) != 1 {
		t.Errorf("patched config %s lacks the defaults or lost the user's fields", ops[0].Value)
	}
}

// withRequester puts spec.requester (JSON) into a Task from taskJSON.
func withRequester(task []byte, requester string) []byte {
	return []byte(strings.Replace(string(task), `"spec":{`, `"spec":{"requester":`+requester+`,`, 1))
}

// TestMutatePatchKeepsBigNumbers: the patch carries the config's JSON as it
// is, so integers beyond float64 precision survive defaulting.
func TestMutatePatchKeepsBigNumbers(t *testing.T) {
	mutate, _ := Handlers(newTestAdmitter(t), nil)
	cfg := `{"resources":[{"version":"v1","resource":"configmaps"}],"operations":[{"mergePatch":{"data":{"n":12345678901234567891}}}]}`
	_, out := serve(mutate, review(admissionv1.Create, taskJSON("kubernetes-object-transformation", cfg), nil, false), "application/json")
	if !strings.Contains(string(out.Response.Patch), "12345678901234567891") {
		t.Errorf("patch %s lost the big integer", out.Response.Patch)
	}
}

// TestRunMutatePatch: a one-off run is patched with its defaulted snapshot
// and its requester, nothing else (no Task label or owner).
func TestRunMutatePatch(t *testing.T) {
	mutate, _, _ := testRunHandlers(newTestAdmitter(t), nil)
	_, out := serve(mutate, review(admissionv1.Create, runJSON("custom-image", `{"image":"busybox:1.36","command":["echo"]}`), nil, false), "application/json")
	var ops []struct {
		Op    string          `json:"op"`
		Path  string          `json:"path"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(out.Response.Patch, &ops); err != nil {
		t.Fatalf("patch %s: %v (%+v)", out.Response.Patch, err, out.Response.Result)
	}
	if len(ops) != 2 || ops[0].Path != "/spec/taskSpec" || ops[1].Path != "/spec/requester" || string(ops[1].Value) != `{"username":"alice"}` {
		t.Fatalf("patch %s, want the snapshot and alice as the requester", out.Response.Patch)
	}
	var snap v1alpha1.PluginSpec
	if err := json.Unmarshal(ops[0].Value, &snap); err != nil {
		t.Fatal(err)
	}
	var cfg v1alpha1.CustomImageConfig
	if err := json.Unmarshal(snap.Config.Raw, &cfg); err != nil || snap.Plugin != v1alpha1.PluginCustomImage || cfg.Namespace != "shop" ||
		cfg.TimeoutSeconds == nil || cfg.ServiceAccountName != "" {
		t.Errorf("snapshot %s: want the config defaulted (namespace, timeout; no ServiceAccount): %v", ops[0].Value, err)
	}
}
