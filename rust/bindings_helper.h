/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Headers whose declarations rvfio's own bindgen run turns into
 * rust/bindings_generated.rs (under build/). The 6.12 kernel crate's
 * bindings cover none of iommu, vfio, gup or mm, hence this module-local run.
 * Only what rust/bindings.rs allowlists is generated.
 */
#include <linux/iommu.h>
#include <linux/kthread.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/scatterlist.h>
#include <linux/sched/mm.h>
#include <linux/vfio.h>
#include <uapi/linux/vfio.h>
#include "vfio.h"	/* drivers/vfio/vfio.h: enum vfio_group_type */
#include "glue.h"
#include <uapi/linux/iommufd.h>
#include <linux/rvfio.h>	/* include/uapi/linux/rvfio.h */

/* Function-like macros bindgen cannot evaluate: the kernel's own trick. */
const int RUST_CONST_HELPER_IOMMU_READ = IOMMU_READ;
const int RUST_CONST_HELPER_IOMMU_WRITE = IOMMU_WRITE;
const unsigned long RUST_CONST_HELPER_PAGE_SIZE = PAGE_SIZE;
const unsigned int RUST_CONST_HELPER_PAGE_SHIFT = PAGE_SHIFT;
const int RUST_CONST_HELPER_IOMMU_CACHE = IOMMU_CACHE;
const gfp_t RUST_CONST_HELPER_GFP_KERNEL = GFP_KERNEL;
const gfp_t RUST_CONST_HELPER_GFP_KERNEL_ACCOUNT = GFP_KERNEL_ACCOUNT;
const unsigned int RUST_CONST_HELPER_FOLL_WRITE = FOLL_WRITE;
const unsigned int RUST_CONST_HELPER_FOLL_LONGTERM = FOLL_LONGTERM;
const unsigned int RUST_CONST_HELPER_FAULT_FLAG_WRITE = FAULT_FLAG_WRITE;
const unsigned int RUST_CONST_HELPER_FAULT_FLAG_REMOTE = FAULT_FLAG_REMOTE;
const unsigned long RUST_CONST_HELPER_VM_READ = VM_READ;
const unsigned long RUST_CONST_HELPER_VM_WRITE = VM_WRITE;
const unsigned long RUST_CONST_HELPER_VM_PFNMAP = VM_PFNMAP;
const unsigned long RUST_CONST_HELPER_VM_SHARED = VM_SHARED;

/* Fault ring: poll masks (__poll_t values bindgen cannot evaluate). */
#include <linux/poll.h>
const unsigned int RUST_CONST_HELPER_RVFIO_POLL_IN = (__force unsigned int)(EPOLLIN | EPOLLRDNORM);
const unsigned int RUST_CONST_HELPER_RVFIO_POLL_OUT = (__force unsigned int)(EPOLLOUT | EPOLLWRNORM);
const unsigned int RUST_CONST_HELPER_RVFIO_POLL_HUP = (__force unsigned int)EPOLLHUP;
/* Enumerators of <linux/iommufd.h> used by the nesting uapi. */
const unsigned int RUST_CONST_HELPER_IOMMU_HWPT_DATA_VTD_S1 = IOMMU_HWPT_DATA_VTD_S1;
const unsigned int RUST_CONST_HELPER_IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 =
	IOMMU_HWPT_INVALIDATE_DATA_VTD_S1;
const unsigned int RUST_CONST_HELPER_IOMMU_VTD_S1_SRE = IOMMU_VTD_S1_SRE;
const unsigned int RUST_CONST_HELPER_IOMMU_VTD_S1_EAFE = IOMMU_VTD_S1_EAFE;
const unsigned int RUST_CONST_HELPER_IOMMU_VTD_S1_WPE = IOMMU_VTD_S1_WPE;
const unsigned int RUST_CONST_HELPER_IOMMU_VTD_INV_FLAGS_LEAF = IOMMU_VTD_INV_FLAGS_LEAF;
