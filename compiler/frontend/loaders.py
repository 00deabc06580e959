"""Load model files into a torch.export ExportedProgram.

  .pt2        torch.export.save archive (a zip) -> torch.export.load
  .pt / .pth  TorchScript archive (a zip with code/ or constants.pkl) -> torch.jit.load,
              then torch.export with the given example inputs.
              A plain torch.save pickle is refused: loading it means unpickling, which
              can run arbitrary code. With trust=True it is loaded with
              torch.load(weights_only=False) and must be an nn.Module.

Every failure is a ModelLoadError naming the path.
"""

from __future__ import annotations

import os
import zipfile

import torch
from torch.export import ExportedProgram

from bnnc.errors import ModelLoadError, TracingError, UnsupportedError

__all__ = ["load_model_file"]


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise ModelLoadError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ModelLoadError(f"{path}: is a directory, not a model file")
    if os.path.getsize(path) == 0:
        raise ModelLoadError(f"{path}: the file is empty")


def _zip_names(path: str, what: str) -> list[str] | None:
    """The member names of a valid zip, None if the file is not a zip at all."""
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise ModelLoadError(f"{path}: the {what} archive is corrupt (member {bad} fails its CRC check)")
            return zf.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ModelLoadError(f"{path}: the {what} archive is truncated or corrupt ({exc})") from exc


def _looks_truncated_zip(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _export(model: torch.nn.Module, example_inputs: tuple | None, path: str) -> ExportedProgram:
    if example_inputs is None:
        raise ModelLoadError(
            f"{path}: a TorchScript or pickled model carries no input shapes; give example inputs "
            "(--input-shape on the command line, example_inputs= in the API)"
        )
    from .torch_import import export_module

    try:
        return export_module(model, tuple(example_inputs))
    except UnsupportedError as exc:  # torch.export could not trace it with these inputs
        raise TracingError(f"{path}: {exc}") from exc


def _export_script(model: torch.jit.ScriptModule, example_inputs: tuple | None, path: str) -> ExportedProgram:
    """torch.export refuses ScriptModules; torch's TorchScript converter turns them into an ExportedProgram."""
    if example_inputs is None:
        _export(model, None, path)  # raises the "give example inputs" error
    try:
        from torch._export.converter import TS2EPConverter

        converted = TS2EPConverter(model.eval(), tuple(example_inputs)).convert()
        # the converter exports with automatic dynamic shapes; bnnc compiles one static shape
        return torch.export.export(converted.module(), tuple(example_inputs), strict=False)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TracingError(f"{path}: torch cannot convert this TorchScript module to an ExportedProgram: {first}") from exc


def load_model_file(path: str, *, trust: bool = False, example_inputs: tuple | None = None) -> ExportedProgram:
    """Load a .pt2 (torch.export) or .pt/.pth (TorchScript, or with trust=True a pickled nn.Module)."""
    path = os.fspath(path)
    _check_file(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".pt2":
        names = _zip_names(path, "torch.export")
        if names is None:
            if _looks_truncated_zip(path):
                raise ModelLoadError(f"{path}: the .pt2 archive is truncated or corrupt")
            raise ModelLoadError(f"{path}: not a torch.export archive (.pt2 files are zip archives made by torch.export.save)")
        try:
            ep = torch.export.load(path)
        except Exception as exc:
            raise ModelLoadError(f"{path}: not a valid torch.export archive: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from exc
        if not isinstance(ep, ExportedProgram):
            raise ModelLoadError(f"{path}: the archive does not hold an ExportedProgram")
        return ep
    if ext in (".pt", ".pth"):
        names = _zip_names(path, "TorchScript")
        is_script = names is not None and any(
            "/code/" in n or n.startswith("code/") or n.endswith("constants.pkl") for n in names
        )
        if is_script:
            try:
                model = torch.jit.load(path, map_location="cpu")
            except Exception as exc:
                raise ModelLoadError(f"{path}: not a loadable TorchScript archive: {exc}") from exc
            return _export_script(model, example_inputs, path)
        if names is None and _looks_truncated_zip(path):
            raise ModelLoadError(f"{path}: the archive is truncated or corrupt")
        if not trust:
            raise ModelLoadError(
                f"{path}: not a TorchScript archive; it looks like a torch.save pickle, and loading it would "
                "unpickle it, which can run arbitrary code\n"
                "  hint: save the model with torch.jit.script(model).save(path) or torch.export.save, "
                "or pass trust=True (--trust) if you trust the file's origin"
            )
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise ModelLoadError(f"{path}: cannot be loaded with torch.load: {exc}") from exc
        if not isinstance(obj, torch.nn.Module):
            raise ModelLoadError(
                f"{path}: holds a {type(obj).__name__}, not an nn.Module (a state_dict needs the model's "
                "Python class; build the model, load_state_dict, and compile the module)"
            )
        return _export(obj, example_inputs, path)
    raise ModelLoadError(f"{path}: unknown model file type `{ext or '(none)'}`; expected .pt2, .pt or .pth (PyTorch), .onnx, .tflite or .mlir")
