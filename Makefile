# rvfio: a VFIO IOMMU backend for Linux 6.12, in Rust.
#
# User entry points:
#   make run     build everything needed, boot the test VM, run the sample client
#   make check   build everything needed, run the selftests against rvfio and
#                against upstream's vfio_iommu_type1 in one VM boot
#   make real-clients
#                DPDK testpmd, a rust-vmm vfio-ioctls client and QEMU's
#                vfio-pci against rvfio and type1 in one VM boot of their own
#                (make check runs the same boot as its last)
#   make bench   map/unmap speed: rvfio vs type1 vs iommufd vs the floor, on the
#                perf kernel, one fresh VM per backend (Documentation/bench.rst)
#   make fuzz    one VM boot that runs only the ioctl fuzzer (selftests/fuzz_test.c),
#                FUZZ_SECONDS per backend (default 600); FUZZ_SEED=S FUZZ_VARIANT=V
#                re-run a seed it printed
# Building blocks: deps, kernel, module (default), selftests, samples, lint,
# host-test, vm-shell, clean.
TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
include $(TOP)/scripts/toolchain.mk

MODDIR := $(BUILD)/module
STAMP_DEPS := $(TOOLS)/deps.stamp

.PHONY: all module deps kernel selftests samples initramfs check run vm-shell \
	lint host-test clean bench real-clients fuzz

all: module

deps:
	@$(TOP)/scripts/deps.sh

kernel: deps
	@$(TOP)/scripts/build-kernel.sh debug

# The module is built out of tree in build/module, a mirror of the sources, so
# that no build output lands in the source tree.
module: kernel
	@$(TOP)/scripts/build-module.sh

selftests: kernel
	@$(MAKE) -s -C $(TOP)/selftests KDIR=$(KDIR) OUT=$(BUILD)/selftests

samples: kernel
	@$(MAKE) -s -C $(TOP)/samples KDIR=$(KDIR) OUT=$(BUILD)/samples
	@$(TOP)/scripts/build-mdev-sample.sh

initramfs: module selftests samples
	@$(TOP)/scripts/mkinitramfs.sh

check: initramfs host-test
	@$(TOP)/scripts/vm.sh check

# The clients' downloads and builds (scripts/real-clients.sh) happen in
# vm.sh, which needs them for check too; cached after the first run.
real-clients: initramfs
	@$(TOP)/scripts/vm.sh real-clients

run: initramfs
	@$(TOP)/scripts/vm.sh run

vm-shell: initramfs
	@$(TOP)/scripts/vm.sh shell

# The fuzzer alone, longer than make check runs it: FUZZ_SECONDS per backend
# (split between its three variants), passed to the guest on
# the kernel command line (rvfio.fuzz_seconds=, rvfio.fuzz_seed=); console in
# build/vm-fuzz.log. BACKENDS= as for scripts/vm.sh.
FUZZ_SECONDS ?= 600
fuzz: initramfs
	@SECOND_BOOT=0 REAL_CLIENTS=0 TEST_TIMEOUT=$$(($(FUZZ_SECONDS) + 300)) \
		VM_TIMEOUT=$$((2 * $(FUZZ_SECONDS) + 1200)) VM_LOG=$(BUILD)/vm-fuzz.log \
		APPEND_EXTRA="rvfio.tests=fuzz_test rvfio.fuzz_seconds=$(FUZZ_SECONDS) \
		$(if $(FUZZ_SEED),rvfio.fuzz_seed=$(FUZZ_SEED)) \
		$(if $(FUZZ_VARIANT),rvfio.fuzz_variant=$(FUZZ_VARIANT)) $(APPEND_EXTRA)" \
		$(TOP)/scripts/vm.sh check

# Builds its own perf kernel, rvfio.ko, floor module and initramfs under
# build/ (scripts/bench.sh); make check does not need any of it.
bench: deps
	@$(TOP)/scripts/bench.sh

lint: kernel
	@$(TOP)/scripts/build-module.sh lint
	@$(TOP)/scripts/real-clients.sh lint

# Pure logic (no kernel) tested on the host with cargo.
host-test:
	@cd $(TOP)/rust/host && CARGO_TARGET_DIR=$(BUILD)/host-target \
		cargo test --quiet --offline

clean:
	rm -rf $(MODDIR) $(BUILD)/selftests $(BUILD)/samples $(BUILD)/samples-mdev \
		$(BUILD)/initramfs* $(BUILD)/real-clients/overlay.d \
		$(BUILD)/real-clients/overlay.cpio.gz $(BUILD)/real-clients/target
