//! Settings of a comparison.

use crate::error::DiffError;
use crate::image::DEFAULT_MAX_PIXELS;

/// The default faint threshold as a fraction of `threshold`: 0.02 at pixelmatch's default 0.1,
/// about 14 on the YIQ scale, a shift of 5 grey levels over a solid area; below that nobody sees
/// a colour change, above it a pale background turned cream (202) is caught.
const FAINT_FRACTION: f64 = 0.2;

/// Settings of a comparison. `DiffOptions::default()` is what the `diff` command and the
/// visual-regression scans use; fields can be changed after construction.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct DiffOptions {
    /// Per-pixel perceptual threshold in `0.0..=1.0`, as pixelmatch's `threshold` (default 0.1):
    /// two pixels differ perceptually when their squared YIQ distance exceeds
    /// `35215 × threshold²`. Smaller is more sensitive.
    pub threshold: f64,
    /// Count anti-aliased pixels as differences (pixelmatch's `includeAA`, default false).
    pub include_aa: bool,
    /// Threshold (same scale as `threshold`) of the second, low-threshold pass that finds solid
    /// areas whose colour changed by less than `threshold`, such as a pale background turned
    /// cream. Only pixels inside a solid fill in both images are considered, so anti-aliasing
    /// noise never reaches it. `None` (the default) means a fifth of `threshold` (0.02 for 0.1),
    /// so a less sensitive `threshold` makes this pass less sensitive too. Set it to `threshold`
    /// or more to turn the pass off.
    pub faint_threshold: Option<f64>,
    /// Decide on changed regions and tolerate regions explained by text re-rasterisation
    /// (anti-aliasing, sub-pixel glyph positions, baseline rounding): the default. When false, any
    /// changed region is a difference, as a plain pixel count would say.
    pub tolerate_rendering: bool,
    /// Largest image accepted by [`crate::compare_png`], in pixels.
    pub max_pixels: u64,
}

impl Default for DiffOptions {
    fn default() -> Self {
        Self {
            threshold: 0.1,
            include_aa: false,
            faint_threshold: None,
            tolerate_rendering: true,
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

impl DiffOptions {
    /// Sets [`DiffOptions::threshold`].
    #[must_use]
    pub fn with_threshold(mut self, threshold: f64) -> Self {
        self.threshold = threshold;
        self
    }

    /// Sets [`DiffOptions::include_aa`].
    #[must_use]
    pub fn with_include_aa(mut self, include_aa: bool) -> Self {
        self.include_aa = include_aa;
        self
    }

    /// Sets [`DiffOptions::faint_threshold`].
    #[must_use]
    pub fn with_faint_threshold(mut self, faint_threshold: f64) -> Self {
        self.faint_threshold = Some(faint_threshold);
        self
    }

    /// The faint threshold in force: the explicit one, or a fifth of `threshold`.
    pub fn effective_faint_threshold(&self) -> f64 {
        self.faint_threshold
            .unwrap_or(self.threshold * FAINT_FRACTION)
    }

    /// Sets [`DiffOptions::tolerate_rendering`].
    #[must_use]
    pub fn with_tolerate_rendering(mut self, tolerate_rendering: bool) -> Self {
        self.tolerate_rendering = tolerate_rendering;
        self
    }

    /// Sets [`DiffOptions::max_pixels`].
    #[must_use]
    pub fn with_max_pixels(mut self, max_pixels: u64) -> Self {
        self.max_pixels = max_pixels;
        self
    }

    /// Checks that the thresholds are numbers in `0.0..=1.0`.
    ///
    /// # Errors
    /// [`DiffError::InvalidOption`] naming the first bad field.
    pub fn validate(&self) -> Result<(), DiffError> {
        for (name, value) in [
            ("threshold", self.threshold),
            ("faint_threshold", self.effective_faint_threshold()),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(DiffError::InvalidOption {
                    name,
                    reason: format!("{value} is not a number between 0 and 1"),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_pixelmatch_compatible() {
        let o = DiffOptions::default();
        assert_eq!(
            (o.threshold, o.include_aa, o.tolerate_rendering),
            (0.1, false, true)
        );
        assert!(o.validate().is_ok());
    }

    #[test]
    fn the_faint_threshold_follows_the_threshold_unless_set() {
        let o = DiffOptions::default();
        assert!((o.effective_faint_threshold() - 0.02).abs() < 1e-12);
        assert!((o.clone().with_threshold(0.5).effective_faint_threshold() - 0.1).abs() < 1e-12);
        assert_eq!(
            o.with_threshold(0.5)
                .with_faint_threshold(0.03)
                .effective_faint_threshold(),
            0.03
        );
    }

    #[test]
    fn out_of_range_and_nan_thresholds_are_refused() {
        for bad in [-0.1, 1.5, f64::NAN] {
            let err = DiffOptions::default()
                .with_threshold(bad)
                .validate()
                .unwrap_err();
            assert!(err.to_string().contains("threshold"), "{err}");
        }
        assert!(
            DiffOptions::default()
                .with_faint_threshold(2.0)
                .validate()
                .is_err()
        );
        assert!(
            DiffOptions::default()
                .with_threshold(0.0)
                .with_threshold(1.0)
                .validate()
                .is_ok()
        );
    }
}
