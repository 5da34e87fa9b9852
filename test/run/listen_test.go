package run_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// managerReady matches taskgate-local's line once the manager serves.
var managerReady = regexp.MustCompile(`manager ready \(pid (\d+), webhooks on https://127\.0\.0\.1:(\d+),`)

// metricsLine matches taskgate-local's line naming the manager's metrics endpoint.
var metricsLine = regexp.MustCompile(`==> metrics: (http://127\.0\.0\.1:(\d+)/metrics)`)

// checkMetrics, while the manager runs: the printed endpoint answers with
// taskgate's series and listens on 127.0.0.1 alone.
func checkMetrics(t *testing.T, url string, port int) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Errorf("metrics endpoint %s: %v", url, err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("\ntaskgate_")) {
		t.Errorf("metrics endpoint %s: %s, no taskgate_ series in\n%.2000s", url, resp.Status, body)
	}
	if addrs := listening(t, port); len(addrs) != 1 || addrs[0] != "127.0.0.1" {
		t.Errorf("metrics port %d is bound to %v, want 127.0.0.1 only", port, addrs)
	}
}

// checkWebhookLoopbackOnly, while the manager runs: it was started with
// --webhook-bind-address=127.0.0.1, the kernel has its webhook port bound
// to 127.0.0.1 alone, and a connection to any other address of this machine
// on that port is refused, so nobody on the network can send it
// AdmissionReviews with a made-up userInfo.
func checkWebhookLoopbackOnly(t *testing.T, pid, port int) {
	t.Helper()
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		t.Errorf("the manager (pid %d) is gone before its listener could be checked: %v", pid, err)
		return
	}
	if args := strings.Split(string(cmdline), "\x00"); !slices.Contains(args, "--webhook-bind-address=127.0.0.1") {
		t.Errorf("manager args %q lack --webhook-bind-address=127.0.0.1", args)
	}
	if addrs := listening(t, port); len(addrs) != 1 || addrs[0] != "127.0.0.1" {
		t.Errorf("webhook port %d is bound to %v, want 127.0.0.1 only", port, addrs)
	}
	for _, ip := range otherAddresses() {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(ip, strconv.Itoa(port)), time.Second)
		if err == nil {
			_ = conn.Close()
			t.Errorf("the webhook port answers on %s", ip)
		}
	}
}

// listening returns the local addresses with a TCP socket listening on port,
// from /proc/net/tcp and tcp6 (Linux).
func listening(t *testing.T, port int) []string {
	t.Helper()
	var addrs []string
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// sl local_address rem_address st ...; st 0A is LISTEN.
			if len(fields) < 4 || fields[3] != "0A" {
				continue
			}
			host, p, ok := strings.Cut(fields[1], ":")
			if n, err := strconv.ParseUint(p, 16, 16); !ok || err != nil || int(n) != port {
				continue
			}
			addrs = append(addrs, procIP(host))
		}
		_ = f.Close()
	}
	return addrs
}

// procIP decodes /proc/net's address: 32-bit words in host (little-endian) order.
func procIP(h string) string {
	b, err := hex.DecodeString(h)
	if err != nil || len(b)%4 != 0 {
		return h
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return net.IP(b).String()
}

// otherAddresses are this machine's unicast addresses other than loopback.
func otherAddresses() []string {
	ifaces, _ := net.InterfaceAddrs()
	var out []string
	for _, a := range ifaces {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			out = append(out, n.IP.String())
		}
	}
	return out
}

// requesters returns NAMESPACE/NAME -> REQUESTER, GROUPS from the
// custom-columns table of TaskRuns taskgate-local prints (NAMESPACE NAME
// TASK REQUESTER GROUPS).
func requesters(text string) map[string][]string {
	out := map[string][]string{}
	in := false
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		cols := strings.Fields(sc.Text())
		switch {
		case len(cols) == 5 && cols[0] == "NAMESPACE" && cols[2] == "TASK" && cols[3] == "REQUESTER":
			in = true
		case in && len(cols) == 0:
			return out
		case in && len(cols) >= 4:
			out[cols[0]+"/"+cols[1]] = cols[3:]
		}
	}
	return out
}
