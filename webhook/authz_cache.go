package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/util/cache"
)

// DefaultAccessReviewCacheTTL is how long the manager remembers that a user
// may do something (--access-review-cache-ttl). kube-apiserver's webhook
// authorizer keeps allowed answers for 5 minutes; 10 seconds saves the
// repeated SubjectAccessReviews of a user who creates Tasks in a burst while
// keeping the window in which a revoked right still admits Tasks short.
const DefaultAccessReviewCacheTTL = 10 * time.Second

// DefaultAccessReviewCacheSize bounds the remembered answers. An entry is a
// 32-byte key and a short reason; the least recently used goes first.
const DefaultAccessReviewCacheSize = 4096

// CachedAuthorizer remembers the allowed answers of another Authorizer for a
// TTL, per user (name, uid, groups, extra) and resource attributes. Denials
// and errors are never remembered: a user who has just been granted a right
// is not kept waiting, and a failing API server is asked again. The price is
// that a right revoked within the TTL still admits that user's Tasks until
// the entry expires.
type CachedAuthorizer struct {
	inner Authorizer
	ttl   time.Duration
	cache *cache.LRUExpireCache
}

var _ Authorizer = &CachedAuthorizer{}

// NewCachedAuthorizer wraps inner with a cache of at most size entries, each
// kept for ttl (ttl and size must be positive).
func NewCachedAuthorizer(inner Authorizer, ttl time.Duration, size int) *CachedAuthorizer {
	return &CachedAuthorizer{inner: inner, ttl: ttl, cache: cache.NewLRUExpireCache(size)}
}

// newCachedAuthorizerWithClock is NewCachedAuthorizer on a clock tests move.
func newCachedAuthorizerWithClock(inner Authorizer, ttl time.Duration, size int, clock cache.Clock) *CachedAuthorizer {
	return &CachedAuthorizer{inner: inner, ttl: ttl, cache: cache.NewLRUExpireCacheWithClock(size, clock)}
}

// accessKey identifies a question to the Authorizer: SHA-256 of the JSON of
// everything a SubjectAccessReview carries. JSON quotes every string and
// sorts map keys, so two different questions never share an encoding, and
// the hash keeps every key 32 bytes however many groups a user has.
type accessKey [sha256.Size]byte

func keyOf(user authenticationv1.UserInfo, attrs authorizationv1.ResourceAttributes) (accessKey, error) {
	b, err := json.Marshal(struct {
		User  authenticationv1.UserInfo          `json:"user"`
		Attrs authorizationv1.ResourceAttributes `json:"attrs"`
	}{user, attrs})
	if err != nil {
		return accessKey{}, fmt.Errorf("access review cache key: %w", err)
	}
	return sha256.Sum256(b), nil
}

// Allowed implements Authorizer.
func (c *CachedAuthorizer) Allowed(ctx context.Context, user authenticationv1.UserInfo, attrs authorizationv1.ResourceAttributes) (bool, string, error) {
	key, err := keyOf(user, attrs)
	if err != nil {
		return false, "", err
	}
	if reason, ok := c.cache.Get(key); ok {
		accessReviewCache.WithLabelValues("hit").Inc()
		return true, reason.(string), nil
	}
	accessReviewCache.WithLabelValues("miss").Inc()
	ok, reason, err := c.inner.Allowed(ctx, user, attrs)
	if err == nil && ok {
		c.cache.Add(key, reason, c.ttl)
	}
	return ok, reason, err
}

// Len is the number of remembered answers that have not expired.
func (c *CachedAuthorizer) Len() int { return len(c.cache.Keys()) }
