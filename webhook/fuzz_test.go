package webhook

import (
	"net/http"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// FuzzAdmissionReview sends arbitrary bodies to the three webhooks: every answer
// is an AdmissionReview with HTTP 200 or a 4xx, never a panic or a 5xx.
func FuzzAdmissionReview(f *testing.F) {
	good := taskJSON("custom-image", `{"image":"busybox:1.36","command":["echo"]}`)
	f.Add(review(admissionv1.Create, good, nil, false))
	f.Add(review(admissionv1.Update, good, good, false))
	f.Add(review(admissionv1.Create, taskJSON("run-synchronization", `{"template":{"spec":{"plugin":"kubernetes-to-kubernetes","config":{"sourceName":"a","destinationName":"b"}}}}`), nil, true))
	f.Add(review(admissionv1.Create, taskJSON("kubernetes-object-transformation", `{"resources":[{"version":"v1","resource":"configmaps"}],"operations":[{"jsonPatch":[{"op":"add","path":"/a","value":1}]}]}`), nil, false))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","operation":"CREATE","object":5}}`))
	f.Add([]byte(`[]`))
	a := newTestAdmitter(f)
	mutate, validate := Handlers(a, fakeAuthz{})
	admit := SingleCallHandler(a, fakeAuthz{})
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, h := range []http.Handler{mutate, validate, admit} {
			code, out := serve(h, body, "application/json")
			if code != http.StatusOK && (code < 400 || code >= 500) {
				t.Fatalf("HTTP %d for %q", code, body)
			}
			if out.Response == nil {
				t.Fatalf("no AdmissionReview response for %q", body)
			}
			if r := out.Response.Result; r != nil && r.Code >= 500 {
				t.Fatalf("result %d (%s) for %q", r.Code, r.Message, body)
			}
		}
	})
}

// FuzzValidateDefault runs arbitrary configs through Default and Validate:
// no panic; defaulting is idempotent; a Task that was valid stays valid
// after a second defaulting.
func FuzzValidateDefault(f *testing.F) {
	for _, tk := range sampleTasks(f) {
		f.Add(string(tk.Spec.Plugin), tk.Spec.Config.Raw)
	}
	f.Add("custom-image", []byte(`{"image":"a","command":["x"],"resources":{"limits":{"cpu":"1x"}},"env":[{"name":"A","valueFrom":{}}]}`))
	f.Add("kubernetes-object-transformation", []byte(`{"resources":[{"version":"v1","resource":"pods"}],"operations":[{"jsonPatch":[{"op":"move","path":"/a"}]}],"labelSelector":{"matchExpressions":[{"key":"","operator":"In"}]}}`))
	f.Add("run-synchronization", []byte(`{"template":{"metadata":{"labels":{"a/b/c":"x"}},"spec":{"plugin":"x","config":[]}}}`))
	f.Add("custom-image", []byte(`{"image":"a","command":["x"],"namespace":5,"namespace":"other","Namespace":"x","timeoutSeconds":1e3}`))
	a := newTestAdmitter(f)
	f.Fuzz(func(t *testing.T, plugin string, config []byte) {
		tk := &v1alpha1.Task{Spec: v1alpha1.TaskSpec{PluginSpec: v1alpha1.PluginSpec{Plugin: v1alpha1.Plugin(plugin), Config: runtime.RawExtension{Raw: config}}}}
		tk.Name, tk.Namespace = "fuzz", "default"
		if errs := a.Default(tk); len(errs) > 0 {
			return
		}
		once := string(tk.Spec.Config.Raw)
		errs, _ := a.Validate(tk)
		if errs := a.Default(tk); len(errs) > 0 || string(tk.Spec.Config.Raw) != once {
			t.Fatalf("second Default changed %s into %s (%v)", once, tk.Spec.Config.Raw, errs)
		}
		if len(errs) == 0 {
			if again, _ := a.Validate(tk); len(again) > 0 {
				t.Fatalf("valid config became invalid: %v", again)
			}
			if n := len(a.AccessChecks(tk)); n > MaxAccessChecks {
				t.Fatalf("valid Task needs %d access checks, more than %d", n, MaxAccessChecks)
			}
		}
		for _, e := range errs {
			if e.Field == "" || e.Error() == "" {
				t.Fatalf("error without a field path: %#v", e)
			}
		}
	})
}
