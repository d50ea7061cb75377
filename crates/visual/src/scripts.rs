//! The JavaScript run in the captured page. Arguments are passed as JSON literals, never
//! spliced into code as text.

use serde::Serialize;

/// Runs before any script of every document (`Page.addScriptToEvaluateOnNewDocument`):
/// transitions off from the first frame (a transition that started would be caught halfway),
/// CSS animations paused from the start (they are finished or cancelled before the capture;
/// until then a running animation only burns CPU on frames nobody sees), caret invisible, no
/// smooth scrolling, and no service worker (its requests would bypass the page's request
/// interception).
pub(crate) const ON_NEW_DOCUMENT: &str = r#"(() => {
  try {
    if (navigator.serviceWorker) {
      Object.defineProperty(Navigator.prototype, 'serviceWorker', { get: () => undefined });
    }
  } catch (e) {}
  const css = '*, *::before, *::after {' +
    ' transition-property: none !important; transition-duration: 0s !important;' +
    ' transition-delay: 0s !important; caret-color: transparent !important;' +
    ' animation-play-state: paused !important;' +
    ' scroll-behavior: auto !important; }';
  const add = () => {
    const style = document.createElement('style');
    style.setAttribute('data-qa-sentinel', 'stabilise');
    style.textContent = css;
    (document.head || document.documentElement).appendChild(style);
  };
  if (document.documentElement) { add(); }
  else { document.addEventListener('DOMContentLoaded', add, { once: true }); }
})()"#;

/// Waits until `selector` matches, or `timeout_ms` passes. Resolves to `true`/`false`, or to
/// `{error}` for an invalid selector.
/// Whether the document is empty (no body content, no title): what an error answer without a
/// body becomes. The full browser refuses such a navigation itself
/// (`net::ERR_HTTP_RESPONSE_CODE_FAILURE`); the headless shell renders a blank page.
pub(crate) const IS_EMPTY: &str = r"(() => !document.title &&
    (!document.body || document.body.innerHTML.trim() === ''))";

pub(crate) const WAIT_FOR: &str = r"(async ({ selector, timeoutMs }) => {
  try { document.querySelector(selector); } catch (e) { return { error: String(e) }; }
  const deadline = performance.now() + timeoutMs;
  while (!document.querySelector(selector)) {
    if (performance.now() > deadline) return false;
    await new Promise(r => setTimeout(r, 25));
  }
  return true;
})";

/// Scrolls through the page (to the height cap) so that lazy images and scroll-triggered
/// content load, then back to the top.
pub(crate) const SCROLL_THROUGH: &str = r"(async ({ step, maxHeight }) => {
  const frame = () => new Promise(r => requestAnimationFrame(() => r()));
  const height = () => Math.min(
    Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0),
    maxHeight);
  for (let y = step; y < height(); y += step) { window.scrollTo(0, y); await frame(); }
  window.scrollTo(0, 0);
  await frame();
  return true;
})";

/// Waits for web fonts and for the images that will be in the picture, then for a frame (so
/// that what was decoded is also painted). Never waits past `timeoutMs`.
pub(crate) const SETTLE: &str = r"(async ({ fullPage, timeoutMs }) => {
  const frame = () => new Promise(r => requestAnimationFrame(() => r()));
  const timeout = new Promise(r => setTimeout(() => r('timeout'), timeoutMs));
  const work = (async () => {
    if (document.fonts && document.fonts.ready) await document.fonts.ready;
    const visible = img => {
      if (fullPage) return true;
      const r = img.getBoundingClientRect();
      return r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth;
    };
    const pending = Array.from(document.images)
      .filter(img => img.currentSrc || img.src)
      .filter(img => img.loading !== 'lazy' || visible(img));
    await Promise.all(pending.map(img => img.decode().catch(() => null)));
    return 'ok';
  })();
  const outcome = await Promise.race([work, timeout]);
  await frame();
  return outcome;
})";

/// Freezes what moves and applies hide and mask selectors, then waits a frame. Resolves to
/// `{ok: true}` or `{error, selector}` for an invalid selector.
///
/// Animations are treated as Playwright's `animations: 'disabled'` does: a finite one jumps
/// to its end state, an infinite one is cancelled back to the element's own style; a
/// stylesheet then keeps new ones from starting. Masks are solid boxes laid over each element
/// in document coordinates, so they are in full-page captures too.
pub(crate) const STABILISE: &str = r"(async ({ hide, mask, color }) => {
  const frame = () => new Promise(r => requestAnimationFrame(() => r()));
  const select = sel => {
    try { return { nodes: Array.from(document.querySelectorAll(sel)) }; }
    catch (e) { return { error: String(e), selector: sel }; }
  };
  for (const sel of hide.concat(mask)) {
    const r = select(sel);
    if (r.error) return r;
  }
  const style = document.createElement('style');
  style.setAttribute('data-qa-sentinel', 'freeze');
  style.textContent = '*, *::before, *::after { animation-play-state: paused !important;' +
    ' caret-color: transparent !important; }';
  for (const a of document.getAnimations ? document.getAnimations() : []) {
    try {
      const end = a.effect ? a.effect.getComputedTiming().endTime : Infinity;
      if (Number.isFinite(end)) a.finish(); else a.cancel();
    } catch (e) { try { a.cancel(); } catch (e2) {} }
  }
  (document.head || document.documentElement).appendChild(style);
  for (const v of document.querySelectorAll('video, audio')) {
    try { v.pause(); v.currentTime = 0; } catch (e) {}
  }
  if (document.activeElement && document.activeElement !== document.body) {
    // Focus rings and carets of a focused field are state, not content.
    try { document.activeElement.blur(); } catch (e) {}
  }
  for (const sel of hide) {
    for (const el of select(sel).nodes) el.style.setProperty('visibility', 'hidden', 'important');
  }
  if (mask.length) {
    const layer = document.createElement('div');
    layer.setAttribute('data-qa-sentinel', 'masks');
    layer.style.cssText = 'position:absolute;left:0;top:0;width:0;height:0;overflow:visible;' +
      'z-index:2147483647;pointer-events:none;margin:0;padding:0;border:0;';
    for (const sel of mask) {
      for (const el of select(sel).nodes) {
        for (const r of el.getClientRects()) {
          const box = document.createElement('div');
          box.style.cssText = 'position:absolute;margin:0;padding:0;border:0;' +
            `left:${r.left + scrollX}px;top:${r.top + scrollY}px;` +
            `width:${r.width}px;height:${r.height}px;background:${color};`;
          layer.appendChild(box);
        }
      }
    }
    document.documentElement.appendChild(layer);
  }
  // One frame so that the changes are laid out; the screenshot itself paints a fresh frame.
  await frame();
  return { ok: true };
})";

/// The colour of mask boxes (Playwright's default, easy to tell from content).
pub(crate) const MASK_COLOR: &str = "#FF00FF";

/// `(function)(json_args)`: the expression that calls `function` with `args`.
pub(crate) fn call<A: Serialize>(function: &str, args: &A) -> Result<String, serde_json::Error> {
    Ok(format!("({function})({})", serde_json::to_string(args)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_json_literals() {
        #[derive(Serialize)]
        struct A<'a> {
            selector: &'a str,
        }
        let e = call(
            "f",
            &A {
                selector: "a[href='x'] \u{2028} </script>",
            },
        )
        .unwrap();
        assert!(e.starts_with("(f)({\"selector\":"));
        let json = &e[4..e.len() - 1];
        let back: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(back["selector"], "a[href='x'] \u{2028} </script>");
    }
}
