package controller

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/registry"
)

// tasks is the taskgate_tasks gauge: the runs that exist, by plugin and
// phase, counted from the manager's cache at every scrape. Counting on
// scrape, rather than keeping a gauge up to date in Reconcile, cannot drift:
// a missed event, a run deleted while the controller was down, or a restart
// never leaves a stale count behind.
//
// Only the elected leader reports it (taskSource needs leader election):
// with several replicas, sum(taskgate_tasks) counts each Task once, and a
// replica that is not the leader does not cache runs for it.
var tasks = &taskCounter{
	desc: prometheus.NewDesc("taskgate_tasks",
		"runs that exist, by plugin and phase (Pending, Running, Succeeded, Failed), as the leading controller's cache holds them; "+
			"a run the controller has not seen yet is Pending.",
		[]string{"plugin", "phase"}, nil),
	sources: map[*taskSource]struct{}{},
}

// collectTimeout bounds one scrape's wait for the cache (it waits only
// while the run informer syncs, after a start).
const collectTimeout = 5 * time.Second

var phases = []v1alpha1.TaskPhase{v1alpha1.TaskPending, v1alpha1.TaskRunning, v1alpha1.TaskSucceeded, v1alpha1.TaskFailed}

// taskCounter is a prometheus.Collector over the caches of the running
// managers: one in a deployment; several when tests run managers side by
// side in one process, each on namespaces of its own, whose counts add up.
type taskCounter struct {
	desc    *prometheus.Desc
	mu      sync.Mutex
	sources map[*taskSource]struct{}
}

// Describe implements prometheus.Collector.
func (c *taskCounter) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector. Every known plugin and phase is
// reported, 0 included, so that an alert on a phase has a series to watch
// before its first Task. Nothing is reported while no manager leads, or when
// the cache cannot be read: a partial count would look like runs gone.
func (c *taskCounter) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	sources := slices.Collect(maps.Keys(c.sources))
	c.mu.Unlock()
	if len(sources) == 0 {
		return
	}
	type key struct{ plugin, phase string }
	counts := map[key]int{}
	for _, p := range v1alpha1.Plugins {
		for _, ph := range phases {
			counts[key{string(p), string(ph)}] = 0
		}
	}
	for _, s := range sources {
		ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
		list := &v1alpha1.TaskRunList{}
		// Read-only: the cache's own objects, not copies of every Task.
		err := s.reader.List(ctx, list, client.UnsafeDisableDeepCopy)
		cancel()
		if err != nil {
			s.log.Error(err, "taskgate_tasks not reported: cannot list runs from the cache")
			return
		}
		for i := range list.Items {
			t := &list.Items[i]
			phase, _ := taskPhase(t.Status.Conditions)
			counts[key{registry.Label(t.Plugin()), string(phase)}]++
		}
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), k.plugin, k.phase)
	}
}

// taskSource is a manager's cache as a source of taskgate_tasks, added to
// the collector while the manager leads.
type taskSource struct {
	reader client.Reader
	log    logr.Logger
}

// Start implements manager.Runnable: the source counts until the manager
// stops (or loses the lead, which stops it).
func (s *taskSource) Start(ctx context.Context) error {
	tasks.mu.Lock()
	tasks.sources[s] = struct{}{}
	tasks.mu.Unlock()
	<-ctx.Done()
	tasks.mu.Lock()
	delete(tasks.sources, s)
	tasks.mu.Unlock()
	return nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (s *taskSource) NeedLeaderElection() bool { return true }
