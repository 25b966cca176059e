# The dm toolkit — one non-recursive GNU Makefile.
#
#   make                 build libdm.a, libdm.so and every tool into build/
#   make check           build and run every test (ends "N passed, N failed")
#   make check SANITIZE=1  the same with AddressSanitizer + UBSan, in build-san/
#   make bench           throughput figures (not part of check)
#   make fuzz FUZZ_TIME=600   libFuzzer on the file readers
#   make install PREFIX=/usr/local DESTDIR=   make uninstall   make clean
#
# Missing build dependencies are installed by scripts/deps.sh (apt-get as
# root, otherwise it prints the command to run).

VERSION    := 0.1.0
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCDIR     ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
PKGDIR     ?= $(LIBDIR)/pkgconfig
DESTDIR    ?=

CC         ?= cc
SANITIZE   ?=
ifeq ($(SANITIZE),1)
BUILD      ?= build-san
SANFLAGS   := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
              -fno-omit-frame-pointer
OPTFLAGS   ?= -O1 -g
else
BUILD      ?= build
SANFLAGS   :=
OPTFLAGS   ?= -O2 -g
endif

# OpenBLAS is the OpenMP build, so that BLAS and libdm's own OpenMP loops
# share one thread pool instead of fighting over the cores (the pthread
# build's threads and libgomp's spinning threads would both claim them).
# Debian installs it beside the default build; the run path makes the
# tools load it whatever the system's BLAS alternative says.
MULTIARCH  := $(shell $(CC) -print-multiarch 2>/dev/null)
BLAS_DIR   ?= /usr/lib/$(MULTIARCH)/openblas-openmp
BLAS_CFLAGS = -I/usr/include/$(MULTIARCH)/openblas-openmp
BLAS_LIBS   = -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas

# Lazily expanded, so that they are read after scripts/deps.sh has run.
PKGS        = libpng zlib
PKG_CFLAGS  = $(BLAS_CFLAGS) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS    = $(BLAS_LIBS) $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CPPFLAGS   += -Ilib -DDM_VERSION='"$(VERSION)"' -D_GNU_SOURCE
CFLAGS     ?= $(OPTFLAGS)
CFLAGS     += -std=c11 -Wall -Wextra -fPIC -fopenmp $(SANFLAGS) $(PKG_CFLAGS)
LDFLAGS    += -fopenmp $(SANFLAGS)
LDLIBS     += $(PKG_LIBS) -lm

LIB_SRC    := $(sort $(wildcard lib/*.c))
BIN_SRC    := $(sort $(wildcard bin/*.c))
UNIT_SRC   := $(sort $(wildcard tests/unit/*.c))
LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_OBJ   := $(UNIT_SRC:%.c=$(BUILD)/obj/%.o)
TOOLS      := $(BIN_SRC:bin/%.c=$(BUILD)/bin/%)
HEADERS    := $(wildcard lib/dm*.h)
MANPAGES   := $(sort $(wildcard man/man*/*.[157]))
DEPSTAMP   := $(BUILD)/.deps-ok

.PHONY: all check bench fuzz demo install uninstall clean deps
# Tool objects are intermediates of a pattern chain: keep them.
.SECONDARY: $(BIN_SRC:%.c=$(BUILD)/obj/%.o)
all: $(BUILD)/libdm.a $(BUILD)/libdm.so $(TOOLS)

# Dependencies: checked once per build directory, installed if missing.
$(DEPSTAMP): scripts/deps.sh
	@mkdir -p $(@D)
	@sh scripts/deps.sh
	@touch $@
deps:
	sh scripts/deps.sh

$(BUILD)/obj/%.o: %.c | $(DEPSTAMP)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libdm.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/libdm.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libdm.so.0 $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Tools link libdm statically so they run from build/ and after install alike.
$(BUILD)/bin/%: $(BUILD)/obj/bin/%.o $(BUILD)/libdm.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/libdm.a $(LDLIBS)

$(BUILD)/tests/unit/run: $(UNIT_OBJ) $(BUILD)/libdm.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $(UNIT_OBJ) $(BUILD)/libdm.a $(LDLIBS)

check: all $(BUILD)/tests/unit/run
	@DM_SANFLAGS='$(SANFLAGS)' sh tests/run.sh $(BUILD)

$(BUILD)/bench/%: scripts/bench/%.c $(BUILD)/libdm.a | $(DEPSTAMP)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libdm.a $(LDLIBS)

BENCH := $(patsubst scripts/bench/%.c,$(BUILD)/bench/%,$(wildcard scripts/bench/*.c))
bench: all $(BENCH)
	@sh scripts/bench.sh $(BUILD)

# libFuzzer (clang) on the readers: FUZZ_TIME seconds, corpus in tests/fuzz/.
FUZZ_TIME ?= 300
FUZZ_DIR  := build-fuzz
fuzz: | $(DEPSTAMP)
	@sh scripts/deps.sh --fuzz
	@mkdir -p $(FUZZ_DIR) tests/fuzz/corpus-work
	clang -std=c11 -g -O1 -fopenmp -fsanitize=fuzzer,address,undefined \
	    -Ilib -D_GNU_SOURCE -DDM_VERSION='"$(VERSION)"' $(PKG_CFLAGS) \
	    -o $(FUZZ_DIR)/fuzz_read tests/fuzz/fuzz_read.c $(LIB_SRC) $(PKG_LIBS) -lm
	$(FUZZ_DIR)/fuzz_read -max_total_time=$(FUZZ_TIME) -max_len=65536 \
	    -dict=tests/fuzz/read.dict tests/fuzz/corpus-work tests/fuzz/corpus

demo: all
	@sh scripts/demo.sh $(BUILD)

$(BUILD)/libdm.pc: Makefile | $(DEPSTAMP)
	@printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCDIR)' '' \
	    'Name: libdm' 'Description: diffusion models and flow matching on the CPU' \
	    'Version: $(VERSION)' 'Requires.private: libpng zlib' \
	    'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -ldm' \
	    'Libs.private: $(BLAS_LIBS) -lm -fopenmp' > $(BUILD)/libdm.pc

install: all $(BUILD)/libdm.pc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) \
	    $(DESTDIR)$(PKGDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(MANDIR)/man7
	$(if $(TOOLS),install -m 755 $(TOOLS) $(DESTDIR)$(BINDIR)/)
	install -m 644 $(BUILD)/libdm.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/libdm.so $(DESTDIR)$(LIBDIR)/libdm.so.0
	ln -sf libdm.so.0 $(DESTDIR)$(LIBDIR)/libdm.so
	install -m 644 $(HEADERS) $(DESTDIR)$(INCDIR)/
	install -m 644 $(BUILD)/libdm.pc $(DESTDIR)$(PKGDIR)/
	for m in $(MANPAGES); do \
	    s=$${m%/*}; install -m 644 $$m $(DESTDIR)$(MANDIR)/$${s#man/}/; done

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(TOOLS)))
	rm -f $(DESTDIR)$(LIBDIR)/libdm.a $(DESTDIR)$(LIBDIR)/libdm.so \
	    $(DESTDIR)$(LIBDIR)/libdm.so.0 $(DESTDIR)$(PKGDIR)/libdm.pc
	rm -f $(addprefix $(DESTDIR)$(INCDIR)/,$(notdir $(HEADERS)))
	for m in $(MANPAGES); do \
	    s=$${m%/*}; rm -f $(DESTDIR)$(MANDIR)/$${s#man/}/$${m##*/}; done

clean:
	rm -rf build build-san $(FUZZ_DIR)

-include $(LIB_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(BIN_SRC:%.c=$(BUILD)/obj/%.d)
