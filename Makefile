# SPDX-License-Identifier: MIT
# spoolmq: lib/libspool.a, one binary per bin/*.c, man pages, tests.
# `make demo` and `make check` first run contrib/install-deps, which installs
# what is missing (as root) or prints the apt-get line to run.

VERSION   = 0.1.0
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
SBINDIR  ?= $(PREFIX)/sbin
MANDIR   ?= $(PREFIX)/share/man
# where systemd, systemd-sysusers, systemd-tmpfiles, bash-completion and zsh
# look under PREFIX (/usr/local/lib/systemd/system is on systemd's path)
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
DESTDIR  ?=

CC       ?= cc
PKG_CONFIG ?= pkg-config
CFLAGS   ?= -O2 -g
WARN      = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-sign-compare
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -DSPOOL_VERSION='"$(VERSION)"' -Ilib $(WARN) $(CFLAGS) $(SAN)
LDFLAGS  ?=
# Commands that need only libc are linked statically: a shell loop runs
# mq-send once per message, and the dynamic loader was a fifth of its time.
# (Not with sanitizers, which need the dynamic runtime.)  STATIC= to turn off.
STATIC   ?= -static

JANSSON_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags jansson 2>/dev/null)
JANSSON_LIBS   ?= $(shell $(PKG_CONFIG) --libs jansson 2>/dev/null || echo -ljansson)
CURL_CFLAGS    ?= $(shell $(PKG_CONFIG) --cflags libcurl 2>/dev/null)
CURL_LIBS      ?= $(shell $(PKG_CONFIG) --libs libcurl 2>/dev/null || echo -lcurl)
MHD_CFLAGS     ?= $(shell $(PKG_CONFIG) --cflags libmicrohttpd 2>/dev/null)
MHD_LIBS       ?= $(shell $(PKG_CONFIG) --libs libmicrohttpd gnutls 2>/dev/null || echo -lmicrohttpd -lgnutls)
# crypt_r(3) for the dashboard's password file (libxcrypt)
CRYPT_LIBS     ?= $(shell $(PKG_CONFIG) --libs libxcrypt 2>/dev/null || echo -lcrypt)
CRYPTO_CFLAGS  ?= $(shell $(PKG_CONFIG) --cflags libcrypto 2>/dev/null)
CRYPTO_LIBS    ?= $(shell $(PKG_CONFIG) --libs libcrypto 2>/dev/null || echo -lcrypto)
# mq-bridge (bridge/) and the tests' t/nats-tool need libnats (libnats-dev):
# without it they are not built, and their tests skip.  HAVE_NATS=0 to leave
# them out; NATS_CFLAGS/NATS_LIBS for a libnats of one's own.
HAVE_NATS      ?= $(shell $(PKG_CONFIG) --exists libnats 2>/dev/null && echo 1 || echo 0)
NATS_CFLAGS    ?= $(shell $(PKG_CONFIG) --cflags libnats 2>/dev/null)
NATS_LIBS      ?= $(shell $(PKG_CONFIG) --libs libnats 2>/dev/null || echo -lnats)

# What pkg-config must find, and the Debian package that has it.  A target
# that needs one checks first (need_pc, in its recipe), so that a missing -dev
# package stops the build with its name, not with "jansson.h: No such file".
# A module whose *_CFLAGS and *_LIBS are both given (make JANSSON_CFLAGS=...
# JANSSON_LIBS=...) is not looked for.
PC_DEB_jansson       = libjansson-dev
PC_DEB_libcurl       = libcurl4-openssl-dev
PC_DEB_libmicrohttpd = libmicrohttpd-dev
PC_DEB_gnutls        = libgnutls28-dev
PC_DEB_libcrypto     = libssl-dev
PC_DEB_libxcrypt     = libcrypt-dev
PC_VAR_jansson       = JANSSON
PC_VAR_libcurl       = CURL
PC_VAR_libmicrohttpd = MHD
PC_VAR_gnutls        = MHD
PC_VAR_libcrypto     = CRYPTO
PC_VAR_libxcrypt     = CRYPT
pc_given = $(and $(filter-out file default,$(origin $(PC_VAR_$(1))_CFLAGS)),$(filter-out file default,$(origin $(PC_VAR_$(1))_LIBS)))
need_pc = @miss=0; \
	if ! command -v $(PKG_CONFIG) >/dev/null 2>&1; then \
	    echo "$@: needs $(PKG_CONFIG), which is not installed: install pkg-config (run make deps, contrib/install-deps)" >&2; exit 1; fi; \
	$(foreach m,$(1),$(if $(call pc_given,$(m)),,$(PKG_CONFIG) --exists $(m) || { miss=1; \
	    echo "$@: needs $(m), which $(PKG_CONFIG) does not find: install $(PC_DEB_$(m)) (run make deps, contrib/install-deps)" >&2; };)) \
	[ $$miss = 0 ]
JSON_PC   = jansson
DAEMON_PC = jansson libcurl libmicrohttpd gnutls libcrypto libxcrypt

LIB_SRCS := $(sort $(wildcard lib/*.c))
LIB_OBJS := $(LIB_SRCS:.c=.o)
LIB_HDRS := $(wildcard lib/*.h)
CMDS     := $(patsubst %.c,%,$(sort $(wildcard bin/mq-*.c))) bin/mq-relayd
ifeq ($(HAVE_NATS),1)
CMDS     += bin/mq-bridge
NATS_TOOLS = $(if $(wildcard t/nats-tool.c),t/nats-tool) # the tests' tool: not in a copy without t/
endif
# mq-relayd is a folder of its own (relayd/): the only code that links
# libcurl and libmicrohttpd, which lib/ must never include (lib-check).
RELAYD_SRCS := $(sort $(wildcard relayd/*.c))
RELAYD_HDRS := $(wildcard relayd/*.h) relayd/web/assets.h
# the dashboard's page, script and style (relayd/web/), built into the binary
WEB_FILES := $(sort $(wildcard relayd/web/*.html relayd/web/*.js relayd/web/*.css))
# mq-bridge is another (bridge/): the only code that links libnats, whose
# threads must stay out of a daemon that forks (bridge/main.c says why).
BRIDGE_SRCS := $(sort $(wildcard bridge/*.c))
BRIDGE_HDRS := $(wildcard bridge/*.h)
# which commands need which libraries (only these link them)
JSON_CMDS  = bin/mq-peek bin/mq-stat
DAEMON_CMDS = bin/mq-relayd
MAN1     := $(wildcard man/*.1)
MAN5     := $(wildcard man/*.5)
MAN7     := $(wildcard man/*.7)
MAN8     := $(wildcard man/*.8)
UNITS    := mq-relayd.service mq-recv@.service $(if $(filter bin/mq-bridge,$(CMDS)),mq-bridge@.service)

all: lib-check $(CMDS) $(NATS_TOOLS)

# lib/ knows the spool and nothing of HTTP or NATS: refuse a build where it
# includes their headers.
lib-check:
	@if grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](curl/|microhttpd|nats|gnutls/)' \
	    lib/*.c lib/*.h; then echo "lib/ must not include curl, microhttpd, gnutls or nats headers" >&2; exit 1; fi

# only stat.c includes jansson.h: the other objects build without it
lib/stat.o: lib/stat.c $(LIB_HDRS)
	$(call need_pc,$(JSON_PC))
	$(CC) $(ALL_CFLAGS) $(JANSSON_CFLAGS) -c -o $@ $<

lib/%.o: lib/%.c $(LIB_HDRS)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

lib/libspool.a: $(LIB_OBJS)
	rm -f $@
	$(AR) rcs $@ $(LIB_OBJS)

bin/%: bin/%.c lib/libspool.a $(LIB_HDRS)
	$(if $(filter $@,$(JSON_CMDS)),$(call need_pc,$(JSON_PC)))
	$(CC) $(ALL_CFLAGS) $(if $(filter $@,$(JSON_CMDS)),$(JANSSON_CFLAGS)) \
	    -o $@ $< lib/libspool.a $(LDFLAGS) \
	    $(if $(SAN)$(filter $@,$(JSON_CMDS)),,$(STATIC)) \
	    $(if $(filter $@,$(JSON_CMDS)),$(JANSSON_LIBS))

relayd/web/assets.c: $(WEB_FILES) relayd/web/embed.sh
	sh relayd/web/embed.sh $(WEB_FILES) >$@.tmp && mv $@.tmp $@

bin/mq-relayd: $(RELAYD_SRCS) $(RELAYD_HDRS) relayd/web/assets.c lib/libspool.a $(LIB_HDRS)
	$(call need_pc,$(DAEMON_PC))
	$(CC) $(ALL_CFLAGS) -Irelayd $(JANSSON_CFLAGS) $(CURL_CFLAGS) $(MHD_CFLAGS) $(CRYPTO_CFLAGS) \
	    -o $@ $(RELAYD_SRCS) relayd/web/assets.c lib/libspool.a $(LDFLAGS) \
	    $(JANSSON_LIBS) $(CURL_LIBS) $(MHD_LIBS) $(CRYPTO_LIBS) $(CRYPT_LIBS) -pthread

bin/mq-bridge: $(BRIDGE_SRCS) $(BRIDGE_HDRS) lib/libspool.a $(LIB_HDRS)
	$(CC) $(ALL_CFLAGS) -Ibridge $(NATS_CFLAGS) $(JANSSON_CFLAGS) \
	    -o $@ $(BRIDGE_SRCS) lib/libspool.a $(LDFLAGS) $(NATS_LIBS) $(JANSSON_LIBS) -pthread

# the tests' hands on a NATS cluster: streams, publishes, reading back
t/nats-tool: t/nats-tool.c
	$(CC) $(ALL_CFLAGS) $(NATS_CFLAGS) -o $@ $< $(LDFLAGS) $(NATS_LIBS) -pthread

deps:
	@contrib/install-deps

# The main job end to end in a directory of its own, which it leaves (and
# names) for a look afterwards; -s: the compiler's lines are no part of it.
demo: deps
	@$(MAKE) -s all
	@contrib/demo

# make lint, then every test twice: a normal build, then one with ASan and UBSan.
check: deps
	rm -f .check-summary
	$(MAKE) lint
	$(MAKE) clean
	$(MAKE) all CFLAGS='-O2 -g -Werror'
	$(MAKE) fuzz-corpus CFLAGS='-O2 -g -Werror'
	TEST_LABEL=normal TEST_SUMMARY=.check-summary t/run
	$(MAKE) clean
	$(MAKE) all CFLAGS='-O1 -g -Werror -fno-omit-frame-pointer' \
	    SAN='-fsanitize=address,undefined -fno-sanitize-recover=all'
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    $(MAKE) fuzz-corpus CFLAGS='-O1 -g -Werror -fno-omit-frame-pointer' \
	    SAN='-fsanitize=address,undefined -fno-sanitize-recover=all'
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    TEST_LABEL=sanitizers TEST_SUMMARY=.check-summary SPOOLMQ_SANITIZERS=1 t/run
	$(MAKE) -s clean
	$(MAKE) -s all
	@cat .check-summary
	@awk '{p += $$2; f += $$4; s += $$6} END {printf "check: %d passed, %d failed, %d skipped\n", p, f, s}' .check-summary
	@rm -f .check-summary

bench: all
	bench/run

# doc/dashboard.png, the README's picture of the dashboard, taken by the
# browser test that checks it (t/0090-dashboard.bats; needs chromium).
screenshot: all
	DASHBOARD_SCREENSHOT=$(CURDIR)/doc/dashboard.png bats -f 'a screenshot' t/0090-dashboard.bats

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(MANDIR)/man8
	install -m 755 $(filter-out $(DAEMON_CMDS),$(CMDS)) $(DESTDIR)$(BINDIR)
	$(if $(filter $(DAEMON_CMDS),$(CMDS)),install -d $(DESTDIR)$(SBINDIR) && \
	    install -m 755 $(filter $(DAEMON_CMDS),$(CMDS)) $(DESTDIR)$(SBINDIR))
	install -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1
	install -m 644 $(MAN5) $(DESTDIR)$(MANDIR)/man5
	install -m 644 $(MAN7) $(DESTDIR)$(MANDIR)/man7
	$(if $(MAN8),install -m 644 $(MAN8) $(DESTDIR)$(MANDIR)/man8)
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) \
	    $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR)
	for u in $(UNITS); do \
	    sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SBINDIR@|$(SBINDIR)|g' contrib/systemd/$$u.in \
	        >$(DESTDIR)$(UNITDIR)/$$u && chmod 644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -m 644 contrib/systemd/spoolmq.sysusers $(DESTDIR)$(SYSUSERSDIR)/spoolmq.conf
	install -m 644 contrib/systemd/spoolmq.tmpfiles $(DESTDIR)$(TMPFILESDIR)/spoolmq.conf
	install -m 644 contrib/completion/mq.bash $(DESTDIR)$(BASHCOMPDIR)/mq-send
	for c in $(filter-out mq-send,$(notdir $(CMDS))); do ln -sf mq-send $(DESTDIR)$(BASHCOMPDIR)/$$c; done
	install -m 644 contrib/completion/_mq $(DESTDIR)$(ZSHCOMPDIR)/_mq

# A Debian package, built and checked by contrib/mkdeb (lintian when
# installed); its own build, in .deb/, leaves the tree's alone.
deb:
	@VERSION=$(VERSION) contrib/mkdeb

# The fault sweep at every occurrence of every syscall, and the crash test for
# STRESS_SECONDS (t/0060-fault-sweep.bats, t/0062-relay-fault-sweep.bats,
# t/0061-crash.bats; make check runs them bounded).
STRESS_SECONDS ?= 600
stress: all
	SWEEP=full bats t/0060-fault-sweep.bats t/0062-relay-fault-sweep.bats
	CRASH_SECONDS=$(STRESS_SECONDS) bats t/0061-crash.bats

# The parsers under libFuzzer, FUZZ_SECONDS each (fuzz/README.md); needs clang.
FUZZ_SECONDS ?= 60
fuzz:
	fuzz/run $(FUZZ_SECONDS)

# Every seed of fuzz/corpus/TARGET through its harness once, built with the
# normal compiler and flags (fuzz/replay.c is the main()): make check runs
# it in both builds, so the sanitizer pass watches the seeds with ASan and
# UBSan.  The spools the harnesses make go to a directory removed after.
FUZZ_TARGETS := $(patsubst fuzz/fuzz_%.c,%,$(sort $(wildcard fuzz/fuzz_*.c)))
FUZZ_REPLAYS := $(FUZZ_TARGETS:%=fuzz/build/replay_%)
# what a harness links beside the library
FUZZ_SRCS_relayd_conf = relayd/conf.c
FUZZ_SRCS_request = relayd/parse.c
FUZZ_SRCS_tokens  = relayd/parse.c
FUZZ_SRCS_dashboard = relayd/parse.c
FUZZ_LIBS_dashboard = $(CRYPTO_LIBS)
FUZZ_LIBS_request = $(CRYPTO_LIBS)
FUZZ_LIBS_tokens  = $(CRYPTO_LIBS)

fuzz/build/replay_%: fuzz/fuzz_%.c fuzz/replay.c fuzz/fuzz.h $(RELAYD_SRCS) $(RELAYD_HDRS) \
    lib/libspool.a $(LIB_HDRS)
	@mkdir -p fuzz/build
	$(CC) $(ALL_CFLAGS) -Ifuzz -Irelayd $(CRYPTO_CFLAGS) -o $@ fuzz/fuzz_$*.c fuzz/replay.c \
	    $(FUZZ_SRCS_$*) lib/libspool.a $(LDFLAGS) $(FUZZ_LIBS_$*)

fuzz-corpus: $(FUZZ_REPLAYS)
	@scratch=$${TMPDIR:-/tmp}; [ -d /dev/shm ] && [ -w /dev/shm ] && scratch=/dev/shm; \
	for t in $(FUZZ_TARGETS); do \
	    d=$$(mktemp -d "$$scratch/fuzz-corpus-$$t.XXXXXX") || exit 1; \
	    TMPDIR=$$d fuzz/build/replay_$$t fuzz/corpus/$$t; rc=$$?; rm -rf "$$d"; \
	    [ $$rc -eq 0 ] || { echo "fuzz-corpus: $$t failed (exit $$rc)" >&2; exit 1; }; \
	done

fmt:
	clang-format -i lib/*.c lib/*.h bin/*.c relayd/*.c relayd/*.h bridge/*.c bridge/*.h

# Static checks, each finding an error (README, "Static checks"): mandoc on
# the man pages, cppcheck, and clang-tidy with the checks of .clang-tidy,
# LINT_JOBS files at a time.  The flags are the build's, for every file.
CPPCHECK   ?= cppcheck
CLANG_TIDY ?= clang-tidy
LINT_JOBS  ?= 2
LINT_SRCS  := $(LIB_SRCS) $(sort $(wildcard bin/mq-*.c)) $(RELAYD_SRCS) $(sort $(wildcard fuzz/*.c)) \
	$(if $(filter 1,$(HAVE_NATS)),$(sort $(wildcard bridge/*.c)) t/nats-tool.c)
LINT_FLAGS  = -std=c11 -D_GNU_SOURCE -DSPOOL_VERSION=\"lint\" -Ilib -Irelayd -Ibridge -Ifuzz \
	$(JANSSON_CFLAGS) $(CURL_CFLAGS) $(MHD_CFLAGS) $(CRYPTO_CFLAGS) $(NATS_CFLAGS)
lint:
	for m in man/*.[1578]; do mandoc -Tlint -W warning $$m; done
	$(CPPCHECK) -q --error-exitcode=1 --inline-suppr --enable=warning,performance,portability \
	    --std=c11 -D_GNU_SOURCE -DSPOOL_VERSION='"lint"' '-Dnoreturn=__attribute__((noreturn))' \
	    --suppress=missingIncludeSystem -Ilib -Irelayd -Ibridge -Ifuzz -irelayd/web/assets.c lib bin relayd fuzz \
	    $(if $(filter 1,$(HAVE_NATS)),bridge)
	@echo "$(CLANG_TIDY): $(words $(LINT_SRCS)) files"
	@printf '%s\n' $(LINT_SRCS) | xargs -P $(LINT_JOBS) -I{} sh -c \
	    'out=$$($(CLANG_TIDY) --quiet "$$0" -- $(LINT_FLAGS) 2>&1); rc=$$?; \
	    printf "%s\n" "$$out" | grep -v "^[0-9]* warnings\? generated\.$$" | grep .; exit $$rc' {}

clean:
	rm -f lib/*.o lib/libspool.a $(CMDS) relayd/web/assets.c bin/mq-bridge t/nats-tool
	rm -rf fuzz/build .deb
	rm -f spoolmq_*.deb

.PHONY: all lib-check deps demo deb check bench screenshot stress fuzz fuzz-corpus install fmt lint clean
.DELETE_ON_ERROR:
