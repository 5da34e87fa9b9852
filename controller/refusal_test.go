package controller

import (
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// The Pod's refusals are told apart: RBAC's is Forbidden, admission's (or
// an invalid spec) PodRejected, anything else is retried; the Task's message
// is the API server's text plus the masters hint.
func TestRefusedPod(t *testing.T) {
	pods := schema.GroupResource{Resource: "pods"}
	tests := []struct {
		name       string
		err        error
		requester  *v1alpha1.Requester
		wantReason string // "": retried
		wantText   []string
	}{
		{name: "rbac", err: apierrors.NewForbidden(pods, "p", errors.New(`User "alice" cannot create resource "pods" in API group "" in the namespace "ns"`)),
			requester: &v1alpha1.Requester{Username: "alice"}, wantReason: ReasonForbidden, wantText: []string{`cannot create resource "pods"`}},
		{name: "rbac for a masters requester", err: apierrors.NewForbidden(pods, "p", errors.New(`User "root" cannot create resource "pods"`)),
			requester: &v1alpha1.Requester{Username: "root", Groups: []string{"system:masters"}}, wantReason: ReasonForbidden,
			wantText: []string{"cannot create resource", "does not let taskgate impersonate"}},
		{name: "pod security", err: apierrors.NewForbidden(pods, "p", errors.New(`violates PodSecurity "restricted:latest": runAsNonRoot != true`)),
			requester: &v1alpha1.Requester{Username: "alice"}, wantReason: ReasonPodRejected, wantText: []string{"violates PodSecurity"}},
		{name: "invalid", err: apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, "p", field.ErrorList{field.Required(field.NewPath("spec", "containers"), "")}),
			requester: &v1alpha1.Requester{Username: "alice"}, wantReason: ReasonPodRejected, wantText: []string{"spec.containers"}},
		{name: "unavailable", err: apierrors.NewServiceUnavailable("etcd"), requester: &v1alpha1.Requester{Username: "alice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := &v1alpha1.TaskRun{Spec: v1alpha1.TaskRunSpec{Requester: tt.requester}}
			err := failPermanent(task, refusedPod(tt.err, "create pod p as alice"))
			if tt.wantReason == "" {
				if err == nil || isFinished(&task.Status) {
					t.Fatalf("err = %v, finished %v; want a retry", err, isFinished(&task.Status))
				}
				return
			}
			if err != nil || len(task.Status.Conditions) != 1 {
				t.Fatalf("err = %v, conditions %+v", err, task.Status.Conditions)
			}
			c := task.Status.Conditions[0]
			if c.Reason != tt.wantReason {
				t.Errorf("reason = %s, want %s", c.Reason, tt.wantReason)
			}
			for _, want := range append(tt.wantText, "the API server refused to create pod p as alice") {
				if !strings.Contains(c.Message, want) {
					t.Errorf("message %q does not say %q", c.Message, want)
				}
			}
		})
	}
}

// Child clients are not held to client-go's default rate limit, a higher
// one is kept, and none gets one: every requester's clients have a real
// client-side limit, a token bucket of their own (issue 20: with the
// manager's QPS -1 the children had none).
func TestChildConfig(t *testing.T) {
	tests := []struct {
		name      string
		qps       float32
		burst     int
		wantQPS   float32
		wantBurst int
		shared    bool
	}{
		{name: "client-go default", wantQPS: childQPS, wantBurst: childBurst},
		{name: "controller-runtime default", qps: 20, burst: 30, wantQPS: childQPS, wantBurst: childBurst},
		{name: "higher kept", qps: 1000, burst: 2000, wantQPS: 1000, wantBurst: 2000},
		{name: "unlimited gets the limit", qps: -1, wantQPS: childQPS, wantBurst: childBurst},
		{name: "a shared limiter is not passed on", qps: 20, burst: 30, wantQPS: childQPS, wantBurst: childBurst, shared: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &rest.Config{QPS: tt.qps, Burst: tt.burst}
			if tt.shared {
				cfg.RateLimiter = flowcontrol.NewFakeAlwaysRateLimiter()
			}
			got := childConfig(cfg)
			if got.QPS != tt.wantQPS || got.Burst != tt.wantBurst || cfg.QPS != tt.qps || got.RateLimiter != nil {
				t.Errorf("childConfig = %v/%d (input now %v), want %v/%d", got.QPS, got.Burst, cfg.QPS, tt.wantQPS, tt.wantBurst)
			}
		})
	}
}
