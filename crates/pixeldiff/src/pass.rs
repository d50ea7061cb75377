//! The per-pixel pass: classifies every pixel of the canvas into one byte of a [`Plane`].
//!
//! Each byte holds the pixel's class in its top 3 bits and, in the low 5 bits, the faded grey of
//! the baseline for the diff image. The plane is therefore at the same time the input of the
//! region clustering and, with a 256-entry palette, the diff image itself (see `render`).

use rayon::prelude::*;

use crate::options::DiffOptions;
use crate::pixel::{
    Layout, MAX_YIQ_DELTA, View, antialiased, color_delta, grey_offset, grey_row, is_flat,
};

/// Pixel classes, stored in the top bits of a plane byte.
pub(crate) mod class {
    /// Same bytes in both images.
    pub(crate) const SAME: u8 = 0;
    /// Different bytes, perceptual distance under the faint threshold or not in a solid fill.
    pub(crate) const FAINT: u8 = 1;
    /// Perceptually different, but anti-aliasing (pixelmatch's AA detector): not counted.
    pub(crate) const AA: u8 = 2;
    /// Perceptually different: counted, as pixelmatch counts it.
    pub(crate) const DIFF: u8 = 3;
    /// Under the perceptual threshold but over the faint one, inside a solid fill in both images.
    pub(crate) const FILL: u8 = 4;
    /// Present in only one of the images (their sizes differ).
    pub(crate) const OUTSIDE: u8 = 5;
}

/// Bits the class is shifted by inside a plane byte.
pub(crate) const CLASS_SHIFT: u8 = 5;

/// The class of a plane byte.
#[inline]
pub(crate) fn class_of(byte: u8) -> u8 {
    byte >> CLASS_SHIFT
}

/// Pixel counts of one pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Pixels whose bytes differ (any channel), including the area outside the overlap.
    pub(crate) exact: u64,
    /// Perceptually different pixels, not anti-aliasing, including the area outside the overlap.
    pub(crate) perceptual: u64,
    /// Perceptually different pixels classified as anti-aliasing.
    pub(crate) antialiased: u64,
    /// Faint changes inside solid fills.
    pub(crate) fill: u64,
}

impl Counts {
    fn add(self, other: Self) -> Self {
        Self {
            exact: self.exact + other.exact,
            perceptual: self.perceptual + other.perceptual,
            antialiased: self.antialiased + other.antialiased,
            fill: self.fill + other.fill,
        }
    }
}

/// One class+grey byte per pixel of the union canvas.
#[derive(Clone, Debug)]
pub(crate) struct Plane {
    pub(crate) width: usize,
    pub(crate) bytes: Vec<u8>,
    /// Rows that contain a [`class::DIFF`] or [`class::FILL`] pixel, so clustering skips the rest.
    pub(crate) marked_rows: Vec<bool>,
}

impl Plane {
    #[inline]
    pub(crate) fn class(&self, x: usize, y: usize) -> u8 {
        class_of(self.bytes[y * self.width + x])
    }
}

/// Runs the pass over a canvas of `width × height`, of which the views `a` and `b` (equal sizes,
/// any layouts) cover the top-left corner. Parallel over rows.
pub(crate) fn run<A: Layout, B: Layout>(
    a: View<'_, A>,
    b: View<'_, B>,
    width: usize,
    height: usize,
    options: &DiffOptions,
) -> (Plane, Counts) {
    let thresholds = Thresholds {
        max_delta: MAX_YIQ_DELTA * options.threshold * options.threshold,
        faint_delta: MAX_YIQ_DELTA * options.effective_faint_threshold().powi(2),
        include_aa: options.include_aa,
    };
    let (ow, oh) = (a.width, a.height);
    let outside = (class::OUTSIDE) << CLASS_SHIFT;
    let mut bytes = vec![0u8; width * height];
    let mut marked_rows = vec![false; height];
    let counts = bytes
        .par_chunks_mut(width)
        .zip(marked_rows.par_iter_mut())
        .enumerate()
        .map(|(y, (row, marked))| {
            if y >= oh {
                row.fill(outside);
                return Counts::default();
            }
            let (inside, beyond) = row.split_at_mut(ow);
            beyond.fill(outside);
            let counts = diff_row(a, b, y, inside, &thresholds);
            *marked = counts.perceptual > 0 || counts.fill > 0;
            counts
        })
        .reduce(Counts::default, Counts::add);

    let outside_pixels = (width * height - ow * oh) as u64;
    let counts = Counts {
        exact: counts.exact + outside_pixels,
        perceptual: counts.perceptual + outside_pixels,
        ..counts
    };
    (
        Plane {
            width,
            bytes,
            marked_rows,
        },
        counts,
    )
}

struct Thresholds {
    max_delta: f64,
    faint_delta: f64,
    include_aa: bool,
}

fn diff_row<A: Layout, B: Layout>(
    a: View<'_, A>,
    b: View<'_, B>,
    y: usize,
    out: &mut [u8],
    t: &Thresholds,
) -> Counts {
    let row_a = a.row(y);
    let row_b = b.row(y);
    let mut counts = Counts::default();
    // Most rows of two screenshots are identical: one memcmp settles them (when both images
    // have the same layout; otherwise pixels are compared as RGBA below).
    if A::BPP == B::BPP && row_a == row_b {
        grey_row::<A>(row_a, out);
        return counts;
    }
    let pixels = row_a.chunks_exact(A::BPP).zip(row_b.chunks_exact(B::BPP));
    for (x, (o, (pa, pb))) in out.iter_mut().zip(pixels).enumerate() {
        let ca = A::rgba(pa);
        let grey = grey_offset(ca);
        if A::key(pa) == B::key(pb) {
            *o = grey;
            continue;
        }
        counts.exact += 1;
        let delta = color_delta(ca, B::rgba(pb)).abs();
        let class = if delta > t.max_delta {
            if !t.include_aa && (antialiased(a, x, y, b) || antialiased(b, x, y, a)) {
                counts.antialiased += 1;
                class::AA
            } else {
                counts.perceptual += 1;
                class::DIFF
            }
        } else if delta > t.faint_delta && is_flat(a, x, y) && is_flat(b, x, y) {
            counts.fill += 1;
            class::FILL
        } else {
            class::FAINT
        };
        *o = (class << CLASS_SHIFT) | grey;
    }
    counts
}
