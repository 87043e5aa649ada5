# CDK app targets (infra/), included by the root Makefile.
#
#   make synth                          template from infra/rotary.example.yaml
#   make synth INFRA_CONFIG=team.yaml   your config (path relative to infra/, or absolute)
#   make deploy INFRA_CONFIG=team.yaml  deploy with your AWS credentials
#
# The CDK CLI is the npm package aws-cdk pinned in infra/package.json. It is
# installed outside the work tree (CDK_CLI_DIR), because go ./... and gofmt
# would otherwise walk node_modules (it ships .go templates).

INFRA_TEST_PKGS = ./...
INFRA_CONFIG ?= rotary.example.yaml
INFRA_OUT ?= cdk.out
CDK_CLI_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/rotary-cdk-cli
DEPLOY_ARGS ?=
CDK_ENV := JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 AWS_EC2_METADATA_DISABLED=true \
	CDK_DISABLE_VERSION_CHECK=true CDK_DISABLE_CLI_TELEMETRY=true
CDK = cd infra && $(CDK_ENV) npx --no-install --prefix $(CDK_CLI_DIR) cdk --no-notices -c config=$(INFRA_CONFIG)

.PHONY: synth deploy infra-diff infra-bootstrap cdk-cli

# npm ci only when the pinned CLI changed (or was never installed).
$(CDK_CLI_DIR)/node_modules/.package-lock.json: infra/package.json infra/package-lock.json
	@mkdir -p $(CDK_CLI_DIR)
	cp infra/package.json infra/package-lock.json $(CDK_CLI_DIR)/
	npm ci --prefix $(CDK_CLI_DIR) --no-audit --no-fund

cdk-cli: $(CDK_CLI_DIR)/node_modules/.package-lock.json ## Install the pinned CDK CLI (npm ci)

synth: build cdk-cli ## Synthesize the CDK app offline (no credentials) into infra/cdk.out
	$(CDK) synth -q -o $(INFRA_OUT)
	@ls infra/$(INFRA_OUT)/*.template.json

infra-diff: build cdk-cli ## Show what deploy would change (needs AWS credentials)
	$(CDK) diff

infra-bootstrap: cdk-cli ## Bootstrap CDK in the config's account and region (once per account/region)
	$(CDK) bootstrap

deploy: build cdk-cli ## Deploy the stack with your AWS credentials (DEPLOY_ARGS for extra cdk flags)
	$(CDK) deploy --require-approval broadening $(DEPLOY_ARGS)
