# mastersocket — the two commands a new user runs: `make run` and `make test`.
# Everything the tests need is installed by the targets below (DynamoDB Local
# through scripts/dynamodb-local.sh, Go tools through go.mod's tool directive).

GO        ?= go
# How `make test` prints results: testdox (one line per test), pkgname, testname, dots...
TEST_FORMAT ?= testdox
# Lambda build settings, as deployed: provided.al2023 on arm64.
LAMBDA_ENV   := GOOS=linux GOARCH=arm64 CGO_ENABLED=0
LAMBDA_FLAGS := -tags lambda.norpc -trimpath -ldflags="-s -w"
FUNCTIONS    := connect disconnect message sweeper authorizer

.PHONY: run test test-short bench soak fuzz lint build sam-build dynamodb-local localstack-test clean help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

run: ## the local gateway on the embedded in-memory store (flags: make run ARGS="--verbose")
	$(GO) run ./cmd/localgw $(ARGS)

test: ## the whole suite with -race, DynamoDB Local included (fetched once, started and stopped here)
	scripts/dynamodb-local.sh run $(GO) tool gotestsum --format $(TEST_FORMAT) -- -race -count=1 ./...

test-short: ## the suite without DynamoDB Local (tests that need it are skipped)
	$(GO) test -race ./...

bench: ## benchmarks that print figures: DynamoDB calls per message, fan-out time, local gateway throughput, a reconnect storm through the authorizer, cost of a sweep
	scripts/dynamodb-local.sh run $(GO) test -run '^$$' -bench DynamoDBCallsPerMessage -benchtime 100x ./internal/handler/
	$(GO) test -run '^$$' -bench GroupFanOutSlowSender -benchtime 5x ./internal/router/
	$(GO) test -run '^$$' -bench LocalGatewayGroupFanOut -benchtime 300x ./internal/emulator/localrun/
	$(GO) test -run '^$$' -bench ReconnectStorm -benchtime 5x ./internal/emulator/localrun/
	scripts/dynamodb-local.sh run $(GO) test -run '^$$' -bench SweepCost -benchtime 3x ./internal/handler/

soak: ## 1,000 connections on the local gateway for about 3 minutes with closes, drops, freezes and reconnects under traffic (ARGS="--duration 30s --connections 200")
	$(GO) run ./cmd/soak $(ARGS)

# How long `make fuzz` runs each target. -fuzzminimizetime 1s: Go spends up
# to a minute shrinking each new input by default, and with two cores both
# workers sit in it for most of a short run (counter at "0/sec").
FUZZTIME ?= 60s

fuzz: ## fuzz the protocol parser and the routing core, FUZZTIME each (their seeds run in every `go test`)
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) -fuzzminimizetime 1s ./internal/protocol/
	$(GO) test -run '^$$' -fuzz FuzzRoute -fuzztime $(FUZZTIME) -fuzzminimizetime 1s ./internal/router/

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

build: ## the five Lambda bootstraps for linux/arm64 into build/<function>/bootstrap
	@for f in $(FUNCTIONS); do \
		echo "build/$$f/bootstrap"; \
		$(LAMBDA_ENV) $(GO) build $(LAMBDA_FLAGS) -o build/$$f/bootstrap ./functions/$$f || exit 1; \
	done
	@ls -l build/*/bootstrap

sam-build: ## sam build, with the flags that `make build` uses
	CGO_ENABLED=0 GOFLAGS="-tags=lambda.norpc" sam build

LOCALSTACK := docker compose -f localstack/docker-compose.yml

localstack-test: ## the suite against DynamoDB in LocalStack (needs Docker; started and stopped here)
	$(LOCALSTACK) up -d --wait || { $(LOCALSTACK) logs; $(LOCALSTACK) down; exit 1; }
	DYNAMODB_ENDPOINT=http://127.0.0.1:4566 $(GO) tool gotestsum --format $(TEST_FORMAT) -- -race -count=1 ./...; \
	status=$$?; $(LOCALSTACK) down; exit $$status

dynamodb-local: ## DynamoDB Local in the foreground on port 8000
	scripts/dynamodb-local.sh serve 8000

clean: ## remove build output
	rm -rf build .aws-sam
