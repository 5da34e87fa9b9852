package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/test/load/kit"
	"github.com/astronetes/taskgate/test/testutil"
	"github.com/astronetes/taskgate/webhook"
)

// Webhook set-ups P1 switches between: taskgate's handlers as
// webhook.SetupWithManager registers them (the pair and single-call), on
// three servers that differ in one option each, and the no-op pair.
const (
	modeTaskgate     = "taskgate"    // as shipped: mutating + validating, access-review cache 10s, preflight on
	modeNoop         = "no-op"       // two webhooks answering Allowed at once
	modeNone         = "no webhooks" // neither configuration installed
	modeNoCache      = "cache off"   // the pair with --access-review-cache-ttl=0
	modeOneTrip      = "single-call" // webhook.singleCall=true, cache 10s, preflight on
	modeBoth         = "single-call, cache off"
	modePreflightOff = "preflight off" // the pair with --preflight=false
	// The what-if of the preflight cache (webhook.Options.PreflightCacheTTL
	// 10s, --preflight-cache-ttl), the pair and single-call.
	modePreflightCache  = "preflight cache"
	modeOneTripPreCache = "single-call, preflight cache"
)

// Paths of the no-op webhooks, next to taskgate's own (MutatePath,
// ValidatePath and AdmitPath) on the shipped server.
const (
	noopMutatePath   = "/noop-mutate"
	noopValidatePath = "/noop-validate"
)

// Prefixes of the other webhook servers' paths in the call counts.
const (
	noCachePrefix = "cache-off:"
	offPrefix     = "preflight-off:"
	pcPrefix      = "preflight-cache:"
)

// benchEnv is a control plane whose API server calls two webhook servers
// (each a controller-runtime manager's, wired by webhook.SetupWithManager)
// over TLS, with webhook configurations that can be switched between modes.
// Both managers run as kit.ManagerUser with the chart's requester-mode
// rules, so the preflight's dry-runs go through constrained impersonation as
// in production; the Tasks are created by an admin bound to cluster-admin
// through kit.AdminGroup (not system:masters, which constrained
// impersonation refuses).
type benchEnv struct {
	cp       *kit.ControlPlane
	admin    *testutil.Identity // creates every Task
	manager  *testutil.Identity // the webhook managers' user
	hooks    kit.Webhooks       // as in config/webhook/manifests.yaml
	base     string             // https://127.0.0.1:port, the shipped options
	noCache  string             // the same with AccessReviewCacheTTL 0
	offBase  string             // the same with Preflight off
	pcBase   string             // the same with the preflight cache on
	caBundle []byte
	srv      *countingServer // both servers' calls, by prefixed path
	// The webhook managers' own API requests (the preflight's dry-runs,
	// the SubjectAccessReviews), with preflight on and off.
	onReqs, offReqs *requestCounter
	policies        *policySet // modeVAP's, absent in every other mode
	stops           []func()
}

func startBenchEnv(root string) (*benchEnv, error) {
	cp, err := kit.StartControlPlane(root)
	if err != nil {
		return nil, err
	}
	e := &benchEnv{cp: cp}
	if e.policies, err = loadPolicies(); err != nil {
		return nil, errors.Join(err, e.Stop())
	}
	if err := e.startWebhooks(root); err != nil {
		return nil, errors.Join(err, e.Stop())
	}
	return e, nil
}

func (e *benchEnv) Stop() error {
	for _, stop := range e.stops {
		stop()
	}
	return e.cp.Stop()
}

func (e *benchEnv) startWebhooks(root string) error {
	ctx := context.Background()
	var err error
	if e.admin, err = e.cp.AddAdmin(ctx, "bench-admin"); err != nil {
		return err
	}
	if e.manager, err = e.cp.AddManager(ctx); err != nil {
		return err
	}
	// The probe's dry-run Pods are created in "default", and its TaskRuns
	// run a Task there (stored as sent: no webhook is configured yet).
	if err := e.cp.EnsureDefaultServiceAccount(ctx, "default"); err != nil {
		return err
	}
	if err := e.admin.Client.Create(ctx, probeTask(probeRunbook, probeGoodConfig)); err != nil {
		return fmt.Errorf("the probe's Task: %w", err)
	}
	ca, err := kit.NewCA("taskgate-bench-ca")
	if err != nil {
		return err
	}
	certDir, _, err := kit.NewCertDir(ca)
	if err != nil {
		return err
	}
	e.stops = append(e.stops, func() { _ = os.RemoveAll(certDir) })
	e.caBundle = ca.PEM
	if e.hooks, err = kit.LoadWebhooks(root); err != nil {
		return err
	}
	e.srv = &countingServer{hits: map[string]*atomic.Int64{}}
	e.onReqs, e.offReqs = newRequestCounter(), newRequestCounter()
	// Four servers, each wired by webhook.SetupWithManager as the manager
	// wires it (pair and single-call handlers): the shipped options
	// (access-review cache 10s, act as the requester, preflight on) with
	// the no-op pair beside them; the cache off; the preflight off; the
	// preflight cache on (a what-if).
	shipped := webhook.Options{AccessReviewCacheTTL: webhook.DefaultAccessReviewCacheTTL, ActAs: actas.ModeRequester, Preflight: true}
	if e.base, err = e.startWebhookManager(certDir, "", shipped, e.onReqs, registerNoop); err != nil {
		return err
	}
	noCache := shipped
	noCache.AccessReviewCacheTTL = 0
	// Every create asks the API server here, so the per-user bound on
	// SubjectAccessReviews (webhook.DefaultAccessReviewsPerSecond, a guard
	// against floods) would refuse P1's load with 429s: what this mode
	// measures is what the reviews cost, unbounded.
	noCache.AccessReviewsPerSecond = -1
	if e.noCache, err = e.startWebhookManager(certDir, noCachePrefix, noCache, newRequestCounter(), nil); err != nil {
		return err
	}
	off := shipped
	off.Preflight = false
	if e.offBase, err = e.startWebhookManager(certDir, offPrefix, off, e.offReqs, nil); err != nil {
		return err
	}
	pc := shipped
	pc.PreflightCacheTTL = 10 * time.Second
	e.pcBase, err = e.startWebhookManager(certDir, pcPrefix, pc, newRequestCounter(), nil)
	return err
}

// startWebhookManager runs a manager with taskgate's webhooks (opts) as
// e.manager on a port of its own, and returns its base URL.
func (e *benchEnv) startWebhookManager(certDir, prefix string, opts webhook.Options, reqs *requestCounter, extra func(ctrl.Manager) error) (string, error) {
	port, err := testutil.FreePort()
	if err != nil {
		return "", err
	}
	cfg := rest.CopyConfig(e.manager.Config)
	cfg.Wrap(reqs.wrap)
	setup := []func(ctrl.Manager) error{func(mgr ctrl.Manager) error { return webhook.SetupWithManager(mgr, opts) }}
	if extra != nil {
		setup = append(setup, extra)
	}
	mgr, err := testutil.StartManager(cfg, ctrl.Options{
		WebhookServer: &prefixedServer{counts: e.srv, prefix: prefix,
			Server: crwebhook.NewServer(crwebhook.Options{Host: "127.0.0.1", Port: port, CertDir: certDir})},
	}, setup...)
	if err != nil {
		return "", err
	}
	e.stops = append([]func(){func() { _ = mgr.Stop() }}, e.stops...)
	return fmt.Sprintf("https://127.0.0.1:%d", port), nil
}

// registerNoop adds the no-op pair to mgr's webhook server.
func registerNoop(mgr ctrl.Manager) error {
	srv := mgr.GetWebhookServer()
	srv.Register(noopMutatePath, noop())
	srv.Register(noopValidatePath, noop())
	return nil
}

// noop is the comparison webhook: controller-runtime's admission handler
// with a handler that allows everything.
func noop() http.Handler {
	return &admission.Webhook{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		return admission.Allowed("")
	})}
}

// hookMode is where a mode points the webhook configurations: one of the
// webhook servers (by its prefix in the call counts) and the paths of the
// mutating and validating webhook on it (each serves Tasks and TaskRuns).
// A mode with no paths installs no configuration.
type hookMode struct {
	server, mutate, validate string
}

// hookModes are the webhook set-ups of the modes.
func hookModes() map[string]hookMode {
	pair := func(server string) hookMode { return hookMode{server, webhook.MutatePath, webhook.ValidatePath} }
	single := func(server string) hookMode { return hookMode{server: server, mutate: webhook.AdmitPath} }
	return map[string]hookMode{
		modeTaskgate:        pair(""),
		modeNoop:            {mutate: noopMutatePath, validate: noopValidatePath},
		modeNone:            {},
		modeVAP:             {},
		modeOneTrip:         single(""),
		modeNoCache:         pair(noCachePrefix),
		modeBoth:            single(noCachePrefix),
		modePreflightOff:    pair(offPrefix),
		modePreflightCache:  pair(pcPrefix),
		modeOneTripPreCache: single(pcPrefix),
	}
}

// called are the counted paths (prefix+path) a create in mode m calls.
func (m hookMode) called() []string {
	var out []string
	for _, p := range []string{m.mutate, m.validate} {
		if p != "" {
			out = append(out, m.server+p)
		}
	}
	sort.Strings(out)
	return out
}

// use switches the API server to mode and waits until it calls the webhooks
// that mode says (see probe).
func (e *benchEnv) use(ctx context.Context, mode string) error {
	m, ok := hookModes()[mode]
	if !ok {
		return fmt.Errorf("unknown mode %q", mode)
	}
	base := map[string]string{"": e.base, noCachePrefix: e.noCache, offPrefix: e.offBase, pcPrefix: e.pcBase}[m.server]
	if err := e.hooks.Point(base, e.caBundle, m.mutate, m.validate).Apply(ctx, e.cp.Client, e.hooks); err != nil {
		return err
	}
	if err := e.policies.apply(ctx, e.cp.Client, mode == modeVAP); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := e.probe(ctx, mode, m.called())
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhooks not in mode %s after 30s: %w", mode, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// probe sends a dry-run create of a good Task and of a TaskRun of the
// probe's Task and checks that exactly the webhooks of mode (want) were called
// (each path's handler counts its calls), then that the rules at work are
// mode's (probeRules: taskgate's webhooks, the admission policies, or none).
func (e *benchEnv) probe(ctx context.Context, mode string, want []string) error {
	before := e.srv.counts()
	if err := e.admin.Client.Create(ctx, probeTask("", probeGoodConfig), client.DryRunAll); err != nil {
		return fmt.Errorf("probe Task: %w", err)
	}
	if err := e.admin.Client.Create(ctx, kit.NewTaskRun("default", "", probeRunbook), client.DryRunAll); err != nil {
		return fmt.Errorf("probe TaskRun: %w", err)
	}
	after := e.srv.counts()
	var called []string
	for path, n := range after {
		if n > before[path] {
			called = append(called, path)
		}
	}
	sort.Strings(called)
	if !slices.Equal(called, want) {
		return fmt.Errorf("webhooks called: %v, want %v", called, want)
	}
	return e.probeRules(ctx, mode)
}

// countingServer counts the calls of each registered path of the webhook
// servers, by prefix+path.
type countingServer struct {
	mu   sync.Mutex
	hits map[string]*atomic.Int64
}

func (s *countingServer) counter(key string) *atomic.Int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := &atomic.Int64{}
	s.hits[key] = n
	return n
}

func (s *countingServer) counts() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.hits))
	for p, n := range s.hits {
		out[p] = n.Load()
	}
	return out
}

// prefixedServer is a manager's webhook server whose handlers count their
// calls in counts under prefix+path.
type prefixedServer struct {
	crwebhook.Server
	counts *countingServer
	prefix string
}

// Register implements crwebhook.Server.
func (s *prefixedServer) Register(path string, h http.Handler) {
	n := s.counts.counter(s.prefix + path)
	s.Server.Register(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h.ServeHTTP(w, r)
	}))
}
