// Command rotary-app is the CDK app that deploys Rotary from a config file.
//
// The config path comes from the CDK context value "config" (cdk synth -c
// config=path.yaml), else from ROTARY_CONFIG, else rotary.example.yaml.
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/rotary-secrets/rotary/infra/app"
	"github.com/rotary-secrets/rotary/infra/config"
)

func main() {
	defer jsii.Close()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "rotary-app:", err)
		os.Exit(1)
	}
}

func run() error {
	a := awscdk.NewApp(nil)
	path := "rotary.example.yaml"
	if v := os.Getenv("ROTARY_CONFIG"); v != "" {
		path = v
	}
	if v, ok := a.Node().TryGetContext(jsii.String("config")).(string); ok && v != "" {
		path = v
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	if _, err := app.NewStack(a, cfg); err != nil {
		return err
	}
	a.Synth(nil)
	return nil
}
