#!/usr/bin/env bash
# Builds Dex's own OpenID provider server (cmd/dex), at the version NetBird v0.77.1 embeds, from the Go module proxy
# into the git-ignored .tools/dex/bin/dex, through the wrapper module scripts/dex. The sign-in tests run it as the real
# identity provider (test/support/oidcProvider.ts): its own login page, its own tokens, its own device flow.
# A stamp of the recipe's hash means the build is done once and redone only when the recipe changes.
#
#   npm run install:dex      (FORCE=1 to rebuild)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

src=$root/scripts/dex
dest=$root/.tools/dex
stamp=$dest/.stamp
started=$(date +%s)

command -v go >/dev/null || { echo "install-dex: Go is needed (https://go.dev/dl, or apt-get install -y golang)" >&2; exit 1; }
export GOFLAGS=-buildvcs=false

wanted="dex-wrapper=$(cat "$src/go.mod" "$src/go.sum" "$src/tools.go" "$root/scripts/install-dex.sh" | sha256sum | cut -c1-16)"
if [ "${FORCE:-}" != 1 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && [ -x "$dest/bin/dex" ]; then
  echo "install-dex: up to date in .tools/dex ($wanted)"
  exit 0
fi

rm -f "$stamp"
mkdir -p "$dest/bin"
# -p 1: two cores shared with the rest of the machine. CGO off: the tests keep Dex's state in memory, so its SQLite
# storage (cgo) is not needed.
echo "install-dex: building dex (the first build takes minutes)"
CGO_ENABLED=0 go build -C "$src" -mod=readonly -trimpath -p 1 -o "$dest/bin/dex" github.com/dexidp/dex/cmd/dex
echo "$wanted" >"$stamp"
echo "install-dex: ready in .tools/dex after $(($(date +%s) - started)) s"
