package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// localPrefix replaces the "taskgate-" of the configurations' names in
// config/webhook/manifests.yaml, so `make run`'s configurations never take
// the names the chart gives a release called taskgate (taskgate-mutating,
// taskgate-validating) and `helm install taskgate charts/taskgate` into this
// cluster does not fail on objects it does not own.
const localPrefix = "taskgate-local-"

// loadWebhooks reads the webhook configurations a plain cluster registers
// (config/webhook/manifests.yaml) and readies them for envtest: each gets a
// local name, and its clientConfig.service.path loses its leading slash,
// because envtest turns the service reference into
// https://127.0.0.1:<port>/<path> and writes the caBundle of the serving
// certificate it makes. Nothing else is changed: rules, failure policy,
// timeouts and side effects are the file's.
func loadWebhooks(path string) ([]*admissionv1.MutatingWebhookConfiguration, []*admissionv1.ValidatingWebhookConfiguration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("webhook configurations: %w", err)
	}
	var (
		mutating   []*admissionv1.MutatingWebhookConfiguration
		validating []*admissionv1.ValidatingWebhookConfiguration
	)
	r := utilyaml.NewYAMLReader(bufioReader(data))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		var meta struct{ Kind string }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		switch meta.Kind {
		case "MutatingWebhookConfiguration":
			w := &admissionv1.MutatingWebhookConfiguration{}
			err = localize(path, i, doc, w, func() []*admissionv1.WebhookClientConfig {
				return clientConfigs(w.Webhooks, func(h *admissionv1.MutatingWebhook) *admissionv1.WebhookClientConfig { return &h.ClientConfig })
			})
			mutating = append(mutating, w)
		case "ValidatingWebhookConfiguration":
			w := &admissionv1.ValidatingWebhookConfiguration{}
			err = localize(path, i, doc, w, func() []*admissionv1.WebhookClientConfig {
				return clientConfigs(w.Webhooks, func(h *admissionv1.ValidatingWebhook) *admissionv1.WebhookClientConfig { return &h.ClientConfig })
			})
			validating = append(validating, w)
		case "":
			if len(bytes.TrimSpace(doc)) > 0 && !onlyComments(doc) {
				return nil, nil, fmt.Errorf("%s: document %d has no kind", path, i)
			}
		default:
			return nil, nil, fmt.Errorf("%s: document %d: kind %s is not a webhook configuration", path, i, meta.Kind)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	if len(mutating)+len(validating) == 0 {
		return nil, nil, fmt.Errorf("%s holds no webhook configuration", path)
	}
	return mutating, validating, nil
}

// localize decodes document i of path strictly into w, gives it its local
// name and readies the clientConfig of each of its webhooks (ccs,
// called after decoding, lists them).
func localize(path string, i int, doc []byte, w metav1.Object, ccs func() []*admissionv1.WebhookClientConfig) error {
	if err := yaml.UnmarshalStrict(doc, w); err != nil {
		return fmt.Errorf("%s: document %d: %w", path, i, err)
	}
	w.SetName(localName(w.GetName()))
	for j, cc := range ccs() {
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

func onlyComments(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}
