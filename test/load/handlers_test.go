package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/astronetes/taskgate/webhook"
)

// BenchmarkHandlers is P2's work without HTTPS: what the webhook process
// does for one Task create, review bytes in and answer bytes out, for each
// seed sample. "pair" is P2's two reviews (the mutating one, then the
// validating one of the defaulted Task, as the API server sends them);
// "single-call" is the mutating review to the single-call handler. Access
// checks are answered in-process (allowed) and there is no preflight: the
// API server's side of both is in P1. Unlike webhook's
// BenchmarkValidateDefault (P3) it includes decoding the AdmissionReview and
// encoding the answer:
//
//	go test ./test/load -run '^$' -bench BenchmarkHandlers -benchmem -cpu 1
func BenchmarkHandlers(b *testing.B) {
	_, a, samples := benchInputs(b)
	mutate, validate := webhook.Handlers(a, allowAll{})
	single := webhook.SingleCallHandler(a, allowAll{})
	handlers := map[string]http.Handler{webhook.MutatePath: mutate, webhook.ValidatePath: validate}
	reviews, err := p2Reviews(a, samples)
	if err != nil {
		b.Fatal(err)
	}
	for i, s := range samples {
		pair := reviews[2*i : 2*i+2]
		for _, r := range pair {
			serve(b, handlers[r.path], r)
		}
		serve(b, single, pair[0])
		b.Run(s.Name+"/pair", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, r := range pair {
					serve(b, handlers[r.path], r)
				}
			}
		})
		b.Run(s.Name+"/single-call", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				serve(b, single, pair[0])
			}
		})
	}
}

// serve hands r to h as the webhook server would and fails b unless the
// answer allowed it.
func serve(b *testing.B, h http.Handler, r review) {
	req := httptest.NewRequest(http.MethodPost, r.path, bytes.NewReader(r.body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !bytes.Contains(rec.Body.Bytes(), []byte(`"allowed":true`)) {
		b.Fatalf("%s: HTTP %d: %.300s", r.path, rec.Code, rec.Body.Bytes())
	}
}
