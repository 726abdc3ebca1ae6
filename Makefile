# ddqc — one Makefile for the library, the experiments, the tests and the benchmarks.
#
#   make exp_<name>     experiments/exp_<name>.c  ->  ./exp_<name>
#   make test           build and run every tests/test_<unit>.c (installs Criterion if missing), then
#                       scripts/test_sweep_lib.sh (the sweep helpers, against a stand-in experiment)
#   make test SAN=1     the same under AddressSanitizer + UndefinedBehaviorSanitizer (CC=clang: clang's)
#   make bench          GEMM, model training/eval throughput, quantized step cost (scripts/bench.sh)
#   make fuzz           every parser under libFuzzer (clang), FUZZ_RUNS executions each (scripts/fuzz.sh)
#   make DEBUG=1 ...    -O0 -g          make PORTABLE=1 ...  no -march=native (portable scalar)
#   make ARCH=x86-64-v3 ...  that -march instead of native (x86-64-v3: the AVX2 paths)
#   make WERROR=1 ...   warnings are errors (CI)
#   make check-layers   no #include points up the layers core <- nn <- quant, data <- train
#   make check-slots    every thread-pool scratch slot has one owner
#   make check-initializers   struct literals of more than two fields name their fields
#   make clean

MODULES := core nn quant data train
# gcc unless CC is given (make presets CC=cc, so `CC ?= gcc` would never apply)
ifeq ($(origin CC),default)
  CC := gcc
endif

ifeq ($(FUZZ),1)  # set by `make fuzz`: clang, libFuzzer's coverage, ASan + UBSan
  VARIANT := fuzz
  OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
  LDSAN   := -fsanitize=address,undefined
else ifeq ($(SAN),1)
  VARIANT := san
  OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
  LDSAN   := -fsanitize=address,undefined
else ifeq ($(DEBUG),1)
  VARIANT := debug
  OPT     := -O0 -g
else
  VARIANT := release
  OPT     := -O3
endif
ifeq ($(PORTABLE),1)
  VARIANT := $(VARIANT)-portable
else ifneq ($(ARCH),)
  VARIANT := $(VARIANT)-$(ARCH)
  OPT     += -march=$(ARCH)
else
  OPT     += -march=native
endif

ifneq ($(CC),gcc)
  VARIANT := $(VARIANT)-$(notdir $(CC))
endif
BUILD   := build/$(VARIANT)
Q       := $(if $(V),,@)   # make V=1 shows full commands
WARN    := -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes \
           -Wvla -Wformat=2 -Wundef -Wcast-qual -Wno-unused-parameter -Wno-missing-field-initializers
ifeq ($(WERROR),1)
  WARN    += -Werror
endif
CFLAGS  := -std=c11 -D_POSIX_C_SOURCE=200809L -ffp-contract=fast -pthread $(OPT) $(WARN) \
           -I. -MMD -MP $(EXTRA_CFLAGS)
LDFLAGS := -pthread $(LDSAN)
LDLIBS  := -lm

# experiments/*.c that are not exp_*.c are shared experiment code (library, top layer)
SRC  := $(foreach m,$(MODULES),$(wildcard $(m)/*.c)) $(filter-out experiments/exp_%.c,$(wildcard experiments/*.c))
OBJ  := $(SRC:%.c=$(BUILD)/%.o)
LIB  := $(BUILD)/libddqc.a

TEST_SRC  := $(wildcard tests/test_*.c)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_HELP := $(BUILD)/tests/helpers.o
EXP_SRC   := $(wildcard experiments/exp_*.c)
EXPS      := $(EXP_SRC:experiments/%.c=%)

.PHONY: all lib test bench fuzz fuzz-build check-layers check-slots check-initializers deps-test deps-data clean help FORCE
.DEFAULT_GOAL := all

all: lib $(EXPS)
lib: $(LIB)

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# The RNG must give the same bits everywhere: no fused multiply-add in it.
$(BUILD)/core/rng.o: CFLAGS += -ffp-contract=off

$(LIB): $(OBJ)
	@rm -f $@
	@$(if $(V),,echo "  AR      $@")
	$(Q)ar rcs $@ $^

# ------------------------------------------------------------------ experiments
# Each variant links its own build/<variant>/exp_<name>; ./exp_<name> is a copy of the variant
# asked for last, refreshed whenever it differs (after `make exp_x SAN=1`, `make exp_x` puts the
# release binary back).
$(BUILD)/exp_%: experiments/exp_%.c $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -MF $@.d $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@

exp_%: $(BUILD)/exp_% FORCE | deps-data
	@cmp -s $< $@ || { cp $< $@.tmp && mv -f $@.tmp $@ && echo "  CP      $< -> $@"; }

FORCE:

# ------------------------------------------------------------------ tests
deps-test:
	@scripts/ensure-deps.sh criterion

$(BUILD)/tests/%: tests/%.c $(TEST_HELP) $(LIB) | deps-test
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $< $(TEST_HELP) $(LIB) $(LDFLAGS) -lcriterion $(LDLIBS) -o $@

$(TEST_HELP): | deps-test

# The experiments' default dataset (Fashion-MNIST from Debian's dataset-fashion-mnist).
deps-data:
	@scripts/ensure-deps.sh dataset

test: deps-test check-layers check-slots check-initializers $(TEST_BIN)
	@scripts/run-tests.sh $(TEST_BIN)
	@scripts/test_sweep_lib.sh

# ------------------------------------------------------------------ benchmarks
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $< $(LIB) $(LDFLAGS) $(LDLIBS) -ldl -o $@

bench: $(BENCH_BIN)
	@BUILD=$(BUILD) scripts/bench.sh

# ------------------------------------------------------------------ fuzzing
# `make fuzz` builds tests/fuzz/fuzz_*.c with clang's libFuzzer under ASan+UBSan (the normal build
# stays gcc), writes the project's seed corpora, and runs every target FUZZ_RUNS times
# (scripts/fuzz.sh: executions, speed, findings). Optional: `make test` does not need clang.
FUZZ_SRC    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN    := $(filter-out $(BUILD)/fuzz/fuzz_common,$(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%))
FUZZ_COMMON := $(BUILD)/tests/fuzz/fuzz_common.o
FUZZ_RUNS   ?= 100000

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_COMMON) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $< $(FUZZ_COMMON) $(LIB) $(LDFLAGS) -fsanitize=fuzzer $(LDLIBS) -o $@

$(BUILD)/fuzz/make_corpus: tests/fuzz/make_corpus.c $(FUZZ_COMMON) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $< $(FUZZ_COMMON) $(LIB) $(LDFLAGS) $(LDLIBS) -o $@

fuzz-build: $(FUZZ_BIN) $(BUILD)/fuzz/make_corpus

fuzz:
	@scripts/ensure-deps.sh clang
	@$(MAKE) --no-print-directory fuzz-build FUZZ=1 CC=clang
	@FUZZ_BUILD=build/fuzz-clang/fuzz FUZZ_RUNS=$(FUZZ_RUNS) scripts/fuzz.sh

# ------------------------------------------------------------------ layering
check-layers:
	@scripts/check-layers.sh

check-slots:
	@scripts/check-slots.sh

check-initializers:
	@scripts/check-initializers.sh

clean:
	rm -rf build exp_*[!.c]

-include $(OBJ:.o=.d) $(TEST_BIN:=.d) $(TEST_HELP:.o=.d) $(EXPS:%=$(BUILD)/%.d) $(FUZZ_COMMON:.o=.d) $(FUZZ_BIN:=.d) $(BUILD)/fuzz/make_corpus.d

.SECONDARY:  # keep build/<variant>/exp_* (intermediate files of the copy rule)
