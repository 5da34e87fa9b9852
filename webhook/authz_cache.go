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

// DefaultAccessReviewDenialCacheTTL is how long a denial is remembered:
// long enough that a burst of refused Tasks (a GitOps loop retrying, a
// script, someone probing) costs the API server one SubjectAccessReview per
// question instead of one per review, short enough that a user who has just
// been granted a right retries once and is admitted.
const DefaultAccessReviewDenialCacheTTL = 2 * time.Second

// DefaultAccessReviewCacheSize bounds the remembered answers. An entry is a
// 32-byte key and a short reason; the least recently used goes first.
const DefaultAccessReviewCacheSize = 4096

// CachedAuthorizer remembers the answers of another Authorizer per user
// (name, uid, groups, extra) and resource attributes: an allowed answer for
// its TTL, a denial for a shorter one (DefaultAccessReviewDenialCacheTTL
// unless WithDenialTTL says otherwise). Errors are never remembered: a
// failing API server is asked again. The price is that a right revoked
// within the TTL still admits that user's Tasks until the entry expires,
// and a right granted within the denial TTL counts once that one expires.
type CachedAuthorizer struct {
	inner     Authorizer
	ttl       time.Duration
	denialTTL time.Duration
	cache     *cache.LRUExpireCache
}

var _ Authorizer = &CachedAuthorizer{}

// verdict is a remembered answer.
type verdict struct {
	allowed bool
	reason  string
}

// NewCachedAuthorizer wraps inner with a cache of at most size entries:
// allowed answers are kept for ttl, denials for
// DefaultAccessReviewDenialCacheTTL or ttl, whichever is shorter (ttl and
// size must be positive).
func NewCachedAuthorizer(inner Authorizer, ttl time.Duration, size int) *CachedAuthorizer {
	return &CachedAuthorizer{inner: inner, ttl: ttl, denialTTL: min(DefaultAccessReviewDenialCacheTTL, ttl), cache: cache.NewLRUExpireCache(size)}
}

// newCachedAuthorizerWithClock is NewCachedAuthorizer on a clock tests move.
func newCachedAuthorizerWithClock(inner Authorizer, ttl time.Duration, size int, clock cache.Clock) *CachedAuthorizer {
	c := NewCachedAuthorizer(inner, ttl, size)
	c.cache = cache.NewLRUExpireCacheWithClock(size, clock)
	return c
}

// WithDenialTTL sets how long denials are remembered; zero or less
// remembers none. It returns c.
func (c *CachedAuthorizer) WithDenialTTL(d time.Duration) *CachedAuthorizer {
	c.denialTTL = max(d, 0)
	return c
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

// Verdict label values of taskgate_access_review_cache_total.
const (
	verdictAllowed = "allowed"
	verdictDenied  = "denied"
	verdictError   = "error"
)

// Allowed implements Authorizer.
func (c *CachedAuthorizer) Allowed(ctx context.Context, user authenticationv1.UserInfo, attrs authorizationv1.ResourceAttributes) (bool, string, error) {
	key, err := keyOf(user, attrs)
	if err != nil {
		return false, "", err
	}
	if v, ok := c.cache.Get(key); ok {
		got := v.(verdict)
		accessReviewCache.WithLabelValues("hit", verdictLabel(got.allowed, nil)).Inc()
		return got.allowed, got.reason, nil
	}
	ok, reason, err := c.inner.Allowed(ctx, user, attrs)
	accessReviewCache.WithLabelValues("miss", verdictLabel(ok, err)).Inc()
	switch {
	case err != nil:
	case ok:
		c.cache.Add(key, verdict{allowed: true, reason: reason}, c.ttl)
	case c.denialTTL > 0:
		c.cache.Add(key, verdict{reason: reason}, c.denialTTL)
	}
	return ok, reason, err
}

func verdictLabel(allowed bool, err error) string {
	switch {
	case err != nil:
		return verdictError
	case allowed:
		return verdictAllowed
	}
	return verdictDenied
}

// Len is the number of remembered answers that have not expired.
func (c *CachedAuthorizer) Len() int { return len(c.cache.Keys()) }
