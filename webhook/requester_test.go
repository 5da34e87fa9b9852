package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
)

// reviewAs is review with another user.
func reviewAs(op admissionv1.Operation, obj, old []byte, user authenticationv1.UserInfo) []byte {
	var ar admissionv1.AdmissionReview
	_ = json.Unmarshal(review(op, obj, old, false), &ar)
	ar.Request.UserInfo = user
	b, _ := json.Marshal(ar)
	return b
}

// storedRequester applies a mutating answer's patch to obj and returns the
// spec.requester the API server would store.
func storedRequester(t *testing.T, obj []byte, resp *admissionv1.AdmissionResponse) *v1alpha1.Requester {
	t.Helper()
	if len(resp.Patch) > 0 {
		p, err := jsonpatch.DecodePatch(resp.Patch)
		if err != nil {
			t.Fatal(err)
		}
		if obj, err = p.Apply(obj); err != nil {
			t.Fatalf("apply %s: %v", resp.Patch, err)
		}
	}
	var run v1alpha1.TaskRun
	if err := json.Unmarshal(obj, &run); err != nil {
		t.Fatal(err)
	}
	return run.Spec.Requester
}

// TestRecordRequester: both mutating handlers record the create request's
// whole userInfo in spec.requester, replace a supplied one with a warning,
// and patch nothing when it is already right (a reinvocation).
func TestRecordRequester(t *testing.T) {
	alice := authenticationv1.UserInfo{Username: "alice", UID: "u-1", Groups: []string{"dev", "system:authenticated"},
		Extra: map[string]authenticationv1.ExtraValue{"scopes.example.com": {"a", "b"}}}
	good := runJSON("custom-image", `{"command":["echo"],"image":"busybox:1.36","namespace":"shop","retries":0,"timeoutSeconds":3600}`)
	aliceJSON, _ := json.Marshal(actas.FromUserInfo(alice))
	tests := []struct {
		name      string
		supplied  string // spec.requester in the request, JSON; empty: none
		wantPatch bool
		wantWarn  string
	}{
		{name: "none supplied: recorded", wantPatch: true},
		{name: "another user supplied: replaced, with a warning", supplied: `{"username":"cluster-admin","groups":["system:masters"]}`,
			wantPatch: true, wantWarn: "spec.requester is recorded by taskgate as the user who creates the TaskRun (alice (groups dev, system:authenticated)); the value supplied was replaced"},
		{name: "same user with fewer groups supplied: replaced", supplied: `{"username":"alice","uid":"u-1"}`, wantPatch: true, wantWarn: "the value supplied was replaced"},
		{name: "already recorded: nothing to patch", supplied: string(aliceJSON)},
	}
	a := newTestAdmitter(t)
	allowPods := fakeAuthz{map[string]bool{"create pods shop ": true}}
	mutate, _, admit := runReviewHandlers(&Validator{Admitter: a, Authz: allowPods})
	for _, h := range []struct {
		name string
		h    http.Handler
	}{{"pair", mutate}, {"single call", admit}} {
		for _, tt := range tests {
			t.Run(h.name+"/"+tt.name, func(t *testing.T) {
				obj := good
				if tt.supplied != "" {
					obj = withRequester(good, tt.supplied)
				}
				_, out := serve(h.h, reviewAs(admissionv1.Create, obj, nil, alice), "application/json")
				if !out.Response.Allowed {
					t.Fatalf("refused: %+v", out.Response.Result)
				}
				if got := len(out.Response.Patch) > 0; got != tt.wantPatch {
					t.Errorf("patched %v (%s), want %v", got, out.Response.Patch, tt.wantPatch)
				}
				if got := storedRequester(t, obj, out.Response); !equality.Semantic.DeepEqual(got, actas.FromUserInfo(alice)) {
					t.Errorf("stored requester %+v, want alice's userInfo", got)
				}
				warnings := strings.Join(out.Response.Warnings, "\n")
				if (tt.wantWarn == "") != (warnings == "") || !strings.Contains(warnings, tt.wantWarn) {
					t.Errorf("warnings %q, want %q", out.Response.Warnings, tt.wantWarn)
				}
			})
		}
	}
}

// TestValidateUpdateProtects: a TaskRun's spec.requester cannot change (the
// refusal names it), a legacy Task keeps its deprecated requester but may
// not set another, and only the manager may take the finalizer away, of
// either kind; through the validating handler and the single call's UPDATE
// path.
func TestValidateUpdateProtects(t *testing.T) {
	const manager = "system:serviceaccount:taskgate-system:taskgate"
	alice := authenticationv1.UserInfo{Username: "alice", Groups: []string{"system:authenticated"}}
	finalize := func(obj []byte) []byte {
		return []byte(strings.Replace(string(obj), `"namespace":"shop"`, `"namespace":"shop","finalizers":["`+v1alpha1.Finalizer+`"]`, 1))
	}
	label := func(obj []byte) []byte {
		return []byte(strings.Replace(string(obj), `"namespace":"shop"`, `"namespace":"shop","labels":{"a":"b"}`, 1))
	}
	run := withRequester(runJSON("custom-image", `{"command":["echo"],"image":"busybox:1.36"}`), `{"username":"alice"}`)
	legacy := withRequester(taskJSON("custom-image", `{"command":["echo"],"image":"busybox:1.36"}`), `{"username":"alice"}`)
	tests := []struct {
		name     string
		kind     string // "run" or "task"
		old, obj []byte
		user     authenticationv1.UserInfo
		manager  string
		want     string // empty: allowed
	}{
		{name: "requester changed", kind: "run", old: finalize(run), obj: finalize([]byte(strings.Replace(string(run), `"alice"`, `"mallory"`, 1))),
			user: alice, manager: manager, want: "spec.requester: Forbidden: " + errRequesterChanged},
		{name: "requester removed", kind: "run", old: finalize(run), obj: finalize([]byte(strings.Replace(string(run), `"requester":{"username":"alice"},`, ``, 1))),
			user: alice, manager: manager, want: "spec.requester: Forbidden"},
		{name: "requester changed by the manager too", kind: "run", old: finalize(run), obj: finalize([]byte(strings.Replace(string(run), `"alice"`, `"mallory"`, 1))),
			user: authenticationv1.UserInfo{Username: manager}, manager: manager, want: "spec.requester: Forbidden"},
		{name: "finalizer stripped by a user who may update taskruns", kind: "run", old: finalize(run), obj: run, user: alice, manager: manager,
			want: "metadata.finalizers: Forbidden: only taskgate's manager (" + manager + ") may remove the " + v1alpha1.Finalizer + " finalizer"},
		{name: "finalizer removed by the manager", kind: "run", old: finalize(run), obj: run, user: authenticationv1.UserInfo{Username: manager}, manager: manager},
		{name: "manager unknown: nobody may", kind: "run", old: finalize(run), obj: run, user: authenticationv1.UserInfo{Username: manager},
			want: "metadata.finalizers: Forbidden: only taskgate's manager may remove"},
		{name: "finalizer added", kind: "run", old: run, obj: finalize(run), user: alice, manager: manager},
		{name: "labels changed, finalizer kept", kind: "run", old: finalize(run), obj: label(finalize(run)), user: alice, manager: manager},
		{name: "legacy Task keeps its requester", kind: "task", old: finalize(legacy), obj: label(finalize(legacy)), user: alice, manager: manager},
		{name: "legacy Task may not name another", kind: "task", old: finalize(legacy), obj: finalize([]byte(strings.Replace(string(legacy), `"alice"`, `"mallory"`, 1))),
			user: alice, manager: manager, want: "spec.requester: Forbidden: " + errTaskRequester},
		{name: "legacy Task finalizer stripped by a user", kind: "task", old: finalize(legacy), obj: legacy, user: alice, manager: manager,
			want: "metadata.finalizers: Forbidden: only taskgate's manager"},
		{name: "legacy Task finalizer removed by the manager", kind: "task", old: finalize(legacy), obj: legacy, user: authenticationv1.UserInfo{Username: manager}, manager: manager},
	}
	for _, tt := range tests {
		v := &Validator{Admitter: newTestAdmitter(t), Authz: fakeAuthz{}, Manager: tt.manager}
		_, validate, admit := runReviewHandlers(v)
		if tt.kind == "task" {
			_, validate, admit = NewHandlers(v)
		}
		for _, h := range []struct {
			name string
			h    http.Handler
		}{{"pair", validate}, {"single call", admit}} {
			t.Run(h.name+"/"+tt.name, func(t *testing.T) {
				_, out := serve(h.h, reviewAs(admissionv1.Update, tt.obj, tt.old, tt.user), "application/json")
				if tt.want == "" {
					if !out.Response.Allowed {
						t.Errorf("refused: %+v", out.Response.Result)
					}
					return
				}
				if out.Response.Allowed || out.Response.Result == nil || !strings.Contains(out.Response.Result.Message, tt.want) {
					t.Errorf("answer %+v, want a refusal containing %q", out.Response.Result, tt.want)
				}
			})
		}
	}
}

// askedAuthz records whom it was asked about and denies everything.
type askedAuthz struct {
	mu    sync.Mutex
	users []authenticationv1.UserInfo
}

func (a *askedAuthz) Allowed(_ context.Context, u authenticationv1.UserInfo, _ authorizationv1.ResourceAttributes) (bool, string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.users = append(a.users, u)
	return false, "", nil
}

// TestAccessChecksAskAboutWhomTheRunActsAs: in requester mode the checks ask
// about the requester as taskgate impersonates them (no system:masters) and
// a refusal says why; in controller mode about the request's whole user.
func TestAccessChecksAskAboutWhomTheRunActsAs(t *testing.T) {
	root := authenticationv1.UserInfo{Username: "root", UID: "0", Groups: []string{"system:masters", "system:authenticated"}}
	obj := runJSON("custom-image", `{"command":["echo"],"image":"busybox:1.36","namespace":"shop","retries":0,"timeoutSeconds":3600}`)
	tests := []struct {
		mode     actas.Mode
		wantUser authenticationv1.UserInfo
		wantHint bool
	}{
		{mode: "", wantUser: actas.Effective(actas.FromUserInfo(root)), wantHint: true},
		{mode: actas.ModeRequester, wantUser: actas.Effective(actas.FromUserInfo(root)), wantHint: true},
		{mode: actas.ModeController, wantUser: root},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("mode %q", tt.mode), func(t *testing.T) {
			authz := &askedAuthz{}
			_, _, admit := runReviewHandlers(&Validator{Admitter: newTestAdmitter(t), Authz: authz, ActAs: tt.mode})
			_, out := serve(admit, reviewAs(admissionv1.Create, obj, nil, root), "application/json")
			if out.Response.Allowed {
				t.Fatal("admitted though every check is denied")
			}
			if len(authz.users) != 1 || !equality.Semantic.DeepEqual(authz.users[0], tt.wantUser) {
				t.Errorf("asked about %+v, want %+v", authz.users, tt.wantUser)
			}
			hint := strings.Contains(out.Response.Result.Message, "which Kubernetes does not let taskgate impersonate")
			if hint != tt.wantHint {
				t.Errorf("refusal %q: masters hint %v, want %v", out.Response.Result.Message, hint, tt.wantHint)
			}
		})
	}
}
