# Thin wrappers over scripts/, the same scripts CI runs.
.PHONY: test test-ops build dev fuzz ci proto

test:
	bash scripts/test.sh

test-ops:
	bash scripts/test-ops.sh

build:
	bash scripts/build.sh

dev:
	bash scripts/serve-dev.sh

fuzz:
	bash scripts/fuzz.sh

ci:
	bash .ci/run

proto:
	bash scripts/gen-proto.sh

# The TypeScript SDK's tests (unit, real binary, Chromium) and the playground build.
.PHONY: test-js web
test-js:
	bash scripts/test-js.sh

web:
	bash scripts/build-web.sh
