#!/usr/bin/env bash
# Builds Toxiproxy's server, v2.5.0 (the newest the Go module proxy serves), from its Go module into the git-ignored
# .tools/toxiproxy/bin/toxiproxy-server: the TCP fault proxy test/support/faultProxy.ts puts between pveflow and each
# thing it talks to (Temporal, Proxmox, the nodes' SSH, NetBird) and between Temporal and PostgreSQL
# (test/net-faults.e2e.test.ts). Pure Go, no cgo; about 20 s cold on 2 cores. A stamp of the recipe's hash means it is
# built once and rebuilt only when this script changes.
#
#   npm run install:toxiproxy      (FORCE=1 to rebuild)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

VERSION=v2.5.0

dest=$root/.tools/toxiproxy
stamp=$dest/.stamp
started=$(date +%s)

command -v go >/dev/null || { echo "install-toxiproxy: Go is needed (https://go.dev/dl, or apt-get install -y golang)" >&2; exit 1; }
export GOFLAGS=-buildvcs=false

wanted="toxiproxy=$VERSION recipe=$(sha256sum "$root/scripts/install-toxiproxy.sh" | cut -c1-16)"
if [ "${FORCE:-}" != 1 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && [ -x "$dest/bin/toxiproxy-server" ]; then
  echo "install-toxiproxy: up to date in .tools/toxiproxy ($wanted)"
  exit 0
fi

rm -f "$stamp"
mkdir -p "$dest/bin"
echo "install-toxiproxy: building toxiproxy-server $VERSION"
gobin=$(mktemp -d)
trap 'rm -rf "$gobin"' EXIT
# go install names the binary after its directory (server); it gets the name Toxiproxy's releases use.
CGO_ENABLED=0 GOBIN=$gobin go install -trimpath "github.com/Shopify/toxiproxy/v2/cmd/server@$VERSION"
mv -f "$gobin/server" "$dest/bin/toxiproxy-server"
echo "$wanted" >"$stamp"
echo "install-toxiproxy: ready in .tools/toxiproxy after $(($(date +%s) - started)) s"
