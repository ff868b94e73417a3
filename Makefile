# Thin wrappers over scripts/, the same scripts CI runs.
.PHONY: test build dev fuzz ci

test:
	bash scripts/test.sh

build:
	bash scripts/build.sh

dev:
	bash scripts/serve-dev.sh

fuzz:
	bash scripts/fuzz.sh

ci:
	bash .ci/run

# The TypeScript SDK's tests (unit, real binary, Chromium) and the playground build.
.PHONY: test-js web
test-js:
	bash scripts/test-js.sh

web:
	bash scripts/build-web.sh
