"""SVG from DOT with Graphviz's ``dot``, when it is installed; a clear warning when it is not."""

from __future__ import annotations

import re
import shutil
import subprocess
import warnings
from pathlib import Path


class PendingSvg:
    """Graphviz rendering a DOT file in its own process: the caller does other work, then ``wait()``s."""

    def __init__(self, dot_path: Path, svg_path: Path):
        self.dot_path, self.svg_path = dot_path, svg_path
        self._tmp = svg_path.with_name(f".{svg_path.name}.tmp")
        self._process: subprocess.Popen[str] | None = None
        dot = shutil.which("dot")
        if dot is None:
            warnings.warn(
                f"no SVG written: Graphviz's 'dot' program is not installed (apt-get install graphviz, "
                f"brew install graphviz or conda install graphviz); the DOT file is at {dot_path}",
                RuntimeWarning, stacklevel=4,
            )
            return
        self._process = subprocess.Popen([dot, "-Tsvg", str(dot_path), "-o", str(self._tmp)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def wait(self) -> Path | None:
        """The SVG's path once Graphviz is done, or None (with a warning saying why) when none was made."""
        if self._process is None:
            return None
        _, stderr = self._process.communicate()
        failed, self._process = self._process.returncode != 0, None
        if failed:
            self._tmp.unlink(missing_ok=True)
            warnings.warn(f"no SVG written: dot failed on {self.dot_path}: {stderr.strip()}", RuntimeWarning,
                          stacklevel=2)
            return None
        self._tmp.replace(self.svg_path)
        return self.svg_path


DOT_SECONDS = 30.0  # one layout for a page or a report; a picture that takes longer is not worth the wait


class NoGraphviz(RuntimeError):
    """Graphviz's ``dot`` is not installed, or failed; the message says which, and how to install it."""


def inline_svg(dot_source: str) -> str:
    """The SVG Graphviz lays out for ``dot_source``, its XML prologue dropped, to be embedded in HTML."""
    dot = shutil.which("dot")
    if dot is None:
        raise NoGraphviz("no picture: Graphviz's 'dot' program is not installed (apt-get install graphviz, "
                         "brew install graphviz or conda install graphviz)")
    done = subprocess.run([dot, "-Tsvg"], input=dot_source, capture_output=True, text=True, timeout=DOT_SECONDS)
    if done.returncode != 0:
        raise NoGraphviz(f"no picture: dot failed ({done.stderr.strip()[:300]})")
    return done.stdout[done.stdout.index("<svg"):]


def without_links(svg: str) -> str:
    """An embedded SVG with its links taken out: a report read offline keeps none."""
    return re.sub(r"</?a\b[^>]*>", "", svg)
