package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

type allowAll struct{}

func (allowAll) Allowed(context.Context, authenticationv1.UserInfo, authorizationv1.ResourceAttributes) (bool, string, error) {
	return true, "", nil
}

// BenchmarkHandlers measures what the webhook process does for one Task
// create, review bytes in and answer bytes out, for each seed sample: the
// pair (the mutating review, then the validating review of the patched
// Task, as the API server sends them) and the single call. Access checks
// are answered in-process (allowed) and there is no preflight: the API
// server's side of both is in P1. Unlike BenchmarkValidateDefault it
// includes decoding the AdmissionReview and encoding the answer:
//
//	go test ./webhook -run '^$' -bench BenchmarkHandlers -benchmem
func BenchmarkHandlers(b *testing.B) {
	a := newTestAdmitter(b)
	mutate, validate, single := NewHandlers(&Validator{Admitter: a, Authz: allowAll{}})
	user := authenticationv1.UserInfo{Username: "alice", UID: "u-1", Groups: []string{"system:authenticated"}}
	samples := sampleTasks(b)
	names := make([]string, 0, len(samples))
	for n := range samples {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		task := samples[name].DeepCopy()
		task.Namespace = "bench"
		raw, err := json.Marshal(task)
		if err != nil {
			b.Fatal(err)
		}
		// The validating review carries the Task as the mutating answer
		// left it.
		patched := raw
		if resp := serveReview(b, mutate, raw, user); len(resp.Patch) > 0 {
			p, err := jsonpatch.DecodePatch(resp.Patch)
			if err != nil {
				b.Fatal(err)
			}
			if patched, err = p.Apply(raw); err != nil {
				b.Fatal(err)
			}
		}
		if resp := serveReview(b, validate, patched, user); !resp.Allowed {
			b.Fatalf("%s: validating review refused: %v", name, resp.Result)
		}
		b.Run(name+"/pair", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				serveReview(b, mutate, raw, user)
				serveReview(b, validate, patched, user)
			}
		})
		b.Run(name+"/single-call", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				serveReview(b, single, raw, user)
			}
		})
	}
}

// serveReview sends one CREATE review of object to h and returns its
// answer, failing b unless the answer allowed it.
func serveReview(b *testing.B, h http.Handler, object []byte, user authenticationv1.UserInfo) *admissionv1.AdmissionResponse {
	body, err := json.Marshal(&admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID("review-1"),
			Kind:      metav1.GroupVersionKind{Group: "automation.astronetes.io", Version: "v1alpha1", Kind: "Task"},
			Resource:  metav1.GroupVersionResource{Group: "automation.astronetes.io", Version: "v1alpha1", Resource: "tasks"},
			Namespace: "bench", Name: "t", Operation: admissionv1.Create, UserInfo: user,
			Object: runtime.RawExtension{Raw: object},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &review); err != nil || review.Response == nil {
		b.Fatalf("answer %d %q: %v", rec.Code, rec.Body.Bytes(), err)
	}
	if !review.Response.Allowed {
		b.Fatalf("refused: %v", review.Response.Result)
	}
	return review.Response
}
