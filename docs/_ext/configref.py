"""Sphinx directive ``.. meanfield-config::``: the config reference, from config.py itself.

Each validated section of :mod:`meanfield.config` becomes a titled section (label
``config-<section>``) with its docstring and a table of its keys: default, the values the
key's check accepts, and its description.  Nothing is written by hand, so the page
cannot drift from the code.
"""

from __future__ import annotations

from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles


def _literal(value) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"``{str(value).lower()}``"
    if isinstance(value, str):
        return f'``"{value}"``'
    if isinstance(value, tuple):
        return "``[" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v)
                                 for v in value) + "]``"
    if isinstance(value, float):
        return f"``{value:g}``"
    return f"``{value}``"


def _cell(text: str) -> str:
    return " ".join(str(text).split()) or "—"


def config_rst() -> list[str]:
    """Return the RST lines of the reference."""
    from meanfield.config import reference

    lines: list[str] = []
    for sec in reference():
        name = sec["section"]
        title = f"[{name}]"
        text = sec["doc"].strip().removeprefix(f"[{name}]:").strip()
        doc = [ln.strip() for ln in text.splitlines()]
        doc[0] = doc[0][:1].upper() + doc[0][1:]
        lines += [f".. _config-{name}:", "", title, "-" * len(title), "", *doc, "",
                  ".. list-table::", "   :header-rows: 1", "   :widths: 14 14 36 36", "",
                  "   * - key", "     - default", "     - allowed", "     - meaning"]
        for k in sec["keys"]:
            lines += [f"   * - ``{name}.{k['key']}``", f"     - {_literal(k['default'])}",
                      f"     - {_cell(k['allowed'])}", f"     - {_cell(k['doc'])}"]
        lines.append("")
    return lines


class ConfigReference(SphinxDirective):
    """Insert the generated config reference."""

    has_content = False

    def run(self):
        """Parse the generated RST in place (section titles allowed)."""
        from docutils import nodes

        container = nodes.container()
        nested_parse_with_titles(self.state, StringList(config_rst(), source="meanfield.config"),
                                 container)
        return container.children


def setup(app):
    """Register the directive."""
    app.add_directive("meanfield-config", ConfigReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
