//! Stable captures: the same page gives the same pixels; animation, transitions, the caret
//! and random content do not leak into the picture; masks, hide and full page work.
//! These tests share one pool and one site.

use std::time::Duration;

use sentinel_core::Viewport;
use sentinel_visual::{BrowserPool, CaptureErrorKind, CaptureRequest};
use tokio::sync::OnceCell;

use crate::support::*;

const STATIC_PAGE: &str = r##"<!doctype html><html><head><meta charset="utf-8">
<style>
body{margin:0;font-family:'DejaVu Sans',sans-serif;background:#f9fafb;color:#1f2937}
header{background:#111827;color:#fff;padding:16px 32px}
h1{font-family:'Liberation Serif',serif;font-size:40px}
.card{display:inline-block;margin:16px;padding:16px;border-radius:12px;background:#fff;
  box-shadow:0 1px 3px rgba(0,0,0,.2);border:1px solid #e5e7eb}
.grad{height:80px;background:linear-gradient(90deg,#2563eb,#dc2626)}
</style></head><body>
<header>qa-sentinel test site <a href="/x" style="color:#93c5fd">a link</a></header>
<h1>Stable captures</h1>
<p>Anti-aliased text, a <em>gradient</em>, rounded corners, shadows, an image and SVG.</p>
<div class="grad"></div>
<div class="card"><img src="/checker.png" width="200" height="100"></div>
<div class="card"><svg width="120" height="120"><circle cx="60" cy="60" r="50" fill="#10b981"
  stroke="#064e3b" stroke-width="3"/></svg></div>
<div class="card" style="transform:rotate(3deg)">Rotated card with text</div>
</body></html>"##;

/// Everything that moves: an infinite spinner and marquee, a fade-in, a transition started by
/// a timer, a blinking element, a Web Animations API animation and a focused input.
const ANIM_PAGE: &str = r##"<!doctype html><html><head><meta charset="utf-8"><style>
body{margin:0;font-family:'DejaVu Sans',sans-serif;background:#fff}
.spin{width:48px;height:48px;border:6px solid #93c5fd;border-top-color:#1d4ed8;border-radius:50%;
  animation:spin 1s linear infinite}
@keyframes spin{to{transform:rotate(360deg)}}
.marquee{white-space:nowrap;overflow:hidden;width:600px}
.marquee span{display:inline-block;animation:slide 3s linear infinite}
@keyframes slide{from{transform:translateX(100%)}to{transform:translateX(-100%)}}
.fade{opacity:0;animation:fade 2s ease 0.5s forwards;font-size:30px;position:absolute;
  left:700px;top:10px;margin:0}
@keyframes fade{to{opacity:1}}
.blink{animation:blink 0.5s steps(1) infinite} @keyframes blink{50%{opacity:0}}
#box{position:absolute;left:0;top:300px;width:100px;height:100px;background:#2563eb;
  transition:transform 2s,background-color 2s}
#box.moved{transform:translateX(300px);background:#dc2626}
</style></head><body>
<div class="spin"></div>
<div class="marquee"><span>Breaking news: everything moves all the time</span></div>
<p class="fade" id="fade">Faded in</p>
<p class="blink">Blinking</p>
<div id="box"></div>
<div id="waapi" style="width:50px;height:50px;background:#16a34a"></div>
<input id="field" autofocus value="caret here" style="font-size:24px">
<script>
setTimeout(() => document.getElementById('box').classList.add('moved'), 30);
document.getElementById('waapi').animate(
  [{transform:'translateX(0)'},{transform:'translateX(400px)'}],
  {duration:1500, iterations:Infinity});
document.getElementById('field').focus();
</script></body></html>"##;

/// Content that changes on every load.
const RANDOM_PAGE: &str = r##"<!doctype html><html><body style="margin:0;background:#fff">
<h2 style="margin:20px">Today</h2>
<div id="rand" style="position:absolute;left:40px;top:100px;width:400px;height:60px;
  font-size:28px;background:#fde68a"></div>
<script>
document.getElementById('rand').textContent = Math.random().toString(36) + ' ' + Date.now();
</script></body></html>"##;

const HIDE_PAGE: &str = r##"<!doctype html><html><body style="margin:0;background:#fff">
<div id="ad" style="position:absolute;left:100px;top:100px;width:200px;height:100px;
  background:#dc2626"></div>
<div id="keep" style="position:absolute;left:400px;top:100px;width:200px;height:100px;
  background:#2563eb"></div></body></html>"##;

/// 6000 px of coloured bands, with lazy images near the bottom.
fn long_page(total: u32) -> String {
    let colors = [
        "#ef4444", "#f59e0b", "#10b981", "#3b82f6", "#8b5cf6", "#ec4899",
    ];
    let mut s = String::from("<!doctype html><html><body style=\"margin:0\">");
    let bands = total / 1000;
    for i in 0..bands {
        s.push_str(&format!(
            "<div style=\"height:1000px;background:{}\"></div>",
            colors[i as usize % colors.len()]
        ));
    }
    s.push_str(
        "<img loading=\"lazy\" src=\"/green.png\" width=\"300\" height=\"200\" \
         style=\"position:absolute;left:50px;top:5500px\">",
    );
    s.push_str("</body></html>");
    s
}

struct Fixture {
    pool: BrowserPool,
    site: Site,
}

static FIXTURE: OnceCell<Fixture> = OnceCell::const_new();

async fn fixture() -> &'static Fixture {
    FIXTURE
        .get_or_init(|| async {
            let checker = make_png(200, 100, |x, y| {
                if (x / 10 + y / 10) % 2 == 0 {
                    [20, 20, 20]
                } else {
                    [240, 240, 240]
                }
            });
            let green = make_png(300, 200, |_, _| [0, 200, 0]);
            let site = serve(vec![
                ("/static.html", html(STATIC_PAGE)),
                ("/anim.html", html(ANIM_PAGE)),
                ("/random.html", html(RANDOM_PAGE)),
                ("/hide.html", html(HIDE_PAGE)),
                ("/long.html", html(long_page(6000))),
                ("/huge.html", html(long_page(12_000))),
                (
                    "/long-mobile.html",
                    html(long_page(6000).replace(
                        "<html>",
                        "<html><meta name=\"viewport\" content=\"width=device-width\">",
                    )),
                ),
                ("/checker.png", png(checker)),
                ("/green.png", png(green)),
                ("/not-found.html", {
                    let mut r = html("<h1>Page not found</h1>");
                    r.status = 404;
                    r
                }),
            ])
            .await;
            let mut config = config();
            config.pages_per_browser = 3;
            Fixture {
                pool: pool(config).await,
                site,
            }
        })
        .await
}

async fn shoot(req: &CaptureRequest) -> Image {
    let f = fixture().await;
    decode(&f.pool.capture(req).await.unwrap())
}

/// Captures `req` `n` times and returns the number of pixels in which each differs from the
/// first.
async fn repeat(req: &CaptureRequest, n: usize) -> (Image, Vec<usize>) {
    let first = shoot(req).await;
    let mut diffs = Vec::new();
    for _ in 1..n {
        diffs.push(shoot(req).await.differing(&first));
    }
    (first, diffs)
}

#[test]
fn identical_page_gives_identical_pixels_five_times_at_every_viewport() {
    RT.block_on(async {
        let f = fixture().await;
        for viewport in Viewport::ALL {
            let req = CaptureRequest::new(f.site.url("/static.html"), viewport);
            let (first, diffs) = repeat(&req, 5).await;
            let (w, h) = viewport.size();
            assert_eq!((first.width, first.height), (w, h), "{viewport:?}");
            assert_eq!(
                diffs,
                vec![0; 4],
                "{viewport:?}: pixels differ between captures"
            );
        }
    });
}

#[test]
fn animations_transitions_and_caret_do_not_change_the_picture() {
    RT.block_on(async {
        let f = fixture().await;
        let req = CaptureRequest::new(f.site.url("/anim.html"), Viewport::Desktop);
        let (first, diffs) = repeat(&req, 5).await;
        assert_eq!(diffs, vec![0; 4], "the animated page is not stable");
        // Frozen in the end state a user would see, not at an arbitrary frame: the
        // transition completed (the box at 0,300 moved 300 px and turned red) …
        assert_eq!(
            &first.pixel(350, 350)[..3],
            &[0xdc, 0x26, 0x26],
            "transition end state"
        );
        assert_eq!(
            &first.pixel(50, 350)[..3],
            &[255, 255, 255],
            "box left its start"
        );
        // … and the fade-in finished (its text is drawn, not transparent).
        assert!(has_dark_text(&first, 700, 10, 300, 45), "fade-in end state");
    });
}

fn has_dark_text(img: &Image, x: u32, y: u32, w: u32, h: u32) -> bool {
    (y..y + h).any(|yy| (x..x + w).any(|xx| img.pixel(xx, yy)[0] < 100))
}

#[test]
fn masks_make_random_content_stable() {
    RT.block_on(async {
        let f = fixture().await;
        let url = f.site.url("/random.html");
        // The page really changes between loads …
        let unmasked = CaptureRequest::new(url.clone(), Viewport::Desktop);
        let a = shoot(&unmasked).await;
        let b = shoot(&unmasked).await;
        assert!(
            a.differing(&b) > 0,
            "the control page should differ between loads"
        );
        // … and the mask hides exactly that.
        let mut masked = unmasked.clone();
        masked.mask = vec!["#rand".into()];
        let (first, diffs) = repeat(&masked, 3).await;
        assert_eq!(diffs, vec![0; 2]);
        // The mask is a solid box over the element (40,100 400×60).
        for (x, y) in [(40, 100), (239, 130), (439, 159)] {
            assert_eq!(first.pixel(x, y), [0xff, 0x00, 0xff, 0xff], "({x},{y})");
        }
        assert_eq!(
            &first.pixel(30, 130)[..3],
            &[255, 255, 255],
            "outside the mask"
        );
    });
}

#[test]
fn hide_selectors_hide() {
    RT.block_on(async {
        let f = fixture().await;
        let mut req = CaptureRequest::new(f.site.url("/hide.html"), Viewport::Desktop);
        let shown = shoot(&req).await;
        assert_eq!(&shown.pixel(200, 150)[..3], &[0xdc, 0x26, 0x26]);
        req.hide = vec!["#ad".into()];
        let hidden = shoot(&req).await;
        assert_eq!(
            &hidden.pixel(200, 150)[..3],
            &[255, 255, 255],
            "#ad is hidden"
        );
        assert_eq!(
            &hidden.pixel(500, 150)[..3],
            &[0x25, 0x63, 0xeb],
            "#keep is not"
        );
    });
}

#[test]
fn full_page_captures_the_whole_height_with_lazy_images() {
    RT.block_on(async {
        let f = fixture().await;
        let mut req = CaptureRequest::new(f.site.url("/long.html"), Viewport::Desktop);
        req.full_page = true;
        let shot = f.pool.capture(&req).await.unwrap();
        assert_eq!((shot.width, shot.height), (1920, 6000));
        assert!(!shot.truncated);
        let img = decode(&shot);
        // Bands all the way down (the sixth band, 5000..6000, is #ec4899).
        assert_eq!(&img.pixel(1900, 5990)[..3], &[0xec, 0x48, 0x99]);
        // The lazy image far below the first screen was loaded and painted.
        assert_eq!(&img.pixel(200, 5600)[..3], &[0, 200, 0], "lazy image");
        // Full page twice: same pixels.
        let again = decode(&f.pool.capture(&req).await.unwrap());
        assert_eq!(img.differing(&again), 0);
        // The viewport capture of the same page is one screen.
        req.full_page = false;
        let screen = f.pool.capture(&req).await.unwrap();
        assert_eq!((screen.width, screen.height), (1920, 1080));
    });
}

#[test]
fn full_page_height_is_capped() {
    RT.block_on(async {
        let f = fixture().await;
        let mut req = CaptureRequest::new(f.site.url("/huge.html"), Viewport::Tablet);
        req.full_page = true;
        let shot = f.pool.capture(&req).await.unwrap();
        // 12 000 CSS px, drawn at the tablet's zoom of 768/980 (no meta viewport): 9404 px,
        // cut at the test pool's cap.
        assert!(shot.truncated);
        assert_eq!(shot.height, 8000);
        assert_eq!(shot.width, 768);
        assert_eq!(shot.page_height, 9404);
    });
}

#[test]
fn wait_for_and_delay() {
    RT.block_on(async {
        let f = fixture().await;
        let mut req = CaptureRequest::new(f.site.url("/hide.html"), Viewport::Mobile);
        req.wait_for = Some("#keep".into());
        req.delay = Duration::from_millis(50);
        f.pool.capture(&req).await.unwrap();

        req.wait_for = Some("#never".into());
        req.timeout = Duration::from_secs(2);
        let e = f.pool.capture(&req).await.unwrap_err();
        assert_eq!(e.kind(), CaptureErrorKind::WaitForTimeout, "{e}");

        req.wait_for = None;
        req.mask = vec!["#keep[".into()];
        let e = f.pool.capture(&req).await.unwrap_err();
        assert_eq!(e.kind(), CaptureErrorKind::InvalidRequest, "{e}");
        assert!(e.to_string().contains("#keep["), "{e}");
    });
}

#[test]
fn page_errors_are_reported_clearly_and_do_not_blame_the_browser() {
    RT.block_on(async {
        let f = fixture().await;
        // Nothing listens there (a port of the loopback test site that was just closed).
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let req = CaptureRequest::new(
            format!("http://127.0.0.1:{closed}/").parse().unwrap(),
            Viewport::Desktop,
        );
        let e = f.pool.capture(&req).await.unwrap_err();
        assert_eq!(e.kind(), CaptureErrorKind::Navigation, "{e}");
        assert!(e.to_string().contains("Connection refused"), "{e}");

        // A 404 page with content is captured like any page, with its status …
        let not_found = f
            .pool
            .capture(&CaptureRequest::new(
                f.site.url("/not-found.html"),
                Viewport::Desktop,
            ))
            .await
            .unwrap();
        assert_eq!(not_found.status, Some(404));
        // … an empty error answer is an error that says which.
        let e = f
            .pool
            .capture(&CaptureRequest::new(
                f.site.url("/missing"),
                Viewport::Desktop,
            ))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), CaptureErrorKind::Navigation, "{e}");
        assert!(e.to_string().contains("HTTP 404"), "{e}");

        let e = f
            .pool
            .capture(&CaptureRequest::new(
                "file:///etc/passwd".parse().unwrap(),
                Viewport::Desktop,
            ))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), CaptureErrorKind::InvalidRequest);

        // None of these opened a breaker.
        for i in f.pool.stats().instances {
            assert_eq!(i.breaker.state, sentinel_resilience::BreakerState::Closed);
        }
    });
}

#[test]
fn full_page_on_a_phone_is_as_wide_as_the_phone() {
    RT.block_on(async {
        let f = fixture().await;
        // With `<meta name=viewport content=width=device-width>`: laid out at 375 px.
        let mut req = CaptureRequest::new(f.site.url("/long-mobile.html"), Viewport::Mobile);
        req.full_page = true;
        let shot = f.pool.capture(&req).await.unwrap();
        assert_eq!((shot.width, shot.height), (375, 6000));
        assert_eq!(
            &decode(&shot).pixel(200, 5600)[..3],
            &[0, 200, 0],
            "lazy image"
        );

        // Without it, the phone lays the page out 980 px wide and shows it zoomed out: the
        // full page keeps that zoom, and its first screen is the viewport capture.
        let mut req = CaptureRequest::new(f.site.url("/long.html"), Viewport::Mobile);
        req.full_page = true;
        let full = f.pool.capture(&req).await.unwrap();
        assert_eq!(full.width, 375);
        assert_eq!(full.height, (6000.0_f64 * 375.0 / 980.0).round() as u32);
        req.full_page = false;
        let screen = decode(&f.pool.capture(&req).await.unwrap());
        let full = decode(&full);
        let rows = (screen.width * 4 * 600) as usize;
        assert_eq!(
            &full.rgba[..rows],
            &screen.rgba[..rows],
            "first screen differs"
        );
    });
}
