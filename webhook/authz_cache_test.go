package webhook

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/utils/ptr"
)

// answer is what the wrapped Authorizer says when it is asked.
type answer int

const (
	allow answer = iota
	deny
	fail
)

// scriptedAuthz answers with next and counts how often it was asked.
type scriptedAuthz struct {
	next  answer
	asked int
}

func (s *scriptedAuthz) Allowed(context.Context, authenticationv1.UserInfo, authorizationv1.ResourceAttributes) (bool, string, error) {
	s.asked++
	switch s.next {
	case allow:
		return true, "allowed by test", nil
	case deny:
		return false, "denied by test", nil
	}
	return false, "", errors.New("API server unavailable")
}

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func TestCachedAuthorizer(t *testing.T) {
	const ttl = 10 * time.Second
	alice := authenticationv1.UserInfo{Username: "alice", UID: "1", Groups: []string{"team-a", "system:authenticated"}}
	with := func(f func(*authenticationv1.UserInfo)) authenticationv1.UserInfo {
		u := alice
		u.Groups = append([]string(nil), alice.Groups...)
		f(&u)
		return u
	}
	bind := authorizationv1.ResourceAttributes{Verb: "bind", Group: "rbac.authorization.k8s.io", Resource: "clusterroles", Name: "view"}
	patchShop := authorizationv1.ResourceAttributes{Verb: "patch", Group: "apps", Resource: "deployments", Namespace: "shop"}
	patchProd := patchShop
	patchProd.Namespace = "prod"

	type step struct {
		after       time.Duration // the clock moves this far before the question
		user        authenticationv1.UserInfo
		attrs       authorizationv1.ResourceAttributes
		inner       answer // what the wrapped Authorizer says if asked
		wantAsked   bool
		wantAllowed bool
		wantErr     bool
	}
	tests := []struct {
		name      string
		size      int
		denialTTL *time.Duration // nil: the default
		steps     []step
	}{
		{name: "allowed answer reused within the TTL, even after revocation", size: 8, steps: []step{
			{user: alice, attrs: bind, inner: allow, wantAsked: true, wantAllowed: true},
			{after: time.Second, user: alice, attrs: bind, inner: deny, wantAllowed: true},
			{after: ttl - time.Second, user: alice, attrs: bind, inner: deny, wantAllowed: true},
		}},
		{name: "expired after the TTL", size: 8, steps: []step{
			{user: alice, attrs: bind, inner: allow, wantAsked: true, wantAllowed: true},
			{after: ttl + time.Millisecond, user: alice, attrs: bind, inner: deny, wantAsked: true},
			{after: DefaultAccessReviewDenialCacheTTL + time.Millisecond, user: alice, attrs: bind, inner: allow, wantAsked: true, wantAllowed: true},
		}},
		{name: "denial cached briefly: a fresh grant counts once it expires", size: 8, steps: []step{
			{user: alice, attrs: bind, inner: deny, wantAsked: true},
			{after: DefaultAccessReviewDenialCacheTTL - time.Millisecond, user: alice, attrs: bind, inner: allow},
			{after: 2 * time.Millisecond, user: alice, attrs: bind, inner: allow, wantAsked: true, wantAllowed: true},
			{user: alice, attrs: bind, inner: deny, wantAllowed: true},
		}},
		{name: "denials off", size: 8, denialTTL: ptr.To(time.Duration(0)), steps: []step{
			{user: alice, attrs: bind, inner: deny, wantAsked: true},
			{user: alice, attrs: bind, inner: deny, wantAsked: true},
			{user: alice, attrs: bind, inner: allow, wantAsked: true, wantAllowed: true},
		}},
		{name: "a burst of the same refused question asks once", size: 8, steps: []step{
			{user: alice, attrs: patchShop, inner: deny, wantAsked: true},
			{after: 100 * time.Millisecond, user: alice, attrs: patchShop, inner: deny},
			{after: 100 * time.Millisecond, user: alice, attrs: patchShop, inner: deny},
			{after: 100 * time.Millisecond, user: alice, attrs: patchProd, inner: deny, wantAsked: true},
		}},
		{name: "error not cached", size: 8, steps: []step{
			{user: alice, attrs: bind, inner: fail, wantAsked: true, wantErr: true},
			{user: alice, attrs: bind, inner: allow, wantAsked: true, wantAllowed: true},
		}},
		{name: "different groups, uid, extra, name or attributes are different questions", size: 16, steps: []step{
			{user: alice, attrs: bind, inner: allow, wantAsked: true, wantAllowed: true},
			{user: with(func(u *authenticationv1.UserInfo) { u.Groups = u.Groups[:1] }), attrs: bind, inner: deny, wantAsked: true},
			{user: with(func(u *authenticationv1.UserInfo) { u.Groups = append(u.Groups, "system:masters") }), attrs: bind, inner: deny, wantAsked: true},
			// One group "a,b" is not two groups "a" and "b".
			{user: with(func(u *authenticationv1.UserInfo) { u.Groups = []string{"team-a,system:authenticated"} }), attrs: bind, inner: deny, wantAsked: true},
			{user: with(func(u *authenticationv1.UserInfo) { u.UID = "2" }), attrs: bind, inner: deny, wantAsked: true},
			{user: with(func(u *authenticationv1.UserInfo) { u.Username = "bob" }), attrs: bind, inner: deny, wantAsked: true},
			{user: with(func(u *authenticationv1.UserInfo) {
				u.Extra = map[string]authenticationv1.ExtraValue{"scopes.example.com": {"read-only"}}
			}), attrs: bind, inner: deny, wantAsked: true},
			{user: alice, attrs: patchShop, inner: allow, wantAsked: true, wantAllowed: true},
			{user: alice, attrs: patchProd, inner: deny, wantAsked: true},
			// The first two questions are still remembered.
			{user: alice, attrs: bind, inner: deny, wantAllowed: true},
			{user: alice, attrs: patchShop, inner: deny, wantAllowed: true},
		}},
		{name: "bound respected: the least recently used goes first", size: 2, steps: []step{
			{user: alice, attrs: bind, inner: allow, wantAsked: true, wantAllowed: true},
			{user: alice, attrs: patchShop, inner: allow, wantAsked: true, wantAllowed: true},
			{user: alice, attrs: patchProd, inner: allow, wantAsked: true, wantAllowed: true},
			// bind was pushed out; patchProd is still there.
			{user: alice, attrs: bind, inner: deny, wantAsked: true},
			{user: alice, attrs: patchProd, inner: deny, wantAllowed: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner := &scriptedAuthz{}
			clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			c := newCachedAuthorizerWithClock(inner, ttl, tt.size, clock)
			if tt.denialTTL != nil {
				c.WithDenialTTL(*tt.denialTTL)
			}
			for i, s := range tt.steps {
				clock.now = clock.now.Add(s.after)
				inner.next = s.inner
				before := inner.asked
				hits, misses := cacheCount("hit"), cacheCount("miss")
				ok, _, err := c.Allowed(context.Background(), s.user, s.attrs)
				if asked := inner.asked > before; asked != s.wantAsked {
					t.Errorf("step %d: asked the API server %v, want %v", i, asked, s.wantAsked)
				}
				dHits, dMisses := cacheCount("hit")-hits, cacheCount("miss")-misses
				if s.wantAsked && (dHits != 0 || dMisses != 1) || !s.wantAsked && (dHits != 1 || dMisses != 0) {
					t.Errorf("step %d: metric moved hit +%v, miss +%v", i, dHits, dMisses)
				}
				if ok != s.wantAllowed || (err != nil) != s.wantErr {
					t.Errorf("step %d: allowed %v, err %v; want %v, error %v", i, ok, err, s.wantAllowed, s.wantErr)
				}
				if n := c.Len(); n > tt.size {
					t.Errorf("step %d: %d entries, bound %d", i, n, tt.size)
				}
			}
		})
	}
}

// cacheCount sums taskgate_access_review_cache_total over its verdicts.
func cacheCount(result string) float64 {
	n := 0.0
	for _, v := range []string{verdictAllowed, verdictDenied, verdictError} {
		n += promtest.ToFloat64(accessReviewCache.WithLabelValues(result, v))
	}
	return n
}

// TestCachedAuthorizerVerdictLabel: a remembered denial is counted as a
// denied hit, an error as an error miss.
func TestCachedAuthorizerVerdictLabel(t *testing.T) {
	inner := &scriptedAuthz{next: deny}
	c := NewCachedAuthorizer(inner, time.Minute, 8)
	attrs := authorizationv1.ResourceAttributes{Verb: "create", Resource: "pods", Namespace: "verdict"}
	user := authenticationv1.UserInfo{Username: "verdict-user"}
	deniedHits := promtest.ToFloat64(accessReviewCache.WithLabelValues("hit", verdictDenied))
	errorMisses := promtest.ToFloat64(accessReviewCache.WithLabelValues("miss", verdictError))
	for range 3 {
		if ok, _, err := c.Allowed(context.Background(), user, attrs); ok || err != nil {
			t.Fatalf("allowed %v, err %v", ok, err)
		}
	}
	if d := promtest.ToFloat64(accessReviewCache.WithLabelValues("hit", verdictDenied)) - deniedHits; d != 2 {
		t.Errorf("denied hits +%v, want +2", d)
	}
	inner.next = fail
	attrs.Namespace = "verdict-2"
	_, _, _ = c.Allowed(context.Background(), user, attrs)
	if d := promtest.ToFloat64(accessReviewCache.WithLabelValues("miss", verdictError)) - errorMisses; d != 1 {
		t.Errorf("error misses +%v, want +1", d)
	}
	if inner.asked != 2 {
		t.Errorf("asked %d times, want 2 (one denial remembered, one error not)", inner.asked)
	}
}

// TestCachedAuthorizerDenialTTLCapped: with a TTL shorter than the default
// denial TTL, denials are kept no longer than allowed answers.
func TestCachedAuthorizerDenialTTLCapped(t *testing.T) {
	inner := &scriptedAuthz{next: deny}
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := newCachedAuthorizerWithClock(inner, time.Second, 8, clock)
	attrs := authorizationv1.ResourceAttributes{Verb: "create", Resource: "pods"}
	_, _, _ = c.Allowed(context.Background(), authenticationv1.UserInfo{Username: "a"}, attrs)
	clock.now = clock.now.Add(time.Second + time.Millisecond)
	inner.next = allow
	if ok, _, _ := c.Allowed(context.Background(), authenticationv1.UserInfo{Username: "a"}, attrs); !ok || inner.asked != 2 {
		t.Errorf("allowed %v after %d questions: the denial outlived the 1 s TTL", ok, inner.asked)
	}
}

// TestCachedAuthorizerStaysBounded fills the cache far past its size.
func TestCachedAuthorizerStaysBounded(t *testing.T) {
	inner := &scriptedAuthz{next: allow}
	c := NewCachedAuthorizer(inner, time.Minute, DefaultAccessReviewCacheSize)
	attrs := authorizationv1.ResourceAttributes{Verb: "patch", Group: "apps", Resource: "deployments"}
	for i := range 3 * DefaultAccessReviewCacheSize {
		attrs.Namespace = "ns-" + strconv.Itoa(i)
		if ok, _, err := c.Allowed(context.Background(), authenticationv1.UserInfo{Username: "alice"}, attrs); !ok || err != nil {
			t.Fatalf("question %d: %v %v", i, ok, err)
		}
	}
	if n := c.Len(); n != DefaultAccessReviewCacheSize {
		t.Errorf("%d entries after %d distinct questions, want the bound %d", n, 3*DefaultAccessReviewCacheSize, DefaultAccessReviewCacheSize)
	}
}
