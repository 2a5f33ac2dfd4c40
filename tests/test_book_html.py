"""The built book (`make book`, book/_build/html) shows no raw markup and no path of the build machine.

`make book` runs this file after the build; in the ordinary suite it is skipped when no book has
been built. ``TEXTSAMPLING_BOOK_HTML`` points it at another build folder.

- Raw reStructuredText: autodoc output parsed as Markdown shows up as literal ``.. py:function::``
  lines and ``:math:`` roles instead of rendered signatures and formulas (the API reference did,
  before its pages wrapped autodoc in ``{eval-rst}``).
- Paths: a printed file name, a warning or a traceback that names the machine's folders.
"""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("TEXTSAMPLING_BOOK_HTML", ROOT / "book" / "_build" / "html"))
RAW_MARKUP = re.compile(r"\.\. py:|\.\. auto(?:module|class|function)::|:math:`|:func:`|:class:`|:mod:`")
# Folders of a build machine: this checkout, and the usual homes of users, temporary files and
# installed packages.
# A folder of this machine starts a path (after a quote, a space, "file://" or the line's start), not
# the path part of a web address such as http://host/home/blog.
MACHINE_PATHS = re.compile(
    re.escape(str(ROOT)) + "|" + r"(?<![\w.\-])(?:/work/|/root/|/home/\w|/tmp/\w|/opt/)|site-packages"
)

pages = sorted(HTML.rglob("*.html")) if HTML.is_dir() else []
# Every built page counts: the book has no highlighted-source pages (viewcode), whose docstrings would
# show their markup literally; the source is in the repository.
rendered = pages
needs_book = pytest.mark.skipif(not pages, reason=f"no built book in {HTML} (run `make book`)")


def _visible_text(page: Path) -> str:
    """The page without <script>/<style> blocks and tags: what a reader sees."""
    text = page.read_text(encoding="utf-8", errors="replace")
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S | re.I)
    return re.sub(r"<[^>]+>", "", text)


def _hits(pattern, pages_to_scan):
    hits = []
    for page in pages_to_scan:
        for line in _visible_text(page).splitlines():
            match = pattern.search(line)
            if match:
                hits.append(f"{page.relative_to(HTML)}: {line.strip()[:160]}")
    return hits


@needs_book
def test_the_api_reference_was_built():
    api = [page for page in rendered if page.relative_to(HTML).parts[0] == "api"]
    assert api, f"no API pages in {HTML}/api"
    # Rendered autodoc: signatures as <dl class="py ..."> and formulas as MathJax spans.
    checks = (HTML / "api" / "checks.html").read_text(encoding="utf-8")
    assert '<dl class="py function">' in checks and 'class="math' in checks


@needs_book
def test_no_page_shows_raw_restructured_text():
    hits = _hits(RAW_MARKUP, rendered)
    assert not hits, f"{len(hits)} lines of raw markup, e.g.:\n" + "\n".join(hits[:20])


@needs_book
def test_no_page_prints_a_path_of_the_build_machine():
    hits = _hits(MACHINE_PATHS, pages)
    assert not hits, f"{len(hits)} lines name the build machine's folders, e.g.:\n" + "\n".join(hits[:20])


def test_the_path_pattern_flags_machine_folders_and_not_web_addresses():
    # Runs without a built book: the test of the test above.
    assert MACHINE_PATHS.search("HFMaskedLM('/work/wt/x/textsampling/models/tiny-shakespeare/mlm')")
    assert MACHINE_PATHS.search("file:///tmp/build/index.html")
    assert not MACHINE_PATHS.search("Blog post, http://www.kyunghyuncho.me/home/blog/a-mistake")
