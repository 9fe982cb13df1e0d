#!/usr/bin/env bash
# Builds Toxiproxy's server, v2.5.0 (the newest the Go module proxy serves), from its Go module into the git-ignored
# .tools/toxiproxy/bin/toxiproxy-server: the TCP fault proxy test/support/faultProxy.ts puts between pveflow and each
# thing it talks to (Temporal, Proxmox, the nodes' SSH, NetBird) and between Temporal and PostgreSQL
# (test/net-faults.e2e.test.ts). Pure Go, no cgo; about 20 s cold on 2 cores. Built once per recipe
# (scripts/lib/go-tool.sh).
#
#   npm run install:toxiproxy      (FORCE=1 to rebuild)
set -euo pipefail
source "$(dirname "$0")/lib/go-tool.sh"

VERSION=v2.5.0

# The binary gets the name Toxiproxy's releases use.
build_toxiproxy() {
  go_tool_install_module "$1/toxiproxy-server" "github.com/Shopify/toxiproxy/v2/cmd/server@$VERSION"
}

go_tool_install toxiproxy "toxiproxy=$VERSION" build_toxiproxy toxiproxy-server
