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
else
$(error SAN must be empty, asan or tsan)
endif

GEN      := build/gen/im.pb-c.c build/gen/im.pb-c.h
LIB_SRCS := lib/err.c lib/hlc.c lib/clock.c lib/keys.c lib/log.c lib/config.c \
            lib/chan.c lib/etcd.c lib/link.c \
            lib/text.c lib/incident.c lib/client.c lib/request.c \
            build/gen/im.pb-c.c
NODE_SRCS := node/main.c node/store.c node/commit.c node/api.c node/devmode.c \
             node/repl.c node/peer.c node/coordlink.c
CLI_SRCS := cli/imctl.c cli/render.c cli/report.c
COORD_SRCS := coord/main.c coord/replica.c coord/records.c coord/server.c
UNIT_TESTS := test_incident \
              test_store test_text test_api test_sim
TOOLS    := imload bench_lmdb
UNIT_TESTS += test_chan
TOOLS    += bench_chan

LIB_OBJS  := $(LIB_SRCS:%.c=$(OUT)/%.o)
NODE_OBJS := $(NODE_SRCS:%.c=$(OUT)/%.o)
# Node modules other than main, for tests that drive them in-process.
NODE_LIB_OBJS := $(filter-out $(OUT)/node/main.o,$(NODE_OBJS))
CLI_OBJS  := $(CLI_SRCS:%.c=$(OUT)/%.o)
COORD_OBJS := $(COORD_SRCS:%.c=$(OUT)/%.o)
# Coordinator modules other than main, for tests that drive them in-process.
COORD_LIB_OBJS := $(filter-out $(OUT)/coord/main.o,$(COORD_OBJS))
LIBIM     := $(OUT)/libim.a
# Unit tests of the shared library modules.
UNIT_TESTS += test_err test_hlc test_clock test_keys test_config test_etcd
# The coordinator's.
UNIT_TESTS += test_coord

.PHONY: all deps run test unit integration crash crash-long bench asan tsan \
        fmt clean
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

$(BIN)/imcoord: $(COORD_OBJS) $(LIBIM)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(OUT)/tests/unit/%.o: CFLAGS += -Inode
$(BIN)/test_%: $(OUT)/tests/unit/test_%.o $(NODE_LIB_OBJS) $(LIBIM)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The coordinator's unit test links its modules, not the node's.
$(OUT)/tests/unit/test_coord.o: CFLAGS += -Icoord
$(BIN)/test_coord: $(OUT)/tests/unit/test_coord.o $(COORD_LIB_OBJS) $(LIBIM)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/imload: $(OUT)/tests/bench/imload.o $(LIBIM)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/bench_lmdb: $(OUT)/tests/bench/bench_lmdb.o $(LIBIM)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/bench_chan: $(OUT)/tests/bench/bench_chan.o $(LIBIM)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

programs: all $(UNIT_TESTS:%=$(BIN)/%) $(TOOLS:%=$(BIN)/%)
.PHONY: programs

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
	tests/run

bench: deps programs
	tests/bench/run

crash-long: deps programs
	CRASH_TRIALS=200 tests/integration/crash.sh

crash: deps programs
	tests/integration/crash.sh

asan:
	$(MAKE) SAN=asan programs
tsan:
	$(MAKE) SAN=tsan programs

fmt:
	clang-format -i lib/*.[ch] node/*.[ch] coord/*.[ch] cli/*.[ch] tests/unit/*.[ch] tests/bench/*.c

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
