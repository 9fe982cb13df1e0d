#!/usr/bin/env bash
# Builds NetBird's own server and CLI client, v0.77.1, from the Go module proxy into the git-ignored .tools/netbird/:
#   bin/netbird-server  the combined server: management + signal + relay + STUN + built-in IdP (CGO, for SQLite)
#   bin/netbird         the CLI client (`netbird up`); the guest image bakes this exact path in
# through the wrapper module scripts/netbird (NetBird's go.mod has replace directives, so `go install` cannot).
# test/support/netbirdServer.ts runs them inside network namespaces of the test's own. A cold build takes minutes
# (about 7 on 2 cores, the server alone peaks at about 2 GB of build cache); built once per recipe
# (scripts/lib/go-tool.sh).
#
#   npm run install:netbird      (FORCE=1 to rebuild)
set -euo pipefail
source "$(dirname "$0")/lib/go-tool.sh"

src=$GO_TOOL_ROOT/scripts/netbird

command -v gcc >/dev/null || { echo "install-netbird: gcc is needed (the server's SQLite store is cgo; apt-get install -y gcc)" >&2; exit 1; }

build_netbird() {
  go_tool_build "$1/netbird-server" 1 "$src" ./server
  go_tool_build "$1/netbird" 0 "$src" ./client
}

go_tool_install netbird "netbird-wrapper=$(go_tool_hash "$src/go.mod" "$src/go.sum" "$src/server/main.go" "$src/client/main.go")" build_netbird netbird-server netbird
