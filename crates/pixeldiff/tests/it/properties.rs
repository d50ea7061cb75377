//! Property tests: invariants of the comparison on arbitrary images, and a decoder that never
//! panics on arbitrary bytes.

use proptest::prelude::*;
use sentinel_pixeldiff::{DiffOptions, Image, RegionKind, Verdict, compare, compare_png};

/// An arbitrary small image, RGB or RGBA, with few distinct colours so that equal neighbours
/// (and with them anti-aliasing candidates and flat areas) occur.
fn image() -> impl Strategy<Value = Image> {
    (1u32..24, 1u32..24, any::<bool>()).prop_flat_map(|(w, h, alpha)| {
        let bpp = if alpha { 4 } else { 3 };
        let palette = prop_oneof![Just(0u8), Just(128u8), Just(250u8), any::<u8>()];
        proptest::collection::vec(palette, (w * h) as usize * bpp).prop_map(move |data| {
            if alpha {
                Image::from_rgba(w, h, data).unwrap()
            } else {
                Image::from_rgb(w, h, data).unwrap()
            }
        })
    })
}

/// Two images of the same size.
fn pair() -> impl Strategy<Value = (Image, Image)> {
    (1u32..24, 1u32..24).prop_flat_map(|(w, h)| {
        let n = (w * h * 3) as usize;
        let palette = || prop_oneof![Just(0u8), Just(128u8), Just(250u8), any::<u8>()];
        (
            proptest::collection::vec(palette(), n),
            proptest::collection::vec(palette(), n),
        )
            .prop_map(move |(a, b)| {
                (
                    Image::from_rgb(w, h, a).unwrap(),
                    Image::from_rgb(w, h, b).unwrap(),
                )
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn an_image_matches_itself(img in image()) {
        let result = compare(&img, &img, &DiffOptions::default());
        prop_assert_eq!(result.different_pixels, 0);
        prop_assert_eq!(result.exact_different_pixels, 0);
        prop_assert!(result.regions.is_empty());
        prop_assert_eq!(result.verdict, Verdict::Match);
    }

    #[test]
    fn counts_are_symmetric((a, b) in pair()) {
        let ab = compare(&a, &b, &DiffOptions::default());
        let ba = compare(&b, &a, &DiffOptions::default());
        prop_assert_eq!(ab.different_pixels, ba.different_pixels);
        prop_assert_eq!(ab.exact_different_pixels, ba.exact_different_pixels);
        prop_assert_eq!(ab.anti_aliased_pixels, ba.anti_aliased_pixels);
    }

    #[test]
    fn any_sizes_compare_without_panicking_and_regions_account_for_every_pixel(
        a in image(), b in image(), threshold in 0.0f64..=1.0, include_aa in any::<bool>()
    ) {
        let options = DiffOptions::default().with_threshold(threshold).with_include_aa(include_aa);
        let result = compare(&a, &b, &options);
        let (w, h) = (a.width().max(b.width()), a.height().max(b.height()));
        prop_assert_eq!((result.width, result.height), (w, h));
        prop_assert_eq!(result.total_pixels, u64::from(w) * u64::from(h));
        let overlap = u64::from(a.width().min(b.width())) * u64::from(a.height().min(b.height()));
        prop_assert!(result.different_pixels >= result.total_pixels - overlap);
        prop_assert!(result.exact_different_pixels >= result.different_pixels);
        prop_assert!((0.0..=1.0).contains(&result.ratio));
        // Every perceptually different pixel is in exactly one region, inside the canvas.
        let in_regions: u64 = result.regions.iter().map(|r| r.different_pixels).sum();
        prop_assert_eq!(in_regions, result.different_pixels);
        for r in &result.regions {
            prop_assert!(r.width > 0 && r.height > 0);
            prop_assert!(r.x + r.width <= w && r.y + r.height <= h);
        }
        let changed = result.regions.iter().any(|r| r.kind.is_change());
        prop_assert_eq!(result.verdict == Verdict::Differ, changed);
        if a.width() != b.width() || a.height() != b.height() {
            prop_assert!(result.regions.iter().any(|r| r.kind == RegionKind::Size));
            prop_assert_eq!(result.verdict, Verdict::Differ);
        }
        // The diff image always encodes, at the canvas size.
        let png = result.diff_image().unwrap();
        let drawn = Image::decode_png(&png).unwrap();
        prop_assert_eq!((drawn.width(), drawn.height()), (w, h));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Image::decode_png(&bytes);
        let _ = compare_png(&bytes, &bytes, &DiffOptions::default());
    }

    #[test]
    fn decoding_damaged_pngs_never_panics(img in image(), cuts in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut png = img.encode_png().unwrap();
        for (at, value) in cuts {
            let i = at.index(png.len());
            png[i] = value;
        }
        if let Ok(decoded) = Image::decode_png(&png) {
            // Damage the decoder accepts (in bytes it does not check) must give a usable image.
            let _ = compare(&decoded, &img, &DiffOptions::default());
        }
        let _ = compare_png(&png, &img.encode_png().unwrap(), &DiffOptions::default());
    }
}
