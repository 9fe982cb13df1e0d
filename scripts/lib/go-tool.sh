# Sourced by scripts/install-<tool>.sh: the one way pveflow builds a Go tool from the Go module proxy into the
# git-ignored .tools/<tool>/bin, once per recipe. A stamp (.tools/<tool>/.stamp) records the recipe it was built
# from: the caller's version pins and module files, and the text of the build commands (the caller's build function
# and the helpers below), so a new flag rebuilds while a new comment does not. When the stamp matches and every
# binary is there, nothing runs; a missing binary is rebuilt. FORCE=1 rebuilds anyway. PVEFLOW_TOOLS_DIR puts the
# tools elsewhere (test/go-tool.test.ts builds into a directory of its own).
#
#   source "$(dirname "$0")/lib/go-tool.sh"
#   build_x() { go_tool_build "$1/x" 0 "$GO_TOOL_ROOT/scripts/x" example.com/x/cmd/x; }
#   go_tool_install x "x-wrapper=$(go_tool_hash scripts/x/go.mod scripts/x/go.sum)" build_x x

GO_TOOL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
GO_TOOLS_DIR=${PVEFLOW_TOOLS_DIR:-$GO_TOOL_ROOT/.tools}

# go_tool_hash <file>...: a short hash of the files' contents, for a recipe.
go_tool_hash() {
  cat "$@" | sha256sum | cut -c1-16
}

# go_tool_install <tool> <recipe> <build function> <binary>...: unless .tools/<tool> is up to date, runs
# `<build function> <bin directory>`, checks that it made every binary, then stamps the recipe.
go_tool_install() {
  local tool=$1 recipe=$2 build=$3
  shift 3
  local dest=$GO_TOOLS_DIR/$tool
  local stamp=$dest/.stamp started bin
  started=$(date +%s)
  command -v go >/dev/null || { echo "install-$tool: Go is needed (https://go.dev/dl, or apt-get install -y golang)" >&2; return 1; }
  local wanted
  wanted="$recipe build=$(declare -f "$build" go_tool_build go_tool_install_module | sha256sum | cut -c1-16)"

  local present=1
  for bin in "$@"; do [ -x "$dest/bin/$bin" ] || present=0; done
  if [ "${FORCE:-}" != 1 ] && [ $present = 1 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
    echo "install-$tool: up to date in $dest ($wanted)"
    return 0
  fi

  rm -f "$stamp"
  mkdir -p "$dest/bin"
  echo "install-$tool: building $* (a cold build can take minutes)"
  GOFLAGS=-buildvcs=false "$build" "$dest/bin"
  for bin in "$@"; do
    [ -x "$dest/bin/$bin" ] || { echo "install-$tool: the build did not make bin/$bin" >&2; return 1; }
  done
  echo "$wanted" >"$stamp"
  echo "install-$tool: ready in $dest after $(($(date +%s) - started)) s"
}

# go_tool_build <output> <cgo 0|1> <module directory> <package>: builds a package of a wrapper module (its go.mod
# and go.sum pin every dependency; -mod=readonly keeps them as committed). -p 1: two cores shared with the rest of
# the machine.
go_tool_build() {
  local out=$1 cgo=$2 dir=$3 pkg=$4 t
  t=$(date +%s)
  CGO_ENABLED=$cgo go build -C "$dir" -mod=readonly -trimpath -p 1 -o "$out" "$pkg"
  echo "  $(basename "$out") built in $(($(date +%s) - t)) s"
}

# go_tool_install_module <output> <package@version>: builds a command straight from its own module at a version
# (no wrapper module: its go.mod has no replace directives). CGO off.
go_tool_install_module() {
  local out=$1 pkg=$2 gobin t
  t=$(date +%s)
  gobin=$(mktemp -d)
  # go install names the binary after its directory; it gets the name the caller asks for.
  CGO_ENABLED=0 GOBIN=$gobin go install -trimpath "$pkg" || { rm -rf "$gobin"; return 1; }
  mv -f "$gobin"/* "$out"
  rm -rf "$gobin"
  echo "  $(basename "$out") built in $(($(date +%s) - t)) s"
}
