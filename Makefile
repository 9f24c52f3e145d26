# mastersocket — the two commands a new user runs: `make run` and `make test`.
# Everything the tests need is installed by the targets below (DynamoDB Local
# through scripts/dynamodb-local.sh, headless Chromium through
# scripts/chromium.sh, Go tools through go.mod's tool directive).

GO        ?= go
# How `make test` prints results: testdox (one line per test), pkgname, testname, dots...
TEST_FORMAT ?= testdox
# Lambda build settings, as deployed: provided.al2023 on arm64.
LAMBDA_ENV   := GOOS=linux GOARCH=arm64 CGO_ENABLED=0
LAMBDA_FLAGS := -tags lambda.norpc -trimpath -ldflags="-s -w"
FUNCTIONS    := connect disconnect message sweeper authorizer fanout

.PHONY: run test test-short bench screenshot soak fuzz lint build sam-build dynamodb-local localstack-test clean help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

run: ## the local gateway on the embedded in-memory store (flags: make run ARGS="--verbose")
	$(GO) run ./cmd/localgw $(ARGS)

test: ## the whole suite with -race, DynamoDB Local and headless Chromium included (installed once, started and stopped here)
	scripts/chromium.sh
	scripts/dynamodb-local.sh run $(GO) tool gotestsum --format $(TEST_FORMAT) -- -race -count=1 ./...

test-short: ## the suite without DynamoDB Local (tests that need it are skipped)
	$(GO) test -race ./...

# `make bench` runs each benchmark command below through BENCH_RUN, which
# prints "command: ..." before it and "exit: N" after it, into a temporary
# file of this run's own (two runs side by side share nothing); then
# cmd/benchreport prints one table of it all and writes BENCH_DOC, with its
# plots in BENCH_PLOTS. A command that fails leaves its rows "not
# measured", and `make bench` fails after writing the report.
BENCH_DOC   ?= docs/BENCHMARKS.md
BENCH_PLOTS ?= docs/bench
BENCH_RUN    = run() { printf 'command:'; for a in "$$@"; do case $$a in *[!A-Za-z0-9_./=:,+@%-]*) printf " '%s'" "$$a";; *) printf ' %s' "$$a";; esac; done; echo; "$$@"; echo "exit: $$?"; }; run

bench: ## benchmarks, one table and docs/BENCHMARKS.md: DynamoDB work per message against a Scan, cost per million deliveries, fan-out time, cold start, handler CPU, local gateway under load, a reconnect storm, a sweep
	$(eval BENCH_OUT := $(shell mktemp "$${TMPDIR:-/tmp}/mastersocket-bench.XXXXXX"))
	@{ $(BENCH_RUN) scripts/dynamodb-local.sh run $(GO) test -run '^$$' -bench 'DynamoDBWork|SweepCost' -benchtime 3x ./internal/handler/; } 2>&1 | tee -a $(BENCH_OUT)
	@{ $(BENCH_RUN) $(GO) test -run '^$$' -bench FanOutTime -benchtime 1x ./internal/emulator/localrun/; } 2>&1 | tee -a $(BENCH_OUT)
	@{ $(BENCH_RUN) $(GO) test -run '^$$' -bench ColdStart -benchtime 5x ./functions/; } 2>&1 | tee -a $(BENCH_OUT)
	@{ $(BENCH_RUN) $(GO) test -run '^$$' -bench HandlerMessage -benchmem ./internal/handler/; } 2>&1 | tee -a $(BENCH_OUT)
	@{ $(BENCH_RUN) $(GO) test -run '^$$' -bench LocalGatewayGroupFanOut -benchtime 300x ./internal/emulator/localrun/; } 2>&1 | tee -a $(BENCH_OUT)
	@{ $(BENCH_RUN) $(GO) test -run '^$$' -bench ReconnectStorm -benchtime 5x ./internal/emulator/localrun/; } 2>&1 | tee -a $(BENCH_OUT)
	@{ $(BENCH_RUN) $(GO) test -run '^$$' -bench GroupFanOutSlowSender -benchtime 5x ./internal/router/; } 2>&1 | tee -a $(BENCH_OUT)
	@$(GO) run ./cmd/benchreport -in $(BENCH_OUT) -out $(BENCH_DOC) -plots $(BENCH_PLOTS); status=$$?; \
	if grep -q '^exit: [1-9]' $(BENCH_OUT); then echo "make bench: a benchmark command failed (exit: above); its rows say not measured"; status=1; fi; \
	rm -f $(BENCH_OUT); exit $$status

screenshot: ## docs/inspector.png: the inspector page with two services and a GROUP message, taken by its test in headless Chromium
	scripts/chromium.sh
	INSPECTOR_SCREENSHOT=$(CURDIR)/docs/inspector.png $(GO) test -count=1 -run 'TestTheInspectorPage' ./internal/emulator/inspector/

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

build: ## the six Lambda bootstraps for linux/arm64 into build/<function>/bootstrap
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
