# qconf: the two user commands are `make conformance` and `make test`.
# Each works alone from a fresh clone: both depend on `deps`, which installs missing Debian packages
# (chromium for the HTML report's browser test, libclang-rt-14-dev for clang's libFuzzer).

BUILD      ?= build
JOBS       ?= $(shell nproc)
GENERATOR  := $(shell command -v ninja >/dev/null 2>&1 && echo Ninja || echo "Unix Makefiles")
CMAKE_ARGS ?=

# ocl-icd-opencl-dev: Debian's dnnl-config.cmake calls find_package(OpenCL REQUIRED) (the library is
# built with the OCL GPU runtime), and apt's --no-install-recommends leaves it out; without it
# `make bench` stops at configure.
DEBS := cmake g++ clang ninja-build pkg-config make \
        libeigen3-dev libboost-dev nlohmann-json3-dev libhwy-dev libcli11-dev \
        libgtest-dev libgmock-dev libbenchmark-dev libdnnl-dev ocl-icd-opencl-dev libssl-dev \
        python3 python3-numpy python3-jsonschema chromium libclang-rt-14-dev

.PHONY: all deps configure build conformance test identity sanitize bench bench-smoke golden format \
        clean install

all: build

# Installs whatever is missing, with apt-get when root; otherwise prints the exact command.
deps:
	@missing=""; for p in $(DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	echo "qconf: missing Debian packages:$$missing"; \
	if [ "$$(id -u)" = 0 ]; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	else \
	  echo "qconf: run as root:  apt-get install -y$$missing"; exit 1; \
	fi

# Benchmarks are built by `make bench` only (build-bench/), so `make test` stays fast.
$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -G "$(GENERATOR)" -DCMAKE_BUILD_TYPE=Release -DQCONF_BUILD_BENCH=OFF \
	  $(CMAKE_ARGS)

configure: deps $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# The main job: every golden fixture through the optimized implementation (and, first, through
# the reference itself, so a summary shows both agree with the frozen goldens).
conformance: build
	@mkdir -p $(BUILD)/reports
	$(BUILD)/qconf run --impl reference --golden-dir golden \
	  --json $(BUILD)/reports/reference.json --junit $(BUILD)/reports/reference.junit.xml
	$(BUILD)/qconf run --impl optimized --golden-dir golden \
	  --json $(BUILD)/reports/conformance.json --junit $(BUILD)/reports/conformance.junit.xml \
	  --html $(BUILD)/reports/conformance.html

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900 -LE identity_full

# The full golden identity matrix: g++ and clang++, each at -O0 and -O3 -march=native.
identity: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 1200 -L identity

sanitize: deps
	cmake -S . -B build-sanitize -G "$(GENERATOR)" -DCMAKE_BUILD_TYPE=Debug -DQCONF_SANITIZE=ON \
	  -DQCONF_BUILD_BENCH=OFF $(CMAKE_ARGS)
	cmake --build build-sanitize -j $(JOBS)
	cd build-sanitize && ctest --output-on-failure -j $(JOBS) -LE slow --timeout 1800

bench: deps
	cmake -S . -B build-bench -G "$(GENERATOR)" -DCMAKE_BUILD_TYPE=Release -DQCONF_BUILD_TESTS=OFF \
	  $(CMAKE_ARGS)
	cmake --build build-bench -j $(JOBS) --target qconf_bench
	build-bench/bench/qconf_bench

# CI's guard on the benchmark binary: configure it with its oneDNN peer, build it in $(BUILD) (only
# the bench sources compile; the libraries are those `make test` built) and run its two W8A8
# peers once at M = 1. Catches a benchmark that no longer configures, compiles or links on a fresh
# machine (it once stopped at configure: see DEBS), which `make test` never builds.
bench-smoke: build
	cmake -S . -B $(BUILD) -DQCONF_BUILD_BENCH=ON
	cmake --build $(BUILD) -j $(JOBS) --target qconf_bench
	@$(BUILD)/bench/qconf_bench --benchmark_list_tests | grep -q '^BM_OneDnnS8Matmul/' || \
	  { echo "qconf: bench-smoke: qconf_bench has no oneDNN peer (BM_OneDnnS8Matmul): was DNNL found?"; exit 1; }
	$(BUILD)/bench/qconf_bench --benchmark_min_time=0.01 \
	  --benchmark_filter='^BM_(W8A8DynamicLinear|OneDnnS8Matmul)/M:1/threads:1'

golden: build
	$(BUILD)/qconf golden generate --golden-dir golden

install: build
	cmake --install $(BUILD) --prefix $(or $(PREFIX),/usr/local)

format:
	git ls-files '*.cpp' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) build-sanitize build-bench
