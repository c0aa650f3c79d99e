"""Random-number generators of a run: which were seeded, which were used, and their states at start_run.

The states (Python ``random``, numpy's global generator, torch's CPU and CUDA
generators) are written to the run's journal at start_run, so that a reproduction can
start from exactly the same states (``restore_states``). Seeding is seen by
wrapping the seed functions while a run is active, and for torch also by its
initial seed (torch's generator starts from a fixed default). A generator
whose state changed during the run was used; used and never seeded, it makes
the run's randomness depend on what ran before, and the record says so.

The wrappers go on when yprov4ml is imported (for the generators loaded by
then) and again at each start_run; they only note the call and pass it on.
A numpy seed set before both is not seen (the record then says "unseeded").
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from typing import Any, Callable

TORCH_DEFAULT_SEED = 67280421310721  # torch's CPU generator before any manual_seed
MAX_STATE_BYTES = 1 << 22  # recorded states larger than this are not ours

_seeded: set[str] = set()


def _mark(name: str, original: Callable) -> Callable:
    def seed(*args: Any, **kwargs: Any) -> Any:
        _seeded.add(name)
        return original(*args, **kwargs)

    seed.__wrapped__ = original  # type: ignore[attr-defined]
    seed.__doc__ = original.__doc__
    return seed


def watch_seeding() -> None:
    """Wrap the seed functions of the generators loaded now (idempotent)."""
    targets = [("python", random, "seed")]
    numpy = sys.modules.get("numpy")
    if numpy is not None and hasattr(numpy, "random"):
        targets.append(("numpy", numpy.random, "seed"))
    torch = sys.modules.get("torch")
    if torch is not None:
        targets.append(("torch", torch, "manual_seed"))
    for name, module, attr in targets:
        current = getattr(module, attr, None)
        if current is None or getattr(current, "__wrapped__", None) is not None:
            continue
        setattr(module, attr, _mark(name, current))


def seeded() -> set[str]:
    """The generators seeded while a run watched, plus torch when its initial seed is not the default."""
    found = set(_seeded)
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.initial_seed() != TORCH_DEFAULT_SEED:
                found.add("torch")
        except Exception:  # an odd torch build: no claim either way
            pass
    return found


def states() -> dict[str, Any]:
    """The generators' states now, as JSON-ready values."""
    out: dict[str, Any] = {"python": _python_state(random.getstate())}
    numpy = sys.modules.get("numpy")
    if numpy is not None and hasattr(numpy, "random"):
        kind, keys, pos, has_gauss, gauss = numpy.random.get_state()
        out["numpy"] = [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(gauss)]
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.get_rng_state().tolist()
        try:
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                out["torch_cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
        except Exception:  # a broken driver: the CPU states still count
            pass
    return out


def _python_state(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def digests(found: dict[str, Any]) -> dict[str, str]:
    """sha256 of each generator's state: equal digests, equal states."""
    return {name: hashlib.sha256(json.dumps(value).encode()).hexdigest() for name, value in found.items()}


def restore_states(found: Any, where: str) -> list[str]:
    """Set the generators to the states ``found`` (recorded by a run, read from ``where``); the names restored."""
    if not isinstance(found, dict):
        raise ValueError(f"{where}: not yprov4ml RNG states (a JSON object of generator states)")
    restored = []
    if isinstance(found.get("python"), list) and len(found["python"]) == 3:
        version, internal, gauss = found["python"]
        random.setstate((version, tuple(internal), gauss))
        restored.append("python")
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(found.get("numpy"), list) and len(found["numpy"]) == 5:
        kind, keys, pos, has_gauss, gauss = found["numpy"]
        numpy.random.set_state((kind, numpy.array(keys, dtype=numpy.uint32), pos, has_gauss, gauss))
        restored.append("numpy")
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(found.get("torch"), list):
        torch.set_rng_state(torch.tensor(found["torch"], dtype=torch.uint8))
        restored.append("torch")
        cuda = found.get("torch_cuda")
        if isinstance(cuda, list) and cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([torch.tensor(state, dtype=torch.uint8) for state in cuda])
            restored.append("torch_cuda")
    return restored


watch_seeding()
