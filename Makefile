# Thin wrapper over Meson + Ninja. `make` builds into build/, `make test`
# installs what is missing, builds with ASan/UBSan into build-test/ and runs
# every test, `make run` starts a local scepca and scepd.
BUILD      ?= build
TESTBUILD  ?= build-test
FUZZBUILD  ?= build-fuzz
DEBBUILD   ?= build-deb
MESON      ?= meson

.PHONY: all deps build test unit fuzz bench run clean docs format deb

all: build

deps:
	@sh tools/deps.sh

build: deps
	@if [ ! -f $(BUILD)/build.ninja ]; then $(MESON) setup $(BUILD) --buildtype=debugoptimized >/dev/null; fi
	@ninja -C $(BUILD)
	@ln -sf src/cmd/scepd $(BUILD)/scepd; ln -sf src/cmd/scepctl $(BUILD)/scepctl; ln -sf src/cmd/scepca $(BUILD)/scepca

$(TESTBUILD)/build.ninja:
	CC=clang $(MESON) setup $(TESTBUILD) --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false >/dev/null

$(FUZZBUILD)/build.ninja:
	CC=clang $(MESON) setup $(FUZZBUILD) --buildtype=debug -Dfuzz=true -Dtests=false -Db_lundef=false \
		-Dc_args=-fsanitize=fuzzer-no-link -Db_sanitize=address,undefined >/dev/null

test: deps $(TESTBUILD)/build.ninja $(FUZZBUILD)/build.ninja
	@ninja -C $(TESTBUILD) >/dev/null || ninja -C $(TESTBUILD)
	@ninja -C $(FUZZBUILD) >/dev/null || ninja -C $(FUZZBUILD)
	@tests/run --build $(TESTBUILD) --fuzz-build $(FUZZBUILD)

docs: build
	@$(BUILD)/scepctl errors --markdown > docs/errors.md

bench: build
	@bench/run

run: build
	@tools/run.sh

# The Debian package, built from the working tree with dh and meson, no network.
deb: deps
	@tools/deb.sh $(DEBBUILD)

format:
	@clang-format -i $$(find src tests -name node_modules -prune -o \( -name '*.c' -o -name '*.h' \) -print)

clean:
	rm -rf $(BUILD) $(TESTBUILD) $(FUZZBUILD) $(DEBBUILD)
