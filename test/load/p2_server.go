package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/load/kit"
	"github.com/astronetes/taskgate/webhook"
)

// allowAll stands in for the SubjectAccessReviews: P2 measures the webhook
// server alone; what a review costs the API server is in P1.
type allowAll struct{}

func (allowAll) Allowed(context.Context, authenticationv1.UserInfo, authorizationv1.ResourceAttributes) (bool, string, error) {
	return true, "", nil
}

type p2Result struct {
	workers    []int
	reps       int
	saturation [][]float64 // reviews/s per worker count, one per repetition
	rate       int
	duration   time.Duration   // of each open-loop run
	fixed      kit.Latencies   // at rate, from the intended send time, all runs
	runP99     []time.Duration // p99 of each open-loop run
	late       int             // requests sent more than 1 ms after their time
}

// medianSat is the median over repetitions of each worker count's rate.
func (r *p2Result) medianSat(i int) float64 { return kit.MedianFloat(r.saturation[i]) }

// best is the highest median rate over the worker counts.
func (r *p2Result) best() float64 {
	best := 0.0
	for i := range r.workers {
		best = max(best, r.medianSat(i))
	}
	return best
}

type review struct {
	path string
	body []byte
}

// runP2 drives the webhook server (controller-runtime's, as the manager
// runs it, with taskgate's handlers) over HTTPS with keep-alive from this
// process, reps times: closed loops of `workers` connections for satDur
// each, then an open loop at `rate` reviews/s for fixedDur.
func runP2(samples []*v1alpha1.Task, workers []int, reps int, satDur time.Duration, rate int, fixedDur time.Duration) (*p2Result, error) {
	ca, err := kit.NewCA("taskgate-p2-ca")
	if err != nil {
		return nil, err
	}
	dir, _, err := kit.NewCertDir(ca)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	a, err := webhook.NewAdmitterFromOptions(webhook.Options{})
	if err != nil {
		return nil, err
	}
	mutate, validate := webhook.Handlers(a, allowAll{})
	ws, err := kit.StartWebhookServer(dir, map[string]http.Handler{webhook.MutatePath: mutate, webhook.ValidatePath: validate})
	if err != nil {
		return nil, err
	}
	defer ws.Stop()
	reviews, err := p2Reviews(a, samples)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM)
	res := &p2Result{workers: workers, reps: reps, rate: rate, duration: fixedDur, saturation: make([][]float64, len(workers))}
	// Repetitions interleave the worker counts and the fixed-rate runs, so
	// that a noisy moment of the machine hits one run of each, not all runs
	// of one.
	for range reps {
		for i, w := range workers {
			hc := p2Client(pool, w)
			n, err := closedLoop(hc, ws.URL(), reviews, w, satDur)
			hc.CloseIdleConnections()
			if err != nil {
				return nil, err
			}
			res.saturation[i] = append(res.saturation[i], float64(n)/satDur.Seconds())
		}
		hc := p2Client(pool, 64)
		lat, late, err := openLoop(hc, ws.URL(), reviews, rate, fixedDur)
		hc.CloseIdleConnections()
		if err != nil {
			return nil, err
		}
		res.fixed = append(res.fixed, lat...)
		res.runP99 = append(res.runP99, lat.P99())
		res.late += late
	}
	return res, nil
}

func p2Client(pool *x509.CertPool, conns int) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DisableCompression:  true,
	}}
}

// p2Reviews are a CREATE review of each sample, as a Task, for the mutating
// webhook and of the defaulted sample for the validating one, as the API
// server sends.
func p2Reviews(a *webhook.Admitter, samples []*v1alpha1.Task) ([]review, error) {
	var out []review
	for i, s := range samples {
		t := kit.NewTask(s, "default", fmt.Sprintf("p2-%d", i))
		t.APIVersion, t.Kind = v1alpha1.GroupVersion.String(), "Task"
		raw, err := json.Marshal(t)
		if err != nil {
			return nil, err
		}
		out = append(out, review{webhook.MutatePath, reviewJSON(raw)})
		if errs := a.Default(t); len(errs) > 0 {
			return nil, errs.ToAggregate()
		}
		if raw, err = json.Marshal(t); err != nil {
			return nil, err
		}
		out = append(out, review{webhook.ValidatePath, reviewJSON(raw)})
	}
	return out, nil
}

// p2User is the user of P2's reviews.
var p2User = authenticationv1.UserInfo{Username: "load", Groups: []string{"system:authenticated"}}

func reviewJSON(obj []byte) []byte {
	r := admissionv1.AdmissionReview{Request: &admissionv1.AdmissionRequest{
		UID:       types.UID("3f1c1e6e-0000-4000-8000-000000000001"),
		Kind:      metav1.GroupVersionKind{Group: v1alpha1.GroupVersion.Group, Version: v1alpha1.GroupVersion.Version, Kind: "Task"},
		Resource:  metav1.GroupVersionResource{Group: v1alpha1.GroupVersion.Group, Version: v1alpha1.GroupVersion.Version, Resource: "tasks"},
		Namespace: "default", Operation: admissionv1.Create,
		UserInfo: p2User,
		Object:   runtime.RawExtension{Raw: obj},
	}}
	r.SetGroupVersionKind(admissionv1.SchemeGroupVersion.WithKind("AdmissionReview"))
	b, _ := json.Marshal(r)
	return b
}

// send posts one review and checks it was answered and allowed.
func send(hc *http.Client, base string, r review) error {
	resp, err := hc.Post(base+r.path, "application/json", bytes.NewReader(r.body))
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"allowed":true`)) {
		return fmt.Errorf("%s: HTTP %d: %.300s", r.path, resp.StatusCode, body)
	}
	return nil
}

// closedLoop keeps `workers` requests in flight for d and counts answers.
func closedLoop(hc *http.Client, base string, reviews []review, workers int, d time.Duration) (int64, error) {
	for _, r := range reviews { // warm-up: connections, caches
		if err := send(hc, base, r); err != nil {
			return 0, err
		}
	}
	var done atomic.Int64
	var firstErr atomic.Pointer[error]
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; time.Now().Before(end) && firstErr.Load() == nil; i++ {
				if err := send(hc, base, reviews[i%len(reviews)]); err != nil {
					firstErr.Store(&err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return 0, *p
	}
	return done.Load(), nil
}

// openLoop sends at a fixed rate whatever the answers' pace, and measures
// each latency from the time the request was due, so a stall counts for
// every request it delays (no coordinated omission).
func openLoop(hc *http.Client, base string, reviews []review, rate int, d time.Duration) (kit.Latencies, int, error) {
	n := int(float64(rate) * d.Seconds())
	lat := make(kit.Latencies, n)
	interval := time.Second / time.Duration(rate)
	var late atomic.Int64
	var firstErr atomic.Pointer[error]
	sem := make(chan struct{}, 256) // bounds requests in flight
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(due))
		sem <- struct{}{}
		if time.Since(due) > time.Millisecond {
			late.Add(1)
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := send(hc, base, reviews[i%len(reviews)]); err != nil {
				firstErr.Store(&err)
			}
			lat[i] = time.Since(due)
		})
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return nil, 0, *p
	}
	return lat, int(late.Load()), nil
}
