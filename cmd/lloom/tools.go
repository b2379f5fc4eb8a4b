package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/lloom/lloom/node"
	lp "github.com/lloom/lloom/protocol"
)

func newKeygenCommand(a *app) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Create an identity key file and print its peer id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("--out FILE is required")
			}
			if _, err := os.Stat(out); err == nil {
				return usagef("--out %s already exists; refusing to overwrite an identity", out)
			}
			k, err := node.CreateIdentity(out)
			if err != nil {
				return err
			}
			id, err := peer.IDFromPrivateKey(k)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, id)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "where to write the key (mode 0600)")
	return cmd
}

func newVersionCommand(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON {
				return writeJSON(a.stdout, map[string]any{"version": version, "protocol": lp.Version,
					"go": runtime.Version(), "os": runtime.GOOS, "arch": runtime.GOARCH})
			}
			fmt.Fprintf(a.stdout, "lloom %s (protocol %d, %s %s/%s)\n", version, lp.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts: version, protocol, go, os, arch")
	return cmd
}
