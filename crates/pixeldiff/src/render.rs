//! The diff image: the class+grey plane written as an indexed PNG.
//!
//! Each plane byte is `class << 5 | grey`, so a 256-entry palette maps it to its colour directly
//! and the plane is the image data: no RGB buffer is built, and the encoder compresses one byte
//! per pixel instead of three or four.

use png::{BitDepth, ColorType, Compression, Filter};

use crate::error::DiffError;
use crate::image::{Format, Image};
use crate::pass::{CLASS_SHIFT, class, class_of};
use crate::pixel::{Layout, Rgb, Rgba, grey_offset};

/// Colours of the classes in the diff image.
const YELLOW: [u8; 3] = [255, 255, 0];
const RED: [u8; 3] = [255, 0, 0];
const ORANGE: [u8; 3] = [255, 140, 0];
const MAGENTA: [u8; 3] = [255, 0, 255];

fn palette() -> Vec<u8> {
    (0..=255u8)
        .flat_map(|byte| {
            let grey = 255 - (byte & ((1 << CLASS_SHIFT) - 1));
            match class_of(byte) {
                class::AA => YELLOW,
                class::DIFF => RED,
                class::FILL => ORANGE,
                class::OUTSIDE => MAGENTA,
                // SAME and FAINT (under the threshold) show the baseline, as pixelmatch does.
                _ => [grey, grey, grey],
            }
        })
        .collect()
}

/// Encodes a plane of `width × height` bytes as an indexed PNG.
pub(crate) fn encode(width: u32, height: u32, plane: &[u8]) -> Result<Vec<u8>, DiffError> {
    let mut out = Vec::with_capacity(plane.len() / 16);
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(ColorType::Indexed);
    encoder.set_depth(BitDepth::Eight);
    encoder.set_palette(palette());
    encoder.set_compression(Compression::Fast);
    // Filters predict smooth gradients; palette indices are not one, and the long runs of one
    // grey compress best unfiltered (the PNG specification recommends no filter for palettes).
    encoder.set_filter(Filter::NoFilter);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(plane)?;
    writer.finish()?;
    Ok(out)
}

/// A plane with every pixel unchanged: the faded baseline alone.
pub(crate) fn grey_plane(image: &Image) -> Vec<u8> {
    fn greys<L: Layout>(data: &[u8]) -> Vec<u8> {
        data.chunks_exact(L::BPP)
            .map(|p| (class::SAME << CLASS_SHIFT) | grey_offset(L::rgba(p)))
            .collect()
    }
    match image.format() {
        Format::Rgb => greys::<Rgb>(image.data()),
        Format::Rgba => greys::<Rgba>(image.data()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_map_to_their_colours() {
        let plane = vec![
            class::SAME << CLASS_SHIFT,
            (class::SAME << CLASS_SHIFT) | 26,
            (class::FAINT << CLASS_SHIFT) | 10,
            class::AA << CLASS_SHIFT,
            (class::DIFF << CLASS_SHIFT) | 3,
            class::FILL << CLASS_SHIFT,
            class::OUTSIDE << CLASS_SHIFT,
        ];
        let png = encode(7, 1, &plane).unwrap();
        let img = Image::decode_png(&png).unwrap();
        let row: Vec<[u8; 4]> = (0..7).map(|x| img.pixel(x, 0).unwrap()).collect();
        assert_eq!(
            row,
            vec![
                [255, 255, 255, 255],
                [229, 229, 229, 255],
                [245, 245, 245, 255],
                [255, 255, 0, 255],
                [255, 0, 0, 255],
                [255, 140, 0, 255],
                [255, 0, 255, 255],
            ]
        );
    }

    #[test]
    fn the_grey_plane_fades_the_baseline() {
        let img = Image::from_rgb(2, 1, vec![0, 0, 0, 255, 255, 255]).unwrap();
        assert_eq!(grey_plane(&img), vec![26, 0]);
    }
}
