// compose-config loads a Compose file the way `docker compose config` does (compose-go: the Compose
// specification's schema, interpolation, required variables, env files) and prints the resolved project. CI uses it
// where the docker compose plugin is not packaged; it needs no Docker engine.
//
//	go build -o .tools/bin/compose-config ./scripts/compose-config
//	.tools/bin/compose-config docker-compose.yml
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-config <compose file>")
		os.Exit(2)
	}
	file, err := filepath.Abs(os.Args[1])
	if err != nil {
		fail(err)
	}
	// As docker compose does: the project directory is the file's, its .env is read, the environment wins.
	options, err := cli.NewProjectOptions([]string{file},
		cli.WithWorkingDirectory(filepath.Dir(file)), cli.WithOsEnv, cli.WithEnvFiles(), cli.WithDotEnv, cli.WithName("pveflow"))
	if err != nil {
		fail(err)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	out, err := project.MarshalYAML()
	if err != nil {
		fail(err)
	}
	os.Stdout.Write(out)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
