package main

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

type kube struct {
	cs *kubernetes.Clientset
}

func newKube(kubeconfig string) (*kube, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &kube{cs: cs}, nil
}

// createNodes registers n fake Nodes that kwok manages, and waits until all report Ready. The API server
// keeps status fields on Node creation, so allocatable resources are set in the same request.
func (k *kube) createNodes(ctx context.Context, n int, timeout time.Duration) error {
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("kwok-node-%d", i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name: name,
				Annotations: map[string]string{
					"kwok.x-k8s.io/node":           "fake",
					"node.alpha.kubernetes.io/ttl": "0",
				},
				Labels: map[string]string{
					"type":                   "kwok",
					"kubernetes.io/hostname": name,
					"kubernetes.io/os":       "linux",
					"kubernetes.io/arch":     "amd64",
				},
			},
			Status: corev1.NodeStatus{
				Allocatable: res,
				Capacity:    res,
				Phase:       corev1.NodeRunning,
				NodeInfo: corev1.NodeSystemInfo{
					KubeletVersion:  "fake",
					OperatingSystem: "linux",
					Architecture:    "amd64",
				},
			},
		}
		if _, err := k.cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return poll(ctx, timeout, func() (bool, string, error) {
		nodes, err := k.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, "", err
		}
		ready := 0
		for _, node := range nodes.Items {
			for _, c := range node.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready >= n, fmt.Sprintf("%d of %d nodes Ready", ready, n), nil
	})
}

// smoke proves the chain Deployment → ReplicaSet → scheduler → kwok works: a Deployment must reach the given
// number of ready replicas. The namespace is deleted afterwards (not waited for).
func (k *kube) smoke(ctx context.Context, replicas int32, timeout time.Duration) error {
	ns := "testenv-smoke"
	if _, err := k.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	labels := map[string]string{"app": "smoke"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "smoke:1"}}},
			},
		},
	}
	if _, err := k.cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	err := poll(ctx, timeout, func() (bool, string, error) {
		d, err := k.cs.AppsV1().Deployments(ns).Get(ctx, "smoke", metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		return d.Status.ReadyReplicas == replicas,
			fmt.Sprintf("readyReplicas %d of %d", d.Status.ReadyReplicas, replicas), nil
	})
	if err != nil {
		return err
	}
	return k.cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
}

// poll calls check every 200ms until it reports done, returns an error, or the deadline passes; the timeout
// error carries check's last progress message.
func poll(ctx context.Context, timeout time.Duration, check func() (bool, string, error)) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		done, msg, err := check()
		if err != nil {
			last = err.Error()
		} else if done {
			return nil
		} else {
			last = msg
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %s: %s", timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
