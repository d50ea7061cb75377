//! The outcome of a comparison.

use serde::Serialize;

use crate::error::DiffError;
use crate::render;

/// What a changed region is, as decided by the region analysis (see the crate documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RegionKind {
    /// Shapes differ: text, an icon or an image changed, content appeared, vanished or moved
    /// by more than a pixel.
    Content,
    /// Same shapes, different colour: a solid fill changed colour (even below the perceptual
    /// threshold, such as a pale background), or text changed colour or weight.
    Colour,
    /// A structure with straight edges (box, border, rule, image) moved by whole pixels.
    Shift,
    /// Area present in only one of the images: the page grew, shrank or changed width.
    Size,
    /// Tolerated: the region is the baseline re-rasterised (anti-aliasing, sub-pixel glyph
    /// positions, text baselines rounded to the next pixel), as different font settings or
    /// fractional layout produce. Not a change.
    Rendering,
}

impl RegionKind {
    /// Whether a region of this kind makes the images differ (everything but [`Self::Rendering`]).
    pub fn is_change(self) -> bool {
        self != Self::Rendering
    }

    /// The name used in JSON and in reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Content => "content",
            Self::Colour => "colour",
            Self::Shift => "shift",
            Self::Size => "size",
            Self::Rendering => "rendering",
        }
    }

    pub(crate) fn description(self) -> &'static str {
        match self {
            Self::Content => "content changed",
            Self::Colour => "colour changed",
            Self::Shift => "moved by whole pixels",
            Self::Size => "present in only one image",
            Self::Rendering => "text re-rasterised (anti-aliasing, sub-pixel positions)",
        }
    }
}

impl std::fmt::Display for RegionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rectangle of changed pixels, in canvas coordinates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Region {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// What kind of change this is.
    pub kind: RegionKind,
    /// Perceptually different pixels inside the rectangle (pixelmatch's count).
    pub different_pixels: u64,
    /// Pixels inside the rectangle whose bytes differ.
    pub exact_different_pixels: u64,
}

/// The decision of a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No change a person would call a change.
    Match,
    /// At least one changed region that is not rendering noise.
    Differ,
}

/// Width and height of an input image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Dimensions {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// The outcome of comparing a baseline with a current image.
///
/// Counts cover the union canvas (`width × height` = the larger width by the larger height);
/// pixels that exist in only one image count as different. Serialises to the JSON of
/// `qa-sentinel diff --format json` (camelCase).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DiffResult {
    /// Width of the canvas compared.
    pub width: u32,
    /// Height of the canvas compared.
    pub height: u32,
    /// Perceptually different pixels, not anti-aliasing (pixelmatch's count), plus the pixels
    /// present in only one image.
    pub different_pixels: u64,
    /// Pixels whose bytes differ in any channel, plus the pixels present in only one image.
    pub exact_different_pixels: u64,
    /// Perceptually different pixels classified as anti-aliasing (not counted as different).
    pub anti_aliased_pixels: u64,
    /// `width × height`.
    pub total_pixels: u64,
    /// `different_pixels / total_pixels`.
    pub ratio: f64,
    /// Changed regions, top to bottom, including tolerated [`RegionKind::Rendering`] ones.
    pub regions: Vec<Region>,
    /// The decision.
    pub verdict: Verdict,
    /// Why, in a few human-readable sentences.
    pub reasons: Vec<String>,
    /// Size of the baseline image.
    pub baseline: Dimensions,
    /// Size of the current image.
    pub current: Dimensions,
    #[serde(skip)]
    pub(crate) canvas: Canvas,
}

/// What the diff image is drawn from.
#[derive(Clone, Debug)]
pub(crate) enum Canvas {
    /// The class+grey plane of the pixel pass (one byte per canvas pixel).
    Plane(Vec<u8>),
    /// The two inputs were the same PNG file: its bytes, decoded only if a diff image is asked for.
    IdenticalPng(Vec<u8>),
}

impl DiffResult {
    /// Whether the verdict is [`Verdict::Match`].
    pub fn is_match(&self) -> bool {
        self.verdict == Verdict::Match
    }

    /// The regions that are changes (not tolerated rendering differences).
    pub fn changes(&self) -> impl Iterator<Item = &Region> {
        self.regions.iter().filter(|r| r.kind.is_change())
    }

    /// The diff image as a PNG, pixelmatch style: the baseline as a faded grey, perceptually
    /// different pixels red, anti-aliasing yellow, and two additions: orange for solid areas
    /// whose colour changed below the perceptual threshold, magenta for the area present in only
    /// one image. An indexed PNG, so it costs one byte per pixel to encode.
    ///
    /// # Errors
    /// [`DiffError::Encode`] if the encoder fails; [`DiffError::Decode`] cannot happen for
    /// results of [`crate::compare_png`] (the identical input was validated) but is kept in the
    /// signature rather than panicking.
    pub fn diff_image(&self) -> Result<Vec<u8>, DiffError> {
        match &self.canvas {
            Canvas::Plane(plane) => render::encode(self.width, self.height, plane),
            Canvas::IdenticalPng(png) => {
                // The header was checked against the caller's limit before the fast path.
                let image = crate::Image::decode_png_with_limit(png, u64::MAX)?;
                render::encode(self.width, self.height, &render::grey_plane(&image))
            }
        }
    }
}
