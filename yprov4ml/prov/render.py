"""SVG from DOT with Graphviz's ``dot``, when it is installed; a clear warning when it is not."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path



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
