// SPDX-License-Identifier: GPL-2.0

//! Dirty-bitmap arithmetic (no kernel dependency; tested on the host).
//!
//! type1 reports dirty pages per mapping into the user's bitmap with
//! `update_user_bitmap()`: the mapping's bits start at bit `(dma.iova -
//! base) / pgsize` of the user bitmap; the words written start at that bit's
//! u64 word and cover `DIRTY_BITMAP_BYTES(nbits + shift)` bytes; when the
//! mapping does not start on a word boundary, the first word is ORed with
//! what the user buffer already held there (the whole word: type1's
//! `bitmap_or()` works on whole words), so the previous mapping's bits stay.
//! Other words are overwritten. rvfio writes exactly the same words.
//!
//! Which pages are dirty: type1 reports every page of a mapping when any
//! IOMMU-backed group has not declared its dirty scope through pin_pages
//! (`num_non_pinned_groups`), because the device may have written anywhere.
//! Until rvfio supports emulated-IOMMU groups and pin_pages, every group is
//! such a group, so every mapped page is reported dirty, as type1 does then.

/// type1's `DIRTY_BITMAP_BYTES(n)`: bytes of a bitmap of `n` bits rounded up
/// to whole u64 words.
pub(crate) fn bitmap_bytes(nbits: u64) -> u64 {
    nbits.div_ceil(64) * 8
}

/// type1's `verify_bitmap_size()`: a bitmap of `bitmap_size` bytes must hold
/// `npages` bits and stay within `max`.
pub(crate) fn bitmap_size_ok(npages: u64, bitmap_size: u64, max: u64) -> bool {
    npages != 0 && bitmap_size != 0 && bitmap_size <= max && bitmap_size >= bitmap_bytes(npages)
}

/// Where one mapping's bits go in the user bitmap.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Placement {
    /// Index of the first u64 word written.
    pub(crate) first_word: u64,
    /// Bit position of the mapping's first page in that word.
    pub(crate) shift: u32,
    /// Number of words written.
    pub(crate) words: u64,
}

/// Placement of a mapping of `nbits` pages starting `bit_offset` pages after
/// the bitmap's base IOVA.
pub(crate) fn placement(bit_offset: u64, nbits: u64) -> Placement {
    let shift = (bit_offset % 64) as u32;
    Placement {
        first_word: bit_offset / 64,
        shift,
        words: bitmap_bytes(nbits + u64::from(shift)) / 8,
    }
}

/// Word `i` (0-based, `i < p.words`) written for a mapping of `nbits`
/// pages placed at `p`, whose own bitmap's u64 word `j` is `src(j)` (bits at
/// or past `nbits` are ignored); `leftover` is the user's word at
/// `p.first_word`: when `p.shift` is not 0, all of its bits are kept (type1
/// ORs the whole word back, not just the `shift` bits below the mapping).
pub(crate) fn shifted_word(
    p: &Placement,
    nbits: u64,
    i: u64,
    leftover: u64,
    src: &dyn Fn(u64) -> u64,
) -> u64 {
    let masked = |j: u64| -> u64 {
        let lo = j * 64;
        if lo >= nbits {
            0
        } else if nbits - lo >= 64 {
            src(j)
        } else {
            src(j) & ((1u64 << (nbits - lo)) - 1)
        }
    };
    let w = if p.shift == 0 {
        masked(i)
    } else {
        let lower = if i == 0 {
            0
        } else {
            masked(i - 1) >> (64 - p.shift)
        };
        (masked(i) << p.shift) | lower
    };
    if i == 0 && p.shift != 0 {
        // type1's bitmap_or(..., &leftover, shift) works on whole words.
        w | leftover
    } else {
        w
    }
}

/// [`shifted_word`] for a mapping whose pages are all dirty.
#[cfg(test)]
pub(crate) fn all_dirty_word(p: &Placement, nbits: u64, i: u64, leftover: u64) -> u64 {
    shifted_word(p, nbits, i, leftover, &|_| u64::MAX)
}

/// Sets bits `[first, first + n)` of `words`.
pub(crate) fn set_bits(words: &mut [u64], first: u64, n: u64) {
    for b in first..first + n {
        if let Some(w) = words.get_mut((b / 64) as usize) {
            *w |= 1u64 << (b % 64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_type1() {
        assert_eq!(bitmap_bytes(1), 8);
        assert_eq!(bitmap_bytes(64), 8);
        assert_eq!(bitmap_bytes(65), 16);
        let max = 256 << 20;
        assert!(bitmap_size_ok(64, 8, max));
        assert!(!bitmap_size_ok(65, 8, max));
        assert!(!bitmap_size_ok(0, 8, max));
        assert!(!bitmap_size_ok(1, 0, max));
        assert!(!bitmap_size_ok(1, max + 8, max));
    }

    #[test]
    fn aligned_mapping_sets_exact_bits() {
        let p = placement(0, 70);
        assert_eq!(
            p,
            Placement {
                first_word: 0,
                shift: 0,
                words: 2
            }
        );
        assert_eq!(all_dirty_word(&p, 70, 0, 0xdead), u64::MAX);
        assert_eq!(all_dirty_word(&p, 70, 1, 0), 0x3f);
    }

    #[test]
    fn sparse_bitmap_is_shifted_across_words() {
        // Pages 0, 5 and 63 dirty in a 70-page mapping placed at bit 10.
        let mut own = [0u64; 2];
        set_bits(&mut own, 0, 1);
        set_bits(&mut own, 5, 1);
        set_bits(&mut own, 63, 1);
        set_bits(&mut own, 69, 1);
        let p = placement(10, 70);
        assert_eq!(p.words, 2);
        let src = |j: u64| own[j as usize];
        let w0 = shifted_word(&p, 70, 0, 0b11_1111_1111, &src);
        let w1 = shifted_word(&p, 70, 1, 0, &src);
        assert_eq!(w0, 0b11_1111_1111 | (1 << 10) | (1 << 15));
        // Page 63 lands on bit 73 (word 1, bit 9), page 69 on bit 79.
        assert_eq!(w1, (1 << 9) | (1 << 15));
    }

    #[test]
    fn unaligned_mapping_keeps_low_bits_of_first_word() {
        // Mapping of 3 pages starting at bit 130: word 2, bits 2..5.
        let p = placement(130, 3);
        assert_eq!(
            p,
            Placement {
                first_word: 2,
                shift: 2,
                words: 1
            }
        );
        assert_eq!(all_dirty_word(&p, 3, 0, 0b11), 0b11111);
        assert_eq!(
            all_dirty_word(&p, 3, 0, 0xa5 << 56),
            (0xa5 << 56) | 0b11100,
            "the whole user word is kept, as type1's bitmap_or does"
        );
        // Crossing a word boundary: 64 pages from bit 60.
        let p = placement(60, 64);
        assert_eq!(p.words, 2);
        assert_eq!(all_dirty_word(&p, 64, 0, 0), 0xf << 60);
        assert_eq!(all_dirty_word(&p, 64, 1, 0), (1 << 60) - 1);
        // Only the first word takes the user's bits.
        assert_eq!(all_dirty_word(&p, 64, 1, u64::MAX), (1 << 60) - 1);
    }
}
