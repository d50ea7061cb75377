//! qa-sentinel visual regression: Chromium browser pool over DevTools, stable captures, baselines.
