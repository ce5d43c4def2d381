// Command apiextensions-apiserver is k8s.io/apiextensions-apiserver's standalone server
// (Debian's Go sources, unchanged) with API discovery at /apis turned on. TEST BED ONLY:
// kubegrid's tests run it (e2e/real-apiserver); the product never ships or uses it.
//
// The stock main leaves /apis to the kube-aggregator that fronts it in kube-apiserver,
// which a test bed has not got, so kubectl could not map a kind to its resource. This main
// builds the same server from the same options and changes only that.
package main

import (
	"context"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/apiextensions-apiserver/pkg/cmd/server/options"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/component-base/cli"
)

func main() {
	ctx := genericapiserver.SetupSignalContext()
	o := options.NewCustomResourceDefinitionsServerOptions(os.Stdout, os.Stderr)
	cmd := &cobra.Command{
		Use:   "apiextensions-apiserver",
		Short: "An API extensions API server that serves discovery at /apis",
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return o.ServerRunOptions.ComponentGlobalsRegistry.Set()
		},
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return run(c.Context(), o)
		},
	}
	cmd.SetContext(ctx)
	o.AddFlags(cmd.Flags())
	os.Exit(cli.Run(cmd))
}

func run(ctx context.Context, o *options.CustomResourceDefinitionsServerOptions) error {
	config, err := o.Config()
	if err != nil {
		return err
	}
	completed := config.Complete()
	// Complete turns discovery off; the only change from the stock server.
	completed.GenericConfig.EnableDiscovery = true
	server, err := completed.New(genericapiserver.NewEmptyDelegate())
	if err != nil {
		return err
	}
	return server.GenericAPIServer.PrepareRun().RunWithContext(ctx)
}
