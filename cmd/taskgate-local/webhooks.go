package main

import (
	"errors"
	"fmt"
	"strings"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/astronetes/taskgate/test/testutil"
)

// localPrefix replaces the "taskgate-" of the configurations' names in
// config/webhook/manifests.yaml, so `make run`'s configurations never take
// the names the chart gives a release called taskgate (taskgate-mutating,
// taskgate-validating) and `helm install taskgate charts/taskgate` into this
// cluster does not fail on objects it does not own.
const localPrefix = "taskgate-local-"

// loadWebhooks reads the webhook configurations a plain cluster registers
// (config/webhook/manifests.yaml, testutil.ReadWebhookConfigurations) and
// readies them for envtest: each gets a local name, and its
// clientConfig.service.path loses its leading slash, because envtest turns
// the service reference into https://127.0.0.1:<port>/<path> and writes the
// caBundle of the serving certificate it makes. Nothing else is changed:
// rules, failure policy, timeouts and side effects are the file's.
func loadWebhooks(path string) ([]*admissionv1.MutatingWebhookConfiguration, []*admissionv1.ValidatingWebhookConfiguration, error) {
	mutating, validating, err := testutil.ReadWebhookConfigurations(path)
	if err != nil {
		return nil, nil, err
	}
	for _, w := range mutating {
		if err := localize(path, w, clientConfigs(w.Webhooks, func(h *admissionv1.MutatingWebhook) *admissionv1.WebhookClientConfig { return &h.ClientConfig })); err != nil {
			return nil, nil, err
		}
	}
	for _, w := range validating {
		if err := localize(path, w, clientConfigs(w.Webhooks, func(h *admissionv1.ValidatingWebhook) *admissionv1.WebhookClientConfig { return &h.ClientConfig })); err != nil {
			return nil, nil, err
		}
	}
	return mutating, validating, nil
}

// localize gives w its local name and readies the clientConfig of each of
// its webhooks (ccs).
func localize(path string, w metav1.Object, ccs []*admissionv1.WebhookClientConfig) error {
	w.SetName(localName(w.GetName()))
	for j, cc := range ccs {
		if err := localClientConfig(cc); err != nil {
			return fmt.Errorf("%s: %s webhooks[%d].clientConfig: %w", path, w.GetName(), j, err)
		}
	}
	return nil
}

// clientConfigs lists the clientConfig (cc) of each of webhooks.
func clientConfigs[W any](webhooks []W, cc func(*W) *admissionv1.WebhookClientConfig) []*admissionv1.WebhookClientConfig {
	out := make([]*admissionv1.WebhookClientConfig, 0, len(webhooks))
	for j := range webhooks {
		out = append(out, cc(&webhooks[j]))
	}
	return out
}

func localName(name string) string { return localPrefix + strings.TrimPrefix(name, "taskgate-") }

// localClientConfig keeps the service reference's path for envtest (see
// loadWebhooks); a URL or a missing path cannot be pointed at the local
// manager.
func localClientConfig(cc *admissionv1.WebhookClientConfig) error {
	if cc.Service == nil || cc.Service.Path == nil || *cc.Service.Path == "" {
		return errors.New("service.path is required: it names the manager's handler")
	}
	p := strings.TrimPrefix(*cc.Service.Path, "/")
	cc.Service.Path = &p
	cc.URL, cc.CABundle = nil, nil
	return nil
}
