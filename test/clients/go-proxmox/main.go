// Command go-proxmox-flow provisions a VM with go-proxmox (github.com/luthermonson/go-proxmox), the way a Go
// program or the Terraform providers built on it do: clone the template to the next free id (go-proxmox asks
// /cluster/status first), configure a NIC without a MAC, start, wait for the guest agent (go-proxmox's
// WaitForAgent polls agent/get-osinfo), read the host name and interfaces, stop, delete. pveflow's tests run it
// against its simulator.
//
// Configuration from the environment: PVE_API_URL (https://host:port/api2/json), PVE_TOKEN_ID, PVE_TOKEN_SECRET,
// PVE_CA_FILE, PVE_NODE (default pve1), PVE_TEMPLATE_VMID (default 9000), PVE_POOL (optional). Prints one line per
// step and exits 1 at the first answer that is not what Proxmox gives.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client, err := newClient()
	if err != nil {
		fail("setup", err)
	}
	nodeName := env("PVE_NODE", "pve1")
	template, _ := strconv.Atoi(env("PVE_TEMPLATE_VMID", "9000"))

	version := must(client.Version(ctx))("version")
	ok("version", version.Version)

	cluster := must(client.Cluster(ctx))("cluster/status")
	check("cluster/status", cluster.Quorate == 1 && len(cluster.Nodes) > 0, "cluster %q: quorate %d, %d nodes", cluster.Name, cluster.Quorate, len(cluster.Nodes))
	ok("cluster/status", fmt.Sprintf("%s %d nodes", cluster.Name, len(cluster.Nodes)))

	node := client.NodeRef(nodeName)
	source := must(node.VirtualMachine(ctx, template))("template")
	// NewID 0: go-proxmox picks the next free id itself (Cluster → /cluster/status, then /cluster/nextid).
	vmid, task, err := source.Clone(ctx, &proxmox.VirtualMachineCloneOptions{Name: fmt.Sprintf("go-proxmox-%d", time.Now().Unix()%100000), Pool: os.Getenv("PVE_POOL")})
	step("clone", err)
	step("clone", task.Wait(ctx, 50*time.Millisecond, time.Minute))
	ok("clone", strconv.Itoa(vmid))

	vm := must(node.VirtualMachine(ctx, vmid))("config")
	task = must(vm.Config(ctx, proxmox.VirtualMachineOption{Name: "net0", Value: "virtio,bridge=vmbr0"},
		proxmox.VirtualMachineOption{Name: "agent", Value: "1"}, proxmox.VirtualMachineOption{Name: "cores", Value: 2}))("config")
	step("config", task.Wait(ctx, 50*time.Millisecond, time.Minute))
	step("config", vm.Ping(ctx))
	net0 := vm.VirtualMachineConfig.Nets["net0"]
	m := regexp.MustCompile(`^virtio=([0-9A-F]{2}(?::[0-9A-F]{2}){5}),bridge=vmbr0$`).FindStringSubmatch(net0)
	check("config", m != nil, "net0 came back as %q, not virtio=<MAC>,bridge=vmbr0", net0)
	mac := m[1]
	ok("config", net0)

	task = must(vm.Start(ctx))("start")
	step("start", task.Wait(ctx, 50*time.Millisecond, time.Minute))
	ok("start", "")

	step("agent", vm.WaitForAgent(ctx, 60))
	osInfo := must(vm.AgentOsInfo(ctx))("agent osinfo")
	check("agent osinfo", osInfo.ID != "" && osInfo.PrettyName != "", "empty osinfo %+v", *osInfo)
	hostName := must(vm.AgentGetHostName(ctx))("agent host-name")
	check("agent host-name", hostName != "", "empty host name")
	ifaces := must(vm.AgentGetNetworkIFaces(ctx))("agent network")
	found := false
	for _, i := range ifaces {
		found = found || strings.EqualFold(i.HardwareAddress, mac)
	}
	check("agent network", found, "no interface carries the generated MAC %s", mac)
	ok("agent", fmt.Sprintf("%s / %s / %s", osInfo.PrettyName, hostName, mac))

	task = must(vm.Stop(ctx))("stop")
	step("stop", task.Wait(ctx, 50*time.Millisecond, time.Minute))
	step("stop", vm.Ping(ctx))
	check("stop", vm.IsStopped(), "status %q after the stop task", vm.Status)
	ok("stop", "")

	task = must(vm.Delete(ctx, &proxmox.VirtualMachineDeleteOptions{Purge: true}))("delete")
	step("delete", task.Wait(ctx, 50*time.Millisecond, time.Minute))
	_, err = node.VirtualMachine(ctx, vmid)
	check("delete", err != nil, "VM %d is still there", vmid)
	ok("delete", "")
	fmt.Println("FLOW_OK")
}

func newClient() (*proxmox.Client, error) {
	url, id, secret := os.Getenv("PVE_API_URL"), os.Getenv("PVE_TOKEN_ID"), os.Getenv("PVE_TOKEN_SECRET")
	if url == "" || id == "" || secret == "" {
		return nil, errors.New("PVE_API_URL, PVE_TOKEN_ID and PVE_TOKEN_SECRET are required")
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if caFile := os.Getenv("PVE_CA_FILE"); caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in %s", caFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return proxmox.NewClient(url, proxmox.WithAPIToken(id, secret),
		proxmox.WithHTTPClient(&http.Client{Transport: transport, Timeout: 20 * time.Second})), nil
}

func env(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func must[T any](v T, err error) func(string) T {
	return func(name string) T {
		step(name, err)
		return v
	}
}

func step(name string, err error) {
	if err != nil {
		fail(name, err)
	}
}

func check(name string, cond bool, format string, args ...any) {
	if !cond {
		fail(name, fmt.Errorf(format, args...))
	}
}

func ok(name, detail string) { fmt.Printf("ok %s %s\n", name, detail) }

func fail(name string, err error) {
	fmt.Printf("FAIL %s: %v\n", name, err)
	os.Exit(1)
}
