//! One synthetic pair per class of change: real changes are found with the right bounding box,
//! rendering noise passes.

use sentinel_pixeldiff::{DiffOptions, DiffResult, Image, Region, RegionKind, Verdict, compare};

use crate::support::{BLUE, INK, PAGE, Picture, RED, Rgb, WHITE};

const W: usize = 480;
const H: usize = 240;

/// What can vary between the two renderings of the test page.
#[derive(Clone)]
struct Page {
    /// Sub-pixel or whole-pixel offset of the paragraph.
    text_dx: f32,
    text_dy: f32,
    second_line: &'static str,
    text_color: Rgb,
    button: Rgb,
    /// Vertical offset of the card (a bordered box with text).
    card_dy: f32,
    band: Rgb,
    height: usize,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            text_dx: 0.0,
            text_dy: 0.0,
            second_line: "EVERY DEPLOY",
            text_color: INK,
            button: BLUE,
            card_dy: 0.0,
            band: PAGE,
            height: H,
        }
    }
}

impl Page {
    fn render(&self) -> Image {
        let mut p = Picture::new(W, self.height, PAGE);
        p.text(20.0, 16.0, 2.0, "QUALITY REPORT", INK);
        let (x, y) = (20.0 + self.text_dx, 60.0 + self.text_dy);
        p.text(x, y, 1.4, "SHIP PAGES THAT LOOK RIGHT", self.text_color);
        p.text(x, y + 16.0, 1.4, self.second_line, self.text_color);
        p.text(
            x,
            y + 32.0,
            1.4,
            "COMPARE WITH THE BASELINE",
            self.text_color,
        );
        p.rect(20.0, 130.0, 120.0, 36.0, self.button);
        p.text(44.0, 141.0, 2.0, "GO NOW", WHITE);
        let cy = 60.0 + self.card_dy;
        p.rect(300.0, cy, 160.0, 120.0, INK);
        p.rect(301.0, cy + 1.0, 158.0, 118.0, WHITE);
        p.text(316.0, cy + 16.0, 1.4, "CARD TITLE", INK);
        p.rect(316.0, cy + 40.0, 128.0, 64.0, [0x93, 0xc5, 0xfd]);
        p.rect(0.0, 200.0, W as f32, 40.0, self.band);
        p.image()
    }
}

fn diff(a: &Page, b: &Page) -> DiffResult {
    compare(&a.render(), &b.render(), &DiffOptions::default())
}

fn changes(result: &DiffResult) -> Vec<&Region> {
    result
        .regions
        .iter()
        .filter(|r| r.kind.is_change())
        .collect()
}

/// The bounding box (x0, y0, x1, y1) of the given regions.
fn union(regions: &[&Region]) -> (u32, u32, u32, u32) {
    regions
        .iter()
        .fold((u32::MAX, u32::MAX, 0, 0), |(x0, y0, x1, y1), r| {
            (
                x0.min(r.x),
                y0.min(r.y),
                x1.max(r.x + r.width),
                y1.max(r.y + r.height),
            )
        })
}

#[test]
fn identical_renderings_match_with_nothing_to_report() {
    let result = diff(&Page::default(), &Page::default());
    assert_eq!(result.verdict, Verdict::Match);
    assert_eq!(
        (result.different_pixels, result.exact_different_pixels),
        (0, 0)
    );
    assert!(result.regions.is_empty());
    assert_eq!(result.reasons, vec!["the images are identical"]);
}

#[test]
fn sub_pixel_text_jitter_is_tolerated() {
    for (dx, dy) in [
        (0.25, 0.0),
        (0.4, 0.0),
        (0.6, 0.0),
        (0.0, 0.3),
        (0.3, 0.3),
        (-0.5, 0.0),
    ] {
        let moved = Page {
            text_dx: dx,
            text_dy: dy,
            ..Page::default()
        };
        let result = diff(&Page::default(), &moved);
        // The pair must really differ perceptually, or the test proves nothing.
        assert!(
            result.different_pixels > 50,
            "({dx},{dy}): {}",
            result.different_pixels
        );
        assert_eq!(
            result.verdict,
            Verdict::Match,
            "({dx},{dy}): {:?}",
            result.regions
        );
        assert!(
            result
                .regions
                .iter()
                .all(|r| r.kind == RegionKind::Rendering)
        );
        assert!(
            result.reasons.iter().any(|r| r.starts_with("tolerated")),
            "{:?}",
            result.reasons
        );
    }
}

#[test]
fn text_rounded_to_the_next_pixel_row_is_tolerated() {
    let moved = Page {
        text_dy: 1.0,
        ..Page::default()
    };
    let result = diff(&Page::default(), &moved);
    assert!(result.different_pixels > 100);
    assert_eq!(result.verdict, Verdict::Match, "{:?}", result.regions);
}

#[test]
fn the_same_jitter_fails_in_strict_mode() {
    let moved = Page {
        text_dx: 0.4,
        ..Page::default()
    };
    let options = DiffOptions::default().with_tolerate_rendering(false);
    let result = compare(&Page::default().render(), &moved.render(), &options);
    assert_eq!(result.verdict, Verdict::Differ);
}

#[test]
fn a_one_word_change_is_found_where_the_word_is() {
    let edited = Page {
        second_line: "EVERY COMMIT",
        ..Page::default()
    };
    let result = diff(&Page::default(), &edited);
    assert_eq!(result.verdict, Verdict::Differ);
    let changed = changes(&result);
    assert!(
        changed.iter().all(|r| r.kind == RegionKind::Content),
        "{changed:?}"
    );
    // "EVERY " is 6 glyphs of 6 dots of 1.4 px: the second word starts at x = 20 + 50.4.
    let word_x0 = 20 + (6.0 * 6.0 * 1.4) as u32;
    let word_x1 = 20 + Picture::text_width("EVERY COMMIT", 1.4).ceil() as u32;
    let (x0, y0, x1, y1) = union(&changed);
    assert!(
        x0 >= word_x0 - 1 && x0 <= word_x0 + 3,
        "x0 {x0} vs word at {word_x0}"
    );
    assert!(
        x1 <= word_x1 + 1 && x1 >= word_x1 - 6,
        "x1 {x1} vs word end {word_x1}"
    );
    assert!(
        y0 >= 76 && y1 <= 76 + 11,
        "rows {y0}..{y1} outside the line 76..86"
    );
}

#[test]
fn a_button_colour_change_is_a_colour_region_with_the_button_box() {
    let recoloured = Page {
        button: RED,
        ..Page::default()
    };
    let result = diff(&Page::default(), &recoloured);
    assert_eq!(result.verdict, Verdict::Differ);
    let changed = changes(&result);
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0].kind, RegionKind::Colour);
    assert_eq!(union(&changed), (20, 130, 140, 166));
}

#[test]
fn a_box_moved_by_one_pixel_is_a_shift_covering_the_box() {
    let moved = Page {
        card_dy: 1.0,
        ..Page::default()
    };
    let result = diff(&Page::default(), &moved);
    assert_eq!(result.verdict, Verdict::Differ);
    let changed = changes(&result);
    assert!(
        changed.iter().any(|r| r.kind == RegionKind::Shift),
        "{:?}",
        result.regions
    );
    // The card spans x 300..460 and y 60..180 before, 61..181 after.
    let (x0, y0, x1, y1) = union(&changed);
    assert!(
        (300..=302).contains(&x0) && (458..=460).contains(&x1),
        "x {x0}..{x1}"
    );
    assert!(
        (60..=62).contains(&y0) && (179..=181).contains(&y1),
        "y {y0}..{y1}"
    );
}

#[test]
fn a_pale_background_change_under_the_threshold_is_still_a_change() {
    let cream = Page {
        band: [0xfe, 0xf3, 0xc7],
        ..Page::default()
    };
    let result = diff(&Page::default(), &cream);
    // pixelmatch's count is zero: the per-pixel distance is under its threshold...
    assert_eq!(result.different_pixels, 0);
    assert_eq!(result.exact_different_pixels, (W * 40) as u64);
    // ...but the whole band changed colour.
    assert_eq!(result.verdict, Verdict::Differ);
    let changed = changes(&result);
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].kind, RegionKind::Colour);
    assert_eq!(union(&changed), (0, 200, W as u32, 240));
}

#[test]
fn a_barely_visible_background_shift_is_not_a_change() {
    // Two levels of grey: under the faint threshold, nobody sees it.
    let band = [PAGE[0] - 2, PAGE[1] - 2, PAGE[2] - 2];
    let result = diff(
        &Page::default(),
        &Page {
            band,
            ..Page::default()
        },
    );
    assert_eq!(result.exact_different_pixels, (W * 40) as u64);
    assert_eq!(result.verdict, Verdict::Match, "{:?}", result.regions);
}

#[test]
fn recoloured_text_is_a_change_even_if_its_shapes_match() {
    let grey = Page {
        text_color: [0x6b, 0x72, 0x80],
        ..Page::default()
    };
    let result = diff(&Page::default(), &grey);
    assert_eq!(result.verdict, Verdict::Differ, "{:?}", result.regions);
    assert!(
        changes(&result)
            .iter()
            .all(|r| r.kind == RegionKind::Colour || r.kind == RegionKind::Content)
    );
}

#[test]
fn text_moved_by_two_pixels_is_a_change() {
    let moved = Page {
        text_dx: 2.0,
        ..Page::default()
    };
    let result = diff(&Page::default(), &moved);
    assert_eq!(result.verdict, Verdict::Differ);
    assert!(
        changes(&result)
            .iter()
            .any(|r| r.kind == RegionKind::Content)
    );
}

#[test]
fn a_page_that_grew_is_a_change_and_the_new_area_a_size_region() {
    let longer = Page {
        height: H + 40,
        ..Page::default()
    };
    let result = diff(&Page::default(), &longer);
    assert_eq!(result.verdict, Verdict::Differ);
    assert_eq!((result.width, result.height), (W as u32, (H + 40) as u32));
    assert_eq!(result.total_pixels, (W * (H + 40)) as u64);
    assert_eq!(result.different_pixels, (W * 40) as u64);
    let size: Vec<&Region> = result
        .regions
        .iter()
        .filter(|r| r.kind == RegionKind::Size)
        .collect();
    assert_eq!(size.len(), 1);
    assert_eq!(union(&size), (0, H as u32, W as u32, (H + 40) as u32));
    assert!(
        result.reasons.iter().any(|r| r.contains("sizes differ")),
        "{:?}",
        result.reasons
    );
}

#[test]
fn a_narrower_and_taller_image_reports_both_strips() {
    let a = Picture::new(100, 50, PAGE).image();
    let b = Picture::new(60, 80, PAGE).image();
    let result = compare(&a, &b, &DiffOptions::default());
    assert_eq!((result.width, result.height), (100, 80));
    let mut size: Vec<(u32, u32, u32, u32)> = result
        .regions
        .iter()
        .filter(|r| r.kind == RegionKind::Size)
        .map(|r| (r.x, r.y, r.width, r.height))
        .collect();
    size.sort();
    assert_eq!(size, vec![(0, 50, 60, 30), (60, 0, 40, 80)]);
    assert_eq!(result.different_pixels, 100 * 80 - 60 * 50);
    assert_eq!(result.verdict, Verdict::Differ);
}

#[test]
fn the_ratio_is_perceptual_pixels_over_the_canvas() {
    let result = diff(
        &Page::default(),
        &Page {
            button: RED,
            ..Page::default()
        },
    );
    let expected = result.different_pixels as f64 / (W * H) as f64;
    assert!((result.ratio - expected).abs() < 1e-12);
    assert!(
        result.different_pixels >= 120 * 36 - 500,
        "{}",
        result.different_pixels
    );
}
