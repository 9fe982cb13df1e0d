// temporal-ui serves Temporal UI (the `github.com/temporalio/ui-server/v2` module, which carries the UI's built
// assets) from a config directory of ours. It exists because the module cannot be installed with `go install` from
// the Go module proxy: two of its pinned dependencies are not served there, so this module pins ones that are.
// scripts/install-temporal-cluster.sh builds it into .tools/temporal-cluster/bin.
//
//	temporal-ui -config scripts/temporal-ui/config -env pveflow
//
// The config is a template read with the same environment variable names as the temporalio/ui image
// (TEMPORAL_ADDRESS, TEMPORAL_UI_PORT, TEMPORAL_CODEC_ENDPOINT, ...), so one set of variables configures either.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/temporalio/ui-server/v2/plugins/fs_config_provider"
	"github.com/temporalio/ui-server/v2/server"
	"github.com/temporalio/ui-server/v2/server/api"
	"github.com/temporalio/ui-server/v2/server/headers"
	"github.com/temporalio/ui-server/v2/server/server_options"
)

func main() {
	configDir := flag.String("config", "config", "directory holding base.yaml and/or <env>.yaml")
	env := flag.String("env", "pveflow", "which <env>.yaml of the config directory to load")
	flag.Parse()

	provider := fs_config_provider.NewFSConfigProvider(*configDir, *env)
	// Read once here so a broken config fails with its reason instead of the server's panic.
	cfg, err := provider.GetConfig()
	if err != nil {
		fmt.Fprintf(os.Stderr, "temporal-ui: %v\n", err)
		os.Exit(1)
	}

	s := server.NewServer(
		server_options.WithConfigProvider(provider),
		server_options.WithAPIMiddleware([]api.Middleware{headers.WithForwardHeaders(cfg.ForwardHeaders)}),
	)
	defer s.Stop()
	if err := s.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "temporal-ui: %v\n", err)
		os.Exit(1)
	}
}
