package main

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"

	"github.com/astronetes/taskgate/webhook"
)

// cachedAuthorizer is the option measured as modeSARCache: taskgate's
// SubjectAccessReviews, with "allowed" answers remembered for ttl per user
// and request, as kube-apiserver's own webhook authorizer does
// (--authorization-webhook-cache-authorized-ttl, 5 minutes by default).
// Denials and errors are not cached, so a user who is just granted a right
// is not kept waiting; the price is that a revoked right still admits Tasks
// until its entry expires. A prototype for measuring, bounded only by ttl.
type cachedAuthorizer struct {
	inner webhook.Authorizer
	ttl   time.Duration
	mu    sync.Mutex
	until map[string]time.Time
}

func newCachedAuthorizer(inner webhook.Authorizer, ttl time.Duration) *cachedAuthorizer {
	return &cachedAuthorizer{inner: inner, ttl: ttl, until: map[string]time.Time{}}
}

// Allowed implements webhook.Authorizer.
func (c *cachedAuthorizer) Allowed(ctx context.Context, user authenticationv1.UserInfo, attrs authorizationv1.ResourceAttributes) (bool, string, error) {
	key, err := json.Marshal(struct {
		U authenticationv1.UserInfo
		A authorizationv1.ResourceAttributes
	}{user, attrs})
	if err != nil {
		return c.inner.Allowed(ctx, user, attrs)
	}
	now := time.Now()
	c.mu.Lock()
	until, hit := c.until[string(key)]
	c.mu.Unlock()
	if hit && now.Before(until) {
		return true, "", nil
	}
	ok, reason, err := c.inner.Allowed(ctx, user, attrs)
	if err == nil && ok {
		c.mu.Lock()
		c.until[string(key)] = now.Add(c.ttl)
		c.mu.Unlock()
	}
	return ok, reason, err
}
