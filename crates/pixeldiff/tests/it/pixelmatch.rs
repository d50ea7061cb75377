//! Golden counts: pixelmatch itself (npm pixelmatch 5.3.0 and 7.2.0 with pngjs, run on PNGs of
//! exactly these pictures) reported the expected numbers below. The perceptual count must agree
//! exactly, with the default options and with `includeAA` and `threshold` changed.

use sentinel_pixeldiff::{DiffOptions, Image, compare};

use crate::support::{BLUE, INK, PAGE, Picture, RED, Rgb, WHITE};

fn page(dx: f32, word: &str, button: Rgb) -> Image {
    let mut p = Picture::new(240, 120, PAGE);
    p.text(10.0 + dx, 10.0, 1.4, "SHIP PAGES THAT LOOK RIGHT", INK);
    p.text(10.0 + dx, 26.0, 1.4, word, INK);
    p.rect(10.0, 60.0, 80.0, 30.0, button);
    p.text(20.0, 70.0, 1.6, "GO NOW", WHITE);
    p.image()
}

/// Translucent pixels, which pixelmatch 5 composites over white (7 over a checkerboard: its
/// count for this pair is 1216; qa-sentinel follows 5, as Playwright's copy does).
fn translucent(shift: u8) -> Image {
    let mut data = Vec::new();
    for y in 0..64u32 {
        for x in 0..64u32 {
            let a = ((x * 4) as u8).wrapping_add(shift / 2);
            let v = ((x + y) * 3) as u8;
            data.extend_from_slice(&[v, v.wrapping_add(shift), 255 - v, a]);
        }
    }
    Image::from_rgba(64, 64, data).unwrap()
}

fn count(a: &Image, b: &Image, options: DiffOptions) -> u64 {
    compare(a, b, &options).different_pixels
}

#[test]
fn counts_equal_pixelmatch_on_anti_aliased_text_jitter() {
    let (a, b) = (
        page(0.0, "EVERY DEPLOY", BLUE),
        page(0.4, "EVERY DEPLOY", BLUE),
    );
    assert_eq!(count(&a, &b, DiffOptions::default()), 282);
    assert_eq!(
        count(&a, &b, DiffOptions::default().with_include_aa(true)),
        1109
    );
    assert_eq!(
        count(&a, &b, DiffOptions::default().with_threshold(0.2)),
        83
    );
}

#[test]
fn counts_equal_pixelmatch_on_a_changed_word() {
    let (a, b) = (
        page(0.0, "EVERY DEPLOY", BLUE),
        page(0.0, "EVERY COMMIT", BLUE),
    );
    assert_eq!(count(&a, &b, DiffOptions::default()), 141);
    assert_eq!(
        count(&a, &b, DiffOptions::default().with_include_aa(true)),
        220
    );
    assert_eq!(
        count(&a, &b, DiffOptions::default().with_threshold(0.2)),
        111
    );
}

#[test]
fn counts_equal_pixelmatch_on_a_recoloured_button() {
    let (a, b) = (
        page(0.0, "EVERY DEPLOY", BLUE),
        page(0.0, "EVERY DEPLOY", RED),
    );
    assert_eq!(count(&a, &b, DiffOptions::default()), 2123);
    assert_eq!(
        count(&a, &b, DiffOptions::default().with_include_aa(true)),
        2294
    );
    assert_eq!(
        count(&a, &b, DiffOptions::default().with_threshold(0.2)),
        2093
    );
}

#[test]
fn counts_equal_pixelmatch_5_on_translucent_pixels() {
    let (a, b) = (translucent(0), translucent(40));
    assert_eq!(count(&a, &b, DiffOptions::default()), 929);
    assert_eq!(
        count(&a, &b, DiffOptions::default().with_include_aa(true)),
        929
    );
}
