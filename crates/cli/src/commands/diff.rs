//! `qa-sentinel diff`: compare two PNG screenshots (all logic in `sentinel-pixeldiff`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use sentinel_pixeldiff::{DiffOptions, DiffResult, compare_png};

/// Arguments of `qa-sentinel diff`.
#[derive(Debug, clap::Args)]
pub(crate) struct DiffArgs {
    /// The approved baseline screenshot (PNG).
    baseline: PathBuf,
    /// The screenshot to check against it (PNG).
    current: PathBuf,
    /// Write the diff image here (PNG) when any pixel differs: the baseline faded to grey,
    /// perceptual differences red, anti-aliasing yellow, faint colour changes of solid areas
    /// orange, area present in only one image magenta.
    #[arg(long, value_name = "DIFF.png")]
    out: Option<PathBuf>,
    /// Per-pixel perceptual threshold from 0 to 1, as pixelmatch's (smaller is more sensitive).
    #[arg(long, value_name = "T", default_value_t = 0.1, value_parser = parse_threshold)]
    threshold: f64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Count anti-aliased pixels as differences.
    #[arg(long)]
    include_aa: bool,
    /// Any changed region is a difference: do not tolerate text re-rasterised by other font
    /// settings or sub-pixel layout.
    #[arg(long)]
    strict: bool,
}

/// Output formats of `qa-sentinel diff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// A short summary for people.
    Text,
    /// One JSON object (camelCase fields).
    Json,
}

/// Exit codes: 0 match, 1 differ, 2 error (with the reason on stderr).
pub(crate) fn run(args: DiffArgs) -> ExitCode {
    match execute(&args) {
        Ok(result) if result.is_match() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(err) => {
            eprintln!("qa-sentinel diff: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn execute(args: &DiffArgs) -> anyhow::Result<DiffResult> {
    let baseline = read(&args.baseline, "baseline")?;
    let current = read(&args.current, "current")?;
    let options = DiffOptions::default()
        .with_threshold(args.threshold)
        .with_include_aa(args.include_aa)
        .with_tolerate_rendering(!args.strict);
    let result = compare_png(&baseline, &current, &options).with_context(|| {
        format!(
            "cannot compare {} with {}",
            args.baseline.display(),
            args.current.display()
        )
    })?;

    // Like odiff, no diff image for identical pixels: there is nothing to show.
    let diff_image = match &args.out {
        Some(path) if result.exact_different_pixels > 0 => {
            let png = result.diff_image().context("cannot draw the diff image")?;
            std::fs::write(path, png)
                .with_context(|| format!("cannot write the diff image to {}", path.display()))?;
            Some(path.as_path())
        }
        _ => None,
    };

    let mut stdout = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let output = JsonOutput {
                result: &result,
                diff_image,
            };
            let json = serde_json::to_string(&output).context("cannot serialise the result")?;
            writeln!(stdout, "{json}")
        }
        Format::Text => write_text(&mut stdout, &result, diff_image),
    }
    .context("cannot write to standard output")?;
    Ok(result)
}

/// The JSON of `--format json`: the result's fields, then where the diff image went.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonOutput<'a> {
    #[serde(flatten)]
    result: &'a DiffResult,
    diff_image: Option<&'a Path>,
}

fn read(path: &Path, role: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the {role} image {}", path.display()))
}

fn write_text(
    out: &mut impl Write,
    result: &DiffResult,
    diff_image: Option<&Path>,
) -> std::io::Result<()> {
    let verdict = if result.is_match() { "match" } else { "differ" };
    writeln!(
        out,
        "{verdict}: {} of {} pixels differ perceptually ({:.4} %), {} in their bytes; {}x{}",
        result.different_pixels,
        result.total_pixels,
        result.ratio * 100.0,
        result.exact_different_pixels,
        result.width,
        result.height,
    )?;
    for reason in &result.reasons {
        writeln!(out, "  {reason}")?;
    }
    if let Some(path) = diff_image {
        writeln!(out, "  diff image: {}", path.display())?;
    }
    Ok(())
}

fn parse_threshold(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(t) if (0.0..=1.0).contains(&t) => Ok(t),
        _ => Err(format!("{value:?} is not a number between 0 and 1")),
    }
}
