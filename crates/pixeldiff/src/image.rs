//! Decoded images: 8-bit RGB or RGBA pixels kept in the PNG's own layout.
//!
//! Screenshots from Chromium are opaque RGB. Keeping them as RGB instead of widening every image
//! to RGBA saves a copy pass and a quarter of the memory, which matters on full-page captures
//! (1920×10124 is 58 MB as RGB, 78 MB as RGBA); the comparison code is generic over both layouts.

use std::io::Cursor;

use png::{BitDepth, ColorType, Compression, Transformations};

use crate::error::DiffError;

/// Default upper bound on the pixels of one decoded image (64 Mi pixels: 1920 wide by 34,952
/// tall, 192 MB as RGB). Checked against the PNG header before any allocation.
pub const DEFAULT_MAX_PIXELS: u64 = 64 * 1024 * 1024;

/// How the bytes of an [`Image`] are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// Three bytes per pixel, opaque.
    Rgb,
    /// Four bytes per pixel, straight (not premultiplied) alpha.
    Rgba,
}

/// A decoded 8-bit image, row-major, without padding between rows.
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    width: u32,
    height: u32,
    format: Format,
    data: Vec<u8>,
}

impl std::fmt::Debug for Image {
    // The pixel buffer is megabytes of noise in a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl Image {
    /// Decodes a PNG with the [`DEFAULT_MAX_PIXELS`] limit.
    ///
    /// Every PNG colour type and bit depth is accepted: palettes and grey are expanded and 16-bit
    /// samples are reduced to 8 bits.
    ///
    /// # Errors
    /// [`DiffError::Decode`] when the bytes are not a valid PNG, [`DiffError::TooLarge`] when the
    /// header claims more pixels than the limit.
    pub fn decode_png(bytes: &[u8]) -> Result<Self, DiffError> {
        Self::decode_png_with_limit(bytes, DEFAULT_MAX_PIXELS)
    }

    /// Decodes a PNG, refusing images of more than `max_pixels` pixels.
    ///
    /// # Errors
    /// As [`Image::decode_png`].
    pub fn decode_png_with_limit(bytes: &[u8], max_pixels: u64) -> Result<Self, DiffError> {
        let mut decoder = png::Decoder::new(Cursor::new(bytes));
        decoder.set_transformations(Transformations::EXPAND | Transformations::STRIP_16);
        // Text and ICC chunks are metadata we never use; skipping them avoids their allocation.
        decoder.set_ignore_text_chunk(true);
        decoder.set_ignore_iccp_chunk(true);
        let header = decoder.read_header_info()?;
        let (width, height) = (header.width, header.height);
        check_size(width, height, max_pixels)?;

        let mut reader = decoder.read_info()?;
        let (color, depth) = reader.output_color_type();
        if depth != BitDepth::Eight {
            return Err(unsupported(color, depth));
        }
        let size = reader.output_buffer_size().ok_or(DiffError::TooLarge {
            width,
            height,
            limit: max_pixels,
        })?;
        let mut buf = vec![0u8; size];
        // `next_frame` unfilters straight into our buffer: the fastest path the crate offers for
        // non-interlaced images and correct (if slower) for interlaced ones.
        reader.next_frame(&mut buf)?;

        let (format, data) = match color {
            ColorType::Rgb => (Format::Rgb, buf),
            ColorType::Rgba => (Format::Rgba, buf),
            ColorType::Grayscale => (Format::Rgb, buf.iter().flat_map(|&v| [v, v, v]).collect()),
            ColorType::GrayscaleAlpha => (
                Format::Rgba,
                buf.chunks_exact(2)
                    .flat_map(|p| [p[0], p[0], p[0], p[1]])
                    .collect(),
            ),
            ColorType::Indexed => return Err(unsupported(color, depth)),
        };
        Ok(Self {
            width,
            height,
            format,
            data,
        })
    }

    /// Reads only the dimensions from a PNG header.
    ///
    /// # Errors
    /// [`DiffError::Decode`] when the bytes do not start with a valid PNG header,
    /// [`DiffError::Empty`] for a zero dimension.
    pub fn png_dimensions(bytes: &[u8]) -> Result<(u32, u32), DiffError> {
        let mut decoder = png::Decoder::new(Cursor::new(bytes));
        let header = decoder.read_header_info()?;
        let (width, height) = (header.width, header.height);
        if width == 0 || height == 0 {
            return Err(DiffError::Empty { width, height });
        }
        Ok((width, height))
    }

    /// Wraps a buffer of RGBA pixels (4 bytes per pixel, straight alpha, row-major).
    ///
    /// # Errors
    /// [`DiffError::Empty`] for a zero dimension, [`DiffError::BufferSize`] when the buffer length
    /// is not `width * height * 4`.
    pub fn from_rgba(width: u32, height: u32, data: Vec<u8>) -> Result<Self, DiffError> {
        Self::from_raw(width, height, Format::Rgba, data)
    }

    /// Wraps a buffer of opaque RGB pixels (3 bytes per pixel, row-major).
    ///
    /// # Errors
    /// As [`Image::from_rgba`], with 3 bytes per pixel.
    pub fn from_rgb(width: u32, height: u32, data: Vec<u8>) -> Result<Self, DiffError> {
        Self::from_raw(width, height, Format::Rgb, data)
    }

    fn from_raw(width: u32, height: u32, format: Format, data: Vec<u8>) -> Result<Self, DiffError> {
        if width == 0 || height == 0 {
            return Err(DiffError::Empty { width, height });
        }
        let expected = (width as usize)
            .checked_mul(height as usize)
            .and_then(|n| n.checked_mul(format.bytes_per_pixel()))
            .ok_or(DiffError::TooLarge {
                width,
                height,
                limit: u64::MAX,
            })?;
        if data.len() != expected {
            return Err(DiffError::BufferSize {
                width,
                height,
                expected,
                actual: data.len(),
            });
        }
        Ok(Self {
            width,
            height,
            format,
            data,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Whether the pixels carry an alpha channel.
    pub fn has_alpha(&self) -> bool {
        self.format == Format::Rgba
    }

    /// The RGBA value of one pixel (alpha 255 for RGB images), or `None` outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 4]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let bpp = self.format.bytes_per_pixel();
        let i = (y as usize * self.width as usize + x as usize) * bpp;
        let p = &self.data[i..i + bpp];
        Some(match self.format {
            Format::Rgb => [p[0], p[1], p[2], 255],
            Format::Rgba => [p[0], p[1], p[2], p[3]],
        })
    }

    /// Encodes the image as a PNG (fast compression).
    ///
    /// # Errors
    /// [`DiffError::Encode`] if the encoder fails.
    pub fn encode_png(&self) -> Result<Vec<u8>, DiffError> {
        let mut out = Vec::with_capacity(self.data.len() / 8);
        let mut encoder = png::Encoder::new(&mut out, self.width, self.height);
        encoder.set_color(match self.format {
            Format::Rgb => ColorType::Rgb,
            Format::Rgba => ColorType::Rgba,
        });
        encoder.set_depth(BitDepth::Eight);
        encoder.set_compression(Compression::Fast);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&self.data)?;
        writer.finish()?;
        Ok(out)
    }

    pub(crate) fn format(&self) -> Format {
        self.format
    }

    pub(crate) fn data(&self) -> &[u8] {
        &self.data
    }
}

impl Format {
    pub(crate) fn bytes_per_pixel(self) -> usize {
        match self {
            Self::Rgb => 3,
            Self::Rgba => 4,
        }
    }
}

fn check_size(width: u32, height: u32, max_pixels: u64) -> Result<(), DiffError> {
    if width == 0 || height == 0 {
        return Err(DiffError::Empty { width, height });
    }
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(DiffError::TooLarge {
            width,
            height,
            limit: max_pixels,
        });
    }
    Ok(())
}

fn unsupported(color: ColorType, depth: BitDepth) -> DiffError {
    DiffError::Unsupported(format!("{color:?} at {depth:?} after expansion"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(width: u32, height: u32, color: ColorType, depth: BitDepth, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(color);
        encoder.set_depth(depth);
        if color == ColorType::Indexed {
            encoder.set_palette(vec![10, 20, 30, 200, 100, 50]);
        }
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(data).unwrap();
        writer.finish().unwrap();
        out
    }

    #[test]
    fn rgb_round_trip_keeps_pixels_and_layout() {
        let data: Vec<u8> = (0..2 * 3 * 3).map(|v| v as u8 * 7).collect();
        let img = Image::from_rgb(2, 3, data).unwrap();
        let back = Image::decode_png(&img.encode_png().unwrap()).unwrap();
        assert_eq!(back, img);
        assert!(!back.has_alpha());
        assert_eq!(back.pixel(1, 2), Some([105, 112, 119, 255]));
        assert_eq!(back.pixel(2, 0), None);
    }

    #[test]
    fn rgba_round_trip_keeps_alpha() {
        let data = vec![1, 2, 3, 4, 5, 6, 7, 8];
        let img = Image::from_rgba(2, 1, data).unwrap();
        let back = Image::decode_png(&img.encode_png().unwrap()).unwrap();
        assert!(back.has_alpha());
        assert_eq!(back.pixel(1, 0), Some([5, 6, 7, 8]));
    }

    #[test]
    fn grey_palette_and_16_bit_are_expanded_to_8_bit_colour() {
        let grey = Image::decode_png(&encode(
            2,
            1,
            ColorType::Grayscale,
            BitDepth::Eight,
            &[9, 200],
        ))
        .unwrap();
        assert_eq!(grey.pixel(1, 0), Some([200, 200, 200, 255]));

        let grey_alpha = encode(1, 1, ColorType::GrayscaleAlpha, BitDepth::Eight, &[50, 128]);
        assert_eq!(
            Image::decode_png(&grey_alpha).unwrap().pixel(0, 0),
            Some([50, 50, 50, 128])
        );

        let indexed = encode(2, 1, ColorType::Indexed, BitDepth::Eight, &[1, 0]);
        assert_eq!(
            Image::decode_png(&indexed).unwrap().pixel(0, 0),
            Some([200, 100, 50, 255])
        );

        let deep = encode(
            1,
            1,
            ColorType::Rgb,
            BitDepth::Sixteen,
            &[0x12, 0x34, 0xab, 0xcd, 0, 1],
        );
        assert_eq!(
            Image::decode_png(&deep).unwrap().pixel(0, 0),
            Some([0x12, 0xab, 0, 255])
        );

        let one_bit = encode(8, 1, ColorType::Grayscale, BitDepth::One, &[0b1010_0000]);
        assert_eq!(
            Image::decode_png(&one_bit).unwrap().pixel(0, 0),
            Some([255, 255, 255, 255])
        );
    }

    #[test]
    fn garbage_and_truncated_files_are_decode_errors() {
        assert!(matches!(
            Image::decode_png(b"not a png"),
            Err(DiffError::Decode(_))
        ));
        let png = Image::from_rgb(4, 4, vec![7; 48])
            .unwrap()
            .encode_png()
            .unwrap();
        assert!(matches!(
            Image::decode_png(&png[..png.len() / 2]),
            Err(DiffError::Decode(_))
        ));
        assert!(Image::decode_png(&[]).is_err());
    }

    #[test]
    fn the_pixel_limit_is_checked_before_decoding() {
        let png = Image::from_rgb(100, 100, vec![0; 30_000])
            .unwrap()
            .encode_png()
            .unwrap();
        assert!(matches!(
            Image::decode_png_with_limit(&png, 9_999),
            Err(DiffError::TooLarge {
                width: 100,
                height: 100,
                limit: 9_999
            })
        ));
        assert!(Image::decode_png_with_limit(&png, 10_000).is_ok());
        assert_eq!(Image::png_dimensions(&png).unwrap(), (100, 100));
    }

    #[test]
    fn raw_buffers_must_match_their_dimensions() {
        assert!(matches!(
            Image::from_rgba(2, 2, vec![0; 15]),
            Err(DiffError::BufferSize {
                expected: 16,
                actual: 15,
                ..
            })
        ));
        assert!(matches!(
            Image::from_rgb(0, 5, vec![]),
            Err(DiffError::Empty { .. })
        ));
    }
}
