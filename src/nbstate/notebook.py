"""The notebook file's cells: read (cheaply, cached by modification time) to record the code
state of each commit, and written back by ``checkout --code``. Never imports IPython.

The saved file lags behind the browser (autosave), so the cell that just ran is patched in from
the source the kernel actually executed, matched by the cell id the frontend sends.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class NotebookError(Exception):
    """The notebook file cannot be read or written; the message says what to do."""


class CodeState:
    """Reads a notebook's cells, re-parsing the file only when it changed on disk."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._cells: list[dict[str, str]] = []

    def cells(self, ran_id: str | None = None, ran_source: str | None = None) -> list[dict[str, str]]:
        """The notebook's cells as [{"id", "cell_type", "source"}], with the cell that ran patched."""
        try:
            st = self.path.stat()
        except OSError:
            cells: list[dict[str, str]] = []
        else:
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                self._cells = _read_cells(self.path)
                self._stamp = stamp
            cells = self._cells
        if ran_source is None:
            return list(cells)
        out = [dict(c) for c in cells]
        for c in out:
            if ran_id is not None and c.get("id") == ran_id:
                c["source"] = ran_source
                return out
        if not any(c["source"] == ran_source for c in out):
            out.append({"id": ran_id or "", "cell_type": "code", "source": ran_source})
        return out


def _read_cells(path: Path) -> list[dict[str, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    cells = []
    for c in data.get("cells", []):
        source = c.get("source", "")
        cells.append(
            {"id": c.get("id", ""), "cell_type": c.get("cell_type", "code"), "source": "".join(source) if isinstance(source, list) else source}
        )
    return cells


def write_cells(path: str | os.PathLike[str], cells: list[dict[str, Any]]) -> None:
    """Replace the notebook's cells with ``cells`` (outputs cleared), keeping its metadata."""
    import nbformat

    p = Path(path)
    try:
        nb = nbformat.read(p, as_version=4)
    except FileNotFoundError:
        nb = nbformat.v4.new_notebook()
    except Exception as exc:
        raise NotebookError(f"cannot read {p}: {exc}") from None
    new_cells = []
    for c in cells:
        kind = c.get("cell_type", "code")
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(c["source"])
        elif kind == "raw":
            cell = nbformat.v4.new_raw_cell(c["source"])
        else:
            cell = nbformat.v4.new_code_cell(c["source"])
        if c.get("id"):
            cell["id"] = c["id"]
        new_cells.append(cell)
    nb.cells = new_cells
    tmp = p.with_name(f".{p.name}.nbstate-tmp")
    try:
        nbformat.write(nb, tmp)
        os.replace(tmp, p)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise NotebookError(f"cannot write {p}: {exc.strerror}") from None
