"""What a run captures on its own: source code, Python, OS, packages, accelerators, env vars."""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from ..storage.files import sha256_of
from .snapshot import git_output
from .secrets import REDACTED, Redactions, is_secret_name, keep_in_clear_names, redact_text

__all__ = ["REDACTED", "is_secret_name", "environment_variables", "redact_url_credentials", "capture_environment",
           "capture_source", "git_state", "installed_packages"]

def redact_url_credentials(text: str) -> str:
    """Hide ``user:password@`` in URLs (git remotes, proxy settings) and other secret-shaped text."""
    return redact_text(text)[0]


def environment_variables(environ: Mapping[str, str] | None = None,
                          redactions: Redactions | None = None) -> dict[str, str]:
    """All environment variables, secrets hidden by name and by value shape (noted in ``redactions``)."""
    environ = os.environ if environ is None else environ
    redactions = redactions if redactions is not None else Redactions(keep_in_clear_names())
    return {name: redactions.value(f"environment variable {name}", name, value)
            for name, value in sorted(environ.items())}


def _distributions() -> list[tuple[str, str, Path | None]]:
    """(name, version, metadata folder) of every installed distribution on ``sys.path``, first one wins.

    Read from the ``name-version.dist-info`` folder names — a directory listing, not a metadata parse per
    package (parsing every METADATA file takes a tenth of a second, in a thread that shares the training
    loop's interpreter lock); only the rare folders whose names do not say (``*.egg-info``) are parsed.
    """
    found: dict[str, tuple[str, str, Path | None]] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for folder in names:
            if folder.endswith(".dist-info"):
                name, _, version = folder[: -len(".dist-info")].rpartition("-")
                if name and version:  # the folder's name escapes "-" as "_": shown as the project spells it
                    found.setdefault(name.lower().replace("-", "_"), (name.replace("_", "-"), version,
                                                                      Path(entry, folder)))
                    continue
            if folder.endswith((".dist-info", ".egg-info")):
                try:
                    dist = metadata.PathDistribution(Path(entry, folder))
                    name, version = dist.metadata.get("Name"), dist.version
                except Exception:  # a damaged folder: not a distribution
                    continue
                if name and version:
                    found.setdefault(name.lower().replace("-", "_"), (name, version, None))
    return list(found.values())


def installed_packages() -> list[str]:
    """``name==version`` of every installed distribution, sorted and de-duplicated."""
    return sorted({f"{name}=={version}" for name, version, _ in _distributions()}, key=str.lower)


def local_packages() -> list[str]:
    """Distributions installed from a local directory (``pip install -e .``, ``pip install ./src``).

    No index holds them: a reproduction must install them from their source.
    """
    found = set()
    for name, _, folder in _distributions():
        record = folder / "direct_url.json" if folder is not None else None
        if record is None or not record.is_file():
            continue
        try:
            direct = json.loads(record.read_text(encoding="utf-8") or "{}")
        except (ValueError, OSError):
            continue
        if isinstance(direct, dict) and "dir_info" in direct:  # a directory, editable or not (not a wheel file)
            found.add(name)
    return sorted(found, key=str.lower)


def accelerators() -> list[str]:
    """Accelerators visible through torch, when the user's code already imported it."""
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    found = []
    try:
        if torch.cuda.is_available():
            found += [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            found.append("mps")
    except Exception:  # a broken driver must not break the run
        pass
    return found


def framework_versions() -> dict[str, str]:
    """torch, CUDA and cuDNN versions, when the user's code imported torch (never imported here)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    found = {"torch_version": str(getattr(torch, "__version__", ""))}
    version = getattr(torch, "version", None)
    if getattr(version, "cuda", None):
        found["cuda_version"] = str(version.cuda)
    try:
        cudnn = torch.backends.cudnn.version()
        if cudnn:
            found["cudnn_version"] = str(cudnn)
    except Exception:  # no cuDNN in a CPU build
        pass
    return found


def memory_total() -> int:
    """The machine's memory in bytes (sysconf where it knows; psutil, which costs 15 ms to import, elsewhere)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        import psutil

        return psutil.virtual_memory().total


def platform_name() -> str:
    """``platform.platform()``, without the ``uname -p`` it forks on Linux for a processor name it then leaves
    out (a process start per rank, dozens of file-system requests)."""
    if sys.platform != "linux":
        return platform.platform()
    system = os.uname()
    libc, version = platform.libc_ver()  # glibc answers through confstr: no file read
    parts = [system.sysname, system.release, system.machine, "with", libc + version] if libc else \
        [system.sysname, system.release, system.machine]
    return "-".join(part.replace(" ", "_") for part in parts if part)


def python_and_os() -> dict[str, Any]:
    """Interpreter and operating-system facts."""
    return {
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
        "os": platform_name(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count() or 0,
        "memory_total_bytes": memory_total(),
    }


def capture_environment(keep_in_clear: frozenset[str] = frozenset(),
                        packages: tuple[list[str], list[str]] | None = None) -> dict[str, Any]:
    """The environment entity's attributes (secrets hidden; ``redacted`` says which).

    ``packages`` (installed, installed from a directory), when taken earlier, saves reading every
    distribution's metadata again.
    """
    facts = python_and_os()
    facts["packages"], facts["local_packages"] = packages if packages is not None else \
        (installed_packages(), local_packages())
    facts["accelerators"] = accelerators()
    facts.update(framework_versions())
    redactions = Redactions(keep_in_clear)
    facts["environment_variables"] = environment_variables(redactions=redactions)
    if redactions.items:
        facts["redacted"] = redactions.items
    return facts


def _git(cwd: Path, *args: str) -> str | None:
    out = git_output(cwd, *args)
    return out.decode("utf-8", "replace").strip() if out is not None else None


def capture_source(script: str | None = None, git: bool = True) -> dict[str, Any]:
    """The entry script (path, sha256) and, with ``git`` and inside a git work tree, commit, branch, dirty flag
    (``git_state``)."""
    script = script if script is not None else (sys.argv[0] if sys.argv and sys.argv[0] else "")
    facts: dict[str, Any] = {}
    path = Path(script) if script and script not in ("-c", "-m") else None
    if path is not None and path.is_file():
        path = path.resolve()
        facts["script"] = str(path)
        facts["script_sha256"] = sha256_of(path)
    if git:
        facts.update(git_state(path.parent if path is not None and path.is_file() else Path.cwd()))
    return facts


def git_state(where: Path) -> dict[str, Any]:
    """Commit, branch, dirty flag and remote (credentials hidden) of the git work tree holding ``where``."""
    facts: dict[str, Any] = {}
    if shutil.which("git") and _git(where, "rev-parse", "--is-inside-work-tree") == "true":
        facts["git_commit"] = _git(where, "rev-parse", "HEAD") or "(no commits)"
        facts["git_branch"] = _git(where, "rev-parse", "--abbrev-ref", "HEAD") or ""
        status = _git(where, "status", "--porcelain", "--untracked-files=no")
        facts["git_dirty"] = bool(status)
        remote = _git(where, "config", "--get", "remote.origin.url")
        if remote:
            facts["git_remote"] = redact_url_credentials(remote)
    return facts
