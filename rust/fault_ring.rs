// SPDX-License-Identifier: GPL-2.0

//! The fault ring: the memory user space maps, the producer that writes
//! records into it from any context, the page requests waiting for their
//! responses, and the ring fd's file operations (glue.c's
//! `rvfio_ring_fops`). The uapi is in `include/uapi/linux/rvfio.h`, the
//! index arithmetic in `ring.rs`, the container's side in `faults.rs`.
//!
//! Locks and contexts:
//! - [`Ring::producer`] (an [`IrqSpinLock`]) guards the indices and the
//!   writing of a record; it is taken in hard interrupt context (the IOMMU's
//!   fault handler), so nothing under it sleeps, allocates or takes another
//!   lock. The eventfd and the poll wait queue are signalled after it is
//!   released (both may be signalled from hard interrupt context on
//!   non-RT kernels: `eventfd_signal()` and `wake_up_poll()` take their
//!   own irqsave spinlocks, as vfio-pci's MSI handler does).
//! - [`Ring::pending`] (a mutex, process context only) guards the page
//!   requests. It is never held while a record is pushed or a waiter
//!   sleeps; a response completes its request under it, so a waiter that
//!   gives up (timeout, fatal signal) and then finds its request gone knows
//!   the response is already set.
//!
//! Memory shared with user space (the header page and the records) is only
//! written by the kernel, except `consumer`, which is read with an acquire
//! load and handed to [`ring::Producer`], which never uses it for
//! indexing without checking it.

use crate::bindings;
use crate::faults::FaultHub;
use crate::irq_lock::IrqSpinLock;
use crate::new_irq_spinlock;
use crate::pin::PAGE_SIZE;
use crate::revoke::EventFd;
use crate::ring::{self, Config, Cookies, Header, Layout, Producer, Push, Record, Response};
use crate::uapi::FaultResponse;
use core::ffi::c_void;
use core::mem::{offset_of, size_of};
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use kernel::error::{code::*, to_result, Result};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNodeReservation};
use kernel::sync::{Arc, Mutex};
use kernel::types::Opaque;
use kernel::uaccess::UserSlice;

/// The vmalloc'd header page and records.
///
/// # Invariants
///
/// `ptr` is a `vmalloc_user()` area of `layout.size` bytes (page aligned,
/// zeroed at allocation), owned by this value and freed on drop; it holds a
/// [`Header`] at 0 and `entries` [`Record`]s at `layout.records_offset`.
struct RingMem {
    ptr: *mut u8,
    layout: Layout,
    entries: u32,
}

// SAFETY: the area is plain memory; concurrent writers are serialised by
// `Ring::producer`, and user space may write it at any time anyway (every
// access is atomic or volatile).
unsafe impl Send for RingMem {}
// SAFETY: as above.
unsafe impl Sync for RingMem {}

impl RingMem {
    fn new(cfg: &Config) -> Result<Self> {
        let layout = ring::layout(cfg.entries, PAGE_SIZE);
        let size = usize::try_from(layout.size).map_err(|_| ENOMEM)?;
        // SAFETY: plain allocation.
        let ptr = unsafe { bindings::rvfio_vmalloc_user(size as _) }.cast::<u8>();
        if ptr.is_null() {
            return Err(ENOMEM);
        }
        let header = Header {
            entries: cfg.entries,
            entry_size: ring::RECORD_SIZE,
            // CAST: one page, far below 4 GiB.
            records_offset: layout.records_offset as u32,
            mmap_size: layout.size,
            kinds: cfg.kinds,
            flags: cfg.flags,
            ..Header::default()
        };
        // SAFETY: the area is at least a page, so it holds a `Header`, and
        // page aligned; nobody else can see it yet.
        unsafe { ptr::write(ptr.cast::<Header>(), header) };
        // INVARIANT: allocated above with `layout.size` bytes.
        Ok(Self {
            ptr,
            layout,
            entries: cfg.entries,
        })
    }

    /// The header's `u32` field at byte `offset`.
    fn u32_at(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: callers pass the offset of a `u32` field of `Header`,
        // which is inside the area and 4-byte aligned; an atomic may alias
        // user space's accesses.
        unsafe { AtomicU32::from_ptr(self.ptr.add(offset).cast()) }
    }

    fn u64_at(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: as in `u32_at`, for an 8-byte aligned `u64` field.
        unsafe { AtomicU64::from_ptr(self.ptr.add(offset).cast()) }
    }

    /// The consumer index user space stored last (untrusted).
    fn consumer(&self) -> u32 {
        // Acquire: user space read the records before it stored this.
        self.u32_at(offset_of!(Header, consumer))
            .load(Ordering::Acquire)
    }

    /// Writes `rec` into `slot`.
    fn write_record(&self, slot: u32, rec: &Record) {
        let slot = slot & (self.entries - 1);
        let offset = self.layout.records_offset as usize + slot as usize * size_of::<Record>();
        // SAFETY: `slot < entries`, so the record lies inside the area; it
        // is 64-byte aligned (records start on a page). Volatile: user space
        // maps this memory.
        unsafe { ptr::write_volatile(self.ptr.add(offset).cast::<Record>(), *rec) };
    }

    /// Publishes the producer's counters; the producer index last, with
    /// release, after the record it covers.
    fn publish(&self, p: &Producer) {
        self.u64_at(offset_of!(Header, lost))
            .store(p.lost(), Ordering::Relaxed);
        self.u32_at(offset_of!(Header, consumer_rejected))
            .store(p.rejected(), Ordering::Relaxed);
        self.u32_at(offset_of!(Header, producer))
            .store(p.producer(), Ordering::Release);
    }
}

impl Drop for RingMem {
    fn drop(&mut self) {
        // SAFETY: allocated by `rvfio_vmalloc_user()` (type invariant); the
        // ring fd is gone, so no mapping of it is left.
        unsafe { bindings::rvfio_vfree(self.ptr.cast()) };
    }
}

/// A page request waiting for its response.
#[pin_data]
pub(crate) struct PageRequest {
    #[pin]
    done: Opaque<bindings::completion>,
    /// The response code, stored before `done` is completed.
    response: AtomicU32,
}

// SAFETY: the completion is meant for concurrent use (it has its own lock).
unsafe impl Send for PageRequest {}
// SAFETY: as above.
unsafe impl Sync for PageRequest {}

impl PageRequest {
    fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: initialises the completion in place.
            done <- Opaque::ffi_init(|c| unsafe { bindings::rvfio_completion_init(c) }),
            response: AtomicU32::new(ring::RESPONSE_INVALID),
        })
    }

    /// Wakes the waiter with `response`.
    fn finish(&self, response: Response) {
        self.response.store(response.code(), Ordering::Release);
        // SAFETY: the completion was initialised in `new`.
        unsafe { bindings::complete(self.done.get()) };
    }
}

/// Everything guarded by [`Ring::pending`].
struct Pending {
    requests: RBTree<u32, Arc<PageRequest>>,
    cookies: Cookies,
    /// The ring went away: no new requests, every old one answered.
    closed: bool,
}

/// One container's fault ring.
#[pin_data]
pub(crate) struct Ring {
    config: Config,
    mem: RingMem,
    #[pin]
    producer: IrqSpinLock<Producer>,
    eventfd: Option<EventFd>,
    /// Poll waiters (`struct wait_queue_head`).
    #[pin]
    poll_wq: Opaque<bindings::wait_queue_head>,
    #[pin]
    pending: Mutex<Pending>,
    /// The container is gone, or the fd was closed.
    detached: AtomicBool,
    /// The container's side, which publishes this ring to the fault
    /// handlers and unpublishes it when the fd is released.
    hub: Arc<FaultHub>,
}

// SAFETY: the wait queue has its own lock; everything else is atomic or
// behind the ring's locks.
unsafe impl Send for Ring {}
// SAFETY: as above.
unsafe impl Sync for Ring {}

impl Ring {
    /// A ring for `cfg` of the container whose fault state is `hub`,
    /// signalling `eventfd`.
    pub(crate) fn new(
        cfg: Config,
        eventfd: Option<EventFd>,
        hub: Arc<FaultHub>,
    ) -> Result<Arc<Self>> {
        let mem = RingMem::new(&cfg)?;
        Arc::pin_init(
            pin_init!(Self {
                config: cfg,
                mem,
                producer <- new_irq_spinlock!(Producer::new(cfg.entries), "rvfio_fault_ring"),
                eventfd,
                // SAFETY: initialises the wait queue in place.
                poll_wq <- Opaque::ffi_init(|wq| unsafe { bindings::rvfio_waitqueue_init(wq) }),
                pending <- new_mutex!(Pending {
                    requests: RBTree::new(),
                    cookies: Cookies::default(),
                    closed: false,
                }),
                detached: AtomicBool::new(false),
                hub,
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// Records `rec` (its sequence number and timestamp filled in), or
    /// counts it as lost when the ring is full. Callable in any context,
    /// hard interrupts included. Returns whether it was recorded.
    pub(crate) fn push(&self, mut rec: Record) -> bool {
        let recorded = {
            let mut p = self.producer.lock();
            let push = p.push(self.mem.consumer());
            if let Push::Slot { slot, seq } = push {
                rec.seq = seq;
                // SAFETY: plain call, fine in any context.
                rec.timestamp_ns = unsafe { bindings::rvfio_ktime_get_ns() };
                self.mem.write_record(slot, &rec);
            }
            self.mem.publish(&p);
            matches!(push, Push::Slot { .. })
        };
        if recorded {
            if let Some(e) = &self.eventfd {
                e.signal();
            }
            self.wake(bindings::RVFIO_POLL_IN);
        }
        recorded
    }

    /// Counts a fault that could not be recorded (see
    /// [`ring::Producer::count_lost`]) and publishes the counter.
    fn lose(&self) {
        let mut p = self.producer.lock();
        p.count_lost();
        self.mem.publish(&p);
    }

    fn wake(&self, mask: u32) {
        // SAFETY: the wait queue was initialised in `new`.
        unsafe { bindings::rvfio_wake_up_poll(self.poll_wq.get(), mask) };
    }

    /// Posts `rec` as a page request. Returns what to wait on, or `None`
    /// when the request could not be posted (ring full or going away,
    /// out of memory): the access then fails at once.
    pub(crate) fn request_page(self: &Arc<Self>, mut rec: Record) -> Option<PendingRequest> {
        let (req, node) = match (
            Arc::pin_init(PageRequest::new(), GFP_KERNEL),
            RBTreeNodeReservation::new(GFP_KERNEL),
        ) {
            (Ok(req), Ok(node)) => (req, node),
            _ => {
                // User space never learns of this fault otherwise.
                self.lose();
                return None;
            }
        };
        let cookie = {
            let mut pending = self.pending.lock();
            if pending.closed {
                return None;
            }
            let cookie = loop {
                let c = pending.cookies.next();
                if pending.requests.get(&c).is_none() {
                    break c;
                }
            };
            pending.requests.insert(node.into_node(cookie, req.clone()));
            cookie
        };
        rec.cookie = cookie;
        if !self.push(rec) {
            // Never seen by user space: forget it.
            self.pending.lock().requests.remove(&cookie);
            return None;
        }
        Some(PendingRequest {
            ring: self.clone(),
            req,
            cookie,
        })
    }

    /// Answers the page request `cookie`: ENOENT when it is not pending.
    fn respond(&self, cookie: u32, response: Response) -> Result {
        let pending = &mut *self.pending.lock();
        let req = pending.requests.remove(&cookie).ok_or(ENOENT)?;
        req.finish(response);
        Ok(())
    }

    /// The ring stops: no more page requests, every pending one answered
    /// INVALID, pollers see EPOLLHUP. The caller has unpublished it, so no
    /// new fault reaches it. Idempotent.
    pub(crate) fn detach(&self) {
        self.detached.store(true, Ordering::Release);
        self.mem
            .u32_at(offset_of!(Header, state))
            .fetch_or(ring::STATE_DETACHED, Ordering::Release);
        let requests = {
            let mut pending = self.pending.lock();
            pending.closed = true;
            let requests = core::mem::replace(&mut pending.requests, RBTree::new());
            for req in requests.values() {
                req.finish(Response::Invalid);
            }
            requests
        };
        drop(requests);
        self.wake(bindings::RVFIO_POLL_HUP | bindings::RVFIO_POLL_IN);
    }

    // --- The ring fd's file operations. ---

    fn poll(&self, file: *mut bindings::file, pt: *mut bindings::poll_table_struct) -> u32 {
        // SAFETY: `file` and `pt` come from the VFS for this call; the wait
        // queue lives as long as the file (which holds the ring).
        unsafe { bindings::rvfio_poll_wait(file, self.poll_wq.get(), pt) };
        let unconsumed = {
            let mut p = self.producer.lock();
            p.observe_consumer(self.mem.consumer());
            self.mem.publish(&p);
            p.unconsumed()
        };
        let mut mask = bindings::RVFIO_POLL_OUT;
        if unconsumed != 0 {
            mask |= bindings::RVFIO_POLL_IN;
        }
        if self.detached.load(Ordering::Acquire) {
            mask |= bindings::RVFIO_POLL_HUP;
        }
        mask
    }

    fn write(&self, buf: usize, count: usize) -> Result<usize> {
        let n = ring::responses_in(count).ok_or(EINVAL)?;
        let mut reader = UserSlice::new(buf, count).reader();
        for i in 0..n {
            let result = reader.read::<FaultResponse>().and_then(|r| {
                let response = Response::from_code(r.code).ok_or(EINVAL)?;
                self.respond(r.cookie, response)
            });
            if let Err(e) = result {
                // Stop at the first bad one; report what went through.
                return if i == 0 {
                    Err(e)
                } else {
                    Ok(i * ring::RESPONSE_SIZE)
                };
            }
        }
        Ok(count)
    }

    fn mmap(
        &self,
        vma: *mut bindings::vm_area_struct,
        pgoff: u64,
        len: u64,
        shared: bool,
    ) -> Result {
        // A private mapping would copy the header on the consumer's first
        // store, and the kernel would never see the consumer move.
        if !shared {
            return Err(EINVAL);
        }
        let offset = pgoff.checked_mul(PAGE_SIZE).ok_or(EINVAL)?;
        if !ring::mmap_ok(offset, len, self.mem.layout.size) {
            return Err(EINVAL);
        }
        // SAFETY: `vma` is the VFS's for this call; the range lies inside
        // the area, which the mapping's file keeps alive.
        to_result(unsafe {
            bindings::rvfio_vma_remap_vmalloc(vma, self.mem.ptr.cast(), pgoff as _)
        })
    }
}

/// A posted page request, for the faulting access to wait on.
pub(crate) struct PendingRequest {
    ring: Arc<Ring>,
    req: Arc<PageRequest>,
    cookie: u32,
}

impl PendingRequest {
    /// Waits for the response, at most the ring's timeout; a fatal signal
    /// ends the wait too. Timeout and signal count as INVALID. Must not be
    /// called with a lock that the responder (user space mapping the IOVA:
    /// the container's mutex) needs.
    pub(crate) fn wait(self) -> Response {
        // SAFETY: the completion was initialised; `self.req` keeps it alive.
        let ret = unsafe {
            bindings::rvfio_completion_wait_killable(
                self.req.done.get(),
                self.ring.config.timeout_ms,
            )
        };
        if ret <= 0
            && self
                .ring
                .pending
                .lock()
                .requests
                .remove(&self.cookie)
                .is_some()
        {
            // Timed out or killed, and nobody answered: it is withdrawn, a
            // late response gets ENOENT.
            return Response::Invalid;
        }
        // Answered (perhaps while we gave up): the responder stored the code
        // before completing, under the lock we took above.
        Response::from_code(self.req.response.load(Ordering::Acquire)).unwrap_or(Response::Invalid)
    }
}

/// Returns the ring fd's reference to `ring`.
///
/// # Safety
///
/// `ring` is the private data of a ring fd (from [`install_fd`]).
unsafe fn ring_of<'a>(ring: *const c_void) -> &'a Ring {
    // SAFETY: the file holds a reference on the ring until its release.
    unsafe { &*ring.cast::<Ring>() }
}

/// Creates the ring fd holding a reference on `ring`; the fd or an error.
pub(crate) fn install_fd(ring: &Arc<Ring>) -> Result<i32> {
    let raw = Arc::into_raw(ring.clone()).cast::<c_void>();
    // SAFETY: `raw` is a counted reference the file keeps until
    // `rvfio_rs_ring_release`.
    let fd = unsafe { bindings::rvfio_ring_getfd(raw) };
    if fd < 0 {
        // SAFETY: no file took it: give the reference back.
        drop(unsafe { Arc::from_raw(raw.cast::<Ring>()) });
        return Err(Error::from_errno(fd));
    }
    Ok(fd)
}

/// `release`: the last reference to the ring fd (and every mmap() of it)
/// went away.
#[no_mangle]
extern "C" fn rvfio_rs_ring_release(ring: *const c_void) {
    // SAFETY: the reference `install_fd` gave the file.
    let ring = unsafe { Arc::from_raw(ring.cast::<Ring>()) };
    ring.hub.unpublish(&ring);
    ring.detach();
}

/// `poll`.
#[no_mangle]
extern "C" fn rvfio_rs_ring_poll(
    ring: *const c_void,
    file: *mut bindings::file,
    pt: *mut bindings::poll_table_struct,
) -> u32 {
    // SAFETY: called on a live ring fd.
    unsafe { ring_of(ring) }.poll(file, pt)
}

/// `write`: page responses.
#[no_mangle]
extern "C" fn rvfio_rs_ring_write(ring: *const c_void, buf: usize, count: usize) -> isize {
    // SAFETY: called on a live ring fd.
    match unsafe { ring_of(ring) }.write(buf, count) {
        // CAST: at most `count`, which the VFS caps at MAX_RW_COUNT.
        Ok(n) => n as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// `mmap`.
#[no_mangle]
extern "C" fn rvfio_rs_ring_mmap(
    ring: *const c_void,
    vma: *mut bindings::vm_area_struct,
    pgoff: core::ffi::c_ulong,
    len: core::ffi::c_ulong,
    shared: bool,
) -> i32 {
    // SAFETY: called on a live ring fd.
    match unsafe { ring_of(ring) }.mmap(vma, pgoff, len, shared) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}
