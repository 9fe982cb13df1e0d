#!/usr/bin/env bash
# Builds Dex's own OpenID provider server (cmd/dex), at the version NetBird v0.77.1 embeds, from the Go module proxy
# into the git-ignored .tools/dex/bin/dex, through the wrapper module scripts/dex. The sign-in tests run it as the real
# identity provider (test/support/oidcProvider.ts): its own login page, its own tokens, its own device flow.
# Built once per recipe (scripts/lib/go-tool.sh).
#
#   npm run install:dex      (FORCE=1 to rebuild)
set -euo pipefail
source "$(dirname "$0")/lib/go-tool.sh"

src=$GO_TOOL_ROOT/scripts/dex

# CGO off: the tests keep Dex's state in memory, so its SQLite storage (cgo) is not needed.
build_dex() {
  go_tool_build "$1/dex" 0 "$src" github.com/dexidp/dex/cmd/dex
}

go_tool_install dex "dex-wrapper=$(go_tool_hash "$src/go.mod" "$src/go.sum" "$src/tools.go")" build_dex dex
