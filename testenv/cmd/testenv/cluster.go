package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func init() {
	// Children get PDEATHSIG so that a SIGKILLed supervisor leaves no orphans. The signal is tied to the OS
	// thread that forked them, so every child is started from the main thread, which lives as long as we do.
	runtime.LockOSThread()
}

type exit struct {
	name string
	err  error
}

type component struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
}

type cluster struct {
	state   string
	bin     string
	nodes   int
	started time.Time

	ports  map[string]int
	etcd   *embed.Etcd
	procs  []*component
	exited chan exit
	marks  []string // "step seconds" lines for the timings file
}

func (c *cluster) path(parts ...string) string {
	return filepath.Join(append([]string{c.state}, parts...)...)
}

func (c *cluster) kubeconfig() string { return c.path("kubeconfig") }

func (c *cluster) mark(step string) {
	line := fmt.Sprintf("%-12s %6.2fs", step, time.Since(c.started).Seconds())
	c.marks = append(c.marks, line)
	fmt.Printf("testenv: %s\n", line)
}

func (c *cluster) start(ctx context.Context) error {
	c.exited = make(chan exit, 8)
	if err := c.allocatePorts(); err != nil {
		return err
	}
	p, err := newPKI()
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := p.write(c.path("pki")); err != nil {
		return err
	}
	if err := c.writeKubeconfig(p); err != nil {
		return err
	}
	if err := os.MkdirAll(c.path("logs"), 0o700); err != nil {
		return err
	}

	if err := c.startEtcd(); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	c.mark("etcd")

	if err := c.spawn("kube-apiserver", c.apiserverArgs(), nil); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "kube-apiserver", fmt.Sprintf("https://127.0.0.1:%d/readyz", c.ports["api"]), p.caCert, 120*time.Second); err != nil {
		return err
	}
	c.mark("apiserver")

	if err := c.spawn("kube-controller-manager", c.kcmArgs(), nil); err != nil {
		return err
	}
	if err := c.spawn("kube-scheduler", c.schedulerArgs(), nil); err != nil {
		return err
	}
	if err := os.MkdirAll(c.path("kwok"), 0o700); err != nil {
		return err
	}
	if err := c.spawn("kwok", c.kwokArgs(), []string{"KWOK_WORKDIR=" + c.path("kwok")}); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "kube-controller-manager", fmt.Sprintf("https://127.0.0.1:%d/healthz", c.ports["kcm"]), nil, 60*time.Second); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "kube-scheduler", fmt.Sprintf("https://127.0.0.1:%d/healthz", c.ports["scheduler"]), nil, 60*time.Second); err != nil {
		return err
	}
	c.mark("components")

	k, err := newKube(c.kubeconfig())
	if err != nil {
		return err
	}
	if err := k.createNodes(ctx, c.nodes, 30*time.Second); err != nil {
		return fmt.Errorf("nodes: %w", err)
	}
	c.mark("nodes")
	if err := k.smoke(ctx, 3, 90*time.Second); err != nil {
		return fmt.Errorf("smoke deployment: %w", err)
	}
	c.mark("smoke")

	var ports []string
	for name, port := range c.ports {
		ports = append(ports, fmt.Sprintf("%s %d", name, port))
	}
	sort.Strings(ports)
	if err := os.WriteFile(c.path("ports"), []byte(strings.Join(ports, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(c.path("timings"), []byte(strings.Join(c.marks, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	return os.WriteFile(c.path("ready"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600)
}

// allocatePorts asks the kernel for free loopback ports. There is a small window in which another process
// could take one; a component that then fails to bind exits and `up` reports it.
func (c *cluster) allocatePorts() error {
	c.ports = map[string]int{}
	for _, name := range []string{"etcd", "etcd-peer", "api", "kcm", "scheduler"} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		c.ports[name] = l.Addr().(*net.TCPAddr).Port
		defer l.Close()
	}
	return nil
}

func (c *cluster) writeKubeconfig(p *pki) error {
	b64 := base64.StdEncoding.EncodeToString
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster:
    server: https://127.0.0.1:%d
    certificate-authority-data: %s
users:
- name: testenv-admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: testenv
  context:
    cluster: testenv
    user: testenv-admin
    namespace: default
current-context: testenv
`, c.ports["api"], b64(p.caCert), b64(p.adminCert), b64(p.adminKey))
	return os.WriteFile(c.kubeconfig(), []byte(cfg), 0o600)
}

func (c *cluster) startEtcd() error {
	cfg := embed.NewConfig()
	cfg.Name = "testenv"
	cfg.Dir = c.path("etcd")
	cfg.UnsafeNoFsync = true
	client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", c.ports["etcd"])}
	peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", c.ports["etcd-peer"])}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{c.path("logs", "etcd.log")}
	if err := os.MkdirAll(c.path("logs"), 0o700); err != nil {
		return err
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Close()
		return fmt.Errorf("not ready after 60s")
	}
	c.etcd = e
	go func() {
		if err, ok := <-e.Err(); ok && err != nil {
			c.exited <- exit{"etcd", err}
		}
	}()
	return nil
}

func (c *cluster) apiserverArgs() []string {
	pk := func(f string) string { return c.path("pki", f) }
	return []string{
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", c.ports["etcd"]),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", c.ports["api"]),
		"--tls-cert-file=" + pk("apiserver.crt"),
		"--tls-private-key-file=" + pk("apiserver.key"),
		"--client-ca-file=" + pk("ca.crt"),
		"--cert-dir=" + c.path("apiserver"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pk("sa.pub"),
		"--service-account-signing-key-file=" + pk("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=Node,RBAC",
		"--disable-admission-plugins=ServiceAccount",
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
		"--enable-priority-and-fairness=false",
	}
}

func (c *cluster) componentCommon(port int, certDir string) []string {
	return []string{
		"--kubeconfig=" + c.kubeconfig(),
		"--authentication-kubeconfig=" + c.kubeconfig(),
		"--authorization-kubeconfig=" + c.kubeconfig(),
		"--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir=" + c.path(certDir),
		"--leader-elect=false",
	}
}

func (c *cluster) kcmArgs() []string {
	return append(c.componentCommon(c.ports["kcm"], "kcm"),
		"--controllers=*",
		"--root-ca-file="+c.path("pki", "ca.crt"),
		"--service-account-private-key-file="+c.path("pki", "sa.key"),
		"--use-service-account-credentials=false",
		"--kube-api-qps=200",
		"--kube-api-burst=400",
		// Scale-down and GC react fast in tests.
		"--concurrent-deployment-syncs=10",
		"--concurrent-replicaset-syncs=10",
	)
}

func (c *cluster) schedulerArgs() []string {
	return c.componentCommon(c.ports["scheduler"], "scheduler")
}

func (c *cluster) kwokArgs() []string {
	return []string{
		"--kubeconfig=" + c.kubeconfig(),
		"--config=" + filepath.Join(c.bin, "kwok-stages.yaml"),
		"--manage-all-nodes=true",
		"--node-lease-duration-seconds=40",
		"--cidr=10.244.0.0/16",
		"--node-ip=10.1.0.1",
	}
}

func (c *cluster) spawn(name string, args []string, env []string) error {
	logf, err := os.OpenFile(c.path("logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	comp := &component{name: name, cmd: cmd, log: logf}
	c.procs = append(c.procs, comp)
	if err := c.recordPids(); err != nil {
		return err
	}
	go func() {
		err := cmd.Wait()
		c.exited <- exit{name, fmt.Errorf("%v", err)}
	}()
	return nil
}

func (c *cluster) recordPids() error {
	var lines []string
	for _, p := range c.procs {
		lines = append(lines, fmt.Sprintf("%s %d", p.name, p.cmd.Process.Pid))
	}
	return os.WriteFile(c.path("pids"), []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// waitHTTP polls url until it answers 200, a component exits, or the deadline passes. With caPEM nil the
// serving certificate is not verified (KCM and scheduler serve self-signed certificates on loopback).
func (c *cluster) waitHTTP(ctx context.Context, name, url string, caPEM []byte, timeout time.Duration) error {
	tlsCfg := &tls.Config{InsecureSkipVerify: true} // #nosec: loopback health probe only
	if caPEM != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		tlsCfg = &tls.Config{RootCAs: pool}
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case dead := <-c.exited:
			return fmt.Errorf("%s exited while waiting for %s: %v", dead.name, name, dead.err)
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("%s not healthy at %s after %s (last: %s)", name, url, timeout, last)
}

// shutdown stops the children in reverse dependency order, then etcd.
func (c *cluster) shutdown() {
	order := []string{"kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver"}
	for _, name := range order {
		for _, p := range c.procs {
			if p.name != name || p.cmd.ProcessState != nil {
				continue
			}
			pid := p.cmd.Process.Pid
			_ = syscall.Kill(-pid, syscall.SIGTERM)
			waitGone(pid, 10*time.Second)
			if alive(pid) {
				_ = syscall.Kill(-pid, syscall.SIGKILL)
				waitGone(pid, 5*time.Second)
			}
			p.log.Close()
		}
	}
	if c.etcd != nil {
		c.etcd.Close()
	}
}

func (c *cluster) dumpLogs() {
	for _, name := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "etcd"} {
		b, err := os.ReadFile(c.path("logs", name+".log"))
		if err != nil || len(b) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 25 {
			lines = lines[len(lines)-25:]
		}
		fmt.Fprintf(os.Stderr, "---- last lines of %s ----\n%s\n", name, strings.Join(lines, "\n"))
	}
}
