package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/load/kit"
	"github.com/astronetes/taskgate/webhook"
)

// Webhook set-ups P1 switches between, all on the same webhook server and
// all taskgate's shipped handlers (webhook.Handlers, webhook.SingleCallHandler,
// webhook.CachedAuthorizer).
const (
	modeTaskgate = "taskgate"    // as shipped: mutating + validating, access-review cache 10s
	modeNoop     = "no-op"       // two webhooks answering Allowed at once
	modeNone     = "no webhooks" // neither configuration installed
	modeNoCache  = "cache off"   // the pair with --access-review-cache-ttl=0
	modeOneTrip  = "single-call" // webhook.singleCall=true, cache 10s
	modeBoth     = "single-call, cache off"
)

// Paths of the comparison webhooks, next to taskgate's own (MutatePath,
// ValidatePath and AdmitPath, cache on as the manager's default).
const (
	noopMutatePath   = "/noop-mutate"
	noopValidatePath = "/noop-validate"
	uncachedMutate   = "/uncached-mutate"
	uncachedValidate = "/uncached-validate"
	uncachedOneTrip  = "/uncached-admit"
)

// benchEnv is a control plane whose API server calls one webhook server
// (a controller-runtime manager's, wired by webhook.SetupWithManager) over
// TLS, with webhook configurations that can be switched between modes.
type benchEnv struct {
	cp       *kit.ControlPlane
	hooks    kit.Webhooks // as in config/webhook/manifests.yaml
	base     string       // https://127.0.0.1:port
	caBundle []byte
	srv      *countingServer
	stop     func()
}

func startBenchEnv(root string) (*benchEnv, error) {
	cp, err := kit.StartControlPlane(root)
	if err != nil {
		return nil, err
	}
	e := &benchEnv{cp: cp}
	if err := e.startWebhooks(root); err != nil {
		return nil, errors.Join(err, cp.Stop())
	}
	return e, nil
}

func (e *benchEnv) Stop() error {
	if e.stop != nil {
		e.stop()
	}
	return e.cp.Stop()
}

func (e *benchEnv) startWebhooks(root string) error {
	ca, err := kit.NewCA("taskgate-bench-ca")
	if err != nil {
		return err
	}
	certDir, _, err := kit.NewCertDir(ca)
	if err != nil {
		return err
	}
	port, err := kit.FreePort()
	if err != nil {
		return err
	}
	e.caBundle, e.base = ca.PEM, fmt.Sprintf("https://127.0.0.1:%d", port)
	if e.hooks, err = kit.LoadWebhooks(root); err != nil {
		return err
	}
	e.srv = &countingServer{hits: map[string]*atomic.Int64{},
		Server: crwebhook.NewServer(crwebhook.Options{Host: "127.0.0.1", Port: port, CertDir: certDir})}
	mgr, err := ctrl.NewManager(e.cp.Config, ctrl.Options{
		Scheme:                  kit.Scheme(),
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:  "0",
		GracefulShutdownTimeout: ptr.To(5 * time.Second),
		WebhookServer:           e.srv,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	opts := webhook.Options{AccessReviewCacheTTL: webhook.DefaultAccessReviewCacheTTL}
	if err := webhook.SetupWithManager(mgr, opts); err != nil {
		return fmt.Errorf("set up webhooks: %w", err)
	}
	a, err := webhook.NewAdmitterFromOptions(webhook.Options{})
	if err != nil {
		return err
	}
	a.Scopes = webhook.MapperScopes{Mapper: mgr.GetRESTMapper()}
	srv := mgr.GetWebhookServer()
	srv.Register(noopMutatePath, noop())
	srv.Register(noopValidatePath, noop())
	sar := webhook.SARAuthorizer{Client: mgr.GetClient()}
	um, uv := webhook.Handlers(mgr.GetScheme(), a, sar)
	srv.Register(uncachedMutate, um)
	srv.Register(uncachedValidate, uv)
	srv.Register(uncachedOneTrip, webhook.SingleCallHandler(a, sar))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "webhook manager:", err)
		}
	}()
	e.stop = func() { cancel(); <-done; _ = os.RemoveAll(certDir) }
	deadline := time.Now().Add(30 * time.Second)
	for srv.StartedChecker()(nil) != nil {
		if time.Now().After(deadline) {
			return errors.New("webhook server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// noop is the comparison webhook: controller-runtime's admission handler
// with a handler that allows everything.
func noop() http.Handler {
	return &admission.Webhook{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		return admission.Allowed("")
	})}
}

// use switches the API server to mode and waits until it calls the webhooks
// that mode says (see probe).
func (e *benchEnv) use(ctx context.Context, mode string) error {
	var w kit.Webhooks
	switch mode {
	case modeTaskgate:
		w = e.hooks.Point(e.base, e.caBundle, webhook.MutatePath, webhook.ValidatePath)
	case modeNoop:
		w = e.hooks.Point(e.base, e.caBundle, noopMutatePath, noopValidatePath)
	case modeOneTrip:
		w = e.hooks.Point(e.base, e.caBundle, webhook.AdmitPath, "")
	case modeNoCache:
		w = e.hooks.Point(e.base, e.caBundle, uncachedMutate, uncachedValidate)
	case modeBoth:
		w = e.hooks.Point(e.base, e.caBundle, uncachedOneTrip, "")
	case modeNone:
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	if err := w.Apply(ctx, e.cp.Client, e.hooks); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := e.probe(ctx, mode)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhooks not in mode %s after 30s: %w", mode, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// probe sends a dry-run create of a good Task and checks that exactly the
// webhooks of mode were called (each path's handler counts its calls).
func (e *benchEnv) probe(ctx context.Context, mode string) error {
	before := e.srv.counts()
	good := &v1alpha1.Task{Spec: v1alpha1.TaskSpec{Plugin: v1alpha1.PluginCustomImage}}
	good.Namespace, good.GenerateName = "default", "probe-"
	good.Spec.Config.Raw = []byte(`{"image":"busybox:1.36","command":["true"]}`)
	if err := e.cp.Client.Create(ctx, good, client.DryRunAll); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	after := e.srv.counts()
	var called []string
	for path, n := range after {
		if n > before[path] {
			called = append(called, path)
		}
	}
	sort.Strings(called)
	want := map[string][]string{
		modeTaskgate: {webhook.MutatePath, webhook.ValidatePath},
		modeNoop:     {noopMutatePath, noopValidatePath},
		modeNone:     nil,
		modeNoCache:  {uncachedMutate, uncachedValidate},
		modeOneTrip:  {webhook.AdmitPath},
		modeBoth:     {uncachedOneTrip},
	}[mode]
	sort.Strings(want)
	if !slices.Equal(called, want) {
		return fmt.Errorf("webhooks called: %v, want %v", called, want)
	}
	return nil
}

// countingServer is the manager's webhook server, counting the calls of
// each registered path.
type countingServer struct {
	crwebhook.Server
	hits map[string]*atomic.Int64 // written by Register, before Start
}

// Register implements crwebhook.Server.
func (s *countingServer) Register(path string, h http.Handler) {
	n := &atomic.Int64{}
	s.hits[path] = n
	s.Server.Register(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h.ServeHTTP(w, r)
	}))
}

func (s *countingServer) counts() map[string]int64 {
	out := make(map[string]int64, len(s.hits))
	for p, n := range s.hits {
		out[p] = n.Load()
	}
	return out
}
