"""``yprov4ml ui ROOT``: the explorer's HTTP server — the standard library's threading server, read-only.

Why the standard library: the explorer serves a handful of pages and two static files to one user on
their own machine, so a framework would add a dependency and nothing a user sees. Every answer carries a
strict Content-Security-Policy (scripts and styles from the explorer itself only, nothing from another
origin), the server binds to 127.0.0.1 unless told otherwise, answers GET and HEAD only, and serves no
file outside ROOT.
"""

from __future__ import annotations

import html
import mimetypes
import os
import shutil
import sys
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from ..errors import YProvError
from .pages import NotFound, Site, layout

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
FILE_BLOCK = 1 << 20
STATIC = {"explorer.js": "text/javascript; charset=utf-8", "explorer.css": "text/css; charset=utf-8"}


def _static(name: str) -> bytes:
    return resources.files("yprov4ml.explorer").joinpath("static", name).read_bytes()


def make_handler(site: Site, log: Callable[[str], None] | None = None) -> type[BaseHTTPRequestHandler]:
    """A request handler class serving ``site``; ``log`` gets one line per request (None: quiet)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "yprov4ml-explorer"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
            if log is not None:
                log(f"{self.address_string()} {format % args}")

        def _send(self, code: int, body: bytes, kind: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("Cache-Control", "no-store")
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _page(self, code: int, html_text: str, timing: float | None = None) -> None:
            extra = {"Server-Timing": f"page;dur={timing * 1000:.1f}"} if timing is not None else None
            self._send(code, html_text.encode("utf-8"), "text/html; charset=utf-8", extra)

        def do_HEAD(self) -> None:  # noqa: N802 (the base class's name)
            self.do_GET()

        def do_GET(self) -> None:  # noqa: N802
            started = time.perf_counter()
            url = urlsplit(self.path)
            query = parse_qs(url.query, keep_blank_values=True)

            def one(name: str, default: str = "") -> str:
                return query.get(name, [default])[0]

            try:
                if url.path.startswith("/static/") and url.path[8:] in STATIC:
                    self._send(200, _static(url.path[8:]), STATIC[url.path[8:]])
                    return
                if url.path == "/file":
                    self._file(site.inside(one("path")))
                    return
                if url.path == "/":
                    page = site.runs(one("filter"), one("order"))
                elif url.path == "/run":
                    rank = one("rank", "0")
                    page = site.run(one("dir"), int(rank) if rank.isdigit() else 0, "time" if one("x") == "time"
                                    else "step")
                elif url.path == "/workflow":
                    page = site.workflow(one("dir"), set(query.get("expand", [])))
                elif url.path == "/lineage":
                    page = site.lineage(one("target").strip())
                else:
                    raise NotFound(f"no page {url.path}")
                self._page(200, page, time.perf_counter() - started)
            except NotFound as exc:
                self._page(404, layout("not found", f'<p class="error">{html.escape(str(exc))}</p>'))
            except YProvError as exc:
                self._page(422, layout("cannot show this", f'<pre class="error">{html.escape(str(exc))}</pre>'))
            except (BrokenPipeError, ConnectionResetError):
                pass
            except Exception:  # a page that fails says so, and the server goes on
                traceback.print_exc(file=sys.stderr)
                self._page(500, layout("error", "<p class=\"error\">this page failed; the server's output says why</p>"))

        def _file(self, path: Path) -> None:
            if not path.is_file():
                raise NotFound("not a file")
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if kind.startswith("text/html") or kind == "image/svg+xml":
                kind = "text/plain"  # a recorded file is shown, never run as a page of the explorer
            with open(path, "rb") as handle:  # a checkpoint may be gigabytes: sent in blocks, never read whole
                size = os.fstat(handle.fileno()).st_size
                self.send_response(200)
                for key, value in (("Content-Type", kind + ("; charset=utf-8" if kind.startswith("text/") else "")),
                                   ("Content-Length", str(size)), ("Content-Security-Policy", CSP),
                                   ("X-Content-Type-Options", "nosniff"),
                                   ("Content-Disposition", f'attachment; filename="{_header_safe(path.name)}"')):
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    shutil.copyfileobj(handle, self.wfile, FILE_BLOCK)

        def _refuse(self) -> None:
            self._send(405, b"read-only", "text/plain; charset=utf-8", {"Allow": "GET, HEAD"})

        do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

    return Handler


def _header_safe(name: str) -> str:
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)


def make_server(root: str | Path, host: str = "127.0.0.1", port: int = 8855, quiet: bool = False) -> ThreadingHTTPServer:
    """The explorer's server for ``root`` (not yet serving: call ``serve_forever``); port 0 picks a free one."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory: give the folder that holds your runs or workflows")
    handler = make_handler(Site(root), None if quiet else lambda line: print(line, file=sys.stderr))
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve(root: str | Path, host: str = "127.0.0.1", port: int = 8855) -> None:
    """Serve the explorer until interrupted."""
    server = make_server(root, host, port)
    bound_host, bound_port = server.server_address[:2]
    print(f"yprov4ml explorer of {Path(root).resolve()} at http://{bound_host}:{bound_port}/ (Ctrl-C stops it)",
          flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: bound to {host}: anyone who can reach this machine can read the runs under the root",
              file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
