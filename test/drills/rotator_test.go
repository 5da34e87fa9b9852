package drills_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/test/load/kit"
	"github.com/astronetes/taskgate/test/testutil"
	"github.com/astronetes/taskgate/webhook"
)

// rotationTimings make the manager's rotator (cert-controller, through the
// test-only --test-cert-rotation) re-issue the serving certificate about
// every 8 s and the CA, with a new serving certificate, about every 40 s;
// dns=localhost puts a name in the certificate that a webhook URL on this
// machine can use.
const rotationTimings = "ca=1h40s,server=1h8s,lookahead=1h,check=1s,dns=localhost"

// TestManagerCertRotation runs `taskgate manager` with its own certificate
// rotator (--cert-rotation), webhooks only, and creates Tasks and TaskRuns through its
// webhook configurations at a steady rate while the rotator re-issues the
// serving certificate with the same CA and then the CA itself, injecting
// the new CA into the configurations' caBundle. Not one create may fail.
// The drill plays the kubelet: it copies the rotator's Secret into the
// manager's certificate directory the way a Secret volume is updated. Each
// step is waited for by what changed (the certificate the server presents,
// the caBundle), not by time.
func TestManagerCertRotation(t *testing.T) {
	ctx := t.Context()
	r := startRotatingManager(t, "rotator", rotationTimings, 0, nil)
	secretKey, addr, w := r.secret, r.addr, r.hooks
	// Ready: both caBundles hold the CA of the rotator's Secret and the
	// server presents a certificate it issued.
	testutil.EventuallyEvery(t, time.Minute, 50*time.Millisecond, "the rotator's first certificate, injected and served", func() error {
		_, err := settledCA(ctx, secretKey, addr, w.Mutating.Name, w.Validating.Name)
		return err
	})

	withCreates(t, time.Second, func() {
		ca, err := settledCA(ctx, secretKey, addr, w.Mutating.Name, w.Validating.Name)
		if err != nil {
			t.Fatal(err)
		}
		first, err := servedCert(addr, ca)
		if err != nil {
			t.Fatal(err)
		}
		// 1. A new serving certificate from the same CA.
		testutil.EventuallyEvery(t, time.Minute, 20*time.Millisecond, "a serving certificate re-issued by the same CA", func() error {
			got, err := servedCert(addr, ca)
			if err != nil {
				return fmt.Errorf("%w; %s", err, describeSecret(ctx, secretKey))
			}
			// cert-controller gives every certificate serial 1: compare
			// the certificates themselves.
			if bytes.Equal(got.Raw, first.Raw) {
				return fmt.Errorf("still serving the certificate issued at %s", first.NotBefore)
			}
			return nil
		})
		t.Logf("serving certificate re-issued by the same CA")
		// 2. A new CA, injected into both configurations, and a serving
		// certificate it issued.
		testutil.EventuallyEvery(t, 2*time.Minute, 20*time.Millisecond, "a new CA injected and its certificate served", func() error {
			now, err := injectedCA(ctx, w.Mutating.Name, w.Validating.Name)
			if err != nil {
				return err
			}
			if bytes.Equal(now, ca) {
				return errors.New("caBundle still holds the first CA")
			}
			if _, err := servedCert(addr, now); err != nil {
				return fmt.Errorf("not yet served by the new CA: %w", err)
			}
			return nil
		})
		t.Logf("CA re-issued and injected")
	})
}

// rotatingManager is a `taskgate manager` with its own certificate rotator,
// webhooks only, behind webhook configurations of its own.
type rotatingManager struct {
	secret client.ObjectKey
	addr   string // localhost:port of its webhook server
	hooks  kit.Webhooks
	mgr    *testutil.Process
}

// startRotatingManager starts a manager with --cert-rotation and the given
// --test-cert-rotation in a new namespace, with an empty Secret for the
// rotator to fill (as the chart creates it) and webhook configurations
// with an empty caBundle for it to inject, which every Task and TaskRun create goes
// through beside the drills' shared ones. The drill plays the kubelet: it
// copies the Secret into the manager's certificate directory the way a
// Secret volume is updated, mountDelay after each change. beforeStart, if
// not nil, is called just before the manager starts.
func startRotatingManager(t *testing.T, prefix, timings string, mountDelay time.Duration, beforeStart func(secret client.ObjectKey)) *rotatingManager {
	t.Helper()
	ns := newNamespace(t, prefix)
	ctx := t.Context()
	r := &rotatingManager{secret: client.ObjectKey{Namespace: ns, Name: "taskgate-webhook-cert"}}
	if err := cp.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: r.secret.Name}}); err != nil {
		t.Fatal(err)
	}
	port, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	r.addr = net.JoinHostPort("localhost", strconv.Itoa(port))
	r.hooks = hooks.Point("https://"+r.addr, nil, webhook.MutatePath, webhook.ValidatePath)
	r.hooks.Mutating.Name, r.hooks.Validating.Name = "drill-"+prefix+"-mutating", "drill-"+prefix+"-validating"
	for _, o := range []client.Object{r.hooks.Mutating, r.hooks.Validating} {
		if err := cp.Client.Create(ctx, o); err != nil {
			t.Fatalf("create %s: %v", o.GetName(), err)
		}
		t.Cleanup(func() {
			if err := cp.Client.Delete(context.Background(), o); err != nil {
				t.Errorf("delete %s: %v", o.GetName(), err)
			}
		})
	}
	certDir := t.TempDir()
	kubeletCtx, stopKubelet := context.WithCancel(context.Background())
	t.Cleanup(stopKubelet)
	testutil.MountSecret(kubeletCtx, t, cp.Config, r.secret, certDir, mountDelay)
	if beforeStart != nil {
		beforeStart(r.secret)
	}

	r.mgr, err = testutil.StartProcess(taskgateBinary(t), cp.Kubeconfig, nil, "manager",
		"--enable-controller=false", "--leader-elect=false", "--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:0",
		"--webhook-port="+strconv.Itoa(port), "--cert-dir="+certDir, "--cert-rotation", "--namespace="+ns,
		"--cert-secret-name="+r.secret.Name, "--webhook-service-name=taskgate-webhook",
		"--mutating-webhook-configuration="+r.hooks.Mutating.Name, "--validating-webhook-configuration="+r.hooks.Validating.Name,
		"--test-cert-rotation="+timings, "--log-format=console")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.mgr.Stop(15 * time.Second)
		if t.Failed() || os.Getenv("TASKGATE_DRILL_DEBUG") != "" {
			t.Logf("output of the rotating manager:\n%s", tail(r.mgr.Output(), 12000))
		}
	})
	return r
}

// TestRotatorIssuesOneCA: a manager starting with --cert-rotation and an
// empty Secret (as the chart creates it) issues one CA, injects and serves
// it, and logs no error. Without cert-controller's EnableReadinessCheck its
// start-up refresh and its Secret reconciler both refresh the empty Secret;
// the loser fails on a conflict and logs two errors at every install (had
// it won, it would have replaced the CA just after the first was injected).
// The drill watches the Secret from before the manager starts, and for 10 s
// after the first CA is injected and served, and reads the manager's log.
func TestRotatorIssuesOneCA(t *testing.T) {
	ctx := t.Context()
	var mu sync.Mutex
	var cas [][]byte // every distinct ca.crt the Secret held, in order
	// The kubelet projects a Secret's change into its volume on its next
	// sync, never at once (by default within a minute or so); 1 s is far
	// quicker than that, and later than the manager's cache sees its own
	// write.
	r := startRotatingManager(t, "one-ca", "dns=localhost", time.Second, func(key client.ObjectKey) {
		sw := testutil.WatchSecret(ctx, t, cp.Config, key)
		t.Cleanup(sw.Stop)
		go func() {
			for ev := range sw.ResultChan() {
				s, ok := ev.Object.(*corev1.Secret)
				if !ok || len(s.Data["ca.crt"]) == 0 {
					continue
				}
				mu.Lock()
				if len(cas) == 0 || !bytes.Equal(cas[len(cas)-1], s.Data["ca.crt"]) {
					cas = append(cas, s.Data["ca.crt"])
				}
				mu.Unlock()
			}
		}()
	})
	testutil.EventuallyEvery(t, time.Minute, 50*time.Millisecond, "the rotator's first certificate, injected and served", func() error {
		_, err := settledCA(ctx, r.secret, r.addr, r.hooks.Mutating.Name, r.hooks.Validating.Name)
		return err
	})
	time.Sleep(10 * time.Second) // the second CA came about a second after the first
	ca, err := settledCA(ctx, r.secret, r.addr, r.hooks.Mutating.Name, r.hooks.Validating.Name)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(cas) != 1 || !bytes.Equal(cas[0], ca) {
		t.Errorf("the Secret held %d CAs since the manager started, want 1, the one injected and served", len(cas))
	}
	// The race shows in the log even when the conflict stops the second
	// CA: a clean start logs no error.
	for line := range strings.Lines(r.mgr.Output()) {
		if strings.Contains(line, "ERROR") {
			t.Errorf("a clean start logged an error: %s", strings.TrimSpace(line))
		}
	}
}

// settledCA is the CA of the rotator's Secret once both configurations
// trust it and the server presents a certificate it issued.
func settledCA(ctx context.Context, key client.ObjectKey, addr, mutating, validating string) ([]byte, error) {
	s := &corev1.Secret{}
	if err := cp.Client.Get(ctx, key, s); err != nil {
		return nil, err
	}
	injected, err := injectedCA(ctx, mutating, validating)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(injected, s.Data["ca.crt"]) {
		return nil, errors.New("the caBundles do not hold the Secret's CA yet")
	}
	if _, err := servedCert(addr, injected); err != nil {
		return nil, err
	}
	return injected, nil
}

// injectedCA is the caBundle of both configurations, once they agree and
// are not empty.
func injectedCA(ctx context.Context, mutating, validating string) ([]byte, error) {
	m, v := &admissionregv1.MutatingWebhookConfiguration{}, &admissionregv1.ValidatingWebhookConfiguration{}
	if err := cp.Client.Get(ctx, client.ObjectKey{Name: mutating}, m); err != nil {
		return nil, err
	}
	if err := cp.Client.Get(ctx, client.ObjectKey{Name: validating}, v); err != nil {
		return nil, err
	}
	mb, vb := m.Webhooks[0].ClientConfig.CABundle, v.Webhooks[0].ClientConfig.CABundle
	if len(mb) == 0 || !bytes.Equal(mb, vb) {
		return nil, fmt.Errorf("caBundles not injected or not equal yet (%d and %d bytes)", len(mb), len(vb))
	}
	return mb, nil
}

// servedCert is the certificate the server at addr (localhost:port)
// presents to a new connection that trusts roots only.
func servedCert(addr string, roots []byte) (*x509.Certificate, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(roots) {
		return nil, errors.New("no CA certificate in the bundle")
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, describeServed(addr, roots))
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// describeServed says which certificate addr serves and which CAs roots
// hold, by key identifiers, for failure messages.
func describeServed(addr string, roots []byte) string {
	var cas []string
	for rest := roots; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			cas = append(cas, fmt.Sprintf("%s key %x", c.Subject.CommonName, c.SubjectKeyId))
		}
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only to describe it
	if err != nil {
		return fmt.Sprintf("trusting %v; serving: %v", cas, err)
	}
	defer conn.Close()
	c := conn.ConnectionState().PeerCertificates[0]
	return fmt.Sprintf("trusting %v; serving serial %s issued by %s key %x", cas, c.SerialNumber, c.Issuer.CommonName, c.AuthorityKeyId)
}

// describeSecret names the CA and the certificate in the rotator's Secret
// by key identifiers, for failure messages.
func describeSecret(ctx context.Context, key client.ObjectKey) string {
	s := &corev1.Secret{}
	if err := cp.Client.Get(ctx, key, s); err != nil {
		return err.Error()
	}
	out := "secret:"
	for _, name := range []string{"ca.crt", "tls.crt"} {
		b, _ := pem.Decode(s.Data[name])
		if b == nil {
			out += " no " + name
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			out += " " + name + ": " + err.Error()
			continue
		}
		out += fmt.Sprintf(" %s key %x issuer key %x;", name, c.SubjectKeyId, c.AuthorityKeyId)
	}
	return out
}
