//! What kind of change a region is: the heart of the verdict (the rule is explained in the crate
//! documentation, `lib.rs`).

use crate::pass::{Plane, class};
use crate::pixel::{Layout, MAX_YIQ_DELTA, View, color_delta, is_flat};
use crate::regions::Rect;
use crate::result::RegionKind;

/// A solid area of at least this many pixels whose colour changed makes a colour change.
/// 64 = an 8×8 patch: far more than a glyph interior at body-text sizes, where re-rasterisation
/// cannot produce solid pixels anyway, and far less than any button, badge or background.
const MIN_FILL_PIXELS: usize = 64;
/// Pixels a colour region may grow by to take in its border (clusters stay at least
/// `regions::MERGE_GAP` = 4 pixels apart, so grown regions never overlap).
const BORDER_GROWTH: usize = 2;
/// Side of the tiles that are aligned independently (about one glyph of body text).
const TILE: usize = 16;
/// Largest displacement, in pixels on each axis, that alignment may explain: sub-pixel glyph
/// positioning plus the one pixel of baseline rounding seen between font rendering settings.
const MAX_SHIFT: f32 = 1.25;
/// After alignment a pixel is unexplained when a channel still differs by more than this
/// fraction of the tile's contrast. Sub-pixel re-rasterisation of text leaves under 0.4 (the
/// bench's 0.3 px and font-setting pairs); a different glyph leaves the full contrast.
const RESIDUAL_FRACTION: f32 = 0.5;
/// The contrast of a tile is measured with this margin, so a tile that cuts through a glyph is
/// judged against the glyph's full contrast.
const CONTRAST_MARGIN: usize = 2;
/// Residual floor in 8-bit levels, so near-flat tiles are not judged on noise.
const MIN_RESIDUAL: f32 = 16.0;
/// A tile with more unexplained pixels than this is a content change.
const MAX_UNEXPLAINED: u32 = 2;
/// A displaced region whose changed pixels form a straight run at least this long moved a
/// structure (box edge, border, rule, image) rather than glyphs. Glyph strokes of text up to
/// about 48 px font size are shorter.
const MIN_EDGE_RUN: usize = 48;
/// A displaced region also moved a structure when some of its changed pixels separate two solid
/// squares of this side (one on each side along the displacement): the inside and the outside
/// of a box. A glyph's edge has a stroke on one side, thinner than this up to bold text of about
/// 48 px.
const SOLID_SIDE: usize = 9;
/// How many such box-edge pixels make a structure (a straight piece of edge, not a speck).
const MIN_SOLID_EDGE: usize = 4;
/// Widest anti-aliased edge skipped when measuring the solid areas on either side.
const EDGE_WIDTH: usize = 3;
/// Margin around a tile over which its displacement must hold too.
const TILE_CONTEXT: usize = 2;
/// Regions with fewer perceptually different pixels are not judged on their ink balance: the
/// ink of a few edge pixels is dominated by rasterisation (up to 11 % on the bench's 0.3 px
/// pairs), while a real recolouring of even one glyph of body text changes dozens of pixels.
const MIN_INK_PIXELS: u64 = 16;
/// The ink balance of a tile is summed over the tile grown by this margin, so that a tile cutting
/// through a glyph sees the glyph whole: what leaves the tile on one side stays in the sum.
const INK_MARGIN: usize = 4;
/// Text that only moved or re-rasterised keeps its ink: more relative change than this (10 %)
/// in the summed colour of the region means its colour or weight changed.
const MAX_INK_CHANGE: f64 = 0.10;

/// Pixel counts and classification of one region.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Analysis {
    /// The region's box: the cluster's, grown to the border of a colour change.
    pub(crate) rect: Rect,
    pub(crate) kind: RegionKind,
    pub(crate) different_pixels: u64,
    pub(crate) exact_different_pixels: u64,
}

/// Classifies the cluster `rect` of the overlap of `a` and `b`.
pub(crate) fn analyse<A: Layout, B: Layout>(
    a: View<'_, A>,
    b: View<'_, B>,
    plane: &Plane,
    rect: Rect,
    faint_threshold: f64,
) -> Analysis {
    let faint_delta = MAX_YIQ_DELTA * faint_threshold * faint_threshold;
    let mut fill = 0usize;
    for y in rect.y0..rect.y1 {
        for x in rect.x0..rect.x1 {
            fill += usize::from(match plane.class(x, y) {
                class::FILL => true,
                class::DIFF => {
                    is_flat(a, x, y)
                        && is_flat(b, x, y)
                        && color_delta(a.rgba(x, y), b.rgba(x, y)).abs() > faint_delta
                }
                _ => false,
            });
        }
    }
    let (different, _) = count(plane, rect);
    let kind = kind_of(a, b, plane, rect, fill, different);
    // The border pixels of a recoloured fill are not inside a solid area in both images, so the
    // faint pass leaves them out of the cluster: take them back.
    let rect = if kind == RegionKind::Colour {
        grow_to_changed(plane, rect, a.width, a.height)
    } else {
        rect
    };
    let (different_pixels, exact_different_pixels) = count(plane, rect);
    Analysis {
        rect,
        kind,
        different_pixels,
        exact_different_pixels,
    }
}

/// Perceptually different and exactly different pixels inside `rect`.
fn count(plane: &Plane, rect: Rect) -> (u64, u64) {
    let (mut different, mut exact) = (0, 0);
    for y in rect.y0..rect.y1 {
        for x in rect.x0..rect.x1 {
            let c = plane.class(x, y);
            different += u64::from(c == class::DIFF);
            exact += u64::from(c != class::SAME);
        }
    }
    (different, exact)
}

/// Grows `rect` by up to [`BORDER_GROWTH`] pixels on each side, as long as the row or column
/// added contains changed pixels.
fn grow_to_changed(plane: &Plane, mut rect: Rect, width: usize, height: usize) -> Rect {
    let changed = |r: Rect| has_class_where(plane, r, |c| c != class::SAME);
    for _ in 0..BORDER_GROWTH {
        if rect.y0 > 0
            && changed(Rect {
                y0: rect.y0 - 1,
                y1: rect.y0,
                ..rect
            })
        {
            rect.y0 -= 1;
        }
        if rect.y1 < height
            && changed(Rect {
                y0: rect.y1,
                y1: rect.y1 + 1,
                ..rect
            })
        {
            rect.y1 += 1;
        }
        if rect.x0 > 0
            && changed(Rect {
                x0: rect.x0 - 1,
                x1: rect.x0,
                ..rect
            })
        {
            rect.x0 -= 1;
        }
        if rect.x1 < width
            && changed(Rect {
                x0: rect.x1,
                x1: rect.x1 + 1,
                ..rect
            })
        {
            rect.x1 += 1;
        }
    }
    rect
}

fn kind_of<A: Layout, B: Layout>(
    a: View<'_, A>,
    b: View<'_, B>,
    plane: &Plane,
    rect: Rect,
    fill: usize,
    different: u64,
) -> RegionKind {
    if fill >= MIN_FILL_PIXELS {
        return RegionKind::Colour;
    }
    let background = background(a, rect.grown(CONTRAST_MARGIN, a.width, a.height));
    let mut moved = false;
    let mut solid_edges = 0;
    let mut balance = [0.0_f64; 3];
    let mut ink = 0.0_f64;
    for tile in tiles(rect) {
        if !has_class(plane, tile, class::DIFF) {
            continue;
        }
        // The displacement must also hold around the tile: a corner that was re-rounded could
        // otherwise pass for a moved one, while its straight edges did not move.
        let context = tile.grown(TILE_CONTEXT, a.width, a.height);
        let tol = tolerance(a, b, context.grown(CONTRAST_MARGIN, a.width, a.height));
        let Some((dx, dy)) = explain(a, b, context, tol) else {
            return RegionKind::Content;
        };
        if explain(b, a, context, tol).is_none() {
            return RegionKind::Content;
        }
        if dx.abs() >= 0.5 || dy.abs() >= 0.5 {
            moved = true;
            let axis = if dx.abs() >= dy.abs() {
                Axis::X
            } else {
                Axis::Y
            };
            solid_edges += solid_edge_pixels(a, plane, tile, axis);
        }
        let around = tile.grown(INK_MARGIN, a.width, a.height);
        let (tile_balance, tile_ink) = ink_balance(a, b, around, (dx, dy), background);
        for c in 0..3 {
            balance[c] += tile_balance[c];
        }
        ink += tile_ink;
    }
    if moved && (solid_edges >= MIN_SOLID_EDGE || longest_run(plane, rect) >= MIN_EDGE_RUN) {
        return RegionKind::Shift;
    }
    let change: f64 = balance.iter().map(|v| v.abs()).sum();
    if different >= MIN_INK_PIXELS && change > MAX_INK_CHANGE * ink {
        return RegionKind::Colour;
    }
    RegionKind::Rendering
}

/// Splits `rect` into a grid of near-equal tiles of at most [`TILE`] pixels a side, so no tile is
/// a sliver whose contrast says nothing.
fn tiles(rect: Rect) -> impl Iterator<Item = Rect> {
    let split = |start: usize, end: usize| {
        let n = (end - start).div_ceil(TILE);
        (0..n).map(move |i| {
            (
                start + (end - start) * i / n,
                start + (end - start) * (i + 1) / n,
            )
        })
    };
    split(rect.y0, rect.y1).flat_map(move |(y0, y1)| {
        split(rect.x0, rect.x1).map(move |(x0, x1)| Rect { x0, y0, x1, y1 })
    })
}

fn has_class(plane: &Plane, rect: Rect, wanted: u8) -> bool {
    has_class_where(plane, rect, |c| c == wanted)
}

fn has_class_where(plane: &Plane, rect: Rect, wanted: impl Fn(u8) -> bool) -> bool {
    (rect.y0..rect.y1).any(|y| (rect.x0..rect.x1).any(|x| wanted(plane.class(x, y))))
}

/// Residual tolerance of a tile: a fraction of its contrast (largest channel range in either
/// image), with a floor.
fn tolerance<A: Layout, B: Layout>(a: View<'_, A>, b: View<'_, B>, tile: Rect) -> f32 {
    let mut lo = [f32::MAX; 3];
    let mut hi = [f32::MIN; 3];
    for y in tile.y0..tile.y1 {
        for x in tile.x0..tile.x1 {
            for p in [a.rgb_over_white(x, y), b.rgb_over_white(x, y)] {
                for c in 0..3 {
                    lo[c] = lo[c].min(p[c]);
                    hi[c] = hi[c].max(p[c]);
                }
            }
        }
    }
    let contrast = (0..3).map(|c| hi[c] - lo[c]).fold(0.0, f32::max);
    (contrast * RESIDUAL_FRACTION).max(MIN_RESIDUAL)
}

/// Finds a displacement `(dx, dy)`, `|dx|, |dy| <= MAX_SHIFT`, such that `dst` over the tile is
/// `src` sampled at `(x + dx, y + dy)` (bilinear) up to `tol` on every channel, except for at
/// most [`MAX_UNEXPLAINED`] pixels. Coarse to fine: whole pixels first (exact for moved content),
/// then steps of 1/2, 1/4 and 1/8 pixel around the best candidate (sub-pixel glyph positions).
fn explain<S: Layout, D: Layout>(
    src: View<'_, S>,
    dst: View<'_, D>,
    tile: Rect,
    tol: f32,
) -> Option<(f32, f32)> {
    let mut best = ((0.0, 0.0), f32::MAX);
    for (dx, dy) in [
        (0, 0),
        (0, -1),
        (0, 1),
        (-1, 0),
        (1, 0),
        (-1, -1),
        (1, -1),
        (-1, 1),
        (1, 1),
    ] {
        let d = (dx as f32, dy as f32);
        let (cost, unexplained) = residual(src, dst, tile, d, tol);
        if unexplained <= MAX_UNEXPLAINED {
            return Some(d);
        }
        if cost < best.1 {
            best = (d, cost);
        }
    }
    for step in [0.5, 0.25, 0.125] {
        let center = best.0;
        for (sx, sy) in [
            (-1.0, -1.0),
            (0.0, -1.0),
            (1.0, -1.0),
            (-1.0, 0.0),
            (1.0, 0.0),
            (-1.0, 1.0),
            (0.0, 1.0),
            (1.0, 1.0),
        ] {
            let d = (center.0 + sx * step, center.1 + sy * step);
            if d.0.abs() > MAX_SHIFT || d.1.abs() > MAX_SHIFT {
                continue;
            }
            let (cost, unexplained) = residual(src, dst, tile, d, tol);
            if unexplained <= MAX_UNEXPLAINED {
                return Some(d);
            }
            if cost < best.1 {
                best = (d, cost);
            }
        }
    }
    None
}

/// Sum of squared residuals and number of pixels over `tol` when `dst` is predicted by `src`
/// displaced by `d`.
fn residual<S: Layout, D: Layout>(
    src: View<'_, S>,
    dst: View<'_, D>,
    tile: Rect,
    d: (f32, f32),
    tol: f32,
) -> (f32, u32) {
    let mut cost = 0.0;
    let mut unexplained = 0;
    for_each_aligned(src, dst, tile, d, |predicted, actual| {
        let r = (0..3)
            .map(|c| (actual[c] - predicted[c]).abs())
            .fold(0.0_f32, f32::max);
        cost += r * r;
        unexplained += u32::from(r > tol);
    });
    (cost, unexplained)
}

/// Calls `f(predicted, actual)` for every pixel of the tile: `actual` is `dst`'s colour and
/// `predicted` is `src` sampled bilinearly at the pixel displaced by `d` (clamped to the image).
#[inline]
fn for_each_aligned<S: Layout, D: Layout>(
    src: View<'_, S>,
    dst: View<'_, D>,
    tile: Rect,
    d: (f32, f32),
    mut f: impl FnMut([f32; 3], [f32; 3]),
) {
    let (max_x, max_y) = (src.width - 1, src.height - 1);
    let (fx, fy) = (d.0 - d.0.floor(), d.1 - d.1.floor());
    // Whole-pixel part of the displacement, as a signed offset.
    let (ix, iy) = (d.0.floor() as isize, d.1.floor() as isize);
    let clamp = |v: isize, max: usize| v.clamp(0, max as isize) as usize;
    for y in tile.y0..tile.y1 {
        let y0 = clamp(y as isize + iy, max_y);
        let y1 = clamp(y as isize + iy + 1, max_y);
        for x in tile.x0..tile.x1 {
            let x0 = clamp(x as isize + ix, max_x);
            let x1 = clamp(x as isize + ix + 1, max_x);
            let (p00, p10) = (src.rgb_over_white(x0, y0), src.rgb_over_white(x1, y0));
            let (p01, p11) = (src.rgb_over_white(x0, y1), src.rgb_over_white(x1, y1));
            let mut predicted = [0.0_f32; 3];
            for c in 0..3 {
                let top = p00[c] + (p10[c] - p00[c]) * fx;
                let bottom = p01[c] + (p11[c] - p01[c]) * fx;
                predicted[c] = top + (bottom - top) * fy;
            }
            f(predicted, dst.rgb_over_white(x, y));
        }
    }
}

/// The direction a tile moved along.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Axis {
    X,
    Y,
}

/// Changed pixels of the tile that are the edge between two solid areas, each at least a
/// [`SOLID_SIDE`]-pixel square of one unchanged colour in the baseline, before and after the
/// edge along `axis`: the border between the inside and the outside of a box that moved. A glyph
/// edge has a stroke on one side, too thin for such a square.
fn solid_edge_pixels<L: Layout>(a: View<'_, L>, plane: &Plane, tile: Rect, axis: Axis) -> usize {
    let mut count = 0;
    for y in tile.y0..tile.y1 {
        for x in tile.x0..tile.x1 {
            if plane.class(x, y) != class::SAME
                && solid_beside(a, plane, (x, y), axis, -1)
                && solid_beside(a, plane, (x, y), axis, 1)
            {
                count += 1;
            }
        }
    }
    count
}

/// Whether, going from the changed pixel `at` in direction `step` along `axis`, past the edge's
/// own changed pixels (an anti-aliased edge is up to [`EDGE_WIDTH`] pixels wide), there is a
/// square of [`SOLID_SIDE`] pixels, centred across the axis, all unchanged and of one colour.
fn solid_beside<L: Layout>(
    a: View<'_, L>,
    plane: &Plane,
    at: (usize, usize),
    axis: Axis,
    step: isize,
) -> bool {
    let (w, h) = (a.width as isize, a.height as isize);
    let along = |at: (usize, usize)| match axis {
        Axis::X => (at.0 as isize, at.1 as isize),
        Axis::Y => (at.1 as isize, at.0 as isize),
    };
    // Work in (along, across) coordinates; `pixel` maps them back.
    let (p0, q0) = along(at);
    let (len, wid) = match axis {
        Axis::X => (w, h),
        Axis::Y => (h, w),
    };
    let pixel = |p: isize, q: isize| match axis {
        Axis::X => (p as usize, q as usize),
        Axis::Y => (q as usize, p as usize),
    };
    let half = (SOLID_SIDE / 2) as isize;
    if q0 - half < 0 || q0 + half >= wid {
        return false;
    }
    let mut p = p0;
    let mut skipped = 0;
    loop {
        p += step;
        if p < 0 || p >= len {
            return false;
        }
        let (x, y) = pixel(p, q0);
        if plane.class(x, y) == class::SAME {
            break;
        }
        skipped += 1;
        if skipped >= EDGE_WIDTH {
            return false;
        }
    }
    let far = p + step * (SOLID_SIDE as isize - 1);
    if far < 0 || far >= len {
        return false;
    }
    let (x, y) = pixel(p, q0);
    let colour = a.key(x, y);
    (0..SOLID_SIDE as isize).all(|i| {
        (-half..=half).all(|j| {
            let (x, y) = pixel(p + step * i, q0 + j);
            plane.class(x, y) == class::SAME && a.key(x, y) == colour
        })
    })
}

/// Longest horizontal or vertical run of changed pixels (any class but unchanged) inside `rect`.
/// Anti-aliased and faint pixels count: the edge of a moved image alternates between them and
/// perceptual ones.
fn longest_run(plane: &Plane, rect: Rect) -> usize {
    let changed = |x: usize, y: usize| plane.class(x, y) != class::SAME;
    let mut best = 0;
    for y in rect.y0..rect.y1 {
        let mut run = 0;
        for x in rect.x0..rect.x1 {
            run = if changed(x, y) { run + 1 } else { 0 };
            best = best.max(run);
        }
    }
    for x in rect.x0..rect.x1 {
        let mut run = 0;
        for y in rect.y0..rect.y1 {
            run = if changed(x, y) { run + 1 } else { 0 };
            best = best.max(run);
        }
    }
    best
}

/// Per-channel median of `img` over `rect`: the background the ink is measured against.
fn background<L: Layout>(img: View<'_, L>, rect: Rect) -> [f32; 3] {
    let mut histogram = [[0u32; 256]; 3];
    for y in rect.y0..rect.y1 {
        for x in rect.x0..rect.x1 {
            let p = img.rgba(x, y);
            for c in 0..3 {
                histogram[c][usize::from(p[c])] += 1;
            }
        }
    }
    let half = u32::try_from(rect.area().div_ceil(2)).unwrap_or(u32::MAX);
    histogram.map(|h| {
        let mut seen = 0;
        let level = h.iter().position(|&n| {
            seen += n;
            seen >= half
        });
        level.map_or(0.0, |l| l as f32)
    })
}

/// Ink balance of a tile after alignment: the per-channel sum of `dst − src displaced by d`
/// (signed) and the ink of the displaced `src`, `Σ |src − background|`. Moving or
/// re-rasterising glyphs keeps their ink; recolouring or emboldening them does not.
fn ink_balance<S: Layout, D: Layout>(
    src: View<'_, S>,
    dst: View<'_, D>,
    tile: Rect,
    d: (f32, f32),
    background: [f32; 3],
) -> ([f64; 3], f64) {
    let mut balance = [0.0_f64; 3];
    let mut ink = 0.0_f64;
    for_each_aligned(src, dst, tile, d, |predicted, actual| {
        for c in 0..3 {
            balance[c] += f64::from(actual[c] - predicted[c]);
            ink += f64::from((predicted[c] - background[c]).abs());
        }
    });
    (balance, ink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pass::CLASS_SHIFT;
    use crate::pixel::Rgb;

    /// A grey image from a function of the pixel centre.
    fn image(w: usize, h: usize, f: impl Fn(f32, f32) -> u8) -> Vec<u8> {
        (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .flat_map(|(x, y)| {
                let v = f(x as f32 + 0.5, y as f32 + 0.5);
                [v, v, v]
            })
            .collect()
    }

    /// A plane marking the pixels where the two images differ as perceptually different.
    fn plane_of(a: &[u8], b: &[u8], w: usize) -> Plane {
        let bytes: Vec<u8> = a
            .chunks_exact(3)
            .zip(b.chunks_exact(3))
            .map(|(p, q)| {
                if p == q {
                    0
                } else {
                    class::DIFF << CLASS_SHIFT
                }
            })
            .collect();
        let marked_rows = bytes.chunks(w).map(|r| r.iter().any(|&v| v != 0)).collect();
        Plane {
            width: w,
            bytes,
            marked_rows,
        }
    }

    /// Coverage of a vertical bar `[x0, x0 + width)`: exact box-filtered anti-aliasing.
    fn bar(x0: f32, width: f32) -> impl Fn(f32, f32) -> u8 {
        move |x, _| {
            let covered = ((x + 0.5).min(x0 + width) - (x - 0.5).max(x0)).clamp(0.0, 1.0);
            (250.0 - 220.0 * covered).round() as u8
        }
    }

    #[test]
    fn tiles_cover_the_rect_without_slivers() {
        let rect = Rect {
            x0: 3,
            y0: 5,
            x1: 38,
            y1: 22,
        };
        let tiles: Vec<Rect> = tiles(rect).collect();
        assert_eq!(tiles.len(), 3 * 2);
        assert!(
            tiles
                .iter()
                .all(|t| (11..=TILE).contains(&t.width()) && (8..=TILE).contains(&t.height()))
        );
        assert_eq!(tiles.iter().map(Rect::area).sum::<usize>(), rect.area());
    }

    #[test]
    fn sub_pixel_and_whole_pixel_moves_are_explained_near_their_displacement() {
        let (w, h) = (24, 16);
        let a = image(w, h, bar(8.0, 3.0));
        let tile = Rect {
            x0: 0,
            y0: 0,
            x1: w,
            y1: h,
        };
        for shift in [0.3, 0.6, 1.0, -0.8] {
            let b = image(w, h, bar(8.0 + shift, 3.0));
            let (va, vb) = (View::<Rgb>::new(&a, w, w, h), View::<Rgb>::new(&b, w, w, h));
            let tol = tolerance(va, vb, tile);
            // b at x is a at x - shift. The first acceptable candidate is taken, so the
            // displacement is within half a pixel of the truth.
            let (dx, dy) = explain(va, vb, tile, tol).unwrap();
            assert!(
                (dx + shift).abs() <= 0.5 && dy == 0.0,
                "{shift}: ({dx}, {dy})"
            );
            assert!(explain(vb, va, tile, tol).is_some());
        }
    }

    #[test]
    fn a_move_beyond_the_search_range_is_not_explained() {
        let (w, h) = (24, 16);
        let a = image(w, h, bar(8.0, 3.0));
        let b = image(w, h, bar(10.0, 3.0));
        let (va, vb) = (View::<Rgb>::new(&a, w, w, h), View::<Rgb>::new(&b, w, w, h));
        let tile = Rect {
            x0: 0,
            y0: 0,
            x1: w,
            y1: h,
        };
        assert_eq!(explain(va, vb, tile, tolerance(va, vb, tile)), None);
    }

    #[test]
    fn a_different_shape_is_not_explained() {
        let (w, h) = (24, 16);
        let a = image(w, h, bar(8.0, 3.0));
        let b = image(w, h, bar(8.0, 7.0));
        let (va, vb) = (View::<Rgb>::new(&a, w, w, h), View::<Rgb>::new(&b, w, w, h));
        let tile = Rect {
            x0: 0,
            y0: 0,
            x1: w,
            y1: h,
        };
        assert_eq!(explain(va, vb, tile, tolerance(va, vb, tile)), None);
    }

    #[test]
    fn a_moved_box_edge_is_solid_on_both_sides_and_a_stroke_edge_is_not() {
        let (w, h) = (48, 24);
        // A box from x = 20 to the right border, moved right by one pixel.
        let a = image(w, h, |x, _| if x > 20.0 { 40 } else { 250 });
        let b = image(w, h, |x, _| if x > 21.0 { 40 } else { 250 });
        let plane = plane_of(&a, &b, w);
        let va = View::<Rgb>::new(&a, w, w, h);
        let tile = Rect {
            x0: 16,
            y0: 4,
            x1: 32,
            y1: 20,
        };
        assert!(solid_edge_pixels(va, &plane, tile, Axis::X) >= MIN_SOLID_EDGE);

        // A 3-pixel stroke moved the same way: one side of each edge is the thin stroke.
        let a = image(w, h, bar(20.0, 3.0));
        let b = image(w, h, bar(21.0, 3.0));
        let plane = plane_of(&a, &b, w);
        let va = View::<Rgb>::new(&a, w, w, h);
        assert_eq!(solid_edge_pixels(va, &plane, tile, Axis::X), 0);
    }

    #[test]
    fn moving_ink_keeps_its_balance_and_recolouring_it_does_not() {
        let (w, h) = (24, 16);
        let a = image(w, h, bar(8.0, 3.0));
        let moved = image(w, h, bar(9.0, 3.0));
        let lighter: Vec<u8> = a
            .iter()
            .map(|&v| if v < 250 { v.saturating_add(60) } else { v })
            .collect();
        let va = View::<Rgb>::new(&a, w, w, h);
        let tile = Rect {
            x0: 2,
            y0: 0,
            x1: 20,
            y1: h,
        };
        let background = [250.0; 3];
        let ratio = |b: &[u8], d: (f32, f32)| {
            let (balance, ink) = ink_balance(va, View::<Rgb>::new(b, w, w, h), tile, d, background);
            balance.iter().map(|v| v.abs()).sum::<f64>() / ink
        };
        assert!(ratio(&moved, (-1.0, 0.0)) < 1e-9);
        assert!(ratio(&lighter, (0.0, 0.0)) > MAX_INK_CHANGE);
    }
}
