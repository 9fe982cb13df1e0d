"""A VM's life as a proxmoxer user provisions it, against a Proxmox VE API (pveflow runs it against its simulator).

clone the template to the next free id -> configure (net0 without a MAC: Proxmox generates one) -> start ->
wait for the guest agent -> osinfo, host name, interfaces (the NIC carries the generated MAC) -> stop -> delete.

Configuration from the environment: PVE_HOST (host:port), PVE_TOKEN_ID (user@realm!name), PVE_TOKEN_SECRET,
PVE_CA_FILE, PVE_NODE (default pve1), PVE_TEMPLATE_VMID (default 9000), PVE_POOL (optional). Prints one line per
step; exits 1 at the first answer that is not what Proxmox gives.
"""
import os
import re
import sys
import time

from proxmoxer import ProxmoxAPI, ResourceException
from proxmoxer.tools import Tasks


def fail(step, why):
    print(f"FAIL {step}: {why}", flush=True)
    sys.exit(1)


def ok(step, detail=""):
    print(f"ok {step} {detail}", flush=True)


def wait(px, step, upid):
    status = Tasks.blocking_status(px, upid, timeout=60, polling_interval=0.05)
    if not status or status.get("exitstatus") != "OK":
        fail(step, f"task {upid} ended {status}")
    return status


def main():
    host, port = os.environ["PVE_HOST"].rsplit(":", 1)
    user, token_name = os.environ["PVE_TOKEN_ID"].split("!", 1)
    px = ProxmoxAPI(host, port=int(port), user=user, token_name=token_name, token_value=os.environ["PVE_TOKEN_SECRET"],
                    verify_ssl=os.environ.get("PVE_CA_FILE", True), timeout=20)
    node_name = os.environ.get("PVE_NODE", "pve1")
    template = int(os.environ.get("PVE_TEMPLATE_VMID", "9000"))
    pool = os.environ.get("PVE_POOL")

    version = px.version.get()
    ok("version", version["version"])

    status = px.cluster.status.get()
    nodes = [e for e in status if e["type"] == "node"]
    cluster = [e for e in status if e["type"] == "cluster"]
    if len(cluster) != 1 or cluster[0]["quorate"] != 1 or not any(n["name"] == node_name and n["online"] == 1 for n in nodes):
        fail("cluster/status", status)
    ok("cluster/status", f"{cluster[0]['name']} {len(nodes)} nodes")

    vmid = int(px.cluster.nextid.get())
    node = px.nodes(node_name)
    clone = {"newid": vmid, "name": f"proxmoxer-{vmid}", "full": 0}
    if pool:
        clone["pool"] = pool
    wait(px, "clone", node.qemu(template).clone.post(**clone))
    ok("clone", vmid)

    vm = node.qemu(vmid)
    wait(px, "config", vm.config.post(net0="virtio,bridge=vmbr0", cores=2, memory=1024, agent=1))
    config = vm.config.get()
    match = re.fullmatch(r"virtio=([0-9A-F]{2}(?::[0-9A-F]{2}){5}),bridge=vmbr0", config.get("net0", ""))
    if not match:
        fail("config", f"net0 came back as {config.get('net0')!r}, not virtio=<MAC>,bridge=vmbr0")
    mac = match.group(1)
    if config.get("cores") != 2 or config.get("memory") != "1024":
        fail("config", config)
    ok("config", config["net0"])

    wait(px, "start", vm.status.start.post())
    if vm.status.current.get()["status"] != "running":
        fail("start", "not running after the start task")
    ok("start")

    deadline = time.monotonic() + 60
    while True:
        try:
            vm.agent.ping.post()
            break
        except ResourceException as err:
            if "guest agent is not running" not in str(err) or time.monotonic() > deadline:
                fail("agent", err)
            time.sleep(0.05)
    osinfo = vm.agent("get-osinfo").get()["result"]
    if not osinfo.get("id") or not osinfo.get("pretty-name"):
        fail("agent osinfo", osinfo)
    host_name = vm.agent.post(command="get-host-name")["result"]["host-name"]
    interfaces = vm.agent("network-get-interfaces").get()["result"]
    macs = [i.get("hardware-address") for i in interfaces]
    if mac.lower() not in macs:
        fail("agent network", f"no interface with the generated MAC {mac}: {macs}")
    ok("agent", f"{osinfo['pretty-name']} / {host_name} / {mac}")

    wait(px, "stop", vm.status.stop.post())
    if vm.status.current.get()["status"] != "stopped":
        fail("stop", "still running after the stop task")
    ok("stop")

    wait(px, "delete", vm.delete(purge=1))
    try:
        vm.config.get()
        fail("delete", f"VM {vmid} still has a config")
    except ResourceException as err:
        if err.status_code not in (403, 500):
            fail("delete", err)
    ok("delete")
    print("FLOW_OK", flush=True)


if __name__ == "__main__":
    main()
