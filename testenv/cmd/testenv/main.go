// Command testenv runs a real, local Kubernetes control plane on loopback for flagger-rs tests and the demo:
// embedded etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (fake kubelets), all built
// from Go modules by build.sh.
//
//	testenv up     --state DIR --bin DIR [--nodes N]   start, prove usable, write DIR/ready, supervise
//	testenv down   --state DIR [--keep]                 stop everything recorded in DIR, remove DIR
//	testenv status --state DIR                          print whether the recorded processes are alive
//
// `up` stays in the foreground as the supervisor. It exits non-zero when any component dies.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	verb, args := os.Args[1], os.Args[2:]
	var err error
	switch verb {
	case "up":
		err = cmdUp(args)
	case "down":
		err = cmdDown(args)
	case "status":
		err = cmdStatus(args)
	case "-h", "--help", "help":
		usage()
		return
	default:
		fmt.Fprintf(os.Stderr, "testenv: unknown verb %q\n", verb)
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv %s: %v\n", verb, err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  testenv up     --state DIR --bin DIR [--nodes N]
  testenv down   --state DIR [--keep]
  testenv status --state DIR
`)
}

func cmdUp(args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	state := fs.String("state", "", "state directory (created fresh; must not hold a running cluster)")
	bin := fs.String("bin", "", "directory with kube-apiserver, kube-controller-manager, kube-scheduler, kwok")
	nodes := fs.Int("nodes", 3, "number of fake nodes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *state == "" || *bin == "" {
		return errors.New("--state and --bin are required")
	}
	stateDir, err := filepath.Abs(*state)
	if err != nil {
		return err
	}
	binDir, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	if pid, ok := readPid(filepath.Join(stateDir, "testenv.pid")); ok && alive(pid) {
		return fmt.Errorf("a testenv (pid %d) is already running on %s", pid, stateDir)
	}
	if err := os.RemoveAll(stateDir); err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(stateDir, "testenv.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return err
	}

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()

	cl := &cluster{state: stateDir, bin: binDir, nodes: *nodes, started: time.Now()}
	defer cl.shutdown()
	if err := cl.start(ctx); err != nil {
		cl.dumpLogs()
		return err
	}
	fmt.Printf("testenv: ready in %.1fs\nexport KUBECONFIG=%s\n", time.Since(cl.started).Seconds(), cl.kubeconfig())

	select {
	case <-ctx.Done():
		fmt.Println("testenv: stopping")
		return nil
	case dead := <-cl.exited:
		cl.dumpLogs()
		return fmt.Errorf("component %s exited unexpectedly: %v", dead.name, dead.err)
	}
}

func cmdDown(args []string) error {
	fs := flag.NewFlagSet("down", flag.ExitOnError)
	state := fs.String("state", "", "state directory")
	keep := fs.Bool("keep", false, "keep the state directory (logs, certificates) after stopping")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *state == "" {
		return errors.New("--state is required")
	}
	stateDir := *state
	if pid, ok := readPid(filepath.Join(stateDir, "testenv.pid")); ok && alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		waitGone(pid, 30*time.Second)
	}
	// Whatever the supervisor could not stop is killed by recorded pid (never by name).
	var survivors []string
	for name, pid := range readPids(filepath.Join(stateDir, "pids")) {
		if alive(pid) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitGone(pid, 5*time.Second)
			survivors = append(survivors, name)
		}
	}
	if pid, ok := readPid(filepath.Join(stateDir, "testenv.pid")); ok && alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		waitGone(pid, 5*time.Second)
	}
	if len(survivors) > 0 {
		fmt.Printf("testenv: killed leftover processes: %s\n", strings.Join(survivors, ", "))
	}
	if !*keep {
		if err := os.RemoveAll(stateDir); err != nil {
			return err
		}
	}
	fmt.Println("testenv: down")
	return nil
}

func cmdStatus(args []string) error {
	fs := flag.NewFlagSet("status", flag.ExitOnError)
	state := fs.String("state", "", "state directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pid, ok := readPid(filepath.Join(*state, "testenv.pid"))
	if !ok || !alive(pid) {
		fmt.Println("testenv: not running")
		os.Exit(3)
	}
	fmt.Printf("testenv: supervisor pid %d\n", pid)
	for name, p := range readPids(filepath.Join(*state, "pids")) {
		fmt.Printf("  %-24s pid %-8d alive=%v\n", name, p, alive(p))
	}
	if _, err := os.Stat(filepath.Join(*state, "ready")); err == nil {
		fmt.Println("testenv: ready")
		return nil
	}
	fmt.Println("testenv: starting")
	return nil
}

func readPid(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid, err == nil && pid > 0
}

// readPids reads "name pid" lines.
func readPids(path string) map[string]int {
	out := map[string]int{}
	b, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if pid, err := strconv.Atoi(f[1]); err == nil && pid > 0 {
			out[f[0]] = pid
		}
	}
	return out
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	// A zombie still answers kill(0); treat it as gone.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func waitGone(pid int, d time.Duration) {
	deadline := time.Now().Add(d)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
}
