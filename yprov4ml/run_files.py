"""The directives of a run that record things other than metrics: parameters, artifacts, models, datasets."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from .capture.secrets import Redactions, redact_text
from .context import Context, as_context
from .errors import ArtifactError, ParamConflictError
from .record import DatasetInfo, FileEntity, ModelVersion, Param
from .storage.background_files import COPY_ON_THE_SPOT_BYTES
from .storage.files import atomic_write_text, inside, tree_size_and_sha256
from .storage.names import safe_name
from .values import as_metric_value, as_step, as_time, checked_attrs, object_and_name, param_value, same_value

_now = time.time
MAX_COPIED_ENTRIES = 100_000  # files and folders of one directory artifact copied into the run directory


def _checked_param(key: Any, value: Any) -> Any:
    """The recorded form of a parameter value, or ParamConflictError naming what is wrong."""
    if not isinstance(key, str) or not key:
        raise ParamConflictError(f"parameter key {key!r} must be a non-empty string")
    try:
        return param_value(value)
    except Exception as exc:  # a value whose __str__ / item() raises: say so, not the user's traceback
        raise ParamConflictError(
            f"parameter {key!r}: its value ({type(value).__name__}) cannot be turned into text or a number "
            f"({type(exc).__name__}: {exc}); log a plain value such as str(...) of what matters"
        ) from None


def _size_now(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def _stamp(path: Path) -> tuple[int, int] | None:
    """(size, modification time) of a file: a change between logging and copying shows in it."""
    try:
        found = path.stat()
    except OSError:
        return None
    return (found.st_size, found.st_mtime_ns) if path.is_file() else (0, found.st_mtime_ns)


def _copy(source: Path, target: Path) -> None:
    """Copy a file or folder to ``target`` through a placeholder renamed once whole."""
    placeholder = target.with_name(f".{target.name}.partial")
    if source.is_dir():
        if placeholder.exists():
            shutil.rmtree(placeholder)
        # Links are copied as links: a link loop (d/a -> .) cannot make the copy endless.
        shutil.copytree(source, placeholder, symlinks=True)
    else:
        shutil.copyfile(source, placeholder)
        shutil.copymode(source, placeholder)  # a 0600 key stays 0600 (copytree keeps modes too)
    placeholder.replace(target)


def _check_copy_size(tree: Path) -> None:
    """Refuse, before copying anything, a directory of more than ``MAX_COPIED_ENTRIES`` entries."""
    entries = 0
    for _, dirs, files in os.walk(tree):  # links are not followed, as in the copy itself
        entries += len(dirs) + len(files)
        if entries > MAX_COPIED_ENTRIES:
            raise ArtifactError(
                f"artifact {tree} holds more than {MAX_COPIED_ENTRIES} files and folders; nothing was copied. "
                "Log it with copy=False (recorded by reference and hash) or log the files that matter."
            )


class FileDirectives:
    """log_param, log_artifact, save_model_version, log_model, log_dataset; mixed into ``Run``."""

    def log_context(self, context: Context | str, is_subcontext_of: Context | str | None = None,
                    source_of_data: str | None = None) -> None:
        """Declare a context, as part of another one (upstream's nested contexts) and with where its data
        comes from; its activity is informed by its parent's activity instead of the run's."""
        declared = as_context(context)
        name = declared.name
        parent = as_context(is_subcontext_of).name if is_subcontext_of is not None else None
        if source_of_data is not None and not isinstance(source_of_data, str):
            raise ValueError(f"context {name!r}: source_of_data {source_of_data!r} must be a string")
        self._check_open("log_context")  # a forked child stops here, before any lock a parent's thread may hold
        with self._lock:
            self._check_open("log_context")
            when = _now()
            self.record.nest_context(name, parent, source_of_data, when)
            self.journal.write("context", context=name, parent=parent, source=source_of_data, time=when)
        Context.declare(declared)

    def log_param(self, key: str, value: Any, context: Context | str | None = None, source: str | None = None,
                  is_input: bool = False) -> None:
        """Record a parameter. A key is logged once; the same value again is accepted. With ``context``, the
        parameter is used by that context's activity; ``source`` and ``is_input`` are recorded with it."""
        if source is not None and not isinstance(source, str):
            raise ParamConflictError(f"parameter {key!r}: source {source!r} must be a string (where it came from)")
        self._record_params({key: _checked_param(key, value)},
                            as_context(context).name if context is not None else None, source, bool(is_input))

    def log_params(self, params: dict[str, Any]) -> None:
        """Record several parameters; all are checked before any is recorded."""
        if not isinstance(params, dict):
            raise ParamConflictError(f"log_params takes a dict of name → value, got {type(params).__name__}")
        self._record_params({key: _checked_param(key, value) for key, value in params.items()})

    def _record_params(self, checked: dict[str, Any], context: str | None = None, source: str | None = None,
                       is_input: bool = False) -> None:
        hidden: dict[str, list[str]] = {}
        for key, value in checked.items():  # before anything is journaled: secrets never reach the disk
            redactions = Redactions(self.options.keep_in_clear)
            checked[key] = redactions.value(f"param {key}", key, value)
            hidden[key] = redactions.items
        self._check_open("log_param")
        with self._lock:
            self._check_open("log_param")
            for key, value in checked.items():
                old = self.record.params.get(key)
                if old is not None and not same_value(old.value, value):
                    several = " none of these parameters were recorded." if len(checked) > 1 else ""
                    raise ParamConflictError(
                        f"parameter {key!r} was already logged as {old.value!r}; a parameter is logged once per "
                        f"run, so {value!r} was not recorded.{several} Log it under another key, or as a metric "
                        "if it changes."
                    )
            for key, value in checked.items():
                if key in self.record.params:
                    continue
                param = Param(key, value, _now(), hidden[key], context, source, is_input)
                self.journal.write("param", key=key, value=value, time=param.time, value_type=type(value).__name__,
                                   redacted=param.redacted, context=context, source=source, is_input=is_input)
                self.record.params[key] = param
                if context is not None:
                    self.record.touch_context(context, param.time)

    def log_artifact(self, artifact_path: str | os.PathLike, context: Context | str | None = None,
                     step: int | None = None, timestamp: float | None = None, *, name: str | None = None,
                     is_input: bool = False, copy: bool = True, attributes: dict[str, Any] | None = None,
                     file_name: str | None = None) -> FileEntity:
        """Record a file or directory: copied under ``artifacts/`` (or referenced with ``copy=False``) as
        ``file_name`` (default: its name); ``attributes`` go on its entity."""
        self._check_open("log_artifact")
        source = Path(artifact_path)
        if not source.exists():
            raise ArtifactError(f"artifact {os.fspath(artifact_path)!r} does not exist: write it before logging it "
                                "(upstream's order, name then path, is understood when the path exists)")
        when = _now() if timestamp is None else as_time(timestamp)
        ctx = as_context(context).name if context is not None else None
        name = name if name is not None else source.name
        if not isinstance(name, str) or not name or "\0" in name:
            raise ArtifactError(f"artifact name {name!r} must be non-empty text without NUL characters")
        name = redact_text(name)[0]  # before it becomes a path: a secret in a name never reaches the disk
        if copy and source.is_dir():
            _check_copy_size(source)
        item = FileEntity(name=name, path="", size=0, sha256=None, time=when, context=ctx,
                          step=None if step is None else as_step(step, name), is_input=is_input,
                          original_path=redact_text(str(source.resolve()))[0], attributes=dict(attributes or {}))
        if not copy:
            target = source.resolve()
            item.path, item.size = str(target), _size_now(target)
            self._add_file("artifact", item, self.record.artifacts)
            self._in_background(item, target, None)
            return item
        with self._lock:
            target = self._free_path(inside(self.run_dir / "artifacts" / f"rank{self.rank}",
                                            redact_text(file_name)[0] if file_name else name))
            target.parent.mkdir(parents=True, exist_ok=True)
            item.path, item.size = target.relative_to(self.run_dir).as_posix(), _size_now(source)
            if source.is_file() and item.size <= COPY_ON_THE_SPOT_BYTES:
                _copy(source, target)  # small: copied now, as it is now; hashed in the background
                copy_from = None
            else:
                self._reserved.add(target)  # large, or a folder: copied in the background
                copy_from = source
            self._add_file("artifact", item, self.record.artifacts)
        self._in_background(item, target, copy_from)
        return item

    def _in_background(self, item: FileEntity, target: Path, copy_from: Path | None) -> None:
        """Copy ``copy_from`` to ``target`` (if given) and hash ``target``, off the training thread; the
        digest goes into the record and the journal (``file_hashed``) once known."""
        before = _stamp(copy_from or target)
        kind = "model" if isinstance(item, ModelVersion) else "artifact"

        def job() -> None:
            if copy_from is not None:
                _copy(copy_from, target)
                self._reserved.discard(target)
            if _stamp(copy_from or target) != before:  # rewritten in place since it was logged
                item.attributes["changed_after_logging"] = True
            item.size, item.sha256 = tree_size_and_sha256(target)
            self.journal.write("file_hashed", kind=kind, path=item.path, size=item.size, sha256=item.sha256,
                               changed_after_logging=item.attributes.get("changed_after_logging", False))

        self._files.submit(f"{kind} {item.name}", job)

    def _free_path(self, target: Path) -> Path:
        """``target``, or ``stem-2.ext``, ``stem-3.ext``... when a file of that name was logged already."""
        candidate, n = target, 1
        while candidate.exists() or candidate.is_symlink() or candidate in self._reserved:
            n += 1
            candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
        return candidate

    def _add_file(self, kind: str, item: FileEntity, into: list) -> None:
        self._check_open(f"log_{kind}")
        with self._lock:
            self._check_open(f"log_{kind}")
            if item.context:
                self.record.touch_context(item.context, item.time)
            self.journal.write(kind, **item.__dict__)
            into.append(item)

    def save_model_version(self, model: Any, model_name: str | None = None,
                           context: Context | str | None = None, step: int | None = None,
                           timestamp: float | None = None, *, final: bool = False, source: str | None = None,
                           incremental: bool = True, is_input: bool = False, log_copy_in_prov_directory: bool = True,
                           other_attrs: dict[str, Any] | None = None, log_model_info: bool = True,
                           log_model_layers: bool = False, mlflow_format: bool | None = None) -> ModelVersion:
        """Save a checkpoint of ``model``; versions of one name form a derivation chain.

        ``incremental=False`` keeps one file per name (each save replaces it, and its record);
        ``log_copy_in_prov_directory=False`` records a checkpoint file where it is, by reference and hash
        (a model object is always saved into the run directory: there is nothing else to refer to);
        ``is_input`` records a model the run used (a pretrained one) rather than produced;
        ``mlflow_format`` also writes a torch module in MLflow's pytorch flavour (``<name>.v<k>.mlflow/``), which
        the MLflow export and mirror log as the loadable logged model: by default while the run mirrors to MLflow.
        """
        from .capture.models import checkpoint_suffix, describe_model, is_keras_model, save_model

        self._check_open("save_model_version")
        model, model_name = object_and_name(model, model_name, "save_model_version",
                                            "model=..., model_name=...")  # either order
        model_name = model_name or type(model).__name__
        ctx = as_context(context).name if context is not None else None
        attributes = describe_model(model, detailed=bool(log_model_info))
        if source is not None:
            attributes["source"] = str(source)
        attributes.update(checked_attrs(other_attrs))
        by_reference = not log_copy_in_prov_directory and isinstance(model, (str, os.PathLike))
        with self._lock:
            if not incremental:  # upstream's one file per name: the earlier save of it is replaced
                self.record.models = [m for m in self.record.models
                                      if not (m.model_name == model_name and m.attributes.get("incremental") is False)]
                attributes["incremental"] = False
            version = 1 + sum(1 for m in self.record.models if m.model_name == model_name)
            if by_reference:
                target = Path(model).resolve()
                if not target.is_file():
                    raise ArtifactError(f"model checkpoint {target} does not exist: save it first")
                relpath = redact_text(str(target))[0]
            else:
                suffix = checkpoint_suffix(model)
                stem = safe_name(model_name) if not incremental else f"{safe_name(model_name)}.v{version}"
                relpath = f"models/rank{self.rank}/{stem}{suffix}"
                target = self.run_dir / relpath
                target.parent.mkdir(parents=True, exist_ok=True)
                save_model(model, target)
                if self._wants_mlflow_format(mlflow_format, model):
                    attributes["mlflow_model"] = self._save_mlflow_format(model, target, relpath)
            item = ModelVersion(
                name=f"{model_name} v{version}", path=relpath, size=target.stat().st_size,
                sha256=None, time=_now() if timestamp is None else as_time(timestamp),
                context=ctx, step=None if step is None else as_step(step, model_name), is_input=bool(is_input),
                attributes=attributes, model_name=model_name, version=version, final=final,
            )
            if log_model_layers:
                item.attributes["layers_description"] = self._layers_file(model, model_name, ctx, item.time)
            if is_keras_model(model):
                item.attributes["checkpoint_format"] = "keras"
            self._add_file("model", item, self.record.models)
        self._in_background(item, target, None)  # the training loop does not wait for the digest
        return item

    def _wants_mlflow_format(self, asked: bool | None, model: Any) -> bool:
        """Whether this save also writes MLflow's pytorch flavour: as asked, else while the run mirrors."""
        from .capture.models import is_torch_module

        if asked is None:
            return self._mirror is not None and is_torch_module(model)
        if asked and not is_torch_module(model):
            raise ArtifactError(f"mlflow_format=True writes MLflow's pytorch flavour of a torch.nn.Module, not of "
                                f"a {type(model).__name__}: leave mlflow_format out for other models")
        return bool(asked)

    def _save_mlflow_format(self, model: Any, target: Path, relpath: str) -> str:
        """The flavour's folder beside the checkpoint; its place in the run directory."""
        from .integrations.mlflow_model_format import save_pytorch_flavour

        save_pytorch_flavour(model, target.with_suffix(".mlflow"))
        return str(Path(relpath).with_suffix(".mlflow").as_posix())

    def _layers_file(self, model: Any, model_name: str, context: str | None, when: float) -> str:
        """Write the per-layer description of ``model`` as a JSON artifact; its path in the run directory."""
        from .capture.models import layers_description

        layers = layers_description(model)
        target = self._free_path(self.run_dir / "artifacts" / f"rank{self.rank}" /
                                 f"{safe_name(model_name)}_layers_description.json")
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, json.dumps({"model": model_name, "layers": layers}, indent=1))
        return self.record_written_artifact(target, f"{model_name} layers", context, when,
                                            {"describes_model": model_name, "layer_count": len(layers)}).path

    def record_written_artifact(self, target: Path, name: str, context: str | None, when: float,
                                attributes: dict[str, Any]) -> FileEntity:
        """Record a file or folder the run wrote into its own directory (no copy): size, sha256, attributes."""
        size, digest = tree_size_and_sha256(target)
        item = FileEntity(name=name, path=target.relative_to(self.run_dir).as_posix(), size=size, sha256=digest,
                          time=when, context=context, attributes=attributes)
        self._add_file("artifact", item, self.record.artifacts)
        return item

    def artifact_dir(self) -> Path:
        """``artifacts/rank<N>`` of the run directory: where this rank's artifacts go."""
        return self.run_dir / "artifacts" / f"rank{self.rank}"

    def log_proof_of_learning_step(self, model_label: str, model: Any, loss: float, batch: int,
                                   step: int | None = None, context: Context | str | None = None) -> ModelVersion:
        """Snapshot ``model``'s trainable weights at training batch ``batch``: a model version ``<label>_pol``
        derived from the previous snapshot, with the loss and the sha256 of the weights; the loss is also
        metric ``<label>_pol_loss`` at step ``batch``. ``yprov4ml pol`` checks the trajectory later."""
        from .capture.proof_of_learning import save_snapshot, weight_arrays, weights_digest

        self._check_open("log_proof_of_learning_step")
        if not isinstance(model_label, str) or not model_label:
            raise ArtifactError(f"proof of learning: model label {model_label!r} must be a non-empty string")
        loss_value = as_metric_value(loss, f"{model_label}_pol_loss")
        batch = as_step(batch, model_label)
        arrays = weight_arrays(model)
        digest = weights_digest(arrays)
        name = f"{model_label}_pol"
        ctx = as_context(context).name if context is not None else None
        with self._lock:
            version = 1 + sum(1 for m in self.record.models if m.model_name == name)
            relpath = f"models/rank{self.rank}/{safe_name(name)}.v{version}.npz"
            target = self.run_dir / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            save_snapshot(arrays, target)
            item = ModelVersion(
                name=f"{name} v{version}", path=relpath, size=target.stat().st_size, sha256=None,
                time=_now(), context=ctx, step=None if step is None else as_step(step, name), model_name=name,
                version=version, attributes={"role": "proof-of-learning snapshot", "pol_batch": batch,
                                             "pol_loss": loss_value, "weights_sha256": digest,
                                             "checkpoint_format": "npz", "tensors": len(arrays)})
            self._add_file("model", item, self.record.models)
        self._in_background(item, target, None)
        self.log_metric(f"{name}_loss", loss_value, context, batch)
        return item

    def log_model(self, model: Any, model_label: str | None = None, context: Context | str | None = None,
                  step: int | None = None, **options: Any) -> ModelVersion:
        """Save the final model (either argument order is accepted); ``options`` as for save_model_version."""
        model, model_label = object_and_name(model, model_label, "log_model", "model=..., model_label=...")
        return self.save_model_version(model, model_label, context, step, final=True, **options)

    def log_dataset(self, dataset: Any, label: str | None = None, context: Context | str | None = None, *,
                    source: str | None = None, log_dataset_info: bool = True,
                    other_attrs: dict[str, Any] | None = None) -> DatasetInfo:
        """Record a dataset, a data loader or a data file: samples, batches, shapes, transform, sha256 of the data.

        ``log_dataset_info=False`` leaves out the description (samples, batches, ...), keeping the
        fingerprint; ``source`` and ``other_attrs`` are recorded with it.
        """
        from .capture.datasets import describe_dataset, fingerprint

        dataset, label = object_and_name(dataset, label, "log_dataset", "dataset_or_loader=..., label=...")
        self._check_open("log_dataset")
        label = label or type(dataset).__name__
        if isinstance(dataset, (str, os.PathLike)) and Path(dataset).exists():  # a data file or directory
            attributes = {"path": redact_text(str(Path(dataset).resolve()))[0]}
        else:
            attributes = describe_dataset(dataset) if log_dataset_info else {"dataset_class": type(dataset).__qualname__}
        attributes.update(fingerprint(dataset))
        if source is not None:
            attributes["source"] = str(source)
        attributes.update(checked_attrs(other_attrs))
        wrappers = sys.modules.get("yprov4ml.integrations.indexed_dataset")  # loaded once a wrapper exists
        if wrappers is not None:
            lineage = wrappers.name_wrapped(dataset, label, context)
            if lineage is not None:
                attributes["sample_indices"] = lineage  # the series of which samples each step consumed
        info = DatasetInfo(label=label, time=_now(), context=as_context(context).name if context else None,
                           attributes=attributes)
        with self._lock:
            self._check_open("log_dataset")
            if info.context:
                self.record.touch_context(info.context, info.time)
            self.journal.write("dataset", **info.__dict__)
            self.record.datasets.append(info)
        return info
