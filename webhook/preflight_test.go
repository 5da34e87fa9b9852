package webhook

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
)

// The API server's refusals are tested against a real one in
// test/admission; these cases hold how the preflight sorts answers, which
// ServiceAccount it names and what it sends, with scripted answers.

var (
	podsGR = schema.GroupResource{Resource: "pods"}
	crbGR  = schema.GroupResource{Group: rbacGroup, Resource: "clusterrolebindings"}
)

func saLookup(sa string) error {
	return apierrors.NewForbidden(podsGR, "x", errors.New("error looking up service account shop/"+sa+`: serviceaccount "`+sa+`" not found`))
}

// sent is one dry run the preflight sent.
type sent struct {
	kind, name, serviceAccount string
	dryRun                     bool
}

func TestPreflight(t *testing.T) {
	podSecurity := apierrors.NewForbidden(podsGR, "t1-task", errors.New(`violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false`))
	escalation := apierrors.NewForbidden(crbGR, "taskgate.shop.t1", errors.New("user \"alice\" (groups=...) is attempting to grant RBAC permissions not currently held"))
	tests := []struct {
		name        string
		config      string
		generate    bool
		masters     bool
		answer      func(kind, sa string) error // nil: the dry run passes
		wantSent    []string                    // "kind serviceAccount"
		wantErr     string                      // field: text
		wantWarning string
	}{
		{name: "Task's own ServiceAccount: default stands in", config: "{image: a:1, command: [x]}",
			wantSent: []string{"Pod default"}},
		{name: "user-named ServiceAccount that exists", config: "{image: a:1, command: [x], serviceAccountName: runner}",
			wantSent: []string{"Pod runner"}},
		{name: "user-named ServiceAccount not there yet: default stands in", config: "{image: a:1, command: [x], serviceAccountName: runner}",
			answer: func(kind, sa string) error {
				if sa == "runner" {
					return saLookup(sa)
				}
				return nil
			},
			wantSent: []string{"Pod runner", "Pod default"}},
		{name: "no default ServiceAccount either: inconclusive", config: "{image: a:1, command: [x]}",
			answer:   func(kind, sa string) error { return saLookup(sa) },
			wantSent: []string{"Pod default"}, wantWarning: "the run's Pod could not be dry-run: pods \"x\" is forbidden: error looking up service account shop/default"},
		{name: "PodSecurity refuses", config: "{image: a:1, command: [x]}",
			answer:   func(string, string) error { return podSecurity },
			wantSent: []string{"Pod default"},
			wantErr:  `spec.config: Forbidden: the API server refuses the run's Pod (server-side dry run as alice): pods "t1-task" is forbidden: violates PodSecurity "restricted:latest"`},
		{name: "masters requester refused: the hint says why", config: "{image: a:1, command: [x]}", masters: true,
			answer:   func(string, string) error { return podSecurity },
			wantSent: []string{"Pod default"}, wantErr: "which Kubernetes does not let taskgate impersonate"},
		{name: "binding refused by the escalation check, Pod admitted", config: "{image: a:1, command: [x], clusterRole: admin}",
			answer: func(kind, _ string) error {
				if kind == "ClusterRoleBinding" {
					return escalation
				}
				return nil
			},
			wantSent: []string{"ClusterRoleBinding " + v1alpha1.ServiceAccountName("t1", ""), "Pod default"},
			wantErr:  `spec.config.clusterRole: Forbidden: the API server refuses the run's ClusterRoleBinding (server-side dry run as alice): clusterrolebindings.rbac.authorization.k8s.io "taskgate.shop.t1" is forbidden`},
		{name: "API server error: admitted with a warning", config: "{image: a:1, command: [x]}",
			answer:   func(string, string) error { return apierrors.NewInternalError(errors.New("etcd is down")) },
			wantSent: []string{"Pod default"}, wantWarning: "taskgate could not dry-run the run's Pod, so it is admitted unchecked"},
		{name: "timeout: admitted with a warning", config: "{image: a:1, command: [x]}",
			answer:   func(string, string) error { return apierrors.NewTimeoutError("slow", 1) },
			wantSent: []string{"Pod default"}, wantWarning: "admitted unchecked"},
		{name: "a webhook that cannot dry-run: admitted with a warning", config: "{image: a:1, command: [x]}",
			answer: func(string, string) error {
				return apierrors.NewBadRequest(`admission webhook "x.example.com" does not support dry run`)
			},
			wantSent: []string{"Pod default"}, wantWarning: "does not support dry run"},
		{name: "the Pod's name is taken: admitted with a warning", config: "{image: a:1, command: [x]}",
			answer:   func(string, string) error { return apierrors.NewAlreadyExists(podsGR, "t1-task") },
			wantSent: []string{"Pod default"}, wantWarning: `a Pod named "t1-task" already exists`},
		{name: "generateName: a placeholder name", config: "{image: a:1, command: [x]}", generate: true,
			wantSent: []string{"Pod default"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var got []sent
			c := fake.NewClientBuilder().WithScheme(testScheme()).WithInterceptorFuncs(interceptor.Funcs{
				Create: func(_ context.Context, _ client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
					co := &client.CreateOptions{}
					co.ApplyOptions(opts)
					s := sent{name: obj.GetName(), dryRun: len(co.DryRun) == 1 && co.DryRun[0] == "All"}
					switch o := obj.(type) {
					case *corev1.Pod:
						s.kind, s.serviceAccount = "Pod", o.Spec.ServiceAccountName
					case *rbacv1.ClusterRoleBinding:
						s.kind, s.serviceAccount = "ClusterRoleBinding", o.Subjects[0].Name
					}
					mu.Lock()
					got = append(got, s)
					mu.Unlock()
					if tt.answer == nil {
						return nil
					}
					return tt.answer(s.kind, s.serviceAccount)
				},
			}).Build()
			r := &v1alpha1.Requester{Username: "alice", Groups: []string{"system:authenticated"}}
			if tt.masters {
				r.Groups = append(r.Groups, actas.MastersGroup)
			}
			p := &Preflight{Clients: func(req *v1alpha1.Requester) (*actas.Clients, error) {
				return &actas.Clients{Client: c, Requester: req}, nil
			}}
			tk := inline(v1alpha1.PluginCustomImage, tt.config)
			if tt.generate {
				tk.Name, tk.GenerateName = "", "run-"
			}
			errs, warnings := p.CustomImage(context.Background(), tk, r)

			var kinds []string
			for _, s := range got {
				kinds = append(kinds, s.kind+" "+s.serviceAccount)
				if !s.dryRun {
					t.Errorf("%s %s sent without dryRun=All", s.kind, s.name)
				}
				if tt.generate && !strings.HasPrefix(s.name, "run-") {
					t.Errorf("%s named %q, want a placeholder from generateName run-", s.kind, s.name)
				}
			}
			// The binding and the Pod go out at once: compare as sets.
			if !slices.Equal(slices.Sorted(slices.Values(kinds)), slices.Sorted(slices.Values(tt.wantSent))) {
				t.Errorf("sent %q, want %q", kinds, tt.wantSent)
			}
			gotErr := errs.ToAggregate()
			if (tt.wantErr == "") != (gotErr == nil) || gotErr != nil && !strings.Contains(gotErr.Error(), tt.wantErr) {
				t.Errorf("errors %v, want %q", gotErr, tt.wantErr)
			}
			w := strings.Join(warnings, "\n")
			if (tt.wantWarning == "") != (w == "") || !strings.Contains(w, tt.wantWarning) {
				t.Errorf("warnings %q, want %q", warnings, tt.wantWarning)
			}
		})
	}
}

// TestPreflightCache checks which preflights CacheTTL spares: a Task that
// differs from one that passed only in its name, within the TTL; never one
// with other content or another requester, nor after a refusal, a warning
// or the TTL.
func TestPreflightCache(t *testing.T) {
	alice := &v1alpha1.Requester{Username: "alice", Groups: []string{"system:authenticated"}}
	bob := &v1alpha1.Requester{Username: "bob", Groups: []string{"system:authenticated"}}
	type try struct {
		name, config string
		r            *v1alpha1.Requester
	}
	refuse := apierrors.NewForbidden(podsGR, "x", errors.New(`violates PodSecurity "restricted:latest"`))
	tests := []struct {
		name     string
		ttl      time.Duration
		answer   error
		wait     time.Duration // between the two tries
		second   try
		wantSent int
	}{
		{name: "same content, another name: spared", ttl: time.Minute, second: try{"t2", "{image: a:1, command: [x]}", alice}, wantSent: 1},
		{name: "cache off", second: try{"t2", "{image: a:1, command: [x]}", alice}, wantSent: 2},
		{name: "another image", ttl: time.Minute, second: try{"t2", "{image: a:2, command: [x]}", alice}, wantSent: 2},
		{name: "another clusterRole", ttl: time.Minute, second: try{"t2", "{image: a:1, command: [x], clusterRole: view}", alice}, wantSent: 3},
		{name: "another requester", ttl: time.Minute, second: try{"t2", "{image: a:1, command: [x]}", bob}, wantSent: 2},
		{name: "a refusal is not remembered", ttl: time.Minute, answer: refuse, second: try{"t2", "{image: a:1, command: [x]}", alice}, wantSent: 2},
		{name: "an inconclusive answer is not remembered", ttl: time.Minute, answer: apierrors.NewTimeoutError("slow", 1), second: try{"t2", "{image: a:1, command: [x]}", alice}, wantSent: 2},
		{name: "expired", ttl: time.Millisecond, wait: 20 * time.Millisecond, second: try{"t2", "{image: a:1, command: [x]}", alice}, wantSent: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			sentN := 0
			c := fake.NewClientBuilder().WithScheme(testScheme()).WithInterceptorFuncs(interceptor.Funcs{
				Create: func(context.Context, client.WithWatch, client.Object, ...client.CreateOption) error {
					mu.Lock()
					sentN++
					mu.Unlock()
					return tt.answer
				},
			}).Build()
			p := &Preflight{CacheTTL: tt.ttl, Clients: func(req *v1alpha1.Requester) (*actas.Clients, error) {
				return &actas.Clients{Client: c, Requester: req}, nil
			}}
			first := inline(v1alpha1.PluginCustomImage, "{image: a:1, command: [x]}")
			errs1, _ := p.CustomImage(context.Background(), first, alice)
			time.Sleep(tt.wait)
			second := inline(v1alpha1.PluginCustomImage, tt.second.config)
			second.Name = tt.second.name
			errs2, _ := p.CustomImage(context.Background(), second, tt.second.r)
			if sentN != tt.wantSent {
				t.Errorf("sent %d dry runs, want %d", sentN, tt.wantSent)
			}
			if tt.answer == refuse && (len(errs1) == 0 || len(errs2) == 0) {
				t.Errorf("a refusal admitted: %v, %v", errs1, errs2)
			}
		})
	}
}
