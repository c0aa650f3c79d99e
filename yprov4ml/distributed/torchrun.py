"""torchrun's agent store: what the workers of an elastic job share before (and without) init_process_group.

torchrun starts a TCPStore for its workers and tells them where (``MASTER_ADDR``/``MASTER_PORT``, with
``TORCHELASTIC_USE_AGENT_STORE=True``). The store outlives a restart of the workers, so the run id agreed in
it on the first attempt is still there for the next one, and it serves the end-of-run reports when the
program never set up (or already destroyed) its process group.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, Mapping

from ..errors import YProvError

CONNECT_TIMEOUT_S = 60.0  # the agent starts its store before its workers: waiting is for a busy host only
_clients: dict[tuple[int, str, int], Any] = {}  # one client per process and store (a forked child opens its own)


def agent_store_address(environ: Mapping[str, str]) -> tuple[str, int] | None:
    """(host, port) of torchrun's agent store, when this worker was told of one."""
    if environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() != "true":
        return None
    host, port = environ.get("MASTER_ADDR", ""), environ.get("MASTER_PORT", "")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def agent_store(environ: Mapping[str, str] | None = None) -> Any | None:
    """A client of torchrun's agent store, or None outside torchrun (or without torch)."""
    address = agent_store_address(os.environ if environ is None else environ)
    if address is None:
        return None
    key = (os.getpid(), *address)
    if key not in _clients:
        try:
            from torch.distributed import TCPStore
        except ImportError:
            return None
        try:
            _clients[key] = TCPStore(address[0], address[1], is_master=False, wait_for_workers=False,
                                     timeout=timedelta(seconds=CONNECT_TIMEOUT_S))
        except Exception as exc:  # RuntimeError/DistStoreError: the agent is gone or unreachable
            raise YProvError(f"torchrun's agent store at {address[0]}:{address[1]} does not answer ({exc}): "
                             "the workers cannot agree on a run id through it. Pass start_run(..., run_id=...) "
                             "on every worker, or set YPROV4ML_RUN_ID") from exc
    return _clients[key]


def agreed_value(store: Any, key: str, proposal: str) -> str:
    """The value every worker gets for ``key``: the first proposal to reach the store (later ones lose)."""
    value = store.compare_set(key, "", proposal)
    return value.decode() if isinstance(value, bytes) else str(value)
