//! `qa-sentinel diff`: exit codes, JSON shape, diff image, error messages.

// Fixture helpers outside `#[test]` functions; a failure there is a broken test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sentinel_pixeldiff::Image;

/// A 200×100 page with a 60×30 button of the given colour at (20, 40).
fn page(button: [u8; 3], height: u32) -> Vec<u8> {
    let mut data = Vec::new();
    for y in 0..height {
        for x in 0..200 {
            let inside = (20..80).contains(&x) && (40..70).contains(&y);
            data.extend_from_slice(&if inside { button } else { [249, 250, 251] });
        }
    }
    Image::from_rgb(200, height, data)
        .unwrap()
        .encode_png()
        .unwrap()
}

/// The same picture re-encoded with an alpha channel.
fn as_rgba(png: &[u8]) -> Vec<u8> {
    let img = Image::decode_png(png).unwrap();
    let data: Vec<u8> = (0..img.height())
        .flat_map(|y| (0..img.width()).map(move |x| (x, y)))
        .flat_map(|(x, y)| img.pixel(x, y).unwrap())
        .collect();
    Image::from_rgba(img.width(), img.height(), data)
        .unwrap()
        .encode_png()
        .unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn diff(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qa-sentinel"))
        .arg("diff")
        .args(args)
        .output()
        .unwrap()
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn identical_images_exit_0_with_the_documented_json() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.png", &page([37, 99, 235], 100));
    // Same pixels in another file (RGBA): the comparison runs, not the byte-identical shortcut.
    let b = write(dir.path(), "b.png", &as_rgba(&page([37, 99, 235], 100)));
    let out = dir.path().join("diff.png");
    let output = diff(&[
        a.as_os_str(),
        b.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let v = json(&output);
    assert_eq!(v["width"], 200);
    assert_eq!(v["height"], 100);
    assert_eq!(v["differentPixels"], 0);
    assert_eq!(v["totalPixels"], 20_000);
    assert_eq!(v["ratio"], 0.0);
    assert_eq!(v["regions"], serde_json::json!([]));
    assert_eq!(v["verdict"], "match");
    assert_eq!(v["diffImage"], serde_json::Value::Null);
    assert!(!out.exists(), "no diff image for identical pixels");
}

#[test]
fn a_changed_button_exits_1_with_its_region_and_writes_the_diff_image() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.png", &page([37, 99, 235], 100));
    let b = write(dir.path(), "b.png", &page([220, 38, 38], 100));
    let out = dir.path().join("diff.png");
    let output = diff(&[
        a.as_os_str(),
        b.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let v = json(&output);
    assert_eq!(v["differentPixels"], 60 * 30);
    assert_eq!(v["exactDifferentPixels"], 60 * 30);
    assert_eq!(v["ratio"], 1800.0 / 20_000.0);
    let regions = v["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 1);
    let r = &regions[0];
    assert_eq!(
        (&r["x"], &r["y"], &r["width"], &r["height"]),
        (&20.into(), &40.into(), &60.into(), &30.into())
    );
    assert_eq!(r["kind"], "colour");
    assert_eq!(v["verdict"], "differ");
    assert!(
        v["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("colour changed"))
    );
    assert_eq!(v["diffImage"], out.display().to_string());
    let drawn = Image::decode_png(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!((drawn.width(), drawn.height()), (200, 100));
    assert_eq!(drawn.pixel(50, 50), Some([255, 0, 0, 255]));
}

#[test]
fn the_text_format_is_a_short_summary() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.png", &page([37, 99, 235], 100));
    let b = write(dir.path(), "b.png", &page([220, 38, 38], 100));
    let output = diff(&[a.as_os_str(), b.as_os_str()]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.starts_with("differ: 1800 of 20000 pixels differ perceptually"),
        "{text}"
    );
    assert!(text.contains("colour changed: 1 region"), "{text}");
    assert!(text.lines().count() <= 4, "{text}");
}

#[test]
fn a_page_that_grew_differs() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.png", &page([37, 99, 235], 100));
    let b = write(dir.path(), "b.png", &page([37, 99, 235], 120));
    let output = diff(&[
        a.as_os_str(),
        b.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let v = json(&output);
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(200), Some(120))
    );
    assert_eq!(v["differentPixels"], 200 * 20);
    assert_eq!(v["regions"][0]["kind"], "size");
}

#[test]
fn a_high_threshold_hides_a_small_colour_difference() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.png", &page([37, 99, 235], 100));
    let b = write(dir.path(), "b.png", &page([47, 109, 245], 100));
    let strict = diff(&[
        a.as_os_str(),
        b.as_os_str(),
        "--threshold".as_ref(),
        "0.01".as_ref(),
    ]);
    assert_eq!(strict.status.code(), Some(1));
    let lenient = diff(&[
        a.as_os_str(),
        b.as_os_str(),
        "--threshold".as_ref(),
        "0.5".as_ref(),
    ]);
    assert_eq!(
        lenient.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&lenient.stdout)
    );
}

#[test]
fn unreadable_inputs_exit_2_with_a_message_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.png", &page([37, 99, 235], 100));
    let text = write(dir.path(), "notes.png", b"this is not a PNG");
    let missing = dir.path().join("missing.png");

    let output = diff(&[good.as_os_str(), text.as_os_str()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("notes.png")
            && stderr.contains("current image")
            && stderr.contains("not a readable PNG"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());

    let output = diff(&[missing.as_os_str(), good.as_os_str()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot read the baseline image") && stderr.contains("missing.png"),
        "{stderr}"
    );
}

#[test]
fn bad_arguments_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.png", &page([37, 99, 235], 100));
    for args in [
        vec!["--threshold", "1.5"],
        vec!["--threshold", "abc"],
        vec!["--format", "xml"],
    ] {
        let mut all = vec![a.as_os_str(), a.as_os_str()];
        all.extend(args.iter().map(|s| std::ffi::OsStr::new(*s)));
        let output = diff(&all);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!output.stderr.is_empty());
    }
    assert_eq!(
        diff(&[a.as_os_str()]).status.code(),
        Some(2),
        "one image only"
    );
}
