// SPDX-License-Identifier: GPL-2.0

//! The fault ring's rules without the kernel (tested on the host): the
//! checks of `struct rvfio_fault_ring_create`, the layout of the mapping,
//! the producer's index arithmetic, and the page-response codes
//! (`include/uapi/linux/rvfio.h`; `fault_ring.rs` is the kernel object).
//!
//! Indices are free-running `u32`s, as in the uapi: record `i` lives in
//! slot `i & (entries - 1)`, the ring holds `producer - consumer` records
//! (wrapping), and since `entries` is at most 2^16 the difference is never
//! ambiguous. Worked example with 4 entries after 2^32 - 2 faults:
//! producer = 0xffff_fffe, consumer = 0xffff_fffc: 2 records, in slots 0
//! and 1 (0xffff_fffc & 3 = 0, 0xffff_fffd & 3 = 1); two more faults take
//! slots 2 and 3 and move the producer to 0 (wrapped); the ring is then full
//! (0 - 0xffff_fffc = 4 in u32) and the next fault is lost.
//!
//! The consumer index comes from memory user space can write at any time.
//! It is read once per decision and only accepted when it lies between the
//! last accepted value and the producer, so it can never make the kernel
//! overwrite a record that was not consumed or index outside the ring (the
//! slot always comes from the kernel's own producer index).

/// `RVFIO_FAULT_RING_MAX_ENTRIES`.
pub(crate) const MAX_ENTRIES: u32 = 65536;
/// `sizeof(struct rvfio_fault)`.
pub(crate) const RECORD_SIZE: u32 = 64;
/// `RVFIO_FAULT_RING_MAX_TIMEOUT_MS` and `..._DEFAULT_TIMEOUT_MS`.
pub(crate) const MAX_TIMEOUT_MS: u32 = 60000;
pub(crate) const DEFAULT_TIMEOUT_MS: u32 = 1000;

/// `RVFIO_FAULT_KIND_*`.
pub(crate) const KIND_DMA: u32 = 1 << 0;
pub(crate) const KIND_PAGE_REQ: u32 = 1 << 1;
const KINDS_ALL: u32 = KIND_DMA | KIND_PAGE_REQ;

/// `RVFIO_FAULT_RING_PAGE_REQUESTS`, `RVFIO_FAULT_RING_HW_PAGE_REQUESTS`.
pub(crate) const F_PAGE_REQUESTS: u32 = 1 << 0;
pub(crate) const F_HW_PAGE_REQUESTS: u32 = 1 << 1;
const FLAGS_ALL: u32 = F_PAGE_REQUESTS | F_HW_PAGE_REQUESTS;

/// `RVFIO_FAULT_RING_DETACHED` (header `state`).
pub(crate) const STATE_DETACHED: u32 = 1 << 0;

/// `RVFIO_FAULT_{GROUP,RID,PASID}_VALID`, `RVFIO_FAULT_EMULATED`.
pub(crate) const REC_GROUP_VALID: u16 = 1 << 0;
pub(crate) const REC_RID_VALID: u16 = 1 << 1;
pub(crate) const REC_PASID_VALID: u16 = 1 << 2;
pub(crate) const REC_EMULATED: u16 = 1 << 3;

/// `RVFIO_FAULT_ACCESS_*`.
pub(crate) const ACCESS_READ: u8 = 1 << 0;
pub(crate) const ACCESS_WRITE: u8 = 1 << 1;

/// `RVFIO_FAULT_STAGE_1`: a guest page table bound to a nesting container.
pub(crate) const STAGE_1: u8 = 1;
/// `RVFIO_FAULT_STAGE_2`: the container's own mappings.
pub(crate) const STAGE_2: u8 = 2;

/// `RVFIO_FAULT_REASON_*`.
pub(crate) const REASON_HW: u8 = 0;
pub(crate) const REASON_NOT_MAPPED: u8 = 1;
pub(crate) const REASON_PERMISSION: u8 = 2;

/// `RVFIO_FAULT_RESPONSE_*`.
pub(crate) const RESPONSE_SUCCESS: u32 = 0;
pub(crate) const RESPONSE_INVALID: u32 = 1;
pub(crate) const RESPONSE_FAILURE: u32 = 2;

/// `struct rvfio_fault_ring_header`, the first bytes of page 0.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) producer: u32,
    pub(crate) entries: u32,
    pub(crate) entry_size: u32,
    pub(crate) records_offset: u32,
    pub(crate) lost: u64,
    pub(crate) mmap_size: u64,
    pub(crate) kinds: u32,
    pub(crate) flags: u32,
    pub(crate) consumer_rejected: u32,
    pub(crate) state: u32,
    pub(crate) reserved0: [u32; 4],
    pub(crate) consumer: u32,
    pub(crate) reserved1: [u32; 15],
}

/// `struct rvfio_fault`: one record.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) seq: u64,
    pub(crate) timestamp_ns: u64,
    pub(crate) iova: u64,
    pub(crate) kind: u16,
    pub(crate) flags: u16,
    pub(crate) access: u8,
    pub(crate) stage: u8,
    pub(crate) reason: u8,
    pub(crate) reserved0: u8,
    pub(crate) group_id: i32,
    pub(crate) requester_id: u32,
    pub(crate) pasid: u32,
    pub(crate) cookie: u32,
    pub(crate) reserved1: [u64; 2],
}

const _: () = assert!(core::mem::size_of::<Record>() == RECORD_SIZE as usize);
const _: () = assert!(core::mem::size_of::<Header>() == 128);
const _: () = assert!(core::mem::offset_of!(Header, consumer) == 64);
const _: () = assert!(core::mem::offset_of!(Record, group_id) == 32);

/// Why a `struct rvfio_fault_ring_create` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CreateError {
    /// EINVAL.
    Invalid,
    /// EOPNOTSUPP: hardware page requests.
    NotSupported,
}

/// The fields of `struct rvfio_fault_ring_create` after `argsz`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CreateArgs {
    pub(crate) flags: u32,
    pub(crate) entries: u32,
    pub(crate) eventfd: i32,
    pub(crate) kinds: u32,
    pub(crate) timeout_ms: u32,
}

/// A ring's configuration, from checked arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) entries: u32,
    pub(crate) kinds: u32,
    pub(crate) flags: u32,
    /// How long a page request waits (the default filled in).
    pub(crate) timeout_ms: u32,
    /// The eventfd to signal, if any (still to be looked up).
    pub(crate) eventfd: Option<i32>,
}

impl Config {
    /// rvfio's own translation faults become page requests.
    pub(crate) fn page_requests(&self) -> bool {
        self.flags & F_PAGE_REQUESTS != 0
    }

    /// Faults of `kind` are recorded.
    pub(crate) fn reports(&self, kind: u32) -> bool {
        self.kinds & kind != 0
    }
}

/// Checks a create request in the documented order: flags, hardware page
/// requests, entries, kinds, timeout, eventfd number (EBADF for a number that
/// is not an open file comes later, from the lookup).
pub(crate) fn check_create(a: &CreateArgs) -> Result<Config, CreateError> {
    if a.flags & !FLAGS_ALL != 0 {
        return Err(CreateError::Invalid);
    }
    if a.flags & F_HW_PAGE_REQUESTS != 0 {
        return Err(CreateError::NotSupported);
    }
    if !a.entries.is_power_of_two() || a.entries > MAX_ENTRIES {
        return Err(CreateError::Invalid);
    }
    if a.kinds == 0 || a.kinds & !KINDS_ALL != 0 {
        return Err(CreateError::Invalid);
    }
    let page_requests = a.flags & F_PAGE_REQUESTS != 0;
    if page_requests != (a.kinds & KIND_PAGE_REQ != 0) {
        return Err(CreateError::Invalid);
    }
    let timeout_ms = match (page_requests, a.timeout_ms) {
        (true, 0) => DEFAULT_TIMEOUT_MS,
        (true, t) if t <= MAX_TIMEOUT_MS => t,
        (false, 0) => 0,
        _ => return Err(CreateError::Invalid),
    };
    let eventfd = match a.eventfd {
        -1 => None,
        fd if fd >= 0 => Some(fd),
        _ => return Err(CreateError::Invalid),
    };
    Ok(Config {
        entries: a.entries,
        kinds: a.kinds,
        flags: a.flags,
        timeout_ms,
        eventfd,
    })
}

/// Where things are in the ring's mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Offset of record 0: the header has the first page to itself.
    pub(crate) records_offset: u64,
    /// The header page plus the records, rounded up to whole pages.
    pub(crate) size: u64,
}

/// The layout for `entries` records (checked by [`check_create`]) with
/// pages of `page_size` bytes.
pub(crate) fn layout(entries: u32, page_size: u64) -> Layout {
    let records = u64::from(entries) * u64::from(RECORD_SIZE);
    Layout {
        records_offset: page_size,
        size: page_size + records.div_ceil(page_size) * page_size,
    }
}

/// An mmap() of `len` bytes at byte `offset` (both from the kernel, so
/// whole pages) stays inside a mapping of `size` bytes.
pub(crate) fn mmap_ok(offset: u64, len: u64, size: u64) -> bool {
    len != 0 && offset.checked_add(len).is_some_and(|end| end <= size)
}

/// `user` is an acceptable consumer index: from `last` (the last accepted
/// one) it does not go past `producer`. Wrapping arithmetic: both distances
/// are taken forward from `last`, so a value "behind" `last` is a huge
/// distance and fails too.
pub(crate) fn consumer_ok(last: u32, user: u32, producer: u32) -> bool {
    user.wrapping_sub(last) <= producer.wrapping_sub(last)
}

/// Where a fault went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Push {
    /// Write the record into `slot`; it has sequence number `seq`.
    Slot { slot: u32, seq: u64 },
    /// The ring was full: counted as lost.
    Lost { seq: u64 },
}

/// The kernel's side of the ring indices.
///
/// # Invariants
///
/// `producer - consumer` (wrapping) is at most `entries`; `consumer` only
/// moves forward, to values user space stored that passed
/// [`consumer_ok`]; `seq` counts every push, recorded or lost.
#[derive(Clone, Debug)]
pub(crate) struct Producer {
    entries: u32,
    producer: u32,
    consumer: u32,
    /// The consumer value last read from user space, accepted or not: a
    /// rejected value is counted once, not at every look.
    seen: u32,
    seq: u64,
    lost: u64,
    rejected: u32,
}

impl Producer {
    /// An empty ring of `entries` slots (a power of two).
    pub(crate) fn new(entries: u32) -> Self {
        Self {
            entries,
            producer: 0,
            consumer: 0,
            seen: 0,
            seq: 0,
            lost: 0,
            rejected: 0,
        }
    }

    /// Takes the consumer index user space has stored now.
    pub(crate) fn observe_consumer(&mut self, user: u32) {
        if user == self.seen {
            return;
        }
        self.seen = user;
        if consumer_ok(self.consumer, user, self.producer) {
            // INVARIANT: between the old consumer and the producer.
            self.consumer = user;
        } else {
            self.rejected = self.rejected.wrapping_add(1);
        }
    }

    /// Records not consumed yet (after the last [`Self::observe_consumer`]).
    pub(crate) fn unconsumed(&self) -> u32 {
        self.producer.wrapping_sub(self.consumer)
    }

    /// One fault, with the consumer index user space has stored now: a slot
    /// for its record, or lost when every slot holds an unconsumed record.
    /// The caller writes the record and then publishes [`Self::producer`].
    pub(crate) fn push(&mut self, user_consumer: u32) -> Push {
        self.observe_consumer(user_consumer);
        let seq = self.seq;
        self.seq += 1;
        if self.unconsumed() >= self.entries {
            self.lost += 1;
            return Push::Lost { seq };
        }
        let slot = self.producer & (self.entries - 1);
        // INVARIANT: there was room for one more.
        self.producer = self.producer.wrapping_add(1);
        Push::Slot { slot, seq }
    }

    /// A fault that happened but has no record to go into (its page
    /// request could not be allocated): counted as lost, like one that
    /// found the ring full.
    pub(crate) fn count_lost(&mut self) {
        self.seq += 1;
        self.lost += 1;
    }

    pub(crate) fn producer(&self) -> u32 {
        self.producer
    }

    pub(crate) fn lost(&self) -> u64 {
        self.lost
    }

    pub(crate) fn rejected(&self) -> u32 {
        self.rejected
    }
}

/// A page response's code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Response {
    Success,
    Invalid,
    Failure,
}

impl Response {
    /// `RVFIO_FAULT_RESPONSE_*`, or `None` for an unknown code (EINVAL).
    pub(crate) fn from_code(code: u32) -> Option<Self> {
        match code {
            RESPONSE_SUCCESS => Some(Self::Success),
            RESPONSE_INVALID => Some(Self::Invalid),
            RESPONSE_FAILURE => Some(Self::Failure),
            _ => None,
        }
    }

    /// Back to the uapi value (what a waiter is woken with).
    pub(crate) fn code(self) -> u32 {
        match self {
            Self::Success => RESPONSE_SUCCESS,
            Self::Invalid => RESPONSE_INVALID,
            Self::Failure => RESPONSE_FAILURE,
        }
    }
}

/// `sizeof(struct rvfio_fault_response)`.
pub(crate) const RESPONSE_SIZE: usize = 8;

/// How many responses a write() of `count` bytes holds; `None` (EINVAL)
/// unless it is a whole number of them.
pub(crate) fn responses_in(count: usize) -> Option<usize> {
    (count % RESPONSE_SIZE == 0).then_some(count / RESPONSE_SIZE)
}

/// Page-request cookies: never 0 (records that are not page requests have
/// cookie 0), wrapping after 2^32 - 1; the caller skips values still
/// pending.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cookies {
    last: u32,
}

impl Cookies {
    pub(crate) fn next(&mut self) -> u32 {
        self.last = self.last.wrapping_add(1);
        if self.last == 0 {
            self.last = 1;
        }
        self.last
    }
}

/// One access of an emulated-IOMMU device may raise a new page request for
/// `iova` only past the IOVA of its previous one: a success that did not
/// fix the mapping fails the access instead of asking forever, and an
/// access of `n` pages asks at most `n` times.
pub(crate) fn may_request(previous: Option<u64>, iova: u64) -> bool {
    previous.map_or(true, |p| iova > p)
}

/// `report_iommu_fault()`'s flags (`IOMMU_FAULT_WRITE` = 1, else a read)
/// as a record's access.
pub(crate) fn hw_access(flags: i32) -> u8 {
    if flags & 1 != 0 {
        ACCESS_WRITE
    } else {
        ACCESS_READ
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    fn args(flags: u32, entries: u32, kinds: u32) -> CreateArgs {
        CreateArgs {
            flags,
            entries,
            eventfd: -1,
            kinds,
            timeout_ms: 0,
        }
    }

    #[test]
    fn create_checks() {
        let ok = check_create(&args(0, 8, KIND_DMA)).unwrap();
        assert_eq!(ok.entries, 8);
        assert_eq!(ok.timeout_ms, 0);
        assert_eq!(ok.eventfd, None);
        assert!(!ok.page_requests());
        assert!(ok.reports(KIND_DMA) && !ok.reports(KIND_PAGE_REQ));

        let inval = Err(CreateError::Invalid);
        assert_eq!(check_create(&args(1 << 5, 8, KIND_DMA)), inval);
        assert_eq!(
            check_create(&args(F_HW_PAGE_REQUESTS, 8, KINDS_ALL)),
            Err(CreateError::NotSupported)
        );
        // Unknown flags win over the hardware flag.
        assert_eq!(
            check_create(&args(F_HW_PAGE_REQUESTS | 4, 8, KINDS_ALL)),
            inval
        );
        for n in [0, 3, 6, 100, MAX_ENTRIES + 1, MAX_ENTRIES * 2, u32::MAX] {
            assert_eq!(check_create(&args(0, n, KIND_DMA)), inval, "{n}");
        }
        for n in [1, 2, 4, 1024, MAX_ENTRIES] {
            assert!(check_create(&args(0, n, KIND_DMA)).is_ok(), "{n}");
        }
        assert_eq!(check_create(&args(0, 8, 0)), inval);
        assert_eq!(check_create(&args(0, 8, KIND_DMA | 4)), inval);
        // PAGE_REQ kind and the flag go together.
        assert_eq!(check_create(&args(0, 8, KINDS_ALL)), inval);
        assert_eq!(check_create(&args(F_PAGE_REQUESTS, 8, KIND_DMA)), inval);
        let pr = check_create(&args(F_PAGE_REQUESTS, 8, KINDS_ALL)).unwrap();
        assert!(pr.page_requests());
        assert_eq!(pr.timeout_ms, DEFAULT_TIMEOUT_MS);
        let only_pr = check_create(&args(F_PAGE_REQUESTS, 8, KIND_PAGE_REQ)).unwrap();
        assert!(!only_pr.reports(KIND_DMA));
    }

    #[test]
    fn create_timeout_and_eventfd() {
        let mut a = args(F_PAGE_REQUESTS, 4, KINDS_ALL);
        a.timeout_ms = 1;
        assert_eq!(check_create(&a).unwrap().timeout_ms, 1);
        a.timeout_ms = MAX_TIMEOUT_MS;
        assert_eq!(check_create(&a).unwrap().timeout_ms, MAX_TIMEOUT_MS);
        a.timeout_ms = MAX_TIMEOUT_MS + 1;
        assert_eq!(check_create(&a), Err(CreateError::Invalid));
        // A timeout means nothing without page requests: refused.
        let mut b = args(0, 4, KIND_DMA);
        b.timeout_ms = 10;
        assert_eq!(check_create(&b), Err(CreateError::Invalid));

        let mut c = args(0, 4, KIND_DMA);
        c.eventfd = 0;
        assert_eq!(check_create(&c).unwrap().eventfd, Some(0));
        c.eventfd = -2;
        assert_eq!(check_create(&c), Err(CreateError::Invalid));
        c.eventfd = i32::MIN;
        assert_eq!(check_create(&c), Err(CreateError::Invalid));
    }

    #[test]
    fn layout_and_mmap() {
        assert_eq!(
            layout(1, 4096),
            Layout {
                records_offset: 4096,
                size: 8192
            }
        );
        assert_eq!(layout(64, 4096).size, 8192);
        assert_eq!(layout(65, 4096).size, 4096 * 3);
        assert_eq!(layout(MAX_ENTRIES, 4096).size, 4096 + (4 << 20));
        let size = layout(128, 4096).size; // 3 pages
        assert!(mmap_ok(0, size, size));
        assert!(mmap_ok(0, 4096, size));
        assert!(mmap_ok(4096, 8192, size));
        assert!(!mmap_ok(4096, size, size));
        assert!(!mmap_ok(size, 4096, size));
        assert!(!mmap_ok(0, size + 4096, size));
        assert!(!mmap_ok(0, 0, size));
        assert!(!mmap_ok(u64::MAX - 4095, 8192, size));
    }

    #[test]
    fn consumer_window() {
        assert!(consumer_ok(0, 0, 0));
        assert!(!consumer_ok(0, 1, 0));
        assert!(consumer_ok(2, 5, 5));
        assert!(consumer_ok(2, 3, 5));
        assert!(!consumer_ok(2, 6, 5));
        // Backwards.
        assert!(!consumer_ok(2, 1, 5));
        // Across the wrap.
        assert!(consumer_ok(u32::MAX - 1, 1, 2));
        assert!(consumer_ok(u32::MAX - 1, u32::MAX, 2));
        assert!(!consumer_ok(u32::MAX - 1, 3, 2));
        assert!(!consumer_ok(u32::MAX - 1, u32::MAX - 2, 2));
    }

    /// Pushes `n` faults with consumer `c`; returns the slots written.
    fn push_n(p: &mut Producer, n: u32, c: u32) -> std::vec::Vec<u32> {
        let mut slots = std::vec::Vec::new();
        for _ in 0..n {
            if let Push::Slot { slot, .. } = p.push(c) {
                slots.push(slot);
            }
        }
        slots
    }

    #[test]
    fn unallocated_fault_counts_lost_and_takes_no_slot() {
        let mut p = Producer::new(4);
        push_n(&mut p, 1, 0);
        p.count_lost();
        assert_eq!(p.lost(), 1);
        assert_eq!(p.producer(), 1);
        // The next record's sequence number says one fault is missing.
        assert!(matches!(p.push(0), Push::Slot { slot: 1, seq: 2 }));
    }

    #[test]
    fn full_ring_counts_lost_and_overwrites_nothing() {
        let mut p = Producer::new(4);
        assert_eq!(push_n(&mut p, 6, 0), [0, 1, 2, 3]);
        assert_eq!(p.lost(), 2);
        assert_eq!(p.producer(), 4);
        assert_eq!(p.unconsumed(), 4);
        // Sequence numbers count the lost ones too.
        assert_eq!(p.push(0), Push::Lost { seq: 6 });
        // Consuming two frees exactly two slots, the oldest ones.
        assert_eq!(p.push(2), Push::Slot { slot: 0, seq: 7 });
        assert_eq!(p.push(2), Push::Slot { slot: 1, seq: 8 });
        assert_eq!(p.push(2), Push::Lost { seq: 9 });
        assert_eq!(p.lost(), 4);
        assert_eq!(p.rejected(), 0);
    }

    #[test]
    fn bad_consumer_is_ignored_and_counted_once() {
        let mut p = Producer::new(4);
        push_n(&mut p, 2, 0);
        // Beyond the producer: ignored, the ring still holds 2.
        p.observe_consumer(7);
        assert_eq!(p.unconsumed(), 2);
        assert_eq!(p.rejected(), 1);
        // Seen again at the next push: not counted again, still ignored;
        // the record goes into the next free slot, nothing is overwritten.
        assert_eq!(p.push(7), Push::Slot { slot: 2, seq: 2 });
        assert_eq!(p.rejected(), 1);
        assert_eq!(p.push(7), Push::Slot { slot: 3, seq: 3 });
        assert_eq!(p.push(7), Push::Lost { seq: 4 });
        // A valid store fixes it.
        assert_eq!(p.push(4), Push::Slot { slot: 0, seq: 5 });
        assert_eq!(p.unconsumed(), 1);
        // Moving backwards is refused too.
        p.observe_consumer(3);
        assert_eq!(p.rejected(), 2);
        assert_eq!(p.unconsumed(), 1);
        // Even a value that later lies below the producer stays refused
        // until user space stores again: it did not read those records.
        let mut q = Producer::new(8);
        q.observe_consumer(3);
        push_n(&mut q, 5, 3);
        assert_eq!(q.unconsumed(), 5);
        assert_eq!(q.rejected(), 1);
        q.observe_consumer(5);
        assert_eq!(q.unconsumed(), 0);
    }

    #[test]
    fn indices_wrap() {
        let mut p = Producer::new(4);
        // Start just below the wrap, as after 2^32 - 2 consumed faults.
        p.producer = u32::MAX - 1;
        p.consumer = u32::MAX - 1;
        p.seen = u32::MAX - 1;
        assert_eq!(push_n(&mut p, 4, u32::MAX - 1), [2, 3, 0, 1]);
        assert_eq!(p.producer(), 2);
        assert_eq!(p.unconsumed(), 4);
        assert!(matches!(p.push(u32::MAX - 1), Push::Lost { .. }));
        // Consume across the wrap.
        assert_eq!(p.push(1), Push::Slot { slot: 2, seq: 5 });
        assert_eq!(p.unconsumed(), 2);
        assert_eq!(p.rejected(), 0);
    }

    #[test]
    fn one_entry_ring() {
        let mut p = Producer::new(1);
        assert_eq!(p.push(0), Push::Slot { slot: 0, seq: 0 });
        assert_eq!(p.push(0), Push::Lost { seq: 1 });
        assert_eq!(p.push(1), Push::Slot { slot: 0, seq: 2 });
        assert_eq!(p.lost(), 1);
    }

    #[test]
    fn long_run_against_a_model() {
        // A consumer that reads a varying number of records at a time and
        // sometimes stores garbage, against a model of the ring's contents:
        // every record goes to the slot after the previous one, only when
        // the model has room, and a fault is lost only when it is full.
        let entries = 8u32;
        let mut p = Producer::new(entries);
        let mut model = std::collections::VecDeque::new();
        let mut cons = 0u32;
        let mut written = 0u32;
        let mut x = 12345u32;
        for i in 0..100_000u64 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if x % 61 == 0 {
                // Past the producer: never acceptable.
                p.observe_consumer(p.producer().wrapping_add(1 + (x >> 20)));
            }
            match p.push(cons) {
                Push::Slot { slot, seq } => {
                    assert_eq!(seq, i);
                    assert!(model.len() < entries as usize);
                    assert_eq!(slot, written & (entries - 1));
                    written = written.wrapping_add(1);
                    model.push_back(seq);
                }
                Push::Lost { seq } => {
                    assert_eq!(seq, i);
                    assert_eq!(model.len(), entries as usize);
                }
            }
            assert_eq!(p.unconsumed() as usize, model.len());
            if x % 3 == 0 {
                let take = (x >> 8) % (model.len() as u32 + 1);
                for _ in 0..take {
                    model.pop_front();
                }
                cons = cons.wrapping_add(take);
            }
        }
        assert_eq!(u64::from(written) + p.lost(), 100_000);
        assert_eq!(p.producer(), written);
        assert!(p.lost() > 0 && p.rejected() > 0);
    }

    #[test]
    fn responses() {
        assert_eq!(Response::from_code(0), Some(Response::Success));
        assert_eq!(Response::from_code(1), Some(Response::Invalid));
        assert_eq!(Response::from_code(2), Some(Response::Failure));
        assert_eq!(Response::from_code(3), None);
        for r in [Response::Success, Response::Invalid, Response::Failure] {
            assert_eq!(Response::from_code(r.code()), Some(r));
        }
        assert_eq!(responses_in(0), Some(0));
        assert_eq!(responses_in(8), Some(1));
        assert_eq!(responses_in(24), Some(3));
        assert_eq!(responses_in(7), None);
        assert_eq!(responses_in(12), None);
    }

    #[test]
    fn cookies_never_zero() {
        let mut c = Cookies::default();
        assert_eq!(c.next(), 1);
        c.last = u32::MAX - 1;
        assert_eq!(c.next(), u32::MAX);
        assert_eq!(c.next(), 1);
    }

    #[test]
    fn page_request_progress() {
        assert!(may_request(None, 0));
        assert!(may_request(Some(0x1000), 0x2000));
        assert!(!may_request(Some(0x1000), 0x1000));
        assert!(!may_request(Some(0x2000), 0x1000));
    }

    #[test]
    fn hw_flags() {
        assert_eq!(hw_access(0), ACCESS_READ);
        assert_eq!(hw_access(1), ACCESS_WRITE);
    }
}
