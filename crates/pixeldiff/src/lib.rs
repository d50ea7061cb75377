//! qa-sentinel pixel diff: perceptual colour distance with anti-aliasing detection, changed regions, verdicts, diff images.
