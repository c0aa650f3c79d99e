"""Contexts: the phases of a run (training, validation, ...) that metrics belong to."""

from __future__ import annotations

import re
import threading
from typing import ClassVar

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+\Z")


class Context:
    """A named phase of a run. Instances are interned: ``Context("x") is Context("x")``.

    ``Context.TRAINING``, ``Context.VALIDATION`` and ``Context.EVALUATION`` are
    predefined; any other name creates a user-defined context.
    """

    __slots__ = ("name",)
    _registry: ClassVar[dict[str, "Context"]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    TRAINING: ClassVar["Context"]
    VALIDATION: ClassVar["Context"]
    EVALUATION: ClassVar["Context"]
    TESTING: ClassVar["Context"]
    MODELS: ClassVar["Context"]

    def __new__(cls, name: str) -> "Context":
        existing = cls._registry.get(name)
        if existing is not None:
            return existing
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"invalid context name {name!r}: use letters, digits, '_', '.' or '-' "
                "(e.g. Context('finetune'))"
            )
        with cls._lock:
            ctx = cls._registry.get(name)
            if ctx is None:
                ctx = object.__new__(cls)
                object.__setattr__(ctx, "name", name)
                cls._registry[name] = ctx
            return ctx

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("Context is immutable")

    def __repr__(self) -> str:
        return f"Context({self.name!r})"

    def __str__(self) -> str:
        return self.name

    def __reduce__(self) -> tuple:
        return (Context, (self.name,))

    @classmethod
    def declare(cls, context: "Context") -> None:
        """Make a declared context reachable as ``Context.<NAME IN CAPITALS>``, as upstream's
        ``create_context("TRAINING_LOD2", ...)`` followed by ``Context.TRAINING_LOD2`` expects (a name
        that is taken, or no identifier, is left alone)."""
        attribute = context.name.upper()
        if attribute.isidentifier() and not hasattr(cls, attribute):
            setattr(cls, attribute, context)


Context.TRAINING = Context("training")
Context.VALIDATION = Context("validation")
Context.EVALUATION = Context("evaluation")
# Upstream 3.x calls the evaluation phase TESTING; both names are one context.
Context.TESTING = Context.EVALUATION
# Upstream's earlier generations log their models in a context of their own.
Context.MODELS = Context("models")


# The built-in contexts, whatever the case: upstream's own Lightning logger writes "Training", "Validation"
# and "Test", its examples "TRAINING". A user's own context keeps the case it was given (unless all capitals,
# the form of an Enum member's name).
BUILT_IN = {"training": Context.TRAINING, "train": Context.TRAINING, "validation": Context.VALIDATION,
            "val": Context.VALIDATION, "evaluation": Context.EVALUATION, "testing": Context.EVALUATION,
            "test": Context.EVALUATION, "models": Context.MODELS}


def as_context(value: "Context | str | object | None") -> Context:
    """Normalise what a user passed as a context: a Context, its name, an Enum, or None."""
    if value is None:
        return Context.TRAINING
    if isinstance(value, Context):
        return value
    if isinstance(value, str):
        return BUILT_IN.get(value.lower()) or Context(value.lower() if value.upper() == value else value)
    name = getattr(value, "name", None)  # an Enum member of the user's own
    if isinstance(name, str):
        return BUILT_IN.get(name.lower()) or Context(name.lower())
    raise TypeError(
        f"context must be a yprov4ml.Context or its name, got {type(value).__name__}: "
        "use Context.TRAINING, Context.VALIDATION, Context.EVALUATION or Context('name')"
    )
