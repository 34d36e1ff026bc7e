"""Build the documentation site without quarto.

`nbdev_docs` renders nbdev's processed notebooks (`_proc/`) with quarto. Where quarto is missing, this script
renders the same processed notebooks with nbconvert (no execution: the outputs saved in the notebooks are used) to
a static HTML site in `_docs/`: a shared sidebar in notebook order (index first, as nbdev's generated sidebar),
`nbs/styles.css`, images embedded, links between notebooks pointed at their pages, nbdev's symbol links made
relative, and MathJax served from the site itself, so the site works offline. Run it as `bash scripts/build_site.sh`.

Steps: 1. nbdev's `proc_nbs` (what `nbdev_proc_nbs` runs after checking for quarto) fills `_proc/`: `#| export`
cells are hidden, `show_doc` cells are added and executed. A notebook whose processing fails (nbdev executes every
cell that imports something, and stops at the first error) is processed again with the failing cells left as they
are; a warning names the cell (nbdev_docs would stop there). With `--strict` that is an error instead.
2. Each processed notebook is rendered by nbconvert's `lab` HTML template, extended in scripts/site_template/.
"""
import argparse, copy, html, json, re, shutil, subprocess, sys, unicodedata
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE_DIR = HERE/'site_template'
MATHJAX_CONFIG = 'TeX-AMS-MML_HTMLorMML-full,Safe'
ASSET_SKIP = {'.ipynb', '.yml', '.yaml'}
_CELL_KEYS = {'markdown': {'cell_type', 'id', 'metadata', 'source', 'attachments'},
              'raw': {'cell_type', 'id', 'metadata', 'source', 'attachments'},
              'code': {'cell_type', 'id', 'metadata', 'source', 'outputs', 'execution_count'}}


def log(*a): print('[build_site]', *a, flush=True)
def warn(*a): print('[build_site] WARNING:', *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- 1. nbdev processing
def _lenient_filter(name=''):
    "nbdev's `FilterDefaults` whose `exec_show_docs` reports a failing cell and goes on instead of stopping"
    from fastcore.basics import str2bool
    from nbdev.processors import FilterDefaults, exec_show_docs, _do_eval

    class lenient_exec_show_docs(exec_show_docs):
        def __call__(self, cell):
            if not self.nb.has_docs_ or not hasattr(self, 'k'): return
            if str2bool(getattr(self.nb, 'frontmatter_', {}).get('skip_showdoc', False)): return
            if not _do_eval(cell): return
            saved = copy.deepcopy(cell.get('outputs'))
            self.k.cell(cell)
            if self.k.exc:
                e = self.k.exc
                first = cell.source.strip().splitlines()[0] if cell.source.strip() else ''
                warn(f'{name} cell {cell.idx_} raised {type(e).__name__}: {e} -- nbdev_docs stops here; '
                     f'its saved outputs are kept. Cell starts: {first!r}')
                self.k.exc = None
                if saved is None: cell.pop('outputs', None)
                else: cell['outputs'] = saved

    class LenientFilter(FilterDefaults):
        def base_procs(self): return [lenient_exec_show_docs if p is exec_show_docs else p for p in super().base_procs()]
    return LenientFilter


def proc_one(src, dst):
    "Process one notebook leniently (runs in its own process, as nbdev's workers do)"
    import os, warnings
    from nbdev.serve_drv import exec_nb
    warnings.filterwarnings('ignore', message='Found cells containing imports')   # nbdev said so in the first pass
    os.environ['IN_TEST'] = '1'
    exec_nb(Path(src), Path(dst), _lenient_filter(Path(src).name))


def process(cfg, notebooks, n_workers, strict):
    "Fill `_proc/` with nbdev's processed notebooks; returns the cache folder"
    from nbdev.serve import proc_nbs
    cache, nbs = cfg.config_path/'_proc', cfg.nbs_path
    err = None
    try: proc_nbs(force=True, n_workers=n_workers)
    except Exception as e: err = e
    failed = [nb for nb in notebooks if not (cache/nb.relative_to(nbs)).exists()]
    if err is not None:
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        warn(f'nbdev processing failed: {msg}')
        if not failed: raise err
        if strict: sys.exit(f'[build_site] error: nbdev could not process {", ".join(p.name for p in failed)} '
                            f'(nbdev_docs would fail too); fix the notebook or build without --strict')
    for nb in failed:
        warn(f'{nb.name}: left unprocessed by nbdev\'s pass; processing it alone, leaving any failing cell unexecuted')
        subprocess.run([sys.executable, str(Path(__file__).resolve()), '--proc-one', str(nb),
                        str(cache/nb.relative_to(nbs))], check=True, cwd=cfg.config_path)
    return cache


def check_title_cells(notebooks):
    """nbdev turns a notebook's first markdown cell with a `# title` into the page's title block and drops the whole
    cell: anything else in it (text, a table) is lost from the site, with quarto too. Warn about such cells."""
    n = 0
    for nbp in notebooks:
        nb = json.loads(Path(nbp).read_text(encoding='utf-8'))
        for i, c in enumerate(nb['cells']):
            src = ''.join(c.get('source', ''))
            if c['cell_type'] == 'raw' and src.strip().startswith('---'): break   # frontmatter given: no title cell
            if c['cell_type'] != 'markdown' or not re.search(r'^#\s+\S', src, flags=re.M): continue
            title = re.search(r'^#\s+\S.*$', src, flags=re.M).group(0)
            desc = re.search(r'^>\s+\S.*$', src, flags=re.M)
            kept = {title, desc.group(0) if desc else None}
            lost = [l for l in src.splitlines() if l.strip() and l not in kept and not re.match(r'^-\s+\S.*:.*\S\s*$', l)]
            if lost:
                n += 1
                warn(f'{Path(nbp).name}: cell {i} is its title cell: nbdev keeps only `{title.strip()}` and the `> ` '
                     f'description and drops its {len(lost)} other lines (from {lost[0][:60]!r}); '
                     f'move them to a cell of their own')
            break
    return n


# ---------------------------------------------------------------- 2. rendering
def page_order(cfg, cache):
    "Processed notebooks in nbdev's sidebar order: index first, then by folder and name"
    from nbdev.doclinks import nbglob
    from nbdev.quarto import _sort
    files = nbglob(cache, func=lambda d, n: (Path(d), n), file_re=r'\.ipynb$',
                   skip_folder_re=r'(?:^[_.]|^www\$)').sorted(key=_sort)
    return [d/n for d, n in files]


def read_frontmatter(nb):
    "Pop the frontmatter raw cell that nbdev put first; return its dict"
    import yaml
    c = nb['cells'][0] if nb['cells'] else None
    if c and c['cell_type'] == 'raw':
        s = ''.join(c['source']).strip()
        if s.startswith('---') and s.count('---') >= 2:
            nb['cells'].pop(0)
            return yaml.safe_load(s.strip('-').strip()) or {}
    return {}


_re_dir = re.compile(r'^\s*#\|\s*([\w-]+)\s*(?::\s*(.*?))?\s*$')
_re_div_open = re.compile(r'^\s*:::+\s*\{([^}]*)\}\s*$')
_re_div_close = re.compile(r'^\s*:::+\s*$')


def split_directives(src):
    "Quarto/nbdev `#|` lines at the top of a code cell -> (dict, rest of the source)"
    lines, d = src.splitlines(), {}
    while lines and _re_dir.match(lines[0]):
        k, v = _re_dir.match(lines.pop(0)).groups()
        d[k] = (v or '').strip().strip('"\'').lower()
    return d, '\n'.join(lines)


def fenced_divs(md):
    "Quarto fenced divs (`::: {.callout-note}` ... `:::`) -> HTML divs around markdown that stays markdown"
    out = []
    for line in md.splitlines():
        m = _re_div_open.match(line)
        if m:
            classes = ' '.join(t[1:] for t in m.group(1).split() if t.startswith('.'))
            out += ['', f'<div class="{html.escape(classes)}">', '']
        elif _re_div_close.match(line): out += ['', '</div>', '']
        else: out.append(line)
    return '\n'.join(out)


def clean_nb(nb, title, description):
    "Quarto's cell options -> nbconvert tags; drop empty cells; a title block like quarto's"
    cells = []
    for c in nb['cells']:
        c = {k: v for k, v in c.items() if k in _CELL_KEYS.get(c.get('cell_type'), set())}
        src = ''.join(c.get('source', ''))
        c.setdefault('metadata', {})
        tags = set(c['metadata'].get('tags', []))
        if c['cell_type'] == 'code':
            d, src = split_directives(src)
            c.setdefault('outputs', []); c.setdefault('execution_count', None)
            if d.get('include') == 'false': continue
            if d.get('echo') == 'false' or not src.strip(): tags.add('remove_input')
            if d.get('output') == 'false': tags.add('remove_output')
            if 'remove_input' in tags and not c['outputs']: continue
        elif c['cell_type'] == 'markdown':
            if not src.strip() or src.strip().startswith('<!-- WARNING: THIS FILE WAS AUTOGENERATED'): continue
            src = fenced_divs(src)
        c['source'] = src
        if tags: c['metadata']['tags'] = sorted(tags)
        cells.append(c)
    head = f'# {title}\n'
    if description: head += f'\n<div class="description">{html.escape(str(description).strip())}</div>\n'
    cells.insert(0, {'cell_type': 'markdown', 'id': 'wm-title', 'metadata': {}, 'source': head})
    nb['cells'] = cells
    return nb


def pandoc_id(text):
    "The id pandoc (and so quarto, and nbdev's doc links) gives a heading"
    s = unicodedata.normalize('NFKC', html.unescape(re.sub(r'<[^>]+>', '', text))).strip().lower()
    s = re.sub(r'[^\w\s.-]', '', s)
    s = re.sub(r'\s+', '-', s)
    s = re.sub(r'^[^a-z]+', '', s)
    return s or 'section'


_re_heading = re.compile(r'<h([1-6]) id="([^"]*)">(.*?)<a class="anchor-link" href="#[^"]*">[^<]*</a></h\1>', re.S)


def fix_ids(page):
    "nbconvert's heading ids (`One-gather-does-it`) -> pandoc's (`one-gather-does-it`), so links from quarto work"
    seen, renamed = {}, {}

    def sub(m):
        lvl, old, inner = m.groups()
        new = pandoc_id(inner)
        if new in seen: seen[new] += 1; new = f'{new}-{seen[new]}'
        else: seen[new] = 0
        renamed[old] = new
        return f'<h{lvl} id="{new}">{inner}<a class="anchor-link" href="#{new}">¶</a></h{lvl}>'
    page = _re_heading.sub(sub, page)
    return re.sub(r'href="#([^"]*)"', lambda m: f'href="#{renamed.get(m.group(1), m.group(1))}"', page)


_re_attr = re.compile(r'([A-Za-z_][\w:-]*)=(?:"([^"]*)"|(\S+))|\.([\w-]+)|#([\w-]+)')


def _attrs_html(spec):
    "pandoc's `{key=\"v\" .class #id}` -> HTML attributes"
    spec = html.unescape(spec)
    kv, classes, ident = [], [], None
    for k, v1, v2, cls, i in _re_attr.findall(spec):
        if k: kv.append(f'{k}="{html.escape(v1 or v2)}"')
        elif cls: classes.append(cls)
        elif i: ident = i
    if classes: kv.append(f'class="{" ".join(classes)}"')
    if ident: kv.append(f'id="{ident}"')
    return ' '.join(kv)


def fix_pandoc_attrs(page):
    """Pandoc attributes after links and images, which markdown leaves as text: nbdev's show_doc writes
    `[source](url){target="_blank" style="float:right; font-size:smaller"}`, quarto authors `![](a.png){width=60%}`"""
    page = re.sub(r'(<a\b[^>]*)>(.*?)</a>\{([^{}<>\n]*=[^{}<>\n]*|[.#][^{}<>\n]*)\}',
                  lambda m: f'{m.group(1)} {_attrs_html(m.group(3))}>{m.group(2)}</a>', page)
    return re.sub(r'(<img\b[^>]*?)\s*/?>\{([^{}<>\n]*=[^{}<>\n]*|[.#][^{}<>\n]*)\}',
                  lambda m: f'{m.group(1)} {_attrs_html(m.group(2))}>', page)


def fix_links(page, here, targets, site_prefix):
    """Links to notebooks (`00_zoo.ipynb#x`) and absolute links into the published site (nbdev's symbol links)
    -> relative links to the pages built here. `targets` maps a notebook's path relative to nbs/ to its page."""
    missing = set()

    def sub(m):
        url = m.group(1)
        if site_prefix and url.startswith(site_prefix):
            rest = url[len(site_prefix):].lstrip('/')
            path, frag = (rest.split('#', 1) + [''])[:2]
            if (path or 'index.html') in targets.values(): return f'href="{path or "index.html"}{"#" + frag if frag else ""}"'
            return m.group(0)
        if re.match(r'^[a-z][a-z0-9+.-]*:', url, re.I) or url.startswith(('#', '/')): return m.group(0)
        path, frag = (url.split('#', 1) + [''])[:2]
        if not path.endswith('.ipynb'): return m.group(0)
        key = (here.parent/path).as_posix() if here.parent.as_posix() != '.' else path
        key = re.sub(r'^(\./)+', '', str(Path(key).as_posix()))
        key = re.sub(r'^nbs/', '', key)
        if key not in targets:
            missing.add(url); return m.group(0)
        return f'href="{targets[key]}{"#" + frag if frag else ""}"'
    page = re.sub(r'href="([^"]+)"', sub, page)
    return page, missing


def nav_html(pages, active, site_title, up=''):
    cur = ' class="active" aria-current="page"'
    items = '\n'.join(f'<li><a href="{up}{html.escape(p["out"])}"{cur if p["out"] == active else ""}>'
                      f'{html.escape(p["title"])}</a></li>' for p in pages)
    return (f'<nav class="wm-sidebar" aria-label="Chapters">\n<a class="wm-brand" href="{up}index.html">{html.escape(site_title)}</a>\n'
            f'<ul class="wm-nav">\n{items}\n</ul>\n</nav>')


def mathjax_dir():
    try: import jupyter_server_mathjax
    except ImportError: return None
    d = Path(jupyter_server_mathjax.__file__).parent/'static'
    return d if (d/'MathJax.js').exists() else None


def render(cfg, cache, out):
    import nbformat
    from nbformat.v4.rwbase import rejoin_lines
    from nbconvert import HTMLExporter
    from traitlets.config import Config
    site_title = cfg.get('title', cfg.get('lib_name'))
    site_prefix = (cfg.get('doc_host', '') + cfg.get('doc_baseurl', '')).rstrip('/') + '/' if cfg.get('doc_host') else ''
    mj = mathjax_dir()
    if mj is None: warn('jupyter-server-mathjax is not installed: equations stay as TeX text (pip install jupyter-server-mathjax)')

    pages = []
    for p in page_order(cfg, cache):
        nb = json.loads(p.read_text(encoding='utf-8'))
        fm = read_frontmatter(nb)
        rel = p.relative_to(cache)
        outname = fm.get('output-file') or rel.with_suffix('.html').as_posix()
        pages.append(dict(src=p, rel=rel, nb=nb, fm=fm, out=outname,
                          title=str(fm.get('title') or p.stem)))
    if not pages: sys.exit('[build_site] error: no processed notebooks found in _proc/')
    if pages[0]['out'] != 'index.html': warn('no index.ipynb: the site has no home page')
    targets = {pg['rel'].as_posix(): pg['out'] for pg in pages}

    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    for f in sorted(cache.rglob('*')):       # images and other files the notebooks refer to
        if f.is_file() and f.suffix not in ASSET_SKIP and not any(x.startswith(('.', '_')) for x in f.relative_to(cache).parts):
            (out/f.relative_to(cache)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, out/f.relative_to(cache))
    shutil.copy2(TEMPLATE_DIR/'site.css', out/'site.css')
    if not (out/'styles.css').exists(): (out/'styles.css').write_text('')
    if mj is not None: shutil.copytree(mj, out/'mathjax')

    c = Config()
    c.HTMLExporter.extra_template_basedirs = [str(TEMPLATE_DIR.parent)]
    c.HTMLExporter.template_name = TEMPLATE_DIR.name
    c.HTMLExporter.embed_images = True
    c.HTMLExporter.exclude_input_prompt = True
    c.HTMLExporter.exclude_output_prompt = True
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_cell_tags = {'remove_cell'}
    c.TagRemovePreprocessor.remove_input_tags = {'remove_input'}
    c.TagRemovePreprocessor.remove_all_outputs_tags = {'remove_output'}
    exporter = HTMLExporter(config=c)

    problems = 0
    for pg in pages:
        nb = clean_nb(pg['nb'], pg['title'], pg['fm'].get('description'))
        nb.setdefault('metadata', {})['title'] = pg['title'] if pg['out'] == 'index.html' else f'{pg["title"]} – {site_title}'
        node = rejoin_lines(nbformat.from_dict(nb))
        depth = len(Path(pg['out']).parts) - 1
        up = '../' * depth
        resources = {'metadata': {'name': pg['src'].stem, 'path': str(pg['src'].parent)},
                     'site': {'nav': nav_html(pages, pg['out'], site_title, up), 'root': up,
                              'mathjax_url': f'{up}mathjax/MathJax.js?config={MATHJAX_CONFIG}' if mj else ''}}
        body, _ = exporter.from_notebook_node(node, resources=resources)
        body = fix_pandoc_attrs(fix_ids(body))
        body, missing = fix_links(body, pg['rel'], targets, site_prefix)
        for m in sorted(missing):
            warn(f'{pg["rel"]}: link to {m}, which is not a notebook of this site'); problems += 1
        dst = out/pg['out']
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(body, encoding='utf-8')
        n_img = body.count('<img ')
        log(f'{pg["rel"]} -> {pg["out"]} ({len(body) // 1024} KiB, {n_img} images)')
    return pages, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', default=None, help='output folder (default: doc_path of settings.ini, i.e. _docs)')
    ap.add_argument('--n_workers', type=int, default=2, help="nbdev's processing workers")
    ap.add_argument('--strict', action='store_true', help='fail when nbdev cannot process a notebook, or a link points to no page')
    ap.add_argument('--no-proc', action='store_true', help='render the _proc/ already there, without processing again')
    ap.add_argument('--proc-one', nargs=2, metavar=('SRC', 'DST'), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.proc_one: return proc_one(*a.proc_one)

    from nbdev.config import get_config
    from nbdev.doclinks import nbglob
    cfg = get_config()
    out = Path(a.out) if a.out else cfg.doc_path
    notebooks = [Path(p) for p in nbglob(cfg.nbs_path, func=Path, file_re=r'\.ipynb$')]
    log(f'{len(notebooks)} notebooks in {cfg.nbs_path.relative_to(cfg.config_path)}/: {", ".join(sorted(p.name for p in notebooks))}')
    title_problems = check_title_cells(notebooks)
    if title_problems and a.strict: sys.exit(f'[build_site] error: {title_problems} title cells would lose content (see above)')
    if a.no_proc and (cfg.config_path/'_proc').exists(): cache = cfg.config_path/'_proc'
    else: cache = process(cfg, notebooks, a.n_workers, a.strict)
    pages, problems = render(cfg, cache, out)
    if problems and a.strict: sys.exit(f'[build_site] error: {problems} broken links (see the warnings above)')
    log(f'site: {len(pages)} pages in {out.relative_to(cfg.config_path) if out.is_relative_to(cfg.config_path) else out}/ '
        f'({", ".join(p["out"] for p in pages)}); open {out/"index.html"} or serve it: python -m http.server -d {out.name}')


if __name__ == '__main__': main()
