package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/cache"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/children"
)

// DefaultPreflightTimeout bounds a preflight's dry runs, well inside the
// webhook's 5 s timeout; a dry run that takes longer admits with a warning.
const DefaultPreflightTimeout = 2 * time.Second

// Texts of the preflight's answers, as constants so tests and docs quote them.
const (
	errPreflightPod     = "the API server refuses the run's Pod (server-side dry run as %s): %s%s"
	errPreflightBinding = "the API server refuses the run's ClusterRoleBinding (server-side dry run as %s): %s%s"
	warnPreflightFailed = "taskgate could not dry-run the run's %s, so it is admitted unchecked and the run meets " +
		"whatever the API server says then: %v"
	warnPreflightNoServiceAccount = "the run's Pod could not be dry-run: %v; its ServiceAccount is created when the " +
		"run starts, so the run meets PodSecurity, quotas and other policies then"
	warnPreflightExists = "a %s named %q already exists: the run fails unless it is gone when the run starts"
)

// defaultServiceAccount is the ServiceAccount kube-controller-manager
// creates in every namespace.
const defaultServiceAccount = "default"

// Preflight dry-runs a custom-image TaskRun's Pod, and its
// ClusterRoleBinding when it has a clusterRole, on the API server as the
// requester (the same objects the controller creates, from package
// children), so that whatever would refuse them at run time (RBAC and its
// escalation check, PodSecurity, ResourceQuota, LimitRange, other webhooks)
// refuses the TaskRun at `kubectl create`, with the API server's own text.
// One dry-run request per run, two with a clusterRole, sent at once.
//
// The ServiceAccount admission plugin refuses a Pod whose ServiceAccount
// does not exist, and the run's own (<run>-task) is created only when the
// run starts: the Pod is dry-run with "default" instead, which PodSecurity
// and quotas judge the same, since the run's ServiceAccount carries no
// rights of its own. A user-named ServiceAccount is used when it exists,
// else "default" too. When neither exists (a namespace just created, or a
// cluster without kube-controller-manager) the "error looking up service
// account" refusal is inconclusive: the run is admitted with a warning.
// So is every answer that is not a refusal (a timeout, a 5xx, a webhook
// that cannot dry-run, a child of that name that exists already).
type Preflight struct {
	// Clients returns the clients that act as the requester
	// (actas.Factory.For): impersonating them in actas.ModeRequester, the
	// manager's own in actas.ModeController.
	Clients func(*v1alpha1.Requester) (*actas.Clients, error)
	// Timeout bounds the dry runs; zero means DefaultPreflightTimeout.
	Timeout time.Duration
	// CacheTTL, when positive, remembers for that long that a requester's
	// children of the same content (namespace, config, ServiceAccount,
	// clusterRole; not the run's name) passed the preflight, so that a
	// burst of like runs costs one dry run per TTL instead of one each.
	// Only clean passes are remembered (no refusal, no warning). The price,
	// as with the access-review cache: a PodSecurity label, quota or policy
	// tightened within the TTL meets those runs at run time instead of at
	// admission, and a child name already taken is not warned about.
	CacheTTL time.Duration

	once   sync.Once
	passed *cache.LRUExpireCache // keys of clean passes, with CacheTTL
}

// preflightCacheSize bounds the remembered passes (32-byte keys).
const preflightCacheSize = 4096

// passKey identifies what a preflight's answer depends on, but the run's
// name (which only names and labels the children): the requester, the
// namespace, the config with the ServiceAccount the Pod is dry-run with.
func passKey(r *v1alpha1.Requester, ns string, cfg v1alpha1.CustomImageConfig, sa string) ([32]byte, bool) {
	cfg.ServiceAccountName = sa
	key, err := json.Marshal(struct {
		R   *v1alpha1.Requester
		NS  string
		Cfg v1alpha1.CustomImageConfig
	}{r, ns, cfg})
	return sha256.Sum256(key), err == nil
}

// CustomImage dry-runs the children of a custom-image TaskRun whose
// snapshot (spec.taskSpec) passed validation and the access checks, as
// requester r. Refusals are field errors on spec.config (the Pod) and
// spec.config.clusterRole (the binding), as for any config; whatever is not
// a refusal is a warning.
func (p *Preflight) CustomImage(ctx context.Context, run *v1alpha1.TaskRun, r *v1alpha1.Requester) (field.ErrorList, []string) {
	var cfg v1alpha1.CustomImageConfig
	if run.Spec.TaskSpec == nil {
		return nil, []string{fmt.Sprintf(warnPreflightFailed, "Pod", "no spec.taskSpec")} // validated before: cannot happen
	}
	if err := json.Unmarshal(run.Spec.TaskSpec.Config.Raw, &cfg); err != nil {
		return nil, []string{fmt.Sprintf(warnPreflightFailed, "Pod", err)} // Validate decoded it: cannot happen
	}
	clients, err := p.Clients(r)
	if err != nil {
		return nil, []string{fmt.Sprintf(warnPreflightFailed, "Pod", err)}
	}
	t := run.DeepCopy()
	if t.Name == "" {
		// generateName: a mutating webhook sees no name yet. A random
		// suffix, as the API server would add, so no existing Pod collides.
		t.Name = t.GenerateName + utilrand.String(5)
	}
	sa := cfg.ServiceAccountName
	if sa == "" {
		sa = v1alpha1.ServiceAccountName(t.Name, t.UID)
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultPreflightTimeout
	}
	var key [32]byte
	cacheable := false
	if p.CacheTTL > 0 {
		// The run's own ServiceAccount is dry-run as "default" (dryRunPod),
		// so runs that differ only in their names share a key.
		keySA := sa
		if sa == v1alpha1.ServiceAccountName(t.Name, t.UID) {
			keySA = ""
		}
		key, cacheable = passKey(r, t.Namespace, cfg, keySA)
		p.once.Do(func() { p.passed = cache.NewLRUExpireCache(preflightCacheSize) })
		if _, hit := p.passed.Get(key); hit && cacheable {
			return nil, nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	as, hint := "taskgate's manager", ""
	if clients.Requester != nil {
		as, hint = clients.Requester.Username, actas.MastersHint(clients.Requester)
	}
	var podErr, crbErr error
	var wg sync.WaitGroup
	if cfg.ClusterRole != "" {
		wg.Go(func() {
			crbErr = dryRun(ctx, clients.Client, children.ClusterRoleBinding(t, cfg.ClusterRole, sa))
		})
	}
	podErr = p.dryRunPod(ctx, clients.Client, t, &cfg, sa)
	wg.Wait()

	var errs field.ErrorList
	var warnings []string
	judge := func(err error, kind, name string, at *field.Path, refusal string) {
		switch {
		case err == nil:
		case isServiceAccountLookup(err):
			warnings = append(warnings, fmt.Sprintf(warnPreflightNoServiceAccount, err))
		case apierrors.IsAlreadyExists(err):
			warnings = append(warnings, fmt.Sprintf(warnPreflightExists, kind, name))
		case isRefusal(err):
			errs = append(errs, field.Forbidden(at, fmt.Sprintf(refusal, as, err.Error(), hint)))
		default:
			log.FromContext(ctx).Info("preflight inconclusive", "taskrun", t.Name, "child", kind, "error", err.Error())
			warnings = append(warnings, fmt.Sprintf(warnPreflightFailed, kind, err))
		}
	}
	judge(podErr, "Pod", v1alpha1.PodName(t.Name), configPath, errPreflightPod)
	if cfg.ClusterRole != "" {
		judge(crbErr, "ClusterRoleBinding", v1alpha1.ClusterRoleBindingName(t.Namespace, t.Name), configPath.Child("clusterRole"), errPreflightBinding)
	}
	if cacheable && len(errs) == 0 && len(warnings) == 0 {
		p.passed.Add(key, struct{}{}, p.CacheTTL)
	}
	return errs, warnings
}

// dryRunPod dry-runs the Pod with the ServiceAccount it can name now: the
// run's own is created only at run time, so "default" stands in for it; a
// user-named one is tried first and "default" if it does not exist yet.
func (p *Preflight) dryRunPod(ctx context.Context, c client.Client, t *v1alpha1.TaskRun, cfg *v1alpha1.CustomImageConfig, sa string) error {
	if sa == v1alpha1.ServiceAccountName(t.Name, t.UID) {
		return dryRun(ctx, c, children.Pod(t, cfg, defaultServiceAccount))
	}
	err := dryRun(ctx, c, children.Pod(t, cfg, sa))
	if isServiceAccountLookup(err) && sa != defaultServiceAccount {
		err = dryRun(ctx, c, children.Pod(t, cfg, defaultServiceAccount))
	}
	return err
}

// dryRun sends a server-side dry-run create; its error is the API
// server's, unwrapped, so that a refusal quotes the API server exactly.
func dryRun(ctx context.Context, c client.Client, obj client.Object) error {
	return c.Create(ctx, obj, client.DryRunAll)
}

// isServiceAccountLookup reports the ServiceAccount admission plugin's
// refusal of a Pod whose ServiceAccount does not exist.
func isServiceAccountLookup(err error) bool {
	return err != nil && apierrors.IsForbidden(err) && strings.Contains(err.Error(), "error looking up service account")
}

// isRefusal reports whether err is the API server saying no to the object
// (authorization, admission, validation), as it would say it at run time;
// anything else (timeouts, throttling, 5xx, a webhook that cannot dry-run,
// the network) is not.
func isRefusal(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	if strings.Contains(err.Error(), "does not support dry run") {
		return false
	}
	switch status.Status().Code {
	case http.StatusBadRequest, http.StatusForbidden, http.StatusUnprocessableEntity:
		return true
	}
	return false
}
