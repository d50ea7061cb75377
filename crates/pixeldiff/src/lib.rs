//! qa-sentinel pixel diff: compares two screenshots the way pixelmatch does, then decides on the
//! changed *regions* whether a person would call the difference a change.
//!
//! ```
//! use sentinel_pixeldiff::{DiffOptions, Image, RegionKind, Verdict, compare};
//!
//! // A 64×32 page with a blue button; the current version turned the button red.
//! let page = |button: [u8; 3]| {
//!     let mut data = Vec::new();
//!     for y in 0..32 {
//!         for x in 0..64 {
//!             let inside = (8..40).contains(&x) && (8..24).contains(&y);
//!             data.extend_from_slice(&if inside { button } else { [249, 250, 251] });
//!         }
//!     }
//!     Image::from_rgb(64, 32, data).unwrap()
//! };
//! let result = compare(&page([37, 99, 235]), &page([220, 38, 38]), &DiffOptions::default());
//! assert_eq!(result.verdict, Verdict::Differ);
//! assert_eq!(result.different_pixels, 32 * 16);
//! let region = &result.regions[0];
//! assert_eq!((region.x, region.y, region.width, region.height), (8, 8, 32, 16));
//! assert_eq!(region.kind, RegionKind::Colour);
//! let diff_png: Vec<u8> = result.diff_image().unwrap();
//! # assert!(diff_png.starts_with(b"\x89PNG"));
//! ```
//!
//! # What is counted
//!
//! Every pixel of the union canvas (the larger width by the larger height) gets one class:
//!
//! * **perceptually different** — the squared YIQ distance of the two colours exceeds
//!   `35215 × threshold²` and pixelmatch's anti-aliasing detector does not explain it. This is
//!   pixelmatch's algorithm, ported exactly (same neighbour order and tie-breaking), so
//!   [`DiffResult::different_pixels`] equals pixelmatch's count with the same `threshold` and
//!   `includeAA`;
//! * **anti-aliasing** — over the threshold but detected as anti-aliasing (reported in
//!   [`DiffResult::anti_aliased_pixels`], not counted);
//! * **faint fill** — under the threshold but over [`DiffOptions::faint_threshold`] (a fifth of
//!   the threshold by default), inside a
//!   solid area (all 8 neighbours equal) in *both* images. Re-rasterising shapes cannot change the
//!   interior of a solid area, so these pixels are a colour change too pale for the per-pixel
//!   threshold (a `#f9fafb` background turned `#fef3c7` is 202 on the YIQ scale, under the 352 of
//!   threshold 0.1: pixelmatch and odiff see nothing);
//! * **exactly different** — any other pixel whose bytes differ ([`DiffResult::exact_different_pixels`]
//!   counts all of the above);
//! * **present in one image only** — when the sizes differ; counted as different.
//!
//! Perceptually different and faint-fill pixels are clustered into rectangles (8×8 cells joined
//! with their neighbours by union-find, exact bounding boxes, overlapping boxes merged).
//!
//! # How a region is classified
//!
//! A pixel count cannot tell a re-rasterised paragraph from an edited word: on the bench pairs
//! the anti-aliasing left by a 0.3 px text offset (about 1,400 pixels) is larger than a real
//! one-word change (400 to 900 pixels). The decision is therefore taken per region, on what the
//! region *is*, in this order:
//!
//! 1. **colour** — 64 or more pixels inside a solid area changed colour (the faint fills and the
//!    perceptual ones alike): a button, a badge, a background.
//! 2. **content** — the region is cut into tiles of at most 16×16 pixels, and each tile that
//!    holds a perceptual difference must be *explained* by the baseline displaced by at most
//!    1.25 pixels on each axis (searched on whole pixels, then halves, quarters and eighths,
//!    with bilinear sampling), in both directions, over the tile and a 2-pixel margin: after the
//!    displacement no more than 2 pixels may differ by more than half the tile's contrast. Text
//!    re-rasterised at a sub-pixel offset, or with its baseline rounded to the next pixel row by
//!    other font settings, is explained; a different glyph, a re-rounded corner, content that
//!    moved further is not.
//! 3. **shift** — all tiles explained, but some moved by half a pixel or more *and* the moved
//!    content is a structure rather than glyphs: changed pixels in a straight run of 48 or more
//!    (a box border, a rule, the edge of an image), or at least 4 changed pixels with a solid
//!    9×9 area of one unchanged colour on each side (the inside and the outside of a box). Glyph
//!    strokes of text up to about 48 px are thinner and shorter than that. A 1 px layout shift of
//!    a block is a change; the same offset of text alone is not.
//! 4. **colour** — all tiles explained, but the aligned ink does not balance: the summed colour
//!    of the region changed by more than 10 % of its ink (regions of 16 perceptual pixels or
//!    more): recoloured or emboldened text keeps its shapes but not its ink.
//! 5. **rendering** — anything else: the region is the baseline re-rasterised. Tolerated.
//!
//! The verdict is [`Verdict::Differ`] when any region is not `rendering` (or any region at all
//! with [`DiffOptions::tolerate_rendering`] off), and every region and reason is reported so
//! the decision can be checked on the diff image.
//!
//! # Limits, stated plainly
//!
//! * Text-only content displaced by up to 1.25 px is tolerated by design, so a real 1 px move of
//!   a block of plain text (no box, border or image moving with it) passes.
//! * Two layers of text that overlap and move independently (overflowing text under other text)
//!   cannot be explained by one displacement per tile and are reported as content.
//! * Animations captured mid-flight (a faded paragraph, a moved marquee, a rotated spinner) are
//!   real pixel changes and are reported; they must be stabilised at capture time.
//!
//! # Performance
//!
//! PNG decoding dominates: [`compare_png`] skips it for byte-identical files and otherwise
//! decodes both files concurrently, keeping Chromium's RGB layout (no widening to RGBA). The
//! per-pixel pass runs over rows in parallel with rayon and settles identical rows with one
//! `memcmp`; the region analysis only visits changed areas. The diff image is an indexed PNG
//! whose pixel data is the class plane itself. Everything is synchronous and CPU-bound: call it
//! from `tokio::task::spawn_blocking` in async code.

mod classify;
mod compare;
mod error;
mod image;
mod options;
mod pass;
mod pixel;
mod regions;
mod render;
mod result;

pub use crate::compare::{compare, compare_png};
pub use crate::error::DiffError;
pub use crate::image::{DEFAULT_MAX_PIXELS, Image};
pub use crate::options::DiffOptions;
pub use crate::result::{DiffResult, Dimensions, Region, RegionKind, Verdict};
