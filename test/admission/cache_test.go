package admission_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/astronetes/taskgate/test/testutil"
	"github.com/astronetes/taskgate/webhook"
)

// TestAccessReviewCacheWithRealRBAC drives the access-review cache (the
// manager's --access-review-cache-ttl) with SubjectAccessReviews answered
// by the API server's RBAC: a denial is remembered for the short denial
// TTL only, so a right just granted counts well before the TTL of allowed
// answers; an allowed answer is reused until its TTL ends, so a revoked
// right still counts until then, and not after.
func TestAccessReviewCacheWithRealRBAC(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "cache")
	const ttl, denialTTL = 5 * time.Second, 500 * time.Millisecond
	authz := webhook.NewCachedAuthorizer(webhook.SARAuthorizer{Client: k8s}, ttl, webhook.DefaultAccessReviewCacheSize).WithDenialTTL(denialTTL)
	user := authenticationv1.UserInfo{Username: "cache-user", Groups: []string{"system:authenticated"}}
	attrs := authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Group: "automation.astronetes.io", Resource: "synchronizations"}
	allowed := func() bool {
		t.Helper()
		ok, _, err := authz.Allowed(ctx, user, attrs)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	// waitFor polls until the answer is want; RBAC reaches the authorizer
	// through an informer, a moment after the write.
	waitFor := func(want bool, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for allowed() != want {
			if time.Since(start) > within {
				t.Fatalf("cached authorizer: allowed != %v after %v, want %v by then", want, within, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
		return time.Since(start)
	}

	if allowed() {
		t.Fatal("allowed before any grant")
	}
	denied := time.Now()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "sync-creator", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"automation.astronetes.io"}, Resources: []string{"synchronizations"}, Verbs: []string{"create"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "sync-creator", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user.Username}}}
	must(t, k8s.Create(ctx, role))
	must(t, k8s.Create(ctx, binding))
	// The denial above is remembered for the denial TTL only: the grant
	// counts once that is over and RBAC has it, well within the TTL.
	if took := waitFor(true, ttl); took >= ttl {
		t.Fatalf("grant counted after %v, want before the TTL %v: a denial was cached as long as an allowed answer", took, ttl)
	}
	if since := time.Since(denied); since < denialTTL {
		t.Fatalf("grant counted %v after the denial, inside the denial TTL %v: the denial was not remembered", since, denialTTL)
	}

	cachedAt := time.Now() // at the latest: the allowed answer waitFor got was a miss or a hit of one just made
	must(t, k8s.Delete(ctx, binding))
	revoked := time.Now()
	// RBAC has seen the delete once the API server itself refuses (an
	// uncached authorizer): from then on an allowed answer can only be the
	// cache's.
	direct := webhook.SARAuthorizer{Client: k8s}
	testutil.EventuallyWithin(t, ttl/2, "the API server refusing the revoked right", func() error {
		ok, _, err := direct.Allowed(ctx, user, attrs)
		if err != nil || ok {
			return fmt.Errorf("SubjectAccessReview: allowed %v, err %v; want denied", ok, err)
		}
		return nil
	})
	hits := cacheHits(t)
	if !allowed() {
		t.Fatal("revoked right refused inside the TTL: the allowed answer was not cached")
	}
	if got := cacheHits(t) - hits; got != 1 {
		t.Fatalf("taskgate_access_review_cache_total{result=hit,verdict=allowed} moved by %v, want 1: the cache did not answer", got)
	}
	if since := time.Since(cachedAt); since >= ttl {
		t.Fatalf("the cached answer came %v after it was cached, past the TTL %v", since, ttl)
	}
	// Once the entry expires the API server is asked again and refuses.
	waitFor(false, 2*ttl+5*time.Second)
	if since := time.Since(revoked); since > ttl+2*time.Second {
		t.Errorf("revocation counted %v after the delete, want within the TTL %v and a poll", since, ttl)
	}
}

// cacheHits is taskgate_access_review_cache_total{result=hit,verdict=allowed}.
func cacheHits(t *testing.T) float64 {
	t.Helper()
	return testutil.MetricValue(t, "taskgate_access_review_cache_total", map[string]string{"result": "hit", "verdict": "allowed"})
}
