#!/usr/bin/env bash
# Builds NetBird's own server and CLI client, v0.77.1, from the Go module proxy into the git-ignored .tools/netbird/:
#   bin/netbird-server  the combined server: management + signal + relay + STUN + built-in IdP (CGO, for SQLite)
#   bin/netbird         the CLI client (`netbird up`); the guest image bakes this exact path in
# through the wrapper module scripts/netbird (NetBird's go.mod has replace directives, so `go install` cannot).
# test/support/netbirdServer.ts runs them inside network namespaces of the test's own. A cold build takes minutes
# (about 7 on 2 cores); a stamp of the recipe's hash means it is done once and redone only when the recipe changes.
#
#   npm run install:netbird      (FORCE=1 to rebuild)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

src=$root/scripts/netbird
dest=$root/.tools/netbird
stamp=$dest/.stamp
started=$(date +%s)

command -v go >/dev/null || { echo "install-netbird: Go is needed (https://go.dev/dl, or apt-get install -y golang)" >&2; exit 1; }
command -v gcc >/dev/null || { echo "install-netbird: gcc is needed (the server's SQLite store is cgo; apt-get install -y gcc)" >&2; exit 1; }
export GOFLAGS=-buildvcs=false

wanted="netbird-wrapper=$(cat "$src/go.mod" "$src/go.sum" "$src/server/main.go" "$src/client/main.go" "$root/scripts/install-netbird.sh" | sha256sum | cut -c1-16)"
if [ "${FORCE:-}" != 1 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && [ -x "$dest/bin/netbird-server" ] && [ -x "$dest/bin/netbird" ]; then
  echo "install-netbird: up to date in .tools/netbird ($wanted)"
  exit 0
fi

step() { echo "install-netbird: $*"; }
rm -f "$stamp"
mkdir -p "$dest/bin"

# -p 1: two cores shared with the rest of the machine; the server alone peaks at about 2 GB of build cache.
step "building netbird-server (the first build takes minutes)"
t=$(date +%s)
CGO_ENABLED=1 go build -C "$src" -mod=readonly -trimpath -p 1 -o "$dest/bin/netbird-server" ./server
step "  done in $(($(date +%s) - t)) s"

step "building the netbird client"
t=$(date +%s)
CGO_ENABLED=0 go build -C "$src" -mod=readonly -trimpath -p 1 -o "$dest/bin/netbird" ./client
step "  done in $(($(date +%s) - t)) s"

echo "$wanted" >"$stamp"
step "ready in .tools/netbird after $(($(date +%s) - started)) s"
