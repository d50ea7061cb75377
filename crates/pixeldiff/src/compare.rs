//! Entry points: compare decoded images, or PNG files with the fast paths.

use std::time::Instant;

use rayon::prelude::*;

use crate::classify;
use crate::error::DiffError;
use crate::image::{Format, Image};
use crate::options::DiffOptions;
use crate::pass;
use crate::pixel::{Layout, Rgb, Rgba, View};
use crate::regions::{self, Rect};
use crate::result::{Canvas, DiffResult, Dimensions, Region, RegionKind, Verdict};

/// How many regions of one kind a reason names before summarising the rest.
const REASON_EXAMPLES: usize = 3;

/// Compares a baseline with a current image.
///
/// Synchronous and CPU-bound (parallel over rows with rayon): call it from
/// `tokio::task::spawn_blocking` in async code. Images of different sizes are compared on their
/// common top-left area, and the rest of the union canvas counts as changed. Thresholds outside
/// `0.0..=1.0` are clamped; use [`DiffOptions::validate`] to reject them instead.
pub fn compare(baseline: &Image, current: &Image, options: &DiffOptions) -> DiffResult {
    let options = clamped(options);
    match (baseline.format(), current.format()) {
        (Format::Rgb, Format::Rgb) => compare_as::<Rgb, Rgb>(baseline, current, &options),
        (Format::Rgba, Format::Rgba) => compare_as::<Rgba, Rgba>(baseline, current, &options),
        (Format::Rgb, Format::Rgba) => compare_as::<Rgb, Rgba>(baseline, current, &options),
        (Format::Rgba, Format::Rgb) => compare_as::<Rgba, Rgb>(baseline, current, &options),
    }
}

/// Compares two PNG files.
///
/// Byte-identical files are reported identical without decoding (only the header is read, to
/// validate it and get the size). Otherwise both files are decoded concurrently, each refused if
/// larger than [`DiffOptions::max_pixels`], and compared with [`compare`].
///
/// # Errors
/// [`DiffError::InvalidOption`] for bad options; [`DiffError::Input`] naming the file that is not
/// a usable PNG (its source is [`DiffError::Decode`] or [`DiffError::TooLarge`]).
pub fn compare_png(
    baseline: &[u8],
    current: &[u8],
    options: &DiffOptions,
) -> Result<DiffResult, DiffError> {
    options.validate()?;
    let input = |role: &'static str| {
        move |err: DiffError| DiffError::Input {
            role,
            source: Box::new(err),
        }
    };
    if baseline == current {
        let (width, height) = Image::png_dimensions(baseline).map_err(input("baseline"))?;
        if u64::from(width) * u64::from(height) > options.max_pixels {
            let err = DiffError::TooLarge {
                width,
                height,
                limit: options.max_pixels,
            };
            return Err(input("baseline")(err));
        }
        tracing::debug!(width, height, "byte-identical PNG files: not decoded");
        return Ok(identical(width, height, baseline.to_vec()));
    }
    let started = Instant::now();
    let (a, b) = rayon::join(
        || Image::decode_png_with_limit(baseline, options.max_pixels),
        || Image::decode_png_with_limit(current, options.max_pixels),
    );
    let a = a.map_err(input("baseline"))?;
    let b = b.map_err(input("current"))?;
    tracing::debug!(
        decode_ms = started.elapsed().as_secs_f64() * 1e3,
        "decoded both PNG files"
    );
    Ok(compare(&a, &b, options))
}

fn clamped(options: &DiffOptions) -> DiffOptions {
    let clamp = |v: f64, default: f64| {
        if v.is_nan() {
            default
        } else {
            v.clamp(0.0, 1.0)
        }
    };
    let defaults = DiffOptions::default();
    DiffOptions {
        threshold: clamp(options.threshold, defaults.threshold),
        faint_threshold: options
            .faint_threshold
            .map(|t| clamp(t, defaults.effective_faint_threshold())),
        ..options.clone()
    }
}

fn identical(width: u32, height: u32, png: Vec<u8>) -> DiffResult {
    let size = Dimensions { width, height };
    DiffResult {
        width,
        height,
        different_pixels: 0,
        exact_different_pixels: 0,
        anti_aliased_pixels: 0,
        total_pixels: u64::from(width) * u64::from(height),
        ratio: 0.0,
        regions: Vec::new(),
        verdict: Verdict::Match,
        reasons: vec!["the images are identical".to_owned()],
        baseline: size,
        current: size,
        canvas: Canvas::IdenticalPng(png),
    }
}

fn compare_as<A: Layout, B: Layout>(
    baseline: &Image,
    current: &Image,
    options: &DiffOptions,
) -> DiffResult {
    let started = Instant::now();
    let (wa, ha) = (baseline.width() as usize, baseline.height() as usize);
    let (wb, hb) = (current.width() as usize, current.height() as usize);
    let (ow, oh) = (wa.min(wb), ha.min(hb));
    let (width, height) = (wa.max(wb), ha.max(hb));
    let a = View::<A>::new(baseline.data(), wa, ow, oh);
    let b = View::<B>::new(current.data(), wb, ow, oh);

    let (plane, counts) = pass::run(a, b, width, height, options);
    let pass_done = Instant::now();

    let rects = regions::cluster(&plane, ow, oh);
    let clustered = Instant::now();
    let mut regions: Vec<Region> = rects
        .par_iter()
        .map(|&rect| {
            let analysis =
                classify::analyse(a, b, &plane, rect, options.effective_faint_threshold());
            region(
                analysis.rect,
                analysis.kind,
                analysis.different_pixels,
                analysis.exact_different_pixels,
            )
        })
        .collect();
    // The area outside the overlap: a strip on the right and one at the bottom.
    for rect in [
        Rect {
            x0: ow,
            y0: 0,
            x1: width,
            y1: height,
        },
        Rect {
            x0: 0,
            y0: oh,
            x1: ow,
            y1: height,
        },
    ] {
        if rect.area() > 0 {
            let n = rect.area() as u64;
            regions.push(region(rect, RegionKind::Size, n, n));
        }
    }
    tracing::debug!(
        pass_ms = (pass_done - started).as_secs_f64() * 1e3,
        cluster_ms = (clustered - pass_done).as_secs_f64() * 1e3,
        classify_ms = clustered.elapsed().as_secs_f64() * 1e3,
        regions = regions.len(),
        "compared"
    );

    let total_pixels = (width * height) as u64;
    let baseline_size = Dimensions {
        width: baseline.width(),
        height: baseline.height(),
    };
    let current_size = Dimensions {
        width: current.width(),
        height: current.height(),
    };
    let (verdict, reasons) = decide(&regions, counts, baseline_size, current_size, options);
    DiffResult {
        width: width as u32,
        height: height as u32,
        different_pixels: counts.perceptual,
        exact_different_pixels: counts.exact,
        anti_aliased_pixels: counts.antialiased,
        total_pixels,
        ratio: counts.perceptual as f64 / total_pixels as f64,
        regions,
        verdict,
        reasons,
        baseline: baseline_size,
        current: current_size,
        canvas: Canvas::Plane(plane.bytes),
    }
}

fn region(rect: Rect, kind: RegionKind, different: u64, exact: u64) -> Region {
    // Canvas coordinates come from u32 image sizes, so they fit.
    Region {
        x: rect.x0 as u32,
        y: rect.y0 as u32,
        width: rect.width() as u32,
        height: rect.height() as u32,
        kind,
        different_pixels: different,
        exact_different_pixels: exact,
    }
}

/// The verdict: the images differ when a region is a change (any region at all when rendering
/// differences are not tolerated).
fn decide(
    regions: &[Region],
    counts: pass::Counts,
    baseline: Dimensions,
    current: Dimensions,
    options: &DiffOptions,
) -> (Verdict, Vec<String>) {
    let is_change = |r: &Region| r.kind.is_change() || !options.tolerate_rendering;
    let verdict = if regions.iter().any(is_change) {
        Verdict::Differ
    } else {
        Verdict::Match
    };

    let mut reasons = Vec::new();
    if counts.exact == 0 {
        reasons.push("the images are identical".to_owned());
        return (verdict, reasons);
    }
    if baseline != current {
        reasons.push(format!(
            "sizes differ: baseline {}x{}, current {}x{}",
            baseline.width, baseline.height, current.width, current.height
        ));
    }
    for kind in [
        RegionKind::Content,
        RegionKind::Colour,
        RegionKind::Shift,
        RegionKind::Rendering,
    ] {
        let of_kind: Vec<&Region> = regions.iter().filter(|r| r.kind == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        let pixels: u64 = of_kind.iter().map(|r| r.different_pixels).sum();
        let mut places: Vec<String> = of_kind
            .iter()
            .take(REASON_EXAMPLES)
            .map(|r| format!("{}x{} at ({},{})", r.width, r.height, r.x, r.y))
            .collect();
        if of_kind.len() > REASON_EXAMPLES {
            places.push(format!("{} more", of_kind.len() - REASON_EXAMPLES));
        }
        let tolerated = kind == RegionKind::Rendering && options.tolerate_rendering;
        reasons.push(format!(
            "{}{}: {} region{} ({} perceptually different pixels): {}",
            if tolerated { "tolerated, " } else { "" },
            kind.description(),
            of_kind.len(),
            if of_kind.len() == 1 { "" } else { "s" },
            pixels,
            places.join(", ")
        ));
    }
    if regions.is_empty() {
        reasons.push(format!(
            "{} pixels differ in their bytes, none perceptibly (threshold {}){}",
            counts.exact,
            options.threshold,
            if counts.antialiased > 0 {
                format!(" or only by anti-aliasing ({} pixels)", counts.antialiased)
            } else {
                String::new()
            }
        ));
    }
    (verdict, reasons)
}
