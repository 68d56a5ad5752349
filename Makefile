# Tally — build, test, demo, install.
#
#   make            builds ./tally (and scripts/gen-bundle)
#   make check      unit + end-to-end tests, normal build and ASan/UBSan build
#   make demo       the whole nightly pipeline on fixtures/, into ./demo-out/
#   make install    PREFIX=/usr/local DESTDIR= (binary, templates, man page, units)
#   make fuzz       long libFuzzer runs (clang); a short smoke run is part of check
#   make valgrind   the demo under valgrind memcheck
#
# Every target that needs Debian packages runs scripts/bootstrap first, which
# installs what is missing and is a no-op otherwise.

PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR   = $(PREFIX)/bin
DATADIR  = $(PREFIX)/share/tally
MANDIR   = $(PREFIX)/share/man
UNITDIR  = $(PREFIX)/lib/systemd/system

CC      ?= cc
PKGS     = libarchive sqlite3 xlsxwriter inih gmime-3.0 jansson nettle zlib libxxhash
CFLAGS  ?= -O2 -g
WARN     = -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral
CPPFLAGS += -D_GNU_SOURCE -pthread -Ipipeline -Ireports \
            -DTALLY_DATADIR='"$(DATADIR)"' -DTALLY_VERSION='"$(VERSION)"'
VERSION  = 0.1.0

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lcsv -lm -pthread

# Everything but main() goes into the library the tests link against.
LIB_SRC  = $(filter-out pipeline/tally.c,$(wildcard pipeline/*.c reports/*.c))
UNIT_SRC = $(wildcard tests/unit/test_*.c)

# Two build trees: build/ (normal) and build/san/ (address + undefined).
OBJ      = $(LIB_SRC:%.c=build/%.o)
SAN_OBJ  = $(LIB_SRC:%.c=build/san/%.o)
SAN      = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

.PHONY: all check unit e2e examples demo install uninstall clean fuzz valgrind \
        bootstrap bench
all: tally scripts/gen-bundle

bootstrap:
	@scripts/bootstrap

tally: build/pipeline/tally.o $(OBJ)
	@echo "  LINK    $@"
	@$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS)

build/san/tally: build/san/pipeline/tally.o $(SAN_OBJ)
	@echo "  LINK    $@"
	@$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(PKG_LIBS)

scripts/gen-bundle: scripts/gen-bundle.c
	$(CC) $(CFLAGS) $(WARN) $(CPPFLAGS) -o $@ $< $(shell pkg-config --libs nettle zlib 2>/dev/null)

build/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(WARN) $(CPPFLAGS) $(PKG_CFLAGS) -MMD -MP -c -o $@ $<

build/san/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC san  $<"
	@$(CC) $(CFLAGS) $(SAN) $(WARN) $(CPPFLAGS) $(PKG_CFLAGS) -DTALLY_SANITIZED -MMD -MP -c -o $@ $<

UNIT_BIN     = $(UNIT_SRC:tests/unit/%.c=build/tests/%)
SAN_UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=build/san/tests/%)

build/tests/%: tests/unit/%.c tests/unit/testkit.h $(OBJ)
	@mkdir -p $(dir $@)
	@echo "  TEST    $@"
	@$(CC) $(CFLAGS) $(WARN) $(CPPFLAGS) $(PKG_CFLAGS) -o $@ $< $(OBJ) $(PKG_LIBS) -lcmocka

build/san/tests/%: tests/unit/%.c tests/unit/testkit.h $(SAN_OBJ)
	@mkdir -p $(dir $@)
	@echo "  TEST    $@"
	@$(CC) $(CFLAGS) $(SAN) $(WARN) $(CPPFLAGS) $(PKG_CFLAGS) -o $@ $< $(SAN_OBJ) $(PKG_LIBS) -lcmocka

# The test command of the README.  Unit tests run in both builds; the
# end-to-end suite runs against the sanitized binary and then the normal one.
check: bootstrap
	@$(MAKE) --no-print-directory all build/san/tally $(UNIT_BIN) $(SAN_UNIT_BIN)
	@tests/run-unit $(UNIT_BIN) $(SAN_UNIT_BIN)
	@TALLY=$(CURDIR)/build/san/tally tests/e2e/run
	@TALLY=$(CURDIR)/tally tests/e2e/run
	@FUZZ_SECONDS=5 tests/fuzz/run smoke

unit: $(UNIT_BIN)
	@tests/run-unit $(UNIT_BIN)

e2e: tally
	@TALLY=$(CURDIR)/tally tests/e2e/run

examples: tally
	../shared/tools/check-examples --tally ./tally ../shared/spec/examples/*/

demo: bootstrap
	@$(MAKE) --no-print-directory all
	@scripts/demo

valgrind: bootstrap
	@$(MAKE) --no-print-directory all
	@TALLY_WRAP="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite" scripts/demo

bench: all
	scripts/bench run

fuzz:
	@tests/fuzz/run long

install: all build/tally.1
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/templates $(DESTDIR)$(MANDIR)/man1 \
	           $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DATADIR)/scripts
	install -m 0755 tally $(DESTDIR)$(BINDIR)/tally
	install -m 0644 templates/* $(DESTDIR)$(DATADIR)/templates/
	install -m 0644 build/tally.1 $(DESTDIR)$(MANDIR)/man1/tally.1
	sed 's|/usr/local/bin/|$(BINDIR)/|g' scripts/tally-nightly.service \
	    > $(DESTDIR)$(UNITDIR)/tally-nightly.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/tally-nightly.service
	install -m 0644 scripts/tally-nightly.timer $(DESTDIR)$(UNITDIR)/
	@mkdir -p build
	sed 's|^TALLY=$${TALLY:-tally}$$|TALLY=$${TALLY:-$(BINDIR)/tally}|' scripts/tally-nightly \
	    > build/tally-nightly
	install -m 0755 build/tally-nightly $(DESTDIR)$(BINDIR)/tally-nightly
	install -m 0644 scripts/tally.conf $(DESTDIR)$(DATADIR)/tally.conf.sample
	sed 's|/usr/local/bin|$(BINDIR)|g' scripts/tally.cron > $(DESTDIR)$(DATADIR)/tally.cron.sample

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/tally $(DESTDIR)$(BINDIR)/tally-nightly \
	      $(DESTDIR)$(MANDIR)/man1/tally.1 \
	      $(DESTDIR)$(UNITDIR)/tally-nightly.service $(DESTDIR)$(UNITDIR)/tally-nightly.timer
	rm -rf $(DESTDIR)$(DATADIR)

build/tally.1: scripts/tally.1.scd
	@mkdir -p build
	scdoc < $< > $@

clean:
	rm -rf build tally scripts/gen-bundle demo-out

-include $(OBJ:.o=.d) $(SAN_OBJ:.o=.d) build/pipeline/tally.d build/san/pipeline/tally.d
