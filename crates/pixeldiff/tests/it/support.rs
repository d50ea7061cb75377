//! A tiny supersampling rasteriser for test pictures: solid rectangles and "text" in a 5×7 dot
//! font, drawn with analytic anti-aliasing at fractional positions, so that tests can produce the
//! same kinds of differences a browser does (sub-pixel jitter, baseline rounding, real edits)
//! without screenshots in the repository.

use sentinel_pixeldiff::Image;

/// Colours as RGB.
pub(crate) type Rgb = [u8; 3];

pub(crate) const PAGE: Rgb = [0xf9, 0xfa, 0xfb];
pub(crate) const INK: Rgb = [0x1f, 0x29, 0x37];
pub(crate) const BLUE: Rgb = [0x25, 0x63, 0xeb];
pub(crate) const RED: Rgb = [0xdc, 0x26, 0x26];
pub(crate) const WHITE: Rgb = [255, 255, 255];

/// Subsamples per pixel side: coverage is exact to 1/64.
const SUB: usize = 8;

/// A picture being drawn, as floating-point RGB.
pub(crate) struct Picture {
    width: usize,
    height: usize,
    pixels: Vec<[f32; 3]>,
}

impl Picture {
    pub(crate) fn new(width: usize, height: usize, background: Rgb) -> Self {
        Self {
            width,
            height,
            pixels: vec![background.map(f32::from); width * height],
        }
    }

    /// Fills the rectangle `[x, x + w) × [y, y + h)` (fractional coordinates) with `color`,
    /// blending edge pixels by their covered area.
    pub(crate) fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, color: Rgb) -> &mut Self {
        self.shape(&[(x, y, w, h)], color)
    }

    /// Writes `text` in the dot font, top-left corner at `(x, y)`, each dot `dot` pixels wide.
    /// Glyphs are 5 dots wide with one dot of spacing.
    pub(crate) fn text(&mut self, x: f32, y: f32, dot: f32, text: &str, color: Rgb) -> &mut Self {
        let mut dots = Vec::new();
        for (i, ch) in text.chars().enumerate() {
            let gx = x + i as f32 * 6.0 * dot;
            for (row, bits) in glyph(ch).iter().enumerate() {
                for col in 0..5 {
                    if bits & (0b10000 >> col) != 0 {
                        dots.push((gx + col as f32 * dot, y + row as f32 * dot, dot, dot));
                    }
                }
            }
        }
        self.shape(&dots, color)
    }

    /// Width of `text` in pixels at dot size `dot`.
    pub(crate) fn text_width(text: &str, dot: f32) -> f32 {
        text.chars().count() as f32 * 6.0 * dot - dot
    }

    /// Paints the union of the rectangles `(x, y, w, h)` with `color`: coverage is counted on a
    /// grid of SUB×SUB samples per pixel, so shared edges are not blended twice. Only the pixels
    /// under the rectangles' bounding box are visited.
    fn shape(&mut self, rects: &[(f32, f32, f32, f32)], color: Rgb) -> &mut Self {
        if rects.is_empty() {
            return self;
        }
        let px0 = rects
            .iter()
            .map(|r| r.0.floor().max(0.0) as usize)
            .min()
            .unwrap_or(0);
        let py0 = rects
            .iter()
            .map(|r| r.1.floor().max(0.0) as usize)
            .min()
            .unwrap_or(0);
        let px1 = rects
            .iter()
            .map(|r| (r.0 + r.2).ceil() as usize)
            .max()
            .unwrap_or(0)
            .min(self.width);
        let py1 = rects
            .iter()
            .map(|r| (r.1 + r.3).ceil() as usize)
            .max()
            .unwrap_or(0)
            .min(self.height);
        if px0 >= px1 || py0 >= py1 {
            return self;
        }
        let (sw, sh) = ((px1 - px0) * SUB, (py1 - py0) * SUB);
        let mut mask = vec![false; sw * sh];
        // Sample i of the box covers the centre px0 + (i + 0.5) / SUB.
        let first = |v: f32, origin: usize, max: usize| {
            (((v - origin as f32) * SUB as f32 - 0.5).ceil().max(0.0) as usize).min(max)
        };
        for &(x, y, w, h) in rects {
            let (sx0, sx1) = (first(x, px0, sw), first(x + w, px0, sw));
            for sy in first(y, py0, sh)..first(y + h, py0, sh) {
                mask[sy * sw + sx0..sy * sw + sx1].fill(true);
            }
        }
        let color = color.map(f32::from);
        for y in py0..py1 {
            for x in px0..px1 {
                let covered: usize = (0..SUB)
                    .map(|sy| {
                        let row = ((y - py0) * SUB + sy) * sw + (x - px0) * SUB;
                        mask[row..row + SUB].iter().filter(|&&m| m).count()
                    })
                    .sum();
                if covered > 0 {
                    let alpha = covered as f32 / (SUB * SUB) as f32;
                    let p = &mut self.pixels[y * self.width + x];
                    for c in 0..3 {
                        p[c] = p[c] * (1.0 - alpha) + color[c] * alpha;
                    }
                }
            }
        }
        self
    }

    pub(crate) fn image(&self) -> Image {
        let data = self
            .pixels
            .iter()
            .flat_map(|p| p.map(|v| v.round() as u8))
            .collect();
        Image::from_rgb(self.width as u32, self.height as u32, data).unwrap()
    }
}

/// The 5×7 dot pattern of a character (capitals, digits, space; anything else is a box).
fn glyph(ch: char) -> [u8; 7] {
    match ch {
        ' ' => [0; 7],
        'A' => [0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
        'B' => [0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e],
        'C' => [0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e],
        'D' => [0x1e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1e],
        'E' => [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f],
        'F' => [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10],
        'G' => [0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f],
        'H' => [0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
        'I' => [0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f],
        'M' => [0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x11],
        'O' => [0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
        'P' => [0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10],
        'R' => [0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11],
        'S' => [0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e],
        'T' => [0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a],
        'Y' => [0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04],
        '0' => [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
        '1' => [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
        '2' => [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
        '7' => [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        _ => [0x1f, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1f],
    }
}
