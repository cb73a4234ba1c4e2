// SPDX-License-Identifier: GPL-2.0
/* fault_ring.c - see fault_ring.h. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fault_ring.h"
#include "vfio_edu.h"

int fault_ring_create(int c, uint32_t flags, uint32_t entries, int efd, uint32_t kinds,
		      uint32_t timeout_ms)
{
	struct rvfio_fault_ring_create a = {
		.argsz = sizeof(a), .flags = flags, .entries = entries,
		.eventfd = efd, .kinds = kinds, .timeout_ms = timeout_ms,
	};

	return (int)vfio_ioctl(c, RVFIO_IOMMU_FAULT_RING, &a);
}

int fault_ring_map(struct fault_ring *r, int fd)
{
	long page = sysconf(_SC_PAGESIZE);
	struct rvfio_fault_ring_header *h;

	memset(r, 0, sizeof(*r));
	r->fd = fd;
	h = mmap(NULL, page, PROT_READ, MAP_SHARED, fd, 0);
	if (h == MAP_FAILED)
		return -errno;
	r->size = h->mmap_size;
	munmap(h, page);
	h = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (h == MAP_FAILED)
		return -errno;
	r->hdr = h;
	r->rec = (void *)((char *)h + h->records_offset);
	r->cons = h->consumer;
	return 0;
}

void fault_ring_close(struct fault_ring *r)
{
	if (r->hdr)
		munmap(r->hdr, r->size);
	r->hdr = NULL;
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

uint32_t fault_ring_producer(const struct fault_ring *r)
{
	return __atomic_load_n(&r->hdr->producer, __ATOMIC_ACQUIRE);
}

void fault_ring_set_consumer(struct fault_ring *r, uint32_t v)
{
	__atomic_store_n(&r->hdr->consumer, v, __ATOMIC_RELEASE);
}

long fault_ring_respond(int fd, uint32_t cookie, uint32_t code)
{
	struct rvfio_fault_response resp = { .cookie = cookie, .code = code };
	ssize_t n = write(fd, &resp, sizeof(resp));

	return n < 0 ? -errno : n;
}
