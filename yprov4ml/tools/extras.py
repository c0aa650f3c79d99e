"""Which extra of the package installs an optional module: the one table the commands use to say so."""

from __future__ import annotations

import sys

# Top-level module → the extra of pyproject.toml that installs it.
EXTRA_OF_MODULE = {
    "matplotlib": "plots",
    "rocrate": "crate",
    "rocrate_validator": "crate",
    "rdflib": "convert",
    "lxml": "convert",
    "mlflow": "mlflow",
    "torch": "torch",
    "codecarbon": "energy",
    "pynvml": "gpu",
    "mpi4py": "mpi",
    "xarray": "netcdf",
    "netCDF4": "netcdf",
    "zarr": "zarr",
    "pyarrow": "parquet",
    "keras": "keras",
    "lightning": "lightning",
    "snakemake": "snakemake",
    "parsl": "parsl",
}


def install_hint(exc: ModuleNotFoundError) -> str | None:
    """``needs matplotlib, which is not installed: pip install 'yprov4ml[plots]'`` for a module one of
    our extras installs; None for any other missing module (a real bug, whose traceback must show)."""
    module = (exc.name or "").split(".", 1)[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    return f"this needs {module}, which is not installed: pip install 'yprov4ml[{extra}]'"


def refuse_missing_extra(command: str, exc: ModuleNotFoundError) -> int:
    """For a command's ``except ModuleNotFoundError``: print which extra to install and return exit code 2,
    or re-raise a module no extra installs."""
    hint = install_hint(exc)
    if hint is None:
        raise exc
    print(f"{command}: {hint}", file=sys.stderr)
    return 2
