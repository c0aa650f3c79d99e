"""Reaching an MLflow tracking store: the client, a quick liveness probe, MLflow's errors in plain words.

MLflow's HTTP client retries a dead server for minutes before it gives up;
``probe`` asks ``/health`` once with a short timeout, so that the CLI fails
at once and the live mirror knows to wait, instead of stalling on retries.
"""

from __future__ import annotations

import importlib.util
import urllib.error
import urllib.request
from typing import Any

from ..errors import MissingDependencyError, YProvError

INSTALL_HINT = "pip install 'yprov4ml[mlflow]'"


class MlflowError(YProvError, RuntimeError):
    """MLflow refused a request, or no tracking server answers at the URI."""


def require_mlflow() -> None:
    """Raise a clear error when mlflow is not installed (without importing it: that takes seconds)."""
    if importlib.util.find_spec("mlflow") is None:
        raise MissingDependencyError(f"the MLflow link needs mlflow: {INSTALL_HINT}")


def mlflow_client(tracking_uri: str) -> Any:
    """An ``MlflowClient`` for ``tracking_uri``, after checking that a server there answers."""
    require_mlflow()
    problem = probe(tracking_uri)
    if problem:
        raise MlflowError(problem)
    from mlflow import MlflowClient

    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        client.search_experiments(max_results=1)  # the store is opened lazily: open it here
    except Exception as exc:
        raise translated(exc, tracking_uri) from None
    return client


def probe(tracking_uri: str, timeout_s: float = 3.0) -> str | None:
    """None when the tracking store at ``tracking_uri`` can be used now; otherwise why not.

    Only HTTP(S) servers are asked (``GET /health``); local stores (sqlite, files) always can.
    """
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:  # noqa: S310 (the user's own server)
            if answer.status == 200:
                return None
            return f"the MLflow server at {tracking_uri} answered /health with HTTP {answer.status}"
    except urllib.error.HTTPError as exc:
        return f"the MLflow server at {tracking_uri} answered /health with HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return (f"no MLflow tracking server answers at {tracking_uri} ({reason}); "
                "start one (`mlflow server --backend-store-uri sqlite:///mlflow.db`) or check --tracking-uri")


def translated(exc: BaseException, tracking_uri: str) -> YProvError:
    """An exception from mlflow as an ``MlflowError`` that says what to do."""
    if isinstance(exc, YProvError):
        return exc
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "filesystem tracking backend" in text or "MLFLOW_ALLOW_FILE_STORE" in str(exc):
        text = ("this MLflow release refuses file stores (a path or file:// URI) unless "
                "MLFLOW_ALLOW_FILE_STORE=true is set; use a sqlite:/// URI or set that variable")
    return MlflowError(f"MLflow at {tracking_uri}: {text}")


def is_mlflow_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from mlflow (its own exception types, or its store layers)."""
    return type(exc).__module__.split(".")[0] in ("mlflow", "sqlalchemy", "requests", "urllib3")
