/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fault_ring.h - rvfio's fault ring (include/uapi/linux/rvfio.h,
 * RVFIO_FAULT_RING) seen from user space: create it, map it, read the
 * producer, store the consumer, write page responses.
 *
 * Every function that can fail returns 0 (or the call's result) or -errno.
 */
#ifndef FAULT_RING_H
#define FAULT_RING_H

#include <stddef.h>
#include <stdint.h>

#include <linux/rvfio.h>

struct fault_ring {
	int fd;			/* the ring fd, or -1 */
	size_t size;		/* of the mapping */
	struct rvfio_fault_ring_header *hdr;	/* the whole ring mapped, or NULL */
	struct rvfio_fault *rec;
	uint32_t cons;		/* our consumer index */
};

/* RVFIO_IOMMU_FAULT_RING on container c: the ring fd or -errno. */
int fault_ring_create(int c, uint32_t flags, uint32_t entries, int efd, uint32_t kinds,
		      uint32_t timeout_ms);
/* Maps the whole ring of fd (the header page first, for its size) into *r,
 * which takes fd: 0 or -errno, with r->hdr NULL. */
int fault_ring_map(struct fault_ring *r, int fd);
/* Unmaps and closes what *r holds; r->fd is -1 and r->hdr NULL after. */
void fault_ring_close(struct fault_ring *r);
/* The producer index (load-acquire). */
uint32_t fault_ring_producer(const struct fault_ring *r);
/* Stores the consumer index (store-release). */
void fault_ring_set_consumer(struct fault_ring *r, uint32_t v);
/* One page response written to fd: bytes written or -errno. */
long fault_ring_respond(int fd, uint32_t cookie, uint32_t code);

#endif /* FAULT_RING_H */
