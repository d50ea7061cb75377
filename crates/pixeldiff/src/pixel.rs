//! Per-pixel primitives: pixel layouts, the YIQ colour distance and the anti-aliasing detector,
//! ported from pixelmatch (mapbox/pixelmatch 5.3 / 7.x, ISC licence) so that the perceptual
//! counts agree with it exactly.
//!
//! Written by hand because no maintained Rust port exists (the `pixelmatch` crate 0.1 is built on
//! `image` 0.23 and per-pixel `DynamicImage` access, twice slower than a flat buffer).

use std::marker::PhantomData;

/// YIQ weights of pixelmatch for the luma (Y) component.
const Y_R: f64 = 0.298_895_31;
const Y_G: f64 = 0.586_622_47;
const Y_B: f64 = 0.114_482_23;

/// Largest possible value of [`color_delta`]: pixelmatch's `threshold` is a fraction of its root.
pub(crate) const MAX_YIQ_DELTA: f64 = 35_215.0;

/// The byte layout of a pixel buffer; the hot loops are monomorphised over it.
pub(crate) trait Layout: Copy + Send + Sync + 'static {
    /// Bytes per pixel.
    const BPP: usize;
    /// The pixel as RGBA (alpha 255 when the layout has none).
    fn rgba(p: &[u8]) -> [u8; 4];
    /// The pixel packed in a `u32`, for equality tests.
    #[inline]
    fn key(p: &[u8]) -> u32 {
        u32::from_le_bytes(Self::rgba(p))
    }
}

/// Three bytes per pixel, opaque.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rgb;

/// Four bytes per pixel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rgba;

impl Layout for Rgb {
    const BPP: usize = 3;
    #[inline]
    fn rgba(p: &[u8]) -> [u8; 4] {
        [p[0], p[1], p[2], 255]
    }
}

impl Layout for Rgba {
    const BPP: usize = 4;
    #[inline]
    fn rgba(p: &[u8]) -> [u8; 4] {
        [p[0], p[1], p[2], p[3]]
    }
}

/// A read-only window on the top-left `width × height` pixels of an image buffer whose rows are
/// `stride` bytes long. Comparing images of different sizes works on their common top-left area,
/// which is this view over each of them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View<'a, L> {
    data: &'a [u8],
    stride: usize,
    pub(crate) width: usize,
    pub(crate) height: usize,
    layout: PhantomData<L>,
}

impl<'a, L: Layout> View<'a, L> {
    /// A view of `width × height` pixels over a buffer of rows of `full_width` pixels.
    pub(crate) fn new(data: &'a [u8], full_width: usize, width: usize, height: usize) -> Self {
        debug_assert!(width <= full_width);
        debug_assert!(data.len() >= full_width * height * L::BPP);
        Self {
            data,
            stride: full_width * L::BPP,
            width,
            height,
            layout: PhantomData,
        }
    }

    #[inline]
    pub(crate) fn px(&self, x: usize, y: usize) -> &'a [u8] {
        let i = y * self.stride + x * L::BPP;
        &self.data[i..i + L::BPP]
    }

    #[inline]
    pub(crate) fn key(&self, x: usize, y: usize) -> u32 {
        L::key(self.px(x, y))
    }

    #[inline]
    pub(crate) fn rgba(&self, x: usize, y: usize) -> [u8; 4] {
        L::rgba(self.px(x, y))
    }

    /// The `width` pixels of row `y`, as bytes.
    #[inline]
    pub(crate) fn row(&self, y: usize) -> &'a [u8] {
        let start = y * self.stride;
        &self.data[start..start + self.width * L::BPP]
    }

    /// The pixel composited over white, as floating-point RGB (how pixelmatch 5 and Playwright
    /// treat translucent pixels).
    #[inline]
    pub(crate) fn rgb_over_white(&self, x: usize, y: usize) -> [f32; 3] {
        let [r, g, b, a] = self.rgba(x, y);
        if a == 255 {
            [f32::from(r), f32::from(g), f32::from(b)]
        } else {
            let a = f32::from(a) / 255.0;
            [r, g, b].map(|c| 255.0 + (f32::from(c) - 255.0) * a)
        }
    }
}

#[inline]
fn blended(p: [u8; 4]) -> [f64; 3] {
    let [r, g, b, a] = p;
    if a == 255 {
        [f64::from(r), f64::from(g), f64::from(b)]
    } else {
        let a = f64::from(a) / 255.0;
        [r, g, b].map(|c| 255.0 + (f64::from(c) - 255.0) * a)
    }
}

/// Squared perceptual distance of two colours in YIQ space (Kotsarenko & Ramos), as pixelmatch
/// computes it: in `0..=35215`, negative when the second pixel is darker.
#[inline]
pub(crate) fn color_delta(a: [u8; 4], b: [u8; 4]) -> f64 {
    let [r1, g1, b1] = blended(a);
    let [r2, g2, b2] = blended(b);
    let (dr, dg, db) = (r1 - r2, g1 - g2, b1 - b2);
    let y = dr * Y_R + dg * Y_G + db * Y_B;
    let i = dr * 0.595_977_99 - dg * 0.274_176_10 - db * 0.321_801_89;
    let q = dr * 0.211_470_17 - dg * 0.522_617_11 + db * 0.311_146_94;
    let delta = 0.5053 * y * y + 0.299 * i * i + 0.1957 * q * q;
    if y > 0.0 { -delta } else { delta }
}

/// Luma difference of two pixels (pixelmatch's `yOnly` delta); exactly 0 for equal pixels.
#[inline]
fn brightness_delta(a: [u8; 4], b: [u8; 4]) -> f64 {
    if a == b {
        return 0.0;
    }
    let [r1, g1, b1] = blended(a);
    let [r2, g2, b2] = blended(b);
    (r1 - r2) * Y_R + (g1 - g2) * Y_G + (b1 - b2) * Y_B
}

/// Whether pixel `(x1, y1)` of `img` is likely part of anti-aliasing: pixelmatch's port of
/// Vyšniauskas' "Anti-aliased pixel and intensity slope detector" (2009). It has both a darker
/// and a brighter neighbour, at most two equal neighbours, and its darkest or brightest neighbour
/// sits inside a flat area in both images. The neighbour order (x outer, y inner) and the strict
/// comparisons are kept as in pixelmatch because they decide ties.
pub(crate) fn antialiased<L: Layout, M: Layout>(
    img: View<'_, L>,
    x1: usize,
    y1: usize,
    other: View<'_, M>,
) -> bool {
    let x0 = x1.saturating_sub(1);
    let y0 = y1.saturating_sub(1);
    let x2 = (x1 + 1).min(img.width - 1);
    let y2 = (y1 + 1).min(img.height - 1);
    let center = img.rgba(x1, y1);
    let mut zeroes = usize::from(x1 == x0 || x1 == x2 || y1 == y0 || y1 == y2);
    let (mut min, mut max) = (0.0_f64, 0.0_f64);
    let (mut min_at, mut max_at) = ((0, 0), (0, 0));

    for x in x0..=x2 {
        for y in y0..=y2 {
            if x == x1 && y == y1 {
                continue;
            }
            let delta = brightness_delta(center, img.rgba(x, y));
            if delta == 0.0 {
                zeroes += 1;
                if zeroes > 2 {
                    return false;
                }
            } else if delta < min {
                min = delta;
                min_at = (x, y);
            } else if delta > max {
                max = delta;
                max_at = (x, y);
            }
        }
    }
    if min == 0.0 || max == 0.0 {
        return false;
    }
    (has_many_siblings(img, min_at.0, min_at.1) && has_many_siblings(other, min_at.0, min_at.1))
        || (has_many_siblings(img, max_at.0, max_at.1)
            && has_many_siblings(other, max_at.0, max_at.1))
}

/// Whether the pixel has 3 or more identical neighbours (image borders count as one).
fn has_many_siblings<L: Layout>(img: View<'_, L>, x1: usize, y1: usize) -> bool {
    let x0 = x1.saturating_sub(1);
    let y0 = y1.saturating_sub(1);
    let x2 = (x1 + 1).min(img.width - 1);
    let y2 = (y1 + 1).min(img.height - 1);
    let value = img.key(x1, y1);
    let mut zeroes = usize::from(x1 == x0 || x1 == x2 || y1 == y0 || y1 == y2);
    for x in x0..=x2 {
        for y in y0..=y2 {
            if (x != x1 || y != y1) && img.key(x, y) == value {
                zeroes += 1;
                if zeroes > 2 {
                    return true;
                }
            }
        }
    }
    false
}

/// Whether all existing neighbours of the pixel have exactly its colour: the pixel lies inside a
/// solid fill, where re-rasterising shapes cannot change anything.
pub(crate) fn is_flat<L: Layout>(img: View<'_, L>, x1: usize, y1: usize) -> bool {
    let x0 = x1.saturating_sub(1);
    let y0 = y1.saturating_sub(1);
    let x2 = (x1 + 1).min(img.width - 1);
    let y2 = (y1 + 1).min(img.height - 1);
    let value = img.key(x1, y1);
    (y0..=y2).all(|y| (x0..=x2).all(|x| img.key(x, y) == value))
}

/// How much lighter than white the baseline pixel is drawn in the diff image, in `0..=26`: the
/// diff image shows the baseline as a faded grey (pixelmatch's `drawGrayPixel` with alpha 0.1).
/// Integer arithmetic with the luma weights in 1/256 (77, 150, 29), within one grey level of
/// pixelmatch: it runs on every pixel of the canvas, where `f64::round` is a libm call.
#[inline]
pub(crate) fn grey_offset(p: [u8; 4]) -> u8 {
    let [r, g, b, a] = p.map(u32::from);
    let darkness = 255 * 256 - (r * 77 + g * 150 + b * 29);
    if a == 255 {
        // round(darkness / 2560) as a multiply-shift (exact to one level at the rounding edges).
        (((darkness + 1280) * 6554) >> 24) as u8
    } else {
        // round(darkness / 2560 × a / 255)
        ((darkness * a + 255 * 1280) / (255 * 2560)) as u8
    }
}

/// [`grey_offset`] of every pixel of a row, written to `out`.
#[inline]
pub(crate) fn grey_row<L: Layout>(row: &[u8], out: &mut [u8]) {
    for (o, p) in out.iter_mut().zip(row.chunks_exact(L::BPP)) {
        *o = grey_offset(L::rgba(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<L: Layout>(data: &[u8], w: usize, h: usize) -> View<'_, L> {
        View::new(data, w, w, h)
    }

    #[test]
    fn color_delta_matches_pixelmatch_reference_values() {
        // Black vs white is pure luma: 0.5053 × 255². The sign is negative when the second
        // pixel is the darker one.
        let d = color_delta([0, 0, 0, 255], [255, 255, 255, 255]);
        assert!((d - 0.5053 * 255.0 * 255.0).abs() < 0.01, "{d}");
        assert!(d <= MAX_YIQ_DELTA);
        assert!(color_delta([255, 255, 255, 255], [0, 0, 0, 255]) < 0.0);
        assert_eq!(color_delta([9, 9, 9, 255], [9, 9, 9, 255]), 0.0);
        // The full-page pale background of the bench: #f9fafb -> #fef3c7 is about 202, under
        // the 352 of threshold 0.1, which is why pixelmatch misses it.
        let pale = color_delta([0xf9, 0xfa, 0xfb, 255], [0xfe, 0xf3, 0xc7, 255]).abs();
        assert!((190.0..215.0).contains(&pale), "{pale}");
        assert!(pale < MAX_YIQ_DELTA * 0.1 * 0.1);
    }

    #[test]
    fn translucent_pixels_are_composited_over_white() {
        // Fully transparent anything equals white.
        assert_eq!(color_delta([0, 0, 0, 0], [255, 255, 255, 255]), 0.0);
    }

    #[test]
    fn an_edge_pixel_between_flat_areas_is_antialiasing() {
        // Left half black, right half white, one grey column between them.
        let (w, h) = (5, 5);
        let mut data = Vec::new();
        for _ in 0..h {
            for x in 0..w {
                let v = match x {
                    0 | 1 => 0,
                    2 => 128,
                    _ => 255,
                };
                data.extend_from_slice(&[v, v, v]);
            }
        }
        let img = view::<Rgb>(&data, w, h);
        assert!(antialiased(img, 2, 2, img));
        // A pixel inside a flat area is not.
        assert!(!antialiased(img, 0, 2, img));
    }

    #[test]
    fn an_isolated_dot_is_not_antialiasing() {
        let (w, h) = (3, 3);
        let mut data = vec![255u8; w * h * 3];
        data[4 * 3..4 * 3 + 3].copy_from_slice(&[0, 0, 0]);
        let img = view::<Rgb>(&data, w, h);
        assert!(!antialiased(img, 1, 1, img));
    }

    #[test]
    fn flatness_looks_at_all_existing_neighbours() {
        let (w, h) = (3, 3);
        let mut data = vec![7u8; w * h * 4];
        let img = view::<Rgba>(&data, w, h);
        assert!(is_flat(img, 0, 0) && is_flat(img, 1, 1));
        data[8 * 4] = 8;
        let img = view::<Rgba>(&data, w, h);
        assert!(!is_flat(img, 1, 1));
        assert!(is_flat(img, 0, 0));
    }

    #[test]
    fn grey_offset_spans_white_to_faded_black() {
        assert_eq!(grey_offset([255, 255, 255, 255]), 0);
        assert_eq!(grey_offset([0, 0, 0, 255]), 26);
        assert_eq!(grey_offset([0, 0, 0, 0]), 0);
    }
}
