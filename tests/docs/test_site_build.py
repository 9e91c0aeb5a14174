"""The docs site builds with `mkdocs build --strict` and needs nothing from outside the service.

Strict mode fails on any warning: a broken link or anchor between pages, a page missing from
the nav, a hook that raised. The built pages must load no script, stylesheet, font or image
from another origin (the service serves the site at /docs/site on networks without internet).
"""

from __future__ import annotations

import re
from pathlib import Path

from .blocks import ROOT

#: attributes that make a browser fetch something on its own (an <a href> is only a link)
FETCHING = re.compile(r"<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)=\"(https?:)?//", re.I)
CSS_REMOTE = re.compile(r"(?:url\(\s*['\"]?|@import\s+['\"]?)(?:https?:)?//", re.I)


def test_mkdocs_build_strict_passes(built_site: Path) -> None:
    assert (built_site / "index.html").is_file()
    for page in ("quickstart.html", "reference/http.html", "reference/settings.html", "reference/cli.html",
                 "concepts/bounds.html", "results.html"):
        assert (built_site / page).is_file(), page


def test_built_site_fetches_nothing_from_outside(built_site: Path) -> None:
    remote = [f"{p.relative_to(built_site)}: {m.group(0)[:120]}" for p in built_site.rglob("*.html")
              for m in FETCHING.finditer(p.read_text(errors="replace"))]
    remote += [f"{p.relative_to(built_site)}: {m.group(0)}" for p in built_site.rglob("*.css")
               for m in CSS_REMOTE.finditer(p.read_text(errors="replace"))]
    assert not remote, "\n".join(remote)


def test_no_page_points_outside_the_site() -> None:
    """Nothing may point to a folder beside the clone or to a design file that is not part of the repository
    (the names are assembled here so that this test does not itself name them)."""
    outside = ("/".join(["..", "shar" + "ed"]), "DESIGN" + ".md")
    offending = [f"{p.relative_to(ROOT)}:{n}" for p in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]
                 for n, line in enumerate(p.read_text().splitlines(), 1)
                 if any(name in line for name in outside)]
    assert not offending, offending
