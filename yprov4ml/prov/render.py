"""Pictures of a PROV document: DOT always, SVG when Graphviz's ``dot`` is installed."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

from prov.model import ProvDocument

from ..storage.files import atomic_write_text


def dot_source(doc: ProvDocument) -> str:
    """The DOT source of ``doc`` in prov's standard PROV styling, one node per record."""
    from prov.dot import prov_to_dot

    # Attributes (package lists, environment variables) would bury the structure: labels only.
    return prov_to_dot(doc, use_labels=True, show_element_attributes=False, show_relation_attributes=False).to_string()


def write_dot(doc: ProvDocument, path: Path) -> Path:
    """Write the DOT source of ``doc``."""
    atomic_write_text(path, dot_source(doc))
    return path


def write_svg(dot_path: Path, svg_path: Path) -> Path | None:
    """Render a DOT file to SVG with Graphviz; without ``dot``, warn and return None."""
    dot = shutil.which("dot")
    if dot is None:
        warnings.warn(
            f"no SVG written: Graphviz's 'dot' program is not installed (apt-get install graphviz, "
            f"brew install graphviz or conda install graphviz); the DOT file is at {dot_path}",
            RuntimeWarning, stacklevel=3,
        )
        return None
    tmp = svg_path.with_name(f".{svg_path.name}.tmp")
    done = subprocess.run([dot, "-Tsvg", str(dot_path), "-o", str(tmp)], capture_output=True, text=True)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        warnings.warn(f"no SVG written: dot failed on {dot_path}: {done.stderr.strip()}", RuntimeWarning, stacklevel=3)
        return None
    tmp.replace(svg_path)
    return svg_path
