package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/webhook"
)

type managerFlags struct {
	metricsAddr, probeAddr             string
	webhookPort                        int
	certDir                            string
	certRotation                       bool
	certSecret, serviceName, namespace string
	mutatingConfig, validatingConfig   string
	leaderElect                        bool
	leaderElectionID                   string
	enableWebhooks, enableController   bool
	maxConcurrent                      int
	allowedClusterRoles, syncSchemaDir string
	accessReviewCacheTTL               time.Duration
	accessReviewDenialTTL              time.Duration
	accessReviewsPerSecond             float64
	actAs                              string
	webhookHost                        string
	webhookClientCA                    string
	preflight                          bool
	preflightCacheTTL                  time.Duration
	maxTransformationObjects           int
	finishedTaskTTL                    time.Duration
	successfulRunsHistory, failedRuns  int
	logFormat, logLevel                string
	testCertRotation                   string
	testRotation                       *testRotation // testCertRotation parsed; nil when unset
}

func parseManagerFlags(args []string, stderr io.Writer) (*managerFlags, error) {
	f := &managerFlags{}
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = "taskgate-system"
	}
	fs.StringVar(&f.metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 disables it")
	fs.StringVar(&f.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.IntVar(&f.webhookPort, "webhook-port", 9443, "port of the webhook server (HTTPS)")
	fs.StringVar(&f.certDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory with tls.crt and tls.key for the webhook server (reloaded when they change)")
	fs.BoolVar(&f.certRotation, "cert-rotation", false, "generate and rotate a self-signed webhook certificate (Secret --cert-secret-name) and inject its CA into the webhook configurations")
	fs.StringVar(&f.certSecret, "cert-secret-name", "taskgate-webhook-cert", "Secret holding the rotated webhook certificate")
	fs.StringVar(&f.serviceName, "webhook-service-name", "taskgate-webhook", "Service in front of the webhook server (the certificate's DNS name)")
	fs.StringVar(&f.namespace, "namespace", ns, "namespace taskgate runs in (default $POD_NAMESPACE)")
	fs.StringVar(&f.mutatingConfig, "mutating-webhook-configuration", "taskgate-mutating", "MutatingWebhookConfiguration whose caBundle the rotator fills; empty: none")
	fs.StringVar(&f.validatingConfig, "validating-webhook-configuration", "taskgate-validating", "ValidatingWebhookConfiguration whose caBundle the rotator fills; empty: none (single-call mode)")
	fs.BoolVar(&f.leaderElect, "leader-elect", false, "elect one active controller among replicas (webhooks serve on every replica)")
	fs.StringVar(&f.leaderElectionID, "leader-election-id", "taskgate.automation.astronetes.io", "name of the leader election Lease")
	fs.BoolVar(&f.enableWebhooks, "enable-webhooks", true, "serve the admission webhooks")
	fs.BoolVar(&f.enableController, "enable-controller", true, "run the Task controller")
	fs.IntVar(&f.maxConcurrent, "max-concurrent-reconciles", 4, "Tasks of each plugin reconciled at once (every plugin has workers of its own)")
	fs.StringVar(&f.allowedClusterRoles, "allowed-cluster-roles", "", "comma-separated ClusterRoles custom-image Tasks may bind; empty allows any the requesting user may bind")
	fs.StringVar(&f.syncSchemaDir, "sync-schema-dir", "", "directory of extra or overriding synchronization-plugin schemas (<plugin>.json)")
	fs.DurationVar(&f.accessReviewCacheTTL, "access-review-cache-ttl", webhook.DefaultAccessReviewCacheTTL,
		"how long the webhook reuses an allowed SubjectAccessReview answer for the same user and question (a revoked right admits Tasks for up to this long); 0 disables the cache")
	fs.StringVar(&f.actAs, "act-as", string(actas.ModeRequester),
		"whom a Task's rights-bearing requests are sent as: requester (impersonate the Task's creator through constrained impersonation, Kubernetes 1.36+) or controller (the manager's own identity; weaker, for older clusters)")
	fs.StringVar(&f.webhookHost, "webhook-bind-address", "", "address the webhook server listens on; empty: all addresses (in a Pod, the Service is the way in)")
	fs.DurationVar(&f.accessReviewDenialTTL, "access-review-denial-cache-ttl", webhook.DefaultAccessReviewDenialCacheTTL,
		"how long the webhook reuses a denied SubjectAccessReview answer (at most --access-review-cache-ttl): a burst of refused Tasks costs one review per question; a right granted meanwhile counts after at most this long; negative disables it")
	fs.Float64Var(&f.accessReviewsPerSecond, "access-reviews-per-second", webhook.DefaultAccessReviewsPerSecond,
		"SubjectAccessReviews one user's creates may cost per second (burst: four TaskRuns' worth); past it their creates are refused 429 until it refills, and nobody else waits; negative: no bound")
	fs.StringVar(&f.webhookClientCA, "webhook-client-ca", "", "PEM file of the CA whose client certificates the webhook server requires (the kube-apiserver's, from its admission configuration); empty: any client that reaches the port is answered")
	fs.BoolVar(&f.preflight, "preflight", true, "dry-run a custom-image Task's Pod and ClusterRoleBinding as the requester at admission, so a refusal comes back at kubectl apply")
	fs.DurationVar(&f.preflightCacheTTL, "preflight-cache-ttl", 0, "how long a requester's clean preflight is reused for Tasks that differ from it only in their names (refusals and inconclusive answers are never reused); meanwhile a tightened PodSecurity label, quota or policy stops such Tasks at run time instead of at kubectl apply; 0: off")
	fs.IntVar(&f.maxTransformationObjects, "max-transformation-objects", 0, fmt.Sprintf("most objects one transformation may match (the Task fails TooManyObjects before any patch beyond it); 0: the default, %d", controller.DefaultMaxTransformationObjects))
	fs.DurationVar(&f.finishedTaskTTL, "finished-task-ttl", 0,
		"how long a finished TaskRun is kept when its spec.ttlSecondsAfterFinished is unset (which wins): then the controller deletes it with its children; 0 keeps finished TaskRuns (within their Task's history limits)")
	fs.IntVar(&f.successfulRunsHistory, "successful-runs-history-limit", int(controller.DefaultSuccessfulRunsHistoryLimit),
		"succeeded TaskRuns kept per Task when its spec.successfulRunsHistoryLimit is unset; older ones are deleted with their children")
	fs.IntVar(&f.failedRuns, "failed-runs-history-limit", int(controller.DefaultFailedRunsHistoryLimit),
		"failed TaskRuns kept per Task when its spec.failedRunsHistoryLimit is unset")
	fs.StringVar(&f.logFormat, "log-format", "json", "log format: json or console")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: info or debug")
	// Testing only, left out of the usage text (see testRotation).
	fs.StringVar(&f.testCertRotation, testCertRotationFlag, "", "")
	fs.Usage = func() {
		shown := flag.NewFlagSet("manager", flag.ContinueOnError)
		shown.SetOutput(fs.Output())
		fs.VisitAll(func(fl *flag.Flag) {
			if fl.Name != testCertRotationFlag {
				shown.Var(fl.Value, fl.Name, fl.Usage)
			}
		})
		fmt.Fprintln(fs.Output(), "Usage of manager:")
		shown.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	tr, err := parseTestRotation(f.testCertRotation)
	if err != nil {
		return nil, err
	}
	f.testRotation = tr
	if f.testCertRotation != "" && !f.certRotation {
		return nil, fmt.Errorf("--%s needs --cert-rotation", testCertRotationFlag)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if !f.enableWebhooks && !f.enableController {
		return nil, errors.New("--enable-webhooks=false and --enable-controller=false leave nothing to run")
	}
	if _, err := actas.ParseMode(f.actAs); err != nil {
		return nil, err
	}
	if f.maxTransformationObjects < 0 {
		return nil, fmt.Errorf("--max-transformation-objects=%d: want 0 (the default) or a positive number", f.maxTransformationObjects)
	}
	if f.finishedTaskTTL < 0 {
		return nil, fmt.Errorf("--finished-task-ttl=%v: want 0 (keep finished TaskRuns) or a positive duration", f.finishedTaskTTL)
	}
	if f.successfulRunsHistory < 0 || f.failedRuns < 0 || f.successfulRunsHistory > math.MaxInt32 || f.failedRuns > math.MaxInt32 {
		return nil, fmt.Errorf("--successful-runs-history-limit=%d, --failed-runs-history-limit=%d: want 0 or more", f.successfulRunsHistory, f.failedRuns)
	}
	if f.accessReviewCacheTTL < 0 {
		return nil, fmt.Errorf("--access-review-cache-ttl=%v: want 0 (off) or a positive duration", f.accessReviewCacheTTL)
	}
	if f.certRotation && f.mutatingConfig == "" && f.validatingConfig == "" {
		return nil, errors.New("--cert-rotation needs --mutating-webhook-configuration or --validating-webhook-configuration to inject the CA into")
	}
	return f, nil
}

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	return s
}

func runManager(args []string, stderr io.Writer) int {
	f, err := parseManagerFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "taskgate manager:", err)
		return 2
	}
	logger, err := newLogger(f.logFormat, f.logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "taskgate manager:", err)
		return 2
	}
	ctrl.SetLogger(logger)
	controller.SetBuildVersion(buildVersion())
	log := logger.WithName("setup")
	if err := startManager(f); err != nil {
		log.Error(err, "manager stopped with an error")
		return 1
	}
	return 0
}

func startManager(f *managerFlags) error {
	log := ctrl.Log.WithName("setup")
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubernetes config: %w", err)
	}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return fmt.Errorf("http client: %w", err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		return fmt.Errorf("rest mapper: %w", err)
	}
	var tlsOpts []func(*tls.Config)
	if f.webhookClientCA != "" {
		opt, err := webhook.RequireClientCert(f.webhookClientCA)
		if err != nil {
			return err
		}
		tlsOpts = append(tlsOpts, opt)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		MapperProvider:                func(*rest.Config, *http.Client) (meta.RESTMapper, error) { return mapper, nil },
		Scheme:                        newScheme(),
		Metrics:                       metricsserver.Options{BindAddress: f.metricsAddr},
		HealthProbeBindAddress:        f.probeAddr,
		LeaderElection:                f.leaderElect,
		LeaderElectionID:              f.leaderElectionID,
		LeaderElectionNamespace:       f.namespace,
		LeaderElectionReleaseOnCancel: true,
		WebhookServer:                 crwebhook.NewServer(crwebhook.Options{Host: f.webhookHost, Port: f.webhookPort, CertDir: f.certDir, TLSOpts: tlsOpts}),
		Cache:                         controller.CacheOptions(mapper),
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}

	if f.enableController && actas.Mode(f.actAs) == actas.ModeRequester {
		probeImpersonation(cfg)
	}

	certsReady := make(chan struct{})
	if f.enableWebhooks && f.certRotation {
		cr := &rotator.CertRotator{
			SecretKey:             types.NamespacedName{Namespace: f.namespace, Name: f.certSecret},
			CertDir:               f.certDir,
			CAName:                "taskgate-ca",
			CAOrganization:        "taskgate",
			DNSName:               fmt.Sprintf("%s.%s.svc", f.serviceName, f.namespace),
			ExtraDNSNames:         []string{fmt.Sprintf("%s.%s.svc.cluster.local", f.serviceName, f.namespace)},
			IsReady:               certsReady,
			Webhooks:              rotatedWebhooks(f),
			RequireLeaderElection: false, // every replica serves webhooks and needs the certificate
			// The Secret reconciler waits until the start-up refresh is
			// mounted instead of racing it: without this both refresh the
			// empty Secret at start and the loser logs two errors (a
			// conflict, "secret is not well-formed") at every install.
			EnableReadinessCheck: true,
		}
		if f.testRotation != nil {
			f.testRotation.apply(cr)
			log.Info("certificate rotation timings for testing", testCertRotationFlag, f.testCertRotation)
		}
		err := rotator.AddRotator(mgr, cr)
		if err != nil {
			return fmt.Errorf("add certificate rotator: %w", err)
		}
	} else {
		close(certsReady)
	}

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("add healthz check: %w", err)
	}
	if err := mgr.AddReadyzCheck("webhook", func(req *http.Request) error {
		select {
		case <-certsReady:
		default:
			return errors.New("webhook certificate not ready")
		}
		if f.enableWebhooks {
			return mgr.GetWebhookServer().StartedChecker()(req)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("add readyz check: %w", err)
	}

	setupErr := make(chan error, 1)
	go func() {
		// Webhooks must not serve before the rotator has written the
		// certificate; controllers may be added to a running manager.
		<-certsReady
		setupErr <- setupComponents(mgr, f)
	}()

	ctx := ctrl.SetupSignalHandler()
	errc := make(chan error, 1)
	go func() { errc <- mgr.Start(ctx) }()
	log.Info("manager starting", "webhooks", f.enableWebhooks, "controller", f.enableController,
		"leaderElection", f.leaderElect, "certRotation", f.certRotation, "accessReviewCacheTTL", f.accessReviewCacheTTL.String(),
		"finishedTaskTTL", f.finishedTaskTTL.String(), "version", buildVersion())
	for {
		select {
		case err := <-setupErr:
			if err != nil {
				return err
			}
			log.Info("webhooks and controller registered")
			setupErr = nil
		case err := <-errc:
			if err != nil {
				return fmt.Errorf("run manager: %w", err)
			}
			return nil
		}
	}
}

// probeImpersonation says in the log, once at start-up, whether this manager
// can act as Tasks' requesters (see actas.Probe). Not fatal: Tasks then fail
// with the API server's Forbidden, which names what is missing.
func probeImpersonation(cfg *rest.Config) {
	log := ctrl.Log.WithName("setup")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := actas.Probe(ctx, cfg); err != nil {
		log.Error(err, "constrained impersonation is NOT available: Tasks cannot act as their requesters and will fail until it is")
		return
	}
	log.Info("constrained impersonation works: every Task acts as the user who created it")
}

// rotatedWebhooks are the configurations whose caBundle the rotator fills:
// in single-call mode there is no validating configuration for Tasks.
func rotatedWebhooks(f *managerFlags) []rotator.WebhookInfo {
	var out []rotator.WebhookInfo
	if f.mutatingConfig != "" {
		out = append(out, rotator.WebhookInfo{Name: f.mutatingConfig, Type: rotator.Mutating})
	}
	if f.validatingConfig != "" {
		out = append(out, rotator.WebhookInfo{Name: f.validatingConfig, Type: rotator.Validating})
	}
	return out
}

// splitNames reads a comma-separated flag of names, spaces around each
// trimmed and empty ones dropped; the manager and validate share it so both
// read --allowed-cluster-roles alike.
func splitNames(v string) []string {
	var names []string
	for _, n := range strings.Split(v, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return names
}

func setupComponents(mgr ctrl.Manager, f *managerFlags) error {
	if f.enableWebhooks {
		opts := webhook.Options{AllowedClusterRoles: splitNames(f.allowedClusterRoles), SyncSchemaDir: f.syncSchemaDir, AccessReviewCacheTTL: f.accessReviewCacheTTL,
			AccessReviewDenialCacheTTL: f.accessReviewDenialTTL, AccessReviewsPerSecond: float32(f.accessReviewsPerSecond),
			ActAs: actas.Mode(f.actAs), Preflight: f.preflight, PreflightCacheTTL: f.preflightCacheTTL}
		if err := webhook.SetupWithManager(mgr, opts); err != nil {
			return fmt.Errorf("set up webhooks: %w", err)
		}
	}
	if f.enableController {
		if err := controller.SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: f.maxConcurrent,
			ActAs: actas.Mode(f.actAs), MaxTransformationObjects: f.maxTransformationObjects, FinishedTaskTTL: f.finishedTaskTTL,
			SuccessfulRunsHistoryLimit: ptr.To(int32(f.successfulRunsHistory)), FailedRunsHistoryLimit: ptr.To(int32(f.failedRuns))}); err != nil {
			return fmt.Errorf("set up controller: %w", err)
		}
	}
	return nil
}

// testCertRotationFlag makes the certificate rotator rotate within seconds,
// for the rotation drill (test/drills): a comma-separated list of
// ca=DURATION (CA validity), server=DURATION (serving certificate validity),
// lookahead=DURATION (renew what expires sooner than this), check=DURATION
// (how often to look) and dns=NAME (an extra DNS name in the serving
// certificate, such as localhost, for a webhook configuration with a URL).
// With ca=1h20s,server=1h8s,lookahead=1h the serving certificate is
// re-issued about every 8 s and the CA with it after about 20 s. It is left
// out of the usage text and is not for production.
const testCertRotationFlag = "test-cert-rotation"

// testRotation is the parsed --test-cert-rotation.
type testRotation struct {
	ca, server, lookahead, check time.Duration
	dnsNames                     []string
}

func parseTestRotation(s string) (*testRotation, error) {
	if s == "" {
		return nil, nil
	}
	tr := &testRotation{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("--%s: %q: want key=value", testCertRotationFlag, kv)
		}
		if k == "dns" {
			tr.dnsNames = append(tr.dnsNames, v)
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("--%s: %s=%q: want a positive duration", testCertRotationFlag, k, v)
		}
		switch k {
		case "ca":
			tr.ca = d
		case "server":
			tr.server = d
		case "lookahead":
			tr.lookahead = d
		case "check":
			tr.check = d
		default:
			return nil, fmt.Errorf("--%s: unknown key %q (want ca, server, lookahead, check or dns)", testCertRotationFlag, k)
		}
	}
	return tr, nil
}

// apply sets the timings that were given on cr; cert-controller's defaults
// stay for the others.
func (tr *testRotation) apply(cr *rotator.CertRotator) {
	cr.CaCertDuration, cr.ServerCertDuration = tr.ca, tr.server
	cr.LookaheadInterval, cr.RotationCheckFrequency = tr.lookahead, tr.check
	cr.ExtraDNSNames = append(cr.ExtraDNSNames, tr.dnsNames...)
}
