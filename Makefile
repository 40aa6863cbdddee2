# Incident Mesh. `make` builds bin/imnode and bin/imctl; `make test` runs the
# whole suite (unit, sanitizers, integration, crash); `make run` starts a
# local three-site cluster in the foreground; `make bench` prints the benchmark tables. `make deps` installs
# the Debian packages the build needs (as root). See README.md.

CC      ?= cc
SAN     ?=
PKGS    := libprotobuf-c lmdb libsodium jansson libcurl
WARN    := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wvla -Wno-unused-parameter \
           -Wno-format-truncation
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE $(WARN) -MMD -MP -Ilib -Ibuild/gen \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := -lnng $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

ifeq ($(SAN),)
OUT     := build/rel
BIN     := bin
else ifeq ($(SAN),asan)
OUT     := build/asan
BIN     := build/asan/bin
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
else ifeq ($(SAN),tsan)
OUT     := build/tsan
BIN     := build/tsan/bin
CFLAGS  += -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS += -fsanitize=thread
else ifeq ($(SAN),fuzz)
# libFuzzer targets (tests/fuzz): clang, with ASan and UBSan.
CC      := clang
OUT     := build/fuzz
BIN     := build/fuzz/bin
CFLAGS  += -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
           -Wno-unknown-warning-option \
           -fno-omit-frame-pointer
LDFLAGS += -fsanitize=fuzzer,address,undefined
else
$(error SAN must be empty, asan, tsan or fuzz)
endif

GEN      := build/gen/im.pb-c.c build/gen/im.pb-c.h
LIB_SRCS := lib/err.c lib/hlc.c lib/clock.c lib/keys.c lib/log.c lib/config.c \
            lib/chan.c lib/etcd.c lib/link.c \
            lib/text.c lib/incident.c lib/client.c lib/request.c \
            build/gen/im.pb-c.c lib/incident_json.c
NODE_SRCS := node/main.c node/store.c node/commit.c node/api.c node/devmode.c \
             node/repl.c node/peer.c node/coordlink.c node/remote.c \
             node/alerts.c node/intake.c node/pagerduty.c node/alertmanager.c \
             node/http.c node/httpapi.c node/metrics.c node/status.c \
             node/notify.c
CLI_SRCS := cli/imctl.c cli/render.c cli/report.c
COORD_SRCS := coord/main.c coord/replica.c coord/records.c coord/server.c \
              coord/owners.c coord/schedstore.c coord/majors.c
# The coordinator's pure decisions (on-call, owner election, escalation, the
# schedule file): no sockets, no clocks; imcoord and the unit tests link them.
# Time zones come from the tz database through GLib (coord/tz.h says why).
COORD_LOGIC_SRCS := coord/tz.c coord/oncall.c coord/elect.c coord/escalate.c \
                    coord/schedule.c coord/openset.c
COORD_PKGS := glib-2.0
COORD_LDLIBS := $(shell pkg-config --libs $(COORD_PKGS) 2>/dev/null)
UNIT_TESTS := test_incident test_intake test_config_http test_notify test_http \
              test_store test_text test_api test_sim
TOOLS    := imload bench_lmdb
FUZZERS  := fuzz_pagerduty fuzz_alertmanager
UNIT_TESTS += test_chan
TOOLS    += bench_chan
TOOLS    += bench_nng

LIB_OBJS  := $(LIB_SRCS:%.c=$(OUT)/%.o)
NODE_OBJS := $(NODE_SRCS:%.c=$(OUT)/%.o)
# Node modules other than main, for tests that drive them in-process.
NODE_LIB_OBJS := $(filter-out $(OUT)/node/main.o,$(NODE_OBJS))
CLI_OBJS  := $(CLI_SRCS:%.c=$(OUT)/%.o)
COORD_LOGIC_OBJS := $(COORD_LOGIC_SRCS:%.c=$(OUT)/%.o)
COORD_OBJS := $(COORD_SRCS:%.c=$(OUT)/%.o)
# Coordinator modules other than main, for tests that drive them in-process.
COORD_LIB_OBJS := $(filter-out $(OUT)/coord/main.o,$(COORD_OBJS))
LIBIM     := $(OUT)/libim.a
# Unit tests of the shared library modules.
UNIT_TESTS += test_err test_hlc test_clock test_keys test_config test_etcd
# Unit tests of the coordinator's pure modules, and of the coordinator.
UNIT_TESTS += test_tz test_oncall test_elect test_escalate test_schedule \
              test_majors
UNIT_TESTS += test_coord test_openset

.PHONY: all deps run test unit integration crash crash-long bench asan tsan \
        fmt clean fuzz
all: $(BIN)/imnode $(BIN)/imctl $(BIN)/imcoord

build/gen/im.pb-c.c build/gen/im.pb-c.h: proto/im.proto
	@mkdir -p build/gen
	protoc-c --proto_path=proto --c_out=build/gen $<

$(OUT)/%.o: %.c | $(GEN)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# protobuf-c's generated code is not ours to warn about.
$(OUT)/build/gen/im.pb-c.o: build/gen/im.pb-c.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out $(WARN),$(CFLAGS)) -Wall -Werror -c -o $@ $<

$(LIBIM): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BIN)/imnode: $(NODE_OBJS) $(LIBIM)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/imctl: $(CLI_OBJS) $(LIBIM)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(OUT)/coord/tz.o: CFLAGS += $(shell pkg-config --cflags $(COORD_PKGS) 2>/dev/null)

$(BIN)/imcoord: $(COORD_OBJS) $(COORD_LOGIC_OBJS) $(LIBIM)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(COORD_LDLIBS)

$(OUT)/tests/unit/%.o: CFLAGS += -Inode -Icoord
$(BIN)/test_%: $(OUT)/tests/unit/test_%.o $(NODE_LIB_OBJS) $(COORD_LIB_OBJS) $(COORD_LOGIC_OBJS) $(LIBIM)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(COORD_LDLIBS)

$(OUT)/tests/fuzz/%.o: CFLAGS += -Inode
$(BIN)/fuzz_%: $(OUT)/tests/fuzz/fuzz_%.o $(NODE_LIB_OBJS) $(LIBIM)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The coordinator's unit test links its modules, not the node's.
$(OUT)/tests/unit/test_coord.o: CFLAGS += -Icoord
$(BIN)/test_coord: $(OUT)/tests/unit/test_coord.o $(COORD_LIB_OBJS) $(COORD_LOGIC_OBJS) $(LIBIM)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(COORD_LDLIBS)

$(BIN)/imload: $(OUT)/tests/bench/imload.o $(LIBIM)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/bench_lmdb: $(OUT)/tests/bench/bench_lmdb.o $(LIBIM)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/bench_chan: $(OUT)/tests/bench/bench_chan.o $(LIBIM)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/bench_nng: $(OUT)/tests/bench/bench_nng.o $(LIBIM)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

programs: all $(UNIT_TESTS:%=$(BIN)/%) $(TOOLS:%=$(BIN)/%)
.PHONY: programs

# Build with SAN=fuzz (see `fuzz`).
fuzzers: $(FUZZERS:%=$(BIN)/%)
.PHONY: fuzzers

deps:
	deploy/deps

run: deps all
	deploy/cluster up --foreground

# The whole suite: unit tests under ASan/UBSan, the threaded node under TSan,
# then integration and crash tests against the real binaries.
test: deps
	$(MAKE) programs
	$(MAKE) SAN=asan programs
	$(MAKE) SAN=tsan programs
	$(MAKE) SAN=fuzz fuzzers
	tests/run

bench: deps programs
	tests/bench/run

# The intake fuzzers for FUZZ_SECONDS each (default 300); `make test`
# runs them for 15 s each.
fuzz: deps
	$(MAKE) SAN=fuzz fuzzers
	FUZZ_SECONDS=$${FUZZ_SECONDS:-300} tests/fuzz/run

crash-long: deps programs
	CRASH_TRIALS=200 tests/integration/crash.sh

crash: deps programs
	tests/integration/crash.sh

asan:
	$(MAKE) SAN=asan programs
tsan:
	$(MAKE) SAN=tsan programs

fmt:
	clang-format -i lib/*.[ch] node/*.[ch] cli/*.[ch] coord/*.[ch] tests/unit/*.[ch] tests/bench/*.c \
	    tests/fuzz/*.c

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
