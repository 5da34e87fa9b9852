package drills_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/astronetes/taskgate/test/load/kit"
	"github.com/astronetes/taskgate/test/testutil"
)

// TestCertRotation replaces the webhook server's certificate while Tasks
// and TaskRuns are being created through the webhooks: first with one from the same CA,
// then with one from a new CA, trusting both CAs during the switch. Not one
// create may fail. controller-runtime's webhook server reloads tls.crt and
// tls.key through its certwatcher.
func TestCertRotation(t *testing.T) {
	rotations := short(1, 5)
	phase := short(time.Second, 5*time.Second)
	t.Run("same CA", func(t *testing.T) {
		withCreates(t, phase, func() {
			for range rotations {
				rotate(t, caNow)
				time.Sleep(phase)
			}
		})
	})
	t.Run("new CA, both trusted during the switch", func(t *testing.T) {
		withCreates(t, phase, func() {
			for i := range rotations {
				next, err := kit.NewCA(fmt.Sprintf("taskgate-drill-ca-%d", i+2))
				if err != nil {
					t.Fatal(err)
				}
				// 1. Trust the old and the new CA.
				setBundle(t, kit.Bundle(caNow, next))
				// 2. Serve a certificate of the new CA.
				rotate(t, next)
				time.Sleep(phase)
				// 3. Trust only the new CA.
				setBundle(t, next.PEM)
				caNow = next
				time.Sleep(phase)
			}
		})
	})
}

// withCreates creates Tasks and TaskRuns of a Task (in turn) with 4 workers
// for `lead`, then during rotate,
// then for `lead` again, and fails the test if any create failed or too few
// went through while rotating. Creates in flight are never cancelled: a
// stall shows as a slow create (logged) or a webhook timeout (a failure).
func withCreates(t *testing.T, lead time.Duration, rotateFn func()) {
	ns := newNamespace(t, "certs")
	runbook := createRunbook(t, ns, "runbook", customImageSpec, 1)
	var stop atomic.Bool
	var ok, failed, slow atomic.Int64
	var slowest atomic.Int64 // ns
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop.Store(true) // also when rotateFn fails the test
	start := time.Now()
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				began := time.Now()
				var obj client.Object = customImageTask(ns, fmt.Sprintf("w%d-%05d", w, i))
				if i%2 == 1 {
					obj = kit.NewTaskRun(ns, fmt.Sprintf("w%d-%05d", w, i), runbook.Name)
				}
				err := admin.Client.Create(ctx, obj)
				cancel()
				took := time.Since(began)
				if took > time.Second {
					slow.Add(1)
				}
				for cur := slowest.Load(); int64(took) > cur && !slowest.CompareAndSwap(cur, int64(took)); cur = slowest.Load() {
				}
				if err != nil {
					failed.Add(1)
					t.Errorf("create at %s (took %s): %v", began.Sub(start).Round(time.Millisecond), took.Round(time.Millisecond), err)
					continue
				}
				ok.Add(1)
			}
		})
	}
	// The first creates of a fresh namespace can take a while; the lead
	// starts once creates flow.
	testutil.EventuallyEvery(t, 30*time.Second, 10*time.Millisecond, "creates to flow", func() error {
		if n := ok.Load(); n < 20 {
			return fmt.Errorf("%d created", n)
		}
		return nil
	})
	time.Sleep(lead)
	before := ok.Load()
	rotateFn()
	during := ok.Load() - before
	time.Sleep(lead)
	stop.Store(true)
	wg.Wait()
	t.Logf("%d Tasks and TaskRuns created (%d while rotating), %d failed, %d took over 1s, slowest %s; in %s",
		ok.Load(), during, failed.Load(), slow.Load(), time.Duration(slowest.Load()).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if during < 10 {
		t.Errorf("only %d creates while rotating: the drill proves nothing", during)
	}
}

// rotate installs a new serving certificate of ca in the webhook server's
// certificate directory and waits until the server presents it.
func rotate(t *testing.T, ca *kit.CA) {
	t.Helper()
	sc, err := ca.Serve()
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Install(certDir); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyEvery(t, 30*time.Second, 20*time.Millisecond, "the new certificate to be served", func() error {
		serial, err := kit.PresentedSerial(whURL[len("https://"):], ca.PEM)
		if err != nil {
			return err
		}
		if serial.Cmp(sc.Serial) != 0 {
			return fmt.Errorf("serving serial %s, want %s", serial, sc.Serial)
		}
		return nil
	})
}

// setBundle sets the caBundle of both webhook configurations and waits
// until the API server admits with them (awaitWebhookConfigs).
func setBundle(t *testing.T, bundle []byte) {
	t.Helper()
	if err := installWebhooks(t.Context(), bundle); err != nil {
		t.Fatalf("set caBundle: %v", err)
	}
	awaitWebhookConfigs(t, bundle)
}

// probeLabel marks the ConfigMaps that the probe configurations send to
// the probe webhooks.
const probeLabel = "drills.taskgate.test/probe"

var probeSeq atomic.Int64

// awaitWebhookConfigs waits until the API server admits with the webhook
// configurations as they are now, by a condition instead of a pause: it
// points a probe configuration of each kind (mutating, validating), written
// after the configurations waited for, at paths of this call's own on the
// drills' webhook server, and dry-runs the creation of a probe ConfigMap
// until both paths are called. The API server reads each kind's
// configurations through one informer, in the order they were written: once
// it calls the probe's new paths it has the earlier changes too. bundle is
// the probes' caBundle (one the server's certificate verifies with).
func awaitWebhookConfigs(t *testing.T, bundle []byte) {
	t.Helper()
	path := fmt.Sprintf("/drill-probe-%d", probeSeq.Add(1))
	var mutated, validated atomic.Bool
	whServer.Register(path+"/m", &admission.Webhook{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		mutated.Store(true)
		return admission.Allowed("")
	})})
	whServer.Register(path+"/v", &admission.Webhook{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		validated.Store(true)
		return admission.Allowed("")
	})})
	rules := []admissionregv1.RuleWithOperations{{Operations: []admissionregv1.OperationType{admissionregv1.Create},
		Rule: admissionregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}}}}
	sel := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: probeLabel, Operator: metav1.LabelSelectorOpExists}}}
	cc := func(p string) admissionregv1.WebhookClientConfig {
		return admissionregv1.WebhookClientConfig{URL: ptr.To(whURL + p), CABundle: bundle}
	}
	m := &admissionregv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "drill-probe"},
		Webhooks: []admissionregv1.MutatingWebhook{{Name: "probe.drills.taskgate.test", ClientConfig: cc(path + "/m"), Rules: rules,
			ObjectSelector: sel, FailurePolicy: ptr.To(admissionregv1.Ignore), SideEffects: ptr.To(admissionregv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"}}}}
	v := &admissionregv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "drill-probe"},
		Webhooks: []admissionregv1.ValidatingWebhook{{Name: "probe.drills.taskgate.test", ClientConfig: cc(path + "/v"), Rules: rules,
			ObjectSelector: sel, FailurePolicy: ptr.To(admissionregv1.Ignore), SideEffects: ptr.To(admissionregv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"}}}}
	for _, o := range []client.Object{m, v} {
		if err := upsert(t.Context(), o); err != nil {
			t.Fatalf("probe webhook configuration: %v", err)
		}
	}
	testutil.EventuallyEvery(t, 30*time.Second, 20*time.Millisecond, "the API server to admit with the new webhook configurations", func() error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", GenerateName: "probe-", Labels: map[string]string{probeLabel: "true"}}}
		if err := cp.Client.Create(t.Context(), cm, client.DryRunAll); err != nil {
			return err
		}
		if !mutated.Load() || !validated.Load() {
			return fmt.Errorf("probe paths called: mutating %v, validating %v", mutated.Load(), validated.Load())
		}
		return nil
	})
}

// upsert creates o, or replaces what the cluster holds under its name.
func upsert(ctx context.Context, o client.Object) error {
	err := cp.Client.Create(ctx, o)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	existing := o.DeepCopyObject().(client.Object)
	if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(o), existing); err != nil {
		return err
	}
	o.SetResourceVersion(existing.GetResourceVersion())
	return cp.Client.Update(ctx, o)
}
