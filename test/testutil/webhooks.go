package testutil

import (
	"context"
	"fmt"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// WebhookConfigurations lists the mutating, then the validating webhook
// configurations that match opts.
func WebhookConfigurations(ctx context.Context, c client.Reader, opts ...client.ListOption) ([]client.Object, error) {
	var mws admissionv1.MutatingWebhookConfigurationList
	if err := c.List(ctx, &mws, opts...); err != nil {
		return nil, fmt.Errorf("list mutating webhook configurations: %w", err)
	}
	var vws admissionv1.ValidatingWebhookConfigurationList
	if err := c.List(ctx, &vws, opts...); err != nil {
		return nil, fmt.Errorf("list validating webhook configurations: %w", err)
	}
	objs := make([]client.Object, 0, len(mws.Items)+len(vws.Items))
	for i := range mws.Items {
		objs = append(objs, &mws.Items[i])
	}
	for i := range vws.Items {
		objs = append(objs, &vws.Items[i])
	}
	return objs, nil
}
