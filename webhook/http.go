package webhook

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Paths the webhooks are served on (controller-runtime's conventional names
// for the pair). AdmitPath is the single-call mode: one mutating webhook that
// defaults and validates, registered instead of the pair. Each path admits
// Tasks and TaskRuns (the review's resource says which), so one webhook per
// configuration registers both.
const (
	MutatePath   = "/mutate-automation-astronetes-io-v1alpha1-task"
	ValidatePath = "/validate-automation-astronetes-io-v1alpha1-task"
	AdmitPath    = "/admit-automation-astronetes-io-v1alpha1-task"
)

// maxReviewBytes bounds an AdmissionReview body: two objects of at most
// the API server's 3 MiB request limit, plus the envelope.
const maxReviewBytes = 7 << 20

var reviewGVK = admissionv1.SchemeGroupVersion.WithKind("AdmissionReview")

// ReviewHandler serves AdmissionReviews over HTTP. Unlike controller-runtime's
// own handler, a request that is not a well-formed admission.k8s.io/v1
// AdmissionReview gets HTTP 400 (and a review whose result says why), not
// 200, so a client that is not an API server learns it sent garbage.
type ReviewHandler struct{ Webhook *admission.Webhook }

// NewReviewHandler wraps a controller-runtime admission webhook; panics in it
// are recovered into a 500 result for that review alone.
func NewReviewHandler(wh *admission.Webhook) *ReviewHandler {
	wh.RecoverPanic = ptr.To(true)
	return &ReviewHandler{Webhook: wh}
}

// ServeHTTP implements http.Handler.
func (h *ReviewHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeReview(w, http.StatusMethodNotAllowed, failed(http.StatusMethodNotAllowed, "use POST"))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		writeReview(w, http.StatusBadRequest, failed(http.StatusBadRequest, fmt.Sprintf("Content-Type %q, want application/json", ct)))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes+1))
	if err != nil {
		writeReview(w, http.StatusBadRequest, failed(http.StatusBadRequest, "read body: "+err.Error()))
		return
	}
	if len(body) > maxReviewBytes {
		writeReview(w, http.StatusRequestEntityTooLarge, failed(http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", maxReviewBytes)))
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		writeReview(w, http.StatusBadRequest, failed(http.StatusBadRequest, "not an AdmissionReview: "+err.Error()))
		return
	}
	if review.GroupVersionKind() != reviewGVK || review.Request == nil || review.Request.UID == "" {
		writeReview(w, http.StatusBadRequest, failed(http.StatusBadRequest,
			"want an admission.k8s.io/v1 AdmissionReview with a request and its uid"))
		return
	}
	resp := h.Webhook.Handle(r.Context(), admission.Request{AdmissionRequest: *review.Request})
	writeReview(w, http.StatusOK, &resp.AdmissionResponse)
}

func failed(code int32, msg string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Result: &metav1.Status{
		Status: metav1.StatusFailure, Code: code, Message: msg, Reason: metav1.StatusReasonBadRequest,
	}}
}

func writeReview(w http.ResponseWriter, status int, resp *admissionv1.AdmissionResponse) {
	out := admissionv1.AdmissionReview{Response: resp}
	out.SetGroupVersionKind(reviewGVK)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(&out)
}
