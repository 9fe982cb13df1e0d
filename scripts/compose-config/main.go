// compose-config loads a Compose file the way `docker compose config` does (compose-go: the Compose
// specification's schema, interpolation, required variables, env files) and prints the resolved project. CI uses it
// where the docker compose plugin is not packaged; it needs no Docker engine.
//
//	go build -o .tools/bin/compose-config ./scripts/compose-config
//	.tools/bin/compose-config docker-compose.yml [deploy/temporal-cloud.compose.yml ...]
//
// Several files are merged in order, as `docker compose -f a -f b config` merges them (`!reset`, `!override`).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-config <compose file> [<override file> ...]")
		os.Exit(2)
	}
	files := make([]string, 0, len(os.Args)-1)
	for _, arg := range os.Args[1:] {
		file, err := filepath.Abs(arg)
		if err != nil {
			fail(err)
		}
		files = append(files, file)
	}
	// As docker compose does: the project directory is the first file's, its .env is read, the environment wins.
	options, err := cli.NewProjectOptions(files,
		cli.WithWorkingDirectory(filepath.Dir(files[0])), cli.WithOsEnv, cli.WithEnvFiles(), cli.WithDotEnv, cli.WithName("pveflow"))
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
