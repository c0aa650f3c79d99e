"""Exceptions raised by yprov4ml: each names the problem and the fix."""


class YProvError(Exception):
    """Base class of every error yprov4ml raises on misuse."""


class RunNotActiveError(YProvError, RuntimeError):
    """A directive was called while no run is active."""


class RunAlreadyActiveError(YProvError, RuntimeError):
    """start_run was called while another run is active in this process."""


class ParamConflictError(YProvError, ValueError):
    """A parameter key was logged again with a different value."""


class InvalidMetricError(YProvError, TypeError):
    """A metric key, value or step has the wrong type."""


class ArtifactError(YProvError, ValueError):
    """An artifact path is missing or would land outside the run directory."""


class ProvenanceDirError(YProvError, OSError):
    """The provenance directory cannot be created or written."""


class NotARunError(YProvError, ValueError):
    """A path given to a reader is not a yprov4ml run directory or document."""


class DocumentError(YProvError, ValueError):
    """A PROV-JSON input is unreadable, invalid, or not a yprov4ml document; the message names the file."""


class MissingDependencyError(YProvError, ImportError):
    """An optional package a directive needs is not installed; the message names the extra to install."""


class ForkedProcessError(YProvError, RuntimeError):
    """A directive was called in a process forked from the one recording the run (a worker)."""


class IndexUnavailableError(YProvError, OSError):
    """The run index cannot be opened or written where asked; the message says where else to put it."""


class FilterSyntaxError(YProvError, ValueError):
    """A search filter that does not parse; the message names the position and what was expected."""
