/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Headers whose declarations rvfio's own bindgen run turns into
 * rust/bindings_generated.rs (under build/). The 6.12 kernel crate's
 * bindings cover none of iommu, vfio, gup or mm, hence this module-local run.
 * Only what rust/bindings.rs allowlists is generated.
 */
#include <linux/iommu.h>
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
/* Enumerators of <linux/iommufd.h> used by the nesting uapi. */
const unsigned int RUST_CONST_HELPER_IOMMU_HWPT_DATA_VTD_S1 = IOMMU_HWPT_DATA_VTD_S1;
const unsigned int RUST_CONST_HELPER_IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 =
	IOMMU_HWPT_INVALIDATE_DATA_VTD_S1;
const unsigned int RUST_CONST_HELPER_IOMMU_VTD_S1_SRE = IOMMU_VTD_S1_SRE;
const unsigned int RUST_CONST_HELPER_IOMMU_VTD_S1_EAFE = IOMMU_VTD_S1_EAFE;
const unsigned int RUST_CONST_HELPER_IOMMU_VTD_S1_WPE = IOMMU_VTD_S1_WPE;
const unsigned int RUST_CONST_HELPER_IOMMU_VTD_INV_FLAGS_LEAF = IOMMU_VTD_INV_FLAGS_LEAF;
