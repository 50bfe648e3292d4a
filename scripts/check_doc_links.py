"""Check every internal link of the built HTML documentation.

    python scripts/check_doc_links.py docs/_build/html

Each relative ``href`` / ``src`` must name a file of the build, and each ``#fragment`` an
``id`` (or ``name``) in the file it points to.  External links (with a scheme) are not
fetched.  Exit code 1 and one line per broken link when any is broken.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)
            elif key in ("href", "src") and value and tag in ("a", "img", "link", "script"):
                self.links.append(value)


def broken_links(root: Path) -> list[str]:
    """Return 'page: link' for every internal link that leads nowhere."""
    pages = {}
    for path in root.rglob("*.html"):
        if "_static" in path.relative_to(root).parts:  # theme templates, not pages
            continue
        page = _Page()
        page.feed(path.read_text(encoding="utf-8", errors="replace"))
        pages[path.resolve()] = page
    bad = []
    for path, page in pages.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:")):
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                bad.append(f"{path.relative_to(root.resolve())}: {link} (no such file)")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else set()
                if unquote(parts.fragment) not in ids:
                    bad.append(f"{path.relative_to(root.resolve())}: {link} (no such anchor)")
    return bad


def main(argv: list[str] | None = None) -> int:
    """Print the broken links under the given build directory; exit 1 if there are any."""
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0] if args else "docs/_build/html")
    bad = broken_links(root)
    for line in bad:
        print(line)
    n = sum(1 for p in root.rglob("*.html") if "_static" not in p.relative_to(root).parts)
    print(f"{n} pages, {len(bad)} broken internal links")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
