package admission_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
)

// One user's flood of TaskRuns that each cost many access reviews (a
// transformation naming 32 random namespaces, which no cache can answer)
// is cut at their share: their creates are refused 429 (Too Many Requests)
// once their bucket is empty, without a review sent, while another user's
// create goes through at once (issue 20: 25,536 reviews in 59 s raised
// another user's create latency tenfold).
func TestAccessReviewFlood(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "flood")
	grant(t, ns, "flooder", runsRule)
	grant(t, ns, "calm", runsRule, readTasksRule, rule("", "pods", "create"))
	must(t, k8s.Create(ctx, newTask(ns, "hello", v1alpha1.PluginCustomImage, echoConfig)))
	// The flooder's requests go out once each: client-go would retry a 429
	// after its Retry-After, up to ten times, which only slows the flood.
	cfg := rest.CopyConfig(adminCfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "flooder", Groups: []string{"system:authenticated"}}
	cfg.GroupVersion = &v1alpha1.GroupVersion
	cfg.APIPath = "/apis"
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(testutil.Scheme()).WithoutConversion()
	flooder, err := rest.RESTClientFor(cfg)
	must(t, err)

	var throttled, forbidden int
	for i := range 20 { // 20 runs × 32 reviews: past the burst of 256
		namespaces := make([]string, 32)
		for j := range namespaces {
			namespaces[j] = fmt.Sprintf("random-%d-%d-%d", time.Now().UnixNano()%100000, i, j)
		}
		nsJSON, _ := json.Marshal(namespaces)
		config := `{"resources":[{"version":"v1","resource":"configmaps"}],"namespaces":` + string(nsJSON) +
			`,"operations":[{"mergePatch":{"metadata":{"labels":{"x":"y"}}}}]}`
		err := flooder.Post().Namespace(ns).Resource("taskruns").MaxRetries(0).
			Body(inlineRun(ns, fmt.Sprintf("flood-%d", i), v1alpha1.PluginTransformation, config)).Do(ctx).Error()
		switch {
		case apierrors.IsTooManyRequests(err) && strings.Contains(err.Error(), "access reviews a second"):
			throttled++
		case err != nil:
			forbidden++ // the flooder may patch nothing there: refused, after the reviews
		default:
			t.Fatalf("run %d admitted; the flooder holds no right in those namespaces", i)
		}
	}
	if throttled == 0 || forbidden == 0 {
		t.Fatalf("%d refused after their reviews, %d throttled; want the burst spent on reviews, then 429s", forbidden, throttled)
	}

	start := time.Now()
	must(t, as(t, "calm").Create(ctx, runOf(ns, "calm-run", "hello")))
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("another user's create took %s during the flood, want it unaffected", took)
	}
	t.Logf("flooder: %d creates refused after their reviews, %d throttled without any", forbidden, throttled)
}
