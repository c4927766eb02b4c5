"""The history view's data, as JSON for the two front ends, and the ``nbstate serve`` web app.

The JupyterLab extension (server.py) and ``nbstate serve`` show the same view of a notebook's
history: the commit graph with its branches and tags, one commit in full, and the difference
between two commits. This module builds that JSON from a porcelain.Session (read-only: it never
changes a store) and serves it, with the page in ``webapp/``, from a small token-protected HTTP
server bound to 127.0.0.1 for stores whose kernels are not running. It never imports IPython.
"""

from __future__ import annotations

import datetime as _dt
import hmac
import http.server
import json
import mimetypes
import secrets
import socketserver
import sys
import threading
import urllib.parse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import __version__, porcelain
from .store import Store, StoreError

WEBAPP = Path(__file__).with_name("webapp")
# How many commits the graph shows at most (newest first); older ones are summarised.
HISTORY_LIMIT = 500


# --- the data of the view (shared with server.py) ------------------------------------------------


def notebooks(store: Store) -> list[dict[str, Any]]:
    """The notebooks a store holds: id, path, number of commits (a read-only query)."""
    rows = store.db.execute(
        "SELECT n.id, n.path, (SELECT count(*) FROM commits c WHERE c.notebook_id = n.id) FROM notebooks n ORDER BY n.id"
    ).fetchall()
    return [{"id": r[0], "path": r[1], "commits": r[2]} for r in rows]


def history(session: porcelain.Session, limit: int | None = HISTORY_LIMIT) -> dict[str, Any]:
    """The commit graph of every branch, newest first, with refs, HEAD and per-commit changes."""
    branch, head = session.head()
    branches, tags = session.branches(), session.tags()
    entries = session.log(limit, all_branches=True)
    total = session.store.db.execute("SELECT count(*) FROM commits WHERE notebook_id=?", (session.notebook,)).fetchone()[0]
    labels: dict[str, list[dict[str, str]]] = {}
    for name, target in sorted(branches.items()):
        labels.setdefault(target, []).append({"kind": "branch", "name": name, "head": "1" if name == branch else ""})
    for name, target in sorted(tags.items()):
        labels.setdefault(target, []).append({"kind": "tag", "name": name})
    commits = []
    for e in entries:
        d = asdict(e)
        d["labels"] = labels.get(e.commit, [])
        d["head"] = e.commit == head
        commits.append(d)
    return {
        "notebook": session.notebook,
        "store": str(session.store.root),
        "head": head,
        "branch": branch,
        "branches": branches,
        "tags": tags,
        "commits": commits,
        "total": total,
        "truncated": total > len(commits),
    }


def show(session: porcelain.Session, ref: str) -> dict[str, Any]:
    """One commit in full: its cell, what it changed, and every variable of its state."""
    store = session.store
    c = store.commit(session.resolve(ref))
    run = store.cell_run(c.cell_run_id) if c.cell_run_id is not None else None
    created, changed, deleted = porcelain.changed_names(c)
    versions = store.versions(sorted(set(c.state.values())))
    variables = []
    for name, vid in sorted(c.state.items()):
        v = versions[vid]
        variables.append(
            {
                "name": name,
                "type": v.types.get(name, "?"),
                "size": v.size,
                "size_text": porcelain.human_bytes(v.size),
                "serializable": v.serializable,
                "reason": v.reason,
                "change": "created" if name in created else "changed" if name in changed else "",
            }
        )
    cells = porcelain.code_cells(store, c)
    return {
        "commit": c.id,
        "short": c.short,
        "parent": c.parent,
        "kind": c.kind,
        "message": c.message,
        "created_at": c.created,
        "date": _dt.datetime.fromtimestamp(c.created).strftime("%Y-%m-%d %H:%M:%S"),
        "execution_count": run.execution_count if run else None,
        "code": run.code if run else None,
        "duration": run.duration if run else None,
        "error": run.error if run else None,
        "variables": variables,
        "created": created,
        "changed": changed,
        "deleted": deleted,
        "has_code": cells is not None,
    }


def diff(session: porcelain.Session, a: str, b: str) -> dict[str, Any]:
    """What differs from ``a`` to ``b``: variables (with short previews) and code."""
    d = session.diff(a, b)
    return {"a": d.a, "b": d.b, "variables": [asdict(v) for v in d.variables], "code": d.code}


def cells(session: porcelain.Session, ref: str) -> dict[str, Any]:
    """The notebook's cells as recorded with ``ref`` (``cells`` is None when none were)."""
    c = session.store.commit(session.resolve(ref))
    return {"commit": c.id, "cells": porcelain.code_cells(session.store, c)}


def query(session: porcelain.Session, what: str, params: dict[str, str]) -> Any:
    """One read of the view by name: history, show (ref), diff (a, b) or cells (ref)."""
    if what == "history":
        limit = params.get("limit")
        return history(session, int(limit) if limit else HISTORY_LIMIT)
    if what == "show":
        return show(session, params.get("ref") or "HEAD")
    if what == "diff":
        if not params.get("a") or not params.get("b"):
            raise ValueError("diff needs two refs: a and b")
        return diff(session, params["a"], params["b"])
    if what == "cells":
        return cells(session, params.get("ref") or "HEAD")
    raise ValueError(f"unknown view {what!r}")


# --- nbstate serve ---------------------------------------------------------------------------------


class ViewError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class App:
    """The read-only web app over one store: what ``nbstate serve`` runs."""

    def __init__(self, store_path: str | Path, token: str | None = None) -> None:
        self.store_path = Path(store_path).expanduser().resolve()
        if not (self.store_path / "nbstate.sqlite").is_file():
            raise StoreError(
                f"no nbstate store at {self.store_path}: pass the .nbstate directory a kernel wrote "
                "(--store PATH or NBSTATE_STORE)"
            )
        self.token = token or secrets.token_urlsafe(24)
        self.cookie = "nbstate-serve-token"

    def open(self) -> Store:
        return Store(self.store_path, read_only=True)

    def session(self, store: Store, notebook: str | None) -> porcelain.Session:
        known = [n["id"] for n in notebooks(store)]
        if notebook is None:
            if len(known) > 1:
                raise ViewError(400, f"the store holds several notebooks; choose one of: {', '.join(known)}")
            notebook = known[0] if known else None
        elif notebook not in known:
            raise ViewError(404, f"no notebook {notebook!r} in this store; it holds: {', '.join(known) or '(none)'}")
        return porcelain.Session(store=store, notebook=notebook)

    def api(self, what: str, params: dict[str, str]) -> Any:
        store = self.open()
        try:
            if what == "notebooks":
                return {"store": str(self.store_path), "version": __version__, "notebooks": notebooks(store)}
            return query(self.session(store, params.get("notebook") or None), what, params)
        except (StoreError, ValueError) as exc:
            raise ViewError(404 if "no commit" in str(exc) or "unknown ref" in str(exc) else 400, str(exc)) from None
        finally:
            store.close()


def _handler(app: App) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = f"nbstate/{__version__}"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass  # quiet: the terminal shows the URL, not every request

        def _authorized(self, params: dict[str, str]) -> bool:
            given = params.get("token") or ""
            auth = self.headers.get("Authorization", "")
            if auth.startswith("token "):
                given = given or auth[6:]
            for part in self.headers.get("Cookie", "").split(";"):
                key, _, value = part.strip().partition("=")
                if key == app.cookie:
                    given = given or value
            return bool(given) and hmac.compare_digest(given, app.token)

        def _host_ok(self) -> bool:
            # Only loopback names: a page elsewhere cannot rebind its name to 127.0.0.1 and read.
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
            return host in ("127.0.0.1", "localhost", "::1")

        def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("X-Frame-Options", "DENY")
            self.send_header("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, data: Any) -> None:
            self._send(status, json.dumps(data).encode(), "application/json")

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urllib.parse.urlsplit(self.path)
            params = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
            if not self._host_ok():
                return self._json(403, {"error": "requests must name 127.0.0.1 or localhost as the host"})
            if not self._authorized(params):
                if url.path == "/":
                    page = b"<!doctype html><title>nbstate</title><p>Open the URL that <code>nbstate serve</code> printed: it carries the token.</p>"
                    return self._send(403, page, "text/html; charset=utf-8")
                return self._json(403, {"error": "missing or wrong token: use the URL nbstate serve printed"})
            extra = {}
            if "token" in params:  # the printed URL: remember the token for the page's requests
                extra["Set-Cookie"] = f"{app.cookie}={app.token}; Path=/; HttpOnly; SameSite=Strict"
            if url.path in ("/", "/index.html"):
                return self._file(WEBAPP / "index.html", extra)
            if url.path.startswith("/static/"):
                rel = url.path[len("/static/"):]
                target = (WEBAPP / rel).resolve()
                if WEBAPP.resolve() not in target.parents or not target.is_file():
                    return self._json(404, {"error": "not found"})
                return self._file(target, extra)
            if url.path.startswith("/api/"):
                what = url.path[len("/api/"):]
                if what not in ("notebooks", "history", "show", "diff", "cells"):
                    return self._json(404, {"error": f"no API {what!r}"})
                try:
                    return self._json(200, app.api(what, params))
                except ViewError as exc:
                    return self._json(exc.status, {"error": str(exc)})
                except Exception as exc:  # the store changed under us, or is damaged: say so
                    return self._json(500, {"error": f"{type(exc).__name__}: {exc}"})
            return self._json(404, {"error": "not found"})

        do_HEAD = do_GET

        def _refuse(self) -> None:
            self._json(405, {"error": "nbstate serve is read-only"})

        do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

        def _file(self, path: Path, extra: dict[str, str]) -> None:
            ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if path.suffix == ".js":
                ctype = "text/javascript"
            if ctype.startswith("text/"):
                ctype += "; charset=utf-8"
            self._send(200, path.read_bytes(), ctype, extra)

    return Handler


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(app: App, port: int = 0, host: str = "127.0.0.1") -> _Server:
    """An HTTP server for ``app`` on loopback (port 0: any free port)."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("nbstate serve listens on loopback only (127.0.0.1)")
    return _Server((host, port), _handler(app))


def url_of(server: _Server, app: App) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/?token={app.token}"


def serve(store_path: str, port: int = 0, token: str | None = None, ready: threading.Event | None = None) -> int:
    """Run the web app until interrupted; prints the URL (with its token) first."""
    app = App(store_path, token=token)
    server = make_server(app, port)
    print(f"nbstate: serving the history of {app.store_path} (read-only)", flush=True)
    print(f"    {url_of(server, app)}", flush=True)
    print("Open that URL in a browser on this machine; Ctrl+C stops the server.", flush=True)
    if ready is not None:
        ready.set()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("nbstate: stopped.", file=sys.stderr)
    finally:
        server.server_close()
    return 0
