# Toolchain shared by the kernel build and the out-of-tree module build.
# Debian's rustc-web 1.96 (not the rustup toolchains first in PATH, which lack
# rust-src), clang/lld 19, and bindgen-cli pinned in build/tools by scripts/deps.sh.
TOP		?= $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
BUILD		:= $(TOP)/build
TOOLS		:= $(BUILD)/tools
RUST_LIB_SRC	:= $(firstword $(wildcard /usr/src/rustc-*/library))
KMAKE_TOOLCHAIN	:= LLVM=-19 \
		   RUSTC=/usr/bin/rustc HOSTRUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
		   BINDGEN=$(TOOLS)/bin/bindgen RUST_LIB_SRC=$(RUST_LIB_SRC)
# bindgen-cli finds libclang through this.
export LIBCLANG_PATH := /usr/lib/llvm-19/lib
# The kernel tree the module and tests are built against (debug config).
KDIR		:= $(BUILD)/kernel-debug
