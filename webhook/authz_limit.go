package webhook

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/util/flowcontrol"
)

// Defaults of the per-requester bound on SubjectAccessReviews.
const (
	// DefaultAccessReviewsPerSecond is how many SubjectAccessReviews one
	// user's creates may cost per second, sustained.
	DefaultAccessReviewsPerSecond = 20
	// DefaultAccessReviewBurst is how many one user may cost at once: the
	// most one TaskRun costs (MaxAccessChecks) several times over.
	DefaultAccessReviewBurst = 4 * MaxAccessChecks
	// limiterIdle is how long a user's bucket is kept after their last
	// review: long enough to refill it.
	limiterIdle = time.Minute
	// limiterUsers bounds the users whose buckets are kept.
	limiterUsers = 10000
)

// errTooManyReviews: the user's creates asked for more SubjectAccessReviews
// than their share; the create is refused with 429 and a Retry-After.
var errTooManyReviews = errors.New("too many access reviews")

// LimitedAuthorizer gives every user a token bucket of SubjectAccessReviews,
// so one user's flood of creates (many TaskRuns naming random namespaces,
// which no cache can answer) costs the API server at most their share and
// never slows another user's create. Put it under the cache: an answer the
// cache holds costs nothing. A refused review is not sent.
type LimitedAuthorizer struct {
	inner Authorizer
	qps   float32
	burst int
	mu    sync.Mutex
	users *cache.LRUExpireCache // username -> flowcontrol.RateLimiter
}

// NewLimitedAuthorizer bounds inner's reviews to qps per user, with burst.
func NewLimitedAuthorizer(inner Authorizer, qps float32, burst int) *LimitedAuthorizer {
	return &LimitedAuthorizer{inner: inner, qps: qps, burst: burst, users: cache.NewLRUExpireCache(limiterUsers)}
}

// Allowed implements Authorizer.
func (l *LimitedAuthorizer) Allowed(ctx context.Context, user authenticationv1.UserInfo, attrs authorizationv1.ResourceAttributes) (bool, string, error) {
	if !l.bucket(user.Username).TryAccept() {
		return false, "", fmt.Errorf("%w: %s's creates asked for more than %g access reviews a second (burst %d)",
			errTooManyReviews, user.Username, l.qps, l.burst)
	}
	return l.inner.Allowed(ctx, user, attrs)
}

func (l *LimitedAuthorizer) bucket(user string) flowcontrol.RateLimiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.users.Get(user); ok {
		l.users.Add(user, b, limiterIdle)
		return b.(flowcontrol.RateLimiter)
	}
	b := flowcontrol.NewTokenBucketRateLimiter(l.qps, l.burst)
	l.users.Add(user, b, limiterIdle)
	return b
}
