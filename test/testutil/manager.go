package testutil

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Manager is a controller-runtime manager running until Stop.
type Manager struct {
	ctrl.Manager
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// managerStopTimeout bounds Stop: the graceful shutdown plus a margin.
const managerStopTimeout = 30 * time.Second

// StartManager creates a manager acting as cfg with opts, lets setup wire
// it (webhook.SetupWithManager, controller.SetupWithManager, ...), starts
// it, and returns once its webhook server, if it has one, serves: the API
// server reaches the webhooks over TLS from then on. Unset options get the
// harness's defaults: its Scheme, no metrics listener, a 5 s graceful
// shutdown that lets in-flight reviews and reconciles finish.
func StartManager(cfg *rest.Config, opts ctrl.Options, setup ...func(ctrl.Manager) error) (*Manager, error) {
	if opts.Scheme == nil {
		opts.Scheme = Scheme()
	}
	if opts.Metrics.BindAddress == "" {
		opts.Metrics = metricsserver.Options{BindAddress: "0"}
	}
	if opts.HealthProbeBindAddress == "" {
		opts.HealthProbeBindAddress = "0"
	}
	if opts.GracefulShutdownTimeout == nil {
		opts.GracefulShutdownTimeout = ptr.To(5 * time.Second)
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	for _, f := range setup {
		if err := f(mgr); err != nil {
			return nil, fmt.Errorf("set up manager: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{Manager: mgr, cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- mgr.Start(ctx) }()
	if opts.WebhookServer == nil {
		return m, nil
	}
	started := mgr.GetWebhookServer().StartedChecker()
	if err := Poll(WaitTimeout, func() error {
		select {
		case err := <-m.done:
			m.done <- err // for Stop
			return fmt.Errorf("manager stopped: %v", err)
		default:
		}
		return started(nil)
	}); err != nil {
		return nil, errors.Join(fmt.Errorf("webhook server not serving after %s: %w", WaitTimeout, err), m.Stop())
	}
	return m, nil
}

// Stop stops the manager and waits until it has stopped; it returns the
// error the manager stopped with. It may be called more than once.
func (m *Manager) Stop() error {
	m.once.Do(func() {
		m.cancel()
		select {
		case m.err = <-m.done:
		case <-time.After(managerStopTimeout):
			m.err = fmt.Errorf("manager did not stop within %s", managerStopTimeout)
		}
	})
	return m.err
}

// StartManager is StartManager (the function) for a manager that stops
// with the control plane, before etcd and kube-apiserver do.
func (cp *ControlPlane) StartManager(cfg *rest.Config, opts ctrl.Options, setup ...func(ctrl.Manager) error) (*Manager, error) {
	m, err := StartManager(cfg, opts, setup...)
	if err != nil {
		return nil, err
	}
	cp.OnStop(func() {
		if err := m.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	})
	return m, nil
}
