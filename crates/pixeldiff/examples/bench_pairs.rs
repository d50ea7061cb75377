//! Runs the comparison over a directory of bench pairs (`<pair>/a.png`, `<pair>/b.png`) and prints
//! one line per pair: verdict, counts, timing and regions. Development aid for the
//! `bench/visual-diff` scripts; the timed numbers come from `qa-sentinel diff`.
//!
//! usage: cargo run --release -p sentinel-pixeldiff --example bench_pairs -- PAIRS_DIR [-v]

use std::time::Instant;

use sentinel_pixeldiff::{DiffOptions, compare_png};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // RUST_LOG=sentinel_pixeldiff=debug shows the time of each phase.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: bench_pairs PAIRS_DIR [-v]")?;
    let verbose = args.next().as_deref() == Some("-v");
    let mut pairs: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    pairs.sort();
    for pair in pairs {
        let a = std::fs::read(pair.join("a.png"))?;
        let b = std::fs::read(pair.join("b.png"))?;
        let started = Instant::now();
        let result = compare_png(&a, &b, &DiffOptions::default())?;
        let compared = started.elapsed();
        let image = result.diff_image()?;
        let name = pair
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!(
            "{name:20} {:6?} perceptual={:7} exact={:7} aa={:6} regions={:3} compare={:6.1}ms image={:6.1}ms ({} KB)",
            result.verdict,
            result.different_pixels,
            result.exact_different_pixels,
            result.anti_aliased_pixels,
            result.regions.len(),
            compared.as_secs_f64() * 1e3,
            (started.elapsed() - compared).as_secs_f64() * 1e3,
            image.len() / 1024,
        );
        if verbose {
            for r in &result.regions {
                println!(
                    "    {:>9} {:4},{:<5} {:4}x{:<4} perceptual={} exact={}",
                    r.kind.as_str(),
                    r.x,
                    r.y,
                    r.width,
                    r.height,
                    r.different_pixels,
                    r.exact_different_pixels
                );
            }
            for reason in &result.reasons {
                println!("    - {reason}");
            }
        }
    }
    Ok(())
}
