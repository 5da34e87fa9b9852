package admission_test

import (
	"context"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	const ttl, denialTTL = 3 * time.Second, 500 * time.Millisecond
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
				t.Fatalf("allowed != %v after %v", want, within)
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

	must(t, k8s.Delete(ctx, binding))
	revoked := time.Now()
	// Give RBAC time to see the delete, still inside the TTL of the
	// allowed answer: the cache answers, not the API server.
	time.Sleep(ttl / 4)
	if !allowed() {
		t.Fatal("revoked right refused inside the TTL: the allowed answer was not cached")
	}
	// Once the entry expires the API server is asked again and refuses.
	waitFor(false, 2*ttl+5*time.Second)
	t.Logf("revocation counted %v after the delete (TTL %v)", time.Since(revoked), ttl)
}
