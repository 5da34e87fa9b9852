package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// requestCounter counts a client's API requests by verb, resource and
// answer, to show what the controller spends per Task.
type requestCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func newRequestCounter() *requestCounter { return &requestCounter{n: map[string]int{}} }

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		code := "error"
		if err == nil {
			code = fmt.Sprint(resp.StatusCode)
		}
		key := fmt.Sprintf("%s %s → %s", verb(req), resource(req.URL.Path), code)
		c.mu.Lock()
		c.n[key]++
		c.mu.Unlock()
		return resp, err
	})
}

// dropEvents answers Event creations in-process, echoing the Event, as if
// the API server had stored it: the what-if of a controller without Events.
func dropEvents(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, "/events") || req.Body == nil {
			return rt.RoundTrip(req)
		}
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		h := http.Header{}
		h.Set("Content-Type", req.Header.Get("Content-Type"))
		return &http.Response{StatusCode: http.StatusCreated, Status: "201 Created", Header: h, Request: req,
			Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), ProtoMajor: 1, ProtoMinor: 1}, nil
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func verb(req *http.Request) string {
	switch q := req.URL.Query(); {
	case q.Get("watch") == "true":
		return "WATCH"
	case q.Has("dryRun"):
		return req.Method + " (dry-run)"
	}
	return req.Method
}

// reset forgets the counts so far.
func (c *requestCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n = map[string]int{}
}

// resource is the last resource (and subresource) of an API path:
// /apis/g/v/namespaces/ns/tasks/name/status → tasks/status.
func resource(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return path // discovery
	}
	if len(parts) >= 2 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	switch len(parts) {
	case 0:
		return path
	case 3:
		return parts[0] + "/" + parts[2]
	}
	return parts[0]
}

// rows lists the counts, most frequent first, per Task.
func (c *requestCounter) rows(tasks int) [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.n))
	for k := range c.n {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return c.n[keys[i]] > c.n[keys[j]] || c.n[keys[i]] == c.n[keys[j]] && keys[i] < keys[j]
	})
	var out [][]string
	for _, k := range keys {
		out = append(out, []string{k, fmt.Sprint(c.n[k]), fmt.Sprintf("%.2f", float64(c.n[k])/float64(tasks))})
	}
	return out
}

// reconcileStats reads controller-runtime's metrics for the task
// controllers from its global registry (filled even with the metrics server
// off): reconciles by result, and the mean reconcile and queue-wait times.
func reconcileStats() (byResult map[string]float64, meanReconcile, meanQueue time.Duration, err error) {
	families, err := metrics.Registry.Gather()
	if err != nil {
		return nil, 0, 0, err
	}
	byResult = map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			// "task", or one controller per plugin ("task-run-synchronization").
			if !strings.HasPrefix(labels["controller"], "task") && !strings.HasPrefix(labels["name"], "task") {
				continue
			}
			switch f.GetName() {
			case "controller_runtime_reconcile_total":
				byResult[labels["result"]] += m.GetCounter().GetValue()
			case "controller_runtime_reconcile_time_seconds":
				if h := m.GetHistogram(); h.GetSampleCount() > 0 {
					meanReconcile = time.Duration(h.GetSampleSum() / float64(h.GetSampleCount()) * float64(time.Second))
				}
			case "workqueue_queue_duration_seconds":
				if h := m.GetHistogram(); h.GetSampleCount() > 0 {
					meanQueue = time.Duration(h.GetSampleSum() / float64(h.GetSampleCount()) * float64(time.Second))
				}
			}
		}
	}
	return byResult, meanReconcile, meanQueue, nil
}

// snapshot copies the counts so far.
func (c *requestCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}
