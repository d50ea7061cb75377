// Captures the extra validation pairs with playwright-core + /usr/bin/chromium, as the shared
// bench's capture_pairs.js does: VISUAL/shots/extra/<name>/{a,b}.png and VISUAL/shots/extra.json
// (name -> whether the pair truly differs). Font-environment pairs (browser B started with
// --disable-font-subpixel-positioning) on other pages of the bench site are added as no-change.
// usage: node capture_extra.js VISUAL http://127.0.0.1:PORT
const path = require('path'), fs = require('fs');
const VISUAL = path.resolve(process.argv[2]);
const { chromium } = require(path.join(VISUAL, 'node', 'node_modules', 'playwright-core'));
const BASE = process.argv[3];
const OUT = path.join(VISUAL, 'shots', 'extra');
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--hide-scrollbars'];
const VPS = { desktop: [1920, 1080], tablet: [768, 1024], mobile: [375, 667] };
async function snap(browser, url, vp, file, full) {
  const ctx = await browser.newContext({ viewport: { width: vp[0], height: vp[1] }, deviceScaleFactor: 1 });
  const page = await ctx.newPage();
  await page.goto(BASE + '/' + url, { waitUntil: 'networkidle' });
  await page.evaluate(() => document.fonts.ready);
  if (full) { await page.evaluate(async () => { for (let y = 0; y < document.body.scrollHeight; y += 800) { window.scrollTo(0, y); await new Promise(r => setTimeout(r, 5)); } window.scrollTo(0, 0); }); await page.waitForLoadState('networkidle'); }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await page.screenshot({ path: file, fullPage: !!full, animations: 'disabled', caret: 'hide' });
  await ctx.close();
}
(async () => {
  const A = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ARGS });
  const B = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: [...ARGS, '--disable-font-subpixel-positioning'] });
  const expect = {};
  const same = ['tx0.1', 'tx0.2', 'tx0.5', 'tx0.7', 'tx0.9', 'ty0.3', 'ty0.5', 'h1sub', 'herosub', 'gridsub'];
  const diff = ['letter', 'digit', 'textgrey', 'bold', 'spacing', 'card1px', 'btn1px', 'hero2px', 'thumb', 'border', 'radius', 'cardbg', 'removed', 'navlink', 'linkcolor'];
  for (const [vn, vp] of Object.entries(VPS)) {
    for (const n of [...same, ...diff]) {
      const name = `${vn}-${n}`;
      await snap(A, 'x/base.html', vp, path.join(OUT, name, 'a.png'));
      await snap(A, `x/${n}.html`, vp, path.join(OUT, name, 'b.png'));
      expect[name] = diff.includes(n);
    }
    // font environment on other pages
    for (const p of ['tp/p00.html', 'tp/p01.html', 'tp/p02.html', 'tp/p05.html', 'anim.html']) {
      const name = `${vn}-fontenv-${p.replace(/[\/.]/g, '_')}`;
      await snap(A, p, vp, path.join(OUT, name, 'a.png'));
      await snap(B, p, vp, path.join(OUT, name, 'b.png'));
      expect[name] = false;
    }
  }
  for (const p of ['tp/p01.html', 'tp/p04.html']) {
    const name = `full-fontenv-${p.replace(/[\/.]/g, '_')}`;
    await snap(A, p, VPS.desktop, path.join(OUT, name, 'a.png'), true);
    await snap(B, p, VPS.desktop, path.join(OUT, name, 'b.png'), true);
    expect[name] = false;
  }
  await A.close(); await B.close();
  fs.writeFileSync(path.join(OUT, '..', 'extra.json'), JSON.stringify(expect, null, 1));
  console.log('extra pairs:', Object.keys(expect).length);
})().catch(e => { console.error(e); process.exit(1); });
