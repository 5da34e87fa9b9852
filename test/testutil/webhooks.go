package testutil

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
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

// ReadWebhookConfigurations decodes the webhook configurations of a
// manifest file such as config/webhook/manifests.yaml, strictly, in the
// order written. Empty and comment-only documents are skipped; any other
// kind, a document without one, or a file with no configuration at all is
// an error naming the file and the document.
func ReadWebhookConfigurations(path string) ([]*admissionv1.MutatingWebhookConfiguration, []*admissionv1.ValidatingWebhookConfiguration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("webhook configurations: %w", err)
	}
	var (
		mutating   []*admissionv1.MutatingWebhookConfiguration
		validating []*admissionv1.ValidatingWebhookConfiguration
	)
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
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
		var into any
		switch meta.Kind {
		case "MutatingWebhookConfiguration":
			w := &admissionv1.MutatingWebhookConfiguration{}
			mutating, into = append(mutating, w), w
		case "ValidatingWebhookConfiguration":
			w := &admissionv1.ValidatingWebhookConfiguration{}
			validating, into = append(validating, w), w
		case "":
			if !onlyComments(doc) {
				return nil, nil, fmt.Errorf("%s: document %d has no kind", path, i)
			}
			continue
		default:
			return nil, nil, fmt.Errorf("%s: document %d: kind %s is not a webhook configuration", path, i, meta.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, into); err != nil {
			return nil, nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
	}
	if len(mutating)+len(validating) == 0 {
		return nil, nil, fmt.Errorf("%s holds no webhook configuration", path)
	}
	return mutating, validating, nil
}

// onlyComments reports whether doc holds nothing but blank lines and
// comments.
func onlyComments(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// RemoveWebhooks deletes every webhook configuration c sees for the rest
// of the test and creates them again when it ends, so a test can show what
// the API server does without the webhooks (the chart's policies). The API
// server follows a moment later either way: callers wait for it.
func RemoveWebhooks(t testing.TB, c client.Client) {
	t.Helper()
	ctx := context.Background()
	saved, err := WebhookConfigurations(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range saved {
		if err := c.Delete(ctx, obj); err != nil {
			t.Fatalf("delete %s: %v", obj.GetName(), err)
		}
	}
	t.Cleanup(func() {
		for _, obj := range saved {
			obj.SetResourceVersion("")
			obj.SetUID("")
			if err := c.Create(ctx, obj); err != nil {
				t.Errorf("restore %s: %v", obj.GetName(), err)
			}
		}
	})
}
