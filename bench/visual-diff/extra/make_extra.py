#!/usr/bin/env python3
"""Extra validation pages for qa-sentinel's diff verdicts (beyond the shared bench's 25 pairs):
variations of the bench's home page that are rendering-only (sub-pixel offsets of text, a heading,
a whole section) or real changes (one letter, a digit, text colour, weight, letter-spacing, a card
or button moved by 1 px, a replaced image, border colour and radius, a pale card background, a
hidden card, a longer nav label, a link colour). Written to VISUAL/site/x/.

usage: make_extra.py VISUAL   (VISUAL = working copy of the shared bench, with scripts/make_site.py)
"""
import os, sys, importlib.util
VISUAL = os.path.abspath(sys.argv[1])
spec = importlib.util.spec_from_file_location("ms", os.path.join(VISUAL, "scripts", "make_site.py"))
ms = importlib.util.module_from_spec(spec); spec.loader.exec_module(ms)
ROOT = os.path.join(VISUAL, "site", "x")
os.makedirs(ROOT, exist_ok=True)
def w(name, html):
    open(os.path.join(ROOT, name), "w").write(html.replace('src="img/', 'src="../img/'))
base = ms.home()
w("base.html", base)
# rendering-only
for v in ["0.1", "0.2", "0.5", "0.7", "0.9"]:
    w(f"tx{v}.html", ms.home(sub_px=float(v)))
w("ty0.3.html", base.replace('style="transform:translateX(0px)"', 'style="transform:translateY(0.3px)"'))
w("ty0.5.html", base.replace('style="transform:translateX(0px)"', 'style="transform:translateY(0.5px)"'))
w("h1sub.html", base.replace("<h1>", '<h1 style="transform:translateX(0.4px)">'))
w("herosub.html", base.replace('<section class="hero" style="position:relative;top:0px">', '<section class="hero" style="position:relative;top:0px;transform:translate(0.3px,0.3px)">'))
w("gridsub.html", base.replace('<div class="grid">', '<div class="grid" style="transform:translateX(0.4px)">'))
# real changes
w("letter.html", base.replace("Sign up today", "Sign up todav"))
w("digit.html", base.replace("&copy; 2026", "&copy; 2027"))
w("textgrey.html", base.replace('<p id="cta-text"', '<p id="cta-text" style="color:#4b5563"').replace('style="transform:translateX(0px)"', ''))
w("bold.html", base.replace("Sign up today", "Sign up <b>today</b>"))
w("spacing.html", base.replace('<p id="cta-text"', '<p id="cta-text" style="letter-spacing:0.5px"').replace('style="transform:translateX(0px)"', ''))
w("card1px.html", base.replace('<div class="card"><img src="img/thumb2.png"', '<div class="card" style="position:relative;top:1px"><img src="img/thumb2.png"'))
w("btn1px.html", base.replace('<a class="btn" id="cta-btn" style="background:#2563eb">', '<a class="btn" id="cta-btn" style="background:#2563eb;position:relative;left:1px">'))
w("hero2px.html", ms.home(hero_shift=2))
w("thumb.html", base.replace('img/thumb3.png', 'img/thumb4.png'))
w("border.html", base.replace(".card{background:#fff;border:1px solid #e5e7eb", ".card{background:#fff;border:1px solid #9ca3af"))
w("radius.html", base.replace("border-radius:8px;font-weight:bold", "border-radius:2px;font-weight:bold"))
w("cardbg.html", base.replace(".card{background:#fff;", ".card{background:#fefce8;"))
w("removed.html", base.replace('<div class="card"><img src="img/thumb5.png"', '<div class="card" style="visibility:hidden"><img src="img/thumb5.png"'))
w("navlink.html", base.replace('<a href="anim.html">Anim</a>', '<a href="anim.html">Animation</a>'))
w("linkcolor.html", base.replace("header nav a{color:#d1d5db", "header nav a{color:#93c5fd"))
print("extra pages in", ROOT)
