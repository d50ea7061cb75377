//! The PNG entry points: fast paths, errors that name the bad file, the diff image.

use sentinel_pixeldiff::{
    DiffError, DiffOptions, Image, RegionKind, Verdict, compare, compare_png,
};

use crate::support::{BLUE, INK, PAGE, Picture, RED};

fn picture(button: [u8; 3]) -> Image {
    let mut p = Picture::new(120, 60, PAGE);
    p.text(8.0, 8.0, 1.4, "HELLO", INK);
    p.rect(60.0, 30.0, 40.0, 20.0, button);
    p.image()
}

#[test]
fn byte_identical_files_are_identical_without_decoding_and_still_draw() {
    let png = picture(BLUE).encode_png().unwrap();
    let result = compare_png(&png, &png, &DiffOptions::default()).unwrap();
    assert_eq!(result.verdict, Verdict::Match);
    assert_eq!(
        (result.width, result.height, result.total_pixels),
        (120, 60, 7200)
    );
    assert_eq!(result.exact_different_pixels, 0);
    let drawn = Image::decode_png(&result.diff_image().unwrap()).unwrap();
    assert_eq!((drawn.width(), drawn.height()), (120, 60));
    // Background: #f9fafb faded as pixelmatch does (255 + (249.8 - 255) * 0.1 = 254.5 -> 254);
    // no red anywhere.
    assert_eq!(drawn.pixel(0, 0), Some([254, 254, 254, 255]));
    assert!((0..120).all(|x| (0..60).all(|y| drawn.pixel(x, y).unwrap()[1] > 200)));
}

#[test]
fn the_same_pixels_in_rgb_and_rgba_files_match() {
    let rgb = picture(BLUE);
    let rgba_data: Vec<u8> = (0..60)
        .flat_map(|y| (0..120).map(move |x| (x, y)))
        .flat_map(|(x, y)| rgb.pixel(x, y).unwrap())
        .collect();
    let rgba = Image::from_rgba(120, 60, rgba_data).unwrap();
    let result = compare_png(
        &rgb.encode_png().unwrap(),
        &rgba.encode_png().unwrap(),
        &DiffOptions::default(),
    )
    .unwrap();
    assert_eq!(result.exact_different_pixels, 0);
    assert_eq!(result.verdict, Verdict::Match);
}

#[test]
fn the_diff_image_marks_changed_pixels_red_and_missing_area_magenta() {
    let a = picture(BLUE);
    let mut taller = Picture::new(120, 70, PAGE);
    taller.text(8.0, 8.0, 1.4, "HELLO", INK);
    taller.rect(60.0, 30.0, 40.0, 20.0, RED);
    let result = compare(&a, &taller.image(), &DiffOptions::default());
    assert_eq!(result.verdict, Verdict::Differ);
    let drawn = Image::decode_png(&result.diff_image().unwrap()).unwrap();
    assert_eq!((drawn.width(), drawn.height()), (120, 70));
    assert_eq!(
        drawn.pixel(80, 40),
        Some([255, 0, 0, 255]),
        "inside the recoloured button"
    );
    assert_eq!(
        drawn.pixel(5, 65),
        Some([255, 0, 255, 255]),
        "below the baseline"
    );
    let grey = drawn.pixel(8, 10).unwrap();
    assert!(
        grey[0] == grey[1] && grey[1] == grey[2] && grey[0] < 250,
        "faded ink {grey:?}"
    );
}

#[test]
fn faint_fill_changes_are_drawn_orange() {
    let a = Picture::new(40, 40, PAGE).image();
    let mut b = Picture::new(40, 40, PAGE);
    b.rect(10.0, 10.0, 20.0, 20.0, [0xfe, 0xf3, 0xc7]);
    let result = compare(&a, &b.image(), &DiffOptions::default());
    assert_eq!(result.regions.len(), 1);
    assert_eq!(result.regions[0].kind, RegionKind::Colour);
    let drawn = Image::decode_png(&result.diff_image().unwrap()).unwrap();
    assert_eq!(drawn.pixel(20, 20), Some([255, 140, 0, 255]));
}

#[test]
fn unreadable_inputs_are_errors_that_name_the_file() {
    let good = picture(BLUE).encode_png().unwrap();
    let err = compare_png(b"GIF89a....", &good, &DiffOptions::default()).unwrap_err();
    assert!(
        matches!(&err, DiffError::Input { role: "baseline", source } if matches!(**source, DiffError::Decode(_))),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "cannot use the baseline image");

    let truncated = &good[..good.len() - 40];
    let other = picture(RED).encode_png().unwrap();
    let err = compare_png(&other, truncated, &DiffOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            DiffError::Input {
                role: "current",
                ..
            }
        ),
        "{err:?}"
    );

    // The same garbage twice is still garbage, fast path or not.
    assert!(compare_png(b"garbage", b"garbage", &DiffOptions::default()).is_err());
}

#[test]
fn images_over_the_pixel_limit_are_refused() {
    let png = picture(BLUE).encode_png().unwrap();
    let small = DiffOptions::default().with_max_pixels(1000);
    for (a, b) in [(&png, &png), (&png, &picture(RED).encode_png().unwrap())] {
        let err = compare_png(a, b, &small).unwrap_err();
        let DiffError::Input { source, .. } = err else {
            panic!("{err:?}")
        };
        assert!(matches!(
            *source,
            DiffError::TooLarge {
                width: 120,
                height: 60,
                limit: 1000
            }
        ));
    }
}

#[test]
fn invalid_options_are_refused_by_compare_png_and_clamped_by_compare() {
    let png = picture(BLUE).encode_png().unwrap();
    let bad = DiffOptions::default().with_threshold(7.0);
    assert!(matches!(
        compare_png(&png, &png, &bad),
        Err(DiffError::InvalidOption {
            name: "threshold",
            ..
        })
    ));
    // Clamped to 1.0: nothing is perceptually different any more.
    let result = compare(&picture(BLUE), &picture(RED), &bad);
    assert_eq!(result.different_pixels, 0);
}

#[test]
fn the_result_serialises_to_the_documented_json() {
    let result = compare(&picture(BLUE), &picture(RED), &DiffOptions::default());
    let json = serde_json::to_value(&result).unwrap();
    for key in [
        "width",
        "height",
        "differentPixels",
        "exactDifferentPixels",
        "totalPixels",
        "ratio",
        "regions",
        "verdict",
        "reasons",
    ] {
        assert!(json.get(key).is_some(), "missing {key} in {json}");
    }
    assert_eq!(json["verdict"], "differ");
    let region = &json["regions"][0];
    assert_eq!(
        (
            region["x"].as_u64(),
            region["y"].as_u64(),
            region["width"].as_u64(),
            region["height"].as_u64()
        ),
        (Some(60), Some(30), Some(40), Some(20))
    );
    assert_eq!(region["kind"], "colour");
}
