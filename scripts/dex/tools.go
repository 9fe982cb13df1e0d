//go:build tools

// Keeps Dex's server and its dependencies in this module's graph: scripts/install-dex.sh builds
// github.com/dexidp/dex/cmd/dex from here.
package tools

import _ "github.com/dexidp/dex/cmd/dex"
