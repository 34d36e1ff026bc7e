"""Browser test of the built docs site: serve `_docs/` on localhost and open every page in headless Chromium.

For each page it checks that the page loads (HTTP 200, a title, the sidebar with a link to every page), that
every <img> rendered (naturalWidth > 0), that no console error, uncaught exception or failed request was logged,
that nothing was requested from outside the site (it must work offline), and that every link into the site leads
to a page (and anchor) that exists. The home page must also contain the results table: `--home-selector`
(a CSS selector, default `table`) and each `--home-text`. A screenshot of the home page is saved
(`--screenshot`, default nbs/results/site_home.png). Exits non-zero with the reasons on any failure.

Chromium is driven through the DevTools protocol over a pipe (`--remote-debugging-pipe`): no driver, no
websocket library, no port besides the site's. Install Debian's chromium with `bash scripts/install_browser.sh`.
"""
import argparse, base64, functools, http.server, json, os, posixpath, shutil, subprocess, sys, tempfile, threading, time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run', '--no-default-browser-check', '--disable-extensions', '--disable-dev-shm-usage',
         '--hide-scrollbars', '--mute-audio', '--remote-debugging-pipe']


class Failed(Exception): pass


# ---------------------------------------------------------------- the site, served on 127.0.0.1
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass


def serve(folder):
    "Start a threaded http.server on 127.0.0.1 and a free port; returns (server, base url)"
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f'http://127.0.0.1:{srv.server_address[1]}/'


# ---------------------------------------------------------------- Chromium over the DevTools pipe
class Chromium:
    "Headless Chromium; DevTools messages go through fds 3 (to it) and 4 (from it), NUL-terminated JSON"
    def __init__(self, exe, profile, timeout=30):
        import fcntl
        def high(fd):   # a copy numbered 10 or more, so that mapping to 3 and 4 below cannot clobber it
            h = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10); os.close(fd); return h
        to_r, self._to_w = map(high, os.pipe())
        self._from_r, from_w = map(high, os.pipe())
        # the child needs the pipe ends as fds 3 and 4: bash maps them, then execs chromium
        cmd = ['bash', '-c', f'exec "$0" "$@" 3<&{to_r} 4>&{from_w} {to_r}<&- {from_w}>&-', exe,
               *FLAGS, f'--user-data-dir={profile}', 'about:blank']
        self.proc = subprocess.Popen(cmd, pass_fds=(to_r, from_w), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=open(Path(profile)/'chromium.log', 'wb'))
        os.close(to_r); os.close(from_w)
        self.timeout, self._buf, self._id, self.events = timeout, b'', 0, []

    def _read_msg(self, deadline):
        import select
        while b'\0' not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0: raise TimeoutError('no answer from Chromium')
            r, _, _ = select.select([self._from_r], [], [], left)
            if not r: continue
            chunk = os.read(self._from_r, 1 << 20)
            if not chunk: raise Failed(f'Chromium exited (code {self.proc.poll()}); see its log')
            self._buf += chunk
        msg, self._buf = self._buf.split(b'\0', 1)
        return json.loads(msg)

    def send(self, method, params=None, session=None, timeout=None):
        "Send a command and wait for its answer; events that arrive meanwhile are kept in self.events"
        self._id += 1
        m = {'id': self._id, 'method': method, 'params': params or {}}
        if session: m['sessionId'] = session
        os.write(self._to_w, json.dumps(m).encode() + b'\0')
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            r = self._read_msg(deadline)
            if r.get('id') == self._id:
                if 'error' in r: raise Failed(f'{method}: {r["error"].get("message")}')
                return r.get('result', {})
            self.events.append(r)

    def wait_event(self, method, session, timeout):
        "Wait for an event (or find it among those already received)"
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e.get('method') == method and e.get('sessionId') == session: return self.events.pop(i)
            try: self.events.append(self._read_msg(deadline))
            except TimeoutError: return None

    def drain(self, seconds):
        "Collect the events of the next `seconds`"
        deadline = time.monotonic() + seconds
        while True:
            try: self.events.append(self._read_msg(deadline))
            except TimeoutError: return

    def close(self):
        try: self.send('Browser.close', timeout=5)
        except Exception: pass
        try: self.proc.wait(5)
        except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
        for fd in (self._to_w, self._from_r):
            try: os.close(fd)
            except OSError: pass


# ---------------------------------------------------------------- one page
PAGE_JS = r"""(async () => {
  if (window.MathJax && MathJax.Hub) await new Promise(r => MathJax.Hub.Queue(r));
  await Promise.all(Array.from(document.images).map(i => i.complete ? 0 : new Promise(r => { i.onload = i.onerror = r; })));
  const sel = %s, texts = %s;
  return {
    title: document.title,
    images: Array.from(document.images).map(i => ({src: i.currentSrc || i.src, w: i.naturalWidth, h: i.naturalHeight})),
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
    ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id)
         .concat(Array.from(document.querySelectorAll('a[name]')).map(e => e.name)),
    nav: Array.from(document.querySelectorAll('nav.wm-sidebar a, nav#quarto-sidebar a, .sidebar-navigation a')).map(a => a.href),
    selector: sel ? document.querySelectorAll(sel).length : null,
    texts: texts.map(t => document.body.innerText.includes(t)),
    mathErrors: document.querySelectorAll('.MathJax_Error, merror').length,
    math: document.querySelectorAll('.MathJax, .MathJax_Display, .MathJax_SVG, mjx-container').length,
    height: Math.max(document.documentElement.scrollHeight, document.body.scrollHeight),
  };
})()"""


def _console_text(args):
    out = []
    for a in args:
        out.append(str(a.get('value', a.get('description', a.get('type', '')))))
    return ' '.join(out)


def check_page(br, session, url, base, selector=None, texts=(), allow_external=False):
    "Open `url` in the tab `session`; returns (info dict, list of problems)"
    br.events.clear()
    problems = []
    nav = br.send('Page.navigate', {'url': url}, session)
    if nav.get('errorText'): return {}, [f'did not load: {nav["errorText"]}']
    if br.wait_event('Page.loadEventFired', session, 30) is None: problems.append('no load event within 30 s')
    r = br.send('Runtime.evaluate', {'expression': PAGE_JS % (json.dumps(selector), json.dumps(list(texts))),
                                     'awaitPromise': True, 'returnByValue': True}, session, timeout=60)
    if 'exceptionDetails' in r: return {}, problems + [f'page script failed: {r["exceptionDetails"].get("text")}']
    info = r['result']['value']
    br.drain(0.3)   # late console messages
    status = None
    for e in br.events:
        m, p = e.get('method'), e.get('params', {})
        if e.get('sessionId') != session: continue
        if m == 'Network.responseReceived':
            resp = p['response']
            if p.get('type') == 'Document' and resp['url'].split('#')[0] == url.split('#')[0]: status = resp['status']
            elif resp['status'] >= 400: problems.append(f'HTTP {resp["status"]} for {resp["url"]}')
        elif m == 'Network.requestWillBeSent':
            u = p['request']['url']
            if not allow_external and not u.startswith((base, 'data:', 'blob:', 'about:')): problems.append(f'requests a resource outside the site: {u}')
        elif m == 'Network.loadingFailed' and not p.get('canceled'):
            problems.append(f'request failed: {p.get("errorText")} ({p.get("type")})')
        elif m == 'Runtime.consoleAPICalled' and p.get('type') in ('error', 'assert'):
            problems.append(f'console {p["type"]}: {_console_text(p.get("args", []))[:300]}')
        elif m == 'Runtime.exceptionThrown':
            d = p.get('exceptionDetails', {})
            problems.append(f'uncaught exception: {d.get("exception", {}).get("description") or d.get("text")}'[:300])
        elif m == 'Log.entryAdded' and p['entry'].get('level') == 'error':
            problems.append(f'console error ({p["entry"].get("source")}): {p["entry"].get("text")} {p["entry"].get("url", "")}'[:300])
    if status != 200: problems.append(f'HTTP status {status} for the page')
    if not info['title'].strip(): problems.append('empty <title>')
    bad = [i['src'][:100] for i in info['images'] if not i['w']]
    if bad: problems.append(f'{len(bad)} of {len(info["images"])} images did not render: {", ".join(bad)}')
    if info['mathErrors']: problems.append(f'{info["mathErrors"]} MathJax errors')
    if selector is not None and not info['selector']:
        problems.append(f'no element matches {selector!r} (the home page must show the results table; see --home-selector)')
    for t, ok in zip(texts, info['texts']):
        if not ok: problems.append(f'text {t!r} not found')
    return info, list(dict.fromkeys(problems))


def check_links(infos, base, docs):
    "Every link into the site must reach a file that exists (problems); anchors missing on our pages are notes"
    problems, notes = {}, {}
    for page, info in infos.items():
        for href in info.get('links', []):
            if not href.startswith(base): continue
            u = urllib.parse.urlsplit(href)
            rel = urllib.parse.unquote(u.path[len(urllib.parse.urlsplit(base).path):]) or 'index.html'
            if rel.endswith('/'): rel += 'index.html'
            target = docs/posixpath.normpath(rel)
            if not target.is_file(): problems.setdefault(page, []).append(f'broken link: {href}'); continue
            if u.fragment and rel in infos and urllib.parse.unquote(u.fragment) not in infos[rel].get('ids', []):
                notes.setdefault(page, set()).add(f'link to a missing anchor: {href}')
    return problems, notes


def find_chromium(given):
    for c in [given] if given else [os.environ.get('CHROMIUM', ''), 'chromium', 'chromium-browser', 'google-chrome']:
        if c and shutil.which(c): return shutil.which(c)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--docs', default=str(ROOT/'_docs'), help='the built site (default _docs)')
    ap.add_argument('--home-selector', default='table', help='CSS selector that must match on the home page ("" for none)')
    ap.add_argument('--home-text', action='append', default=[], help='text that must appear on the home page (repeatable)')
    ap.add_argument('--screenshot', default=str(ROOT/'nbs/results/site_home.png'), help='where the home page screenshot goes ("" for none)')
    ap.add_argument('--all-screenshots', default='', metavar='DIR', help='also save a screenshot of every page in DIR')
    ap.add_argument('--width', type=int, default=1280, help='window width for the screenshot')
    ap.add_argument('--max-height', type=int, default=2400, help='the screenshot covers the page up to this height')
    ap.add_argument('--allow-external', action='store_true',
                    help='allow requests outside the site (a quarto-built site loads MathJax from a CDN)')
    ap.add_argument('--strict-anchors', action='store_true', help='fail on links to anchors missing from their page')
    ap.add_argument('--chromium', default=None, help='Chromium executable (default: chromium on PATH, or $CHROMIUM)')
    a = ap.parse_args()

    docs = Path(a.docs).resolve()
    pages = sorted(p.relative_to(docs).as_posix() for p in docs.rglob('*.html') if not p.relative_to(docs).parts[0] == 'mathjax')
    if 'index.html' not in pages: sys.exit(f'browser_test: FAIL: no {docs}/index.html; build the site first (bash scripts/build_site.sh)')
    pages.remove('index.html'); pages.insert(0, 'index.html')
    exe = find_chromium(a.chromium)
    if not exe: sys.exit('browser_test: FAIL: Chromium not found; install it with: bash scripts/install_browser.sh')

    srv, base = serve(docs)
    profile = tempfile.mkdtemp(prefix='wm-chromium-')
    br, failures, infos = None, {}, {}
    t0 = time.time()
    try:
        br = Chromium(exe, profile)
        version = br.send('Browser.getVersion').get('product', '?')
        print(f'browser_test: {version}, serving {docs} at {base}, {len(pages)} pages')
        tid = br.send('Target.createTarget', {'url': 'about:blank'})['targetId']
        s = br.send('Target.attachToTarget', {'targetId': tid, 'flatten': True})['sessionId']
        for m in ('Page.enable', 'Runtime.enable', 'Log.enable', 'Network.enable'): br.send(m, {}, s)
        br.send('Network.setCacheDisabled', {'cacheDisabled': True}, s)
        br.send('Emulation.setDeviceMetricsOverride', {'width': a.width, 'height': 900, 'deviceScaleFactor': 1, 'mobile': False}, s)
        for page in pages:
            home = page == 'index.html'
            t = time.time()
            info, problems = check_page(br, s, base + page, base, a.home_selector or None if home else None,
                                        a.home_text if home else (), a.allow_external)
            infos[page] = info
            nav = [h for h in info.get('nav', []) if h.startswith(base)]
            missing = [p for p in pages if base + p not in nav]
            if info and missing: problems.append(f'sidebar lacks {", ".join(missing)}')
            if problems: failures[page] = problems
            extra = f', {a.home_selector!r}: {info.get("selector")}' if home and a.home_selector and info else ''
            print(f'  {"FAIL" if problems else "ok  "} {page:24s} {len(info.get("images", [])):3d} images, '
                  f'{len(info.get("links", [])):4d} links, {info.get("math", 0):3d} equations, {info.get("height", 0):6d} px{extra}, {time.time() - t:.1f} s'
                  + ''.join(f'\n       - {p}' for p in problems))
            shots = ([a.screenshot] if home and a.screenshot else []) + \
                    ([str(Path(a.all_screenshots)/(page.replace('/', '_')[:-5] + '.png'))] if a.all_screenshots else [])
            if shots and info:
                h = min(info['height'], a.max_height)
                br.send('Emulation.setDeviceMetricsOverride', {'width': a.width, 'height': h, 'deviceScaleFactor': 1, 'mobile': False}, s)
                png = base64.b64decode(br.send('Page.captureScreenshot', {'format': 'png'}, s)['data'])
                br.send('Emulation.setDeviceMetricsOverride', {'width': a.width, 'height': 900, 'deviceScaleFactor': 1, 'mobile': False}, s)
                for shot in shots:
                    Path(shot).parent.mkdir(parents=True, exist_ok=True)
                    Path(shot).write_bytes(png)
                    print(f'       screenshot {a.width}x{h} -> {shot} ({len(png) // 1024} KiB)')
        link_problems, link_notes = check_links(infos, base, docs)
        if a.strict_anchors:
            for page, notes in link_notes.items(): link_problems.setdefault(page, []).extend(sorted(notes))
        for page, probs in link_problems.items():
            failures.setdefault(page, []).extend(probs)
            print(f'  FAIL {page} links: ' + ''.join(f'\n       - {p}' for p in probs))
        if not a.strict_anchors:
            for page, notes in link_notes.items():
                print(f'  note {page}: {len(notes)} links to anchors that are not on the page (nbdev links a symbol '
                      f'without show_doc to its page; --strict-anchors makes this a failure)' + ''.join(f'\n       - {n}' for n in sorted(notes)))
    except (Failed, TimeoutError, OSError) as e:
        failures['(browser)'] = [f'{type(e).__name__}: {e}']
        print(f'  FAIL Chromium: {type(e).__name__}: {e}', file=sys.stderr)
        log = Path(profile)/'chromium.log'
        if log.exists(): print(log.read_text(errors='replace')[-2000:], file=sys.stderr)
    finally:
        if br: br.close()
        srv.shutdown(); srv.server_close()
        shutil.rmtree(profile, ignore_errors=True)
    n_img = sum(len(i.get('images', [])) for i in infos.values())
    if failures:
        print(f'browser_test: FAIL: {sum(map(len, failures.values()))} problems on {len(failures)} of {len(pages)} pages '
              f'({", ".join(failures)}); {time.time() - t0:.1f} s', file=sys.stderr)
        sys.exit(1)
    print(f'browser_test: PASS: {len(pages)} pages, {n_img} images rendered, no console errors, '
          f'no external requests, links ok; {time.time() - t0:.1f} s')


if __name__ == '__main__': main()
