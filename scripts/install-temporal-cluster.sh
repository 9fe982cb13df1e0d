#!/usr/bin/env bash
# Builds what a real Temporal cluster needs, without Docker, into the git-ignored .tools/temporal-cluster/:
#   bin/temporal-server    the Temporal server            (go.temporal.io/server/cmd/server)
#   bin/temporal-sql-tool  its SQL schema tool            (go.temporal.io/server/cmd/tools/sql)
#   bin/temporal-ui        Temporal UI's server + assets  (scripts/temporal-ui, a wrapper of github.com/temporalio/ui-server/v2)
#   schema/postgresql/v12/ the server's PostgreSQL schema (temporal, visibility), as the sql tool reads it
#   config/                the module's sample configs (development-postgres12.yaml, dynamicconfig/), for reference
# Everything comes from the Go module proxy; the Go toolchain the server needs is fetched by the go command itself.
# Idempotent: a stamp records what was built; when it matches, nothing is rebuilt.
#
#   npm run install:temporal-cluster      (FORCE=1 to rebuild)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

SERVER_VERSION=v1.32.2
UI_SERVER_VERSION=v2.58.1
GO_TOOLCHAIN=go1.27.3

dest=$root/.tools/temporal-cluster
stamp=$dest/.stamp
ui_src=$root/scripts/temporal-ui
started=$(date +%s)

command -v go >/dev/null || { echo "install-temporal-cluster: Go is needed (https://go.dev/dl, or apt-get install -y golang)" >&2; exit 1; }
export GOTOOLCHAIN=$GO_TOOLCHAIN GOFLAGS=-buildvcs=false

# What the binaries were built from: the pins, and our UI wrapper's sources (its go.mod pins the UI's dependencies).
wanted="server=$SERVER_VERSION ui-server=$UI_SERVER_VERSION toolchain=$GO_TOOLCHAIN ui-wrapper=$(cat "$ui_src/go.mod" "$ui_src/go.sum" "$ui_src/main.go" | sha256sum | cut -c1-16)"
if [ "${FORCE:-}" != 1 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] \
  && [ -x "$dest/bin/temporal-server" ] && [ -x "$dest/bin/temporal-sql-tool" ] && [ -x "$dest/bin/temporal-ui" ] \
  && [ -d "$dest/schema/postgresql/v12" ]; then
  echo "install-temporal-cluster: up to date in .tools/temporal-cluster ($wanted)"
  exit 0
fi

step() { echo "install-temporal-cluster: $*"; }
rm -f "$stamp"
mkdir -p "$dest/bin"

step "building Temporal server and SQL tool $SERVER_VERSION ($GO_TOOLCHAIN; the first build takes minutes)"
t=$(date +%s)
# go install names the binaries after their directories (server, sql); they get the names Temporal's images use.
gobin=$(mktemp -d)
trap 'rm -rf "$gobin"' EXIT
GOBIN=$gobin go install "go.temporal.io/server/cmd/server@$SERVER_VERSION" "go.temporal.io/server/cmd/tools/sql@$SERVER_VERSION"
mv -f "$gobin/server" "$dest/bin/temporal-server"
mv -f "$gobin/sql" "$dest/bin/temporal-sql-tool"
step "  done in $(($(date +%s) - t)) s"

step "building Temporal UI server $UI_SERVER_VERSION from scripts/temporal-ui"
t=$(date +%s)
go build -C "$ui_src" -o "$dest/bin/temporal-ui" .
step "  done in $(($(date +%s) - t)) s"

step "copying the PostgreSQL schema and sample configs from the module cache"
module_dir=$(go mod download -json "go.temporal.io/server@$SERVER_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
[ -d "$module_dir/schema/postgresql/v12" ] || { echo "install-temporal-cluster: no schema in '$module_dir'" >&2; exit 1; }
rm -rf "$dest/schema" "$dest/config"
mkdir -p "$dest/schema/postgresql" "$dest/config"
cp -R "$module_dir/schema/postgresql/v12" "$dest/schema/postgresql/v12"
cp "$module_dir/config/development-postgres12.yaml" "$dest/config/"
cp -R "$module_dir/config/dynamicconfig" "$dest/config/dynamicconfig"
# The module cache is read-only; the copies need not be.
chmod -R u+w "$dest/schema" "$dest/config"

echo "$wanted" >"$stamp"
step "ready in .tools/temporal-cluster after $(($(date +%s) - started)) s"
