"""Read an .onnx file safely: a protobuf parse (no code runs), external
initialisers read only from files inside the model's folder and only within
those files, and ONNX's structural checker.

Why not `onnx.load(path)`: it follows an external-data `location` wherever it
points (onnx's own check of it has changed between releases) and reads what
the file claims; a model is untrusted input, so bnnc resolves every location
itself and refuses a path that leaves the folder (`..`, absolute paths,
symlinks pointing out), a missing or special file, and an offset or length
past the end of the file. Every failure is one ModelLoadError line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from bnnc.errors import ModelLoadError

__all__ = ["MIN_OPSET", "load_onnx_file"]

MIN_OPSET = 13


def _tensors(graph) -> Iterator:
    """Every TensorProto of a graph: initialisers and tensor attributes
    (Constant values), in subgraphs too."""
    from onnx import AttributeProto

    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == AttributeProto.TENSORS:
                yield from attr.tensors
            elif attr.type == AttributeProto.GRAPH:
                yield from _tensors(attr.g)
            elif attr.type == AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _tensors(g)


def _inside(folder: str, location: str, path: str, tensor: str) -> str:
    """The real path of an external-data file, which must lie inside `folder`."""
    if not location or "\0" in location:
        raise ModelLoadError(f"{path}: initializer `{tensor}` has an empty or invalid external data location")
    if os.path.isabs(location) or location.startswith(("/", "\\")) or (len(location) > 1 and location[1] == ":"):
        raise ModelLoadError(
            f"{path}: initializer `{tensor}` names external data by the absolute path `{location}`; "
            "bnnc reads external data only from files inside the model's folder"
        )
    target = os.path.realpath(os.path.join(folder, location))
    if os.path.commonpath([folder, target]) != folder:
        raise ModelLoadError(
            f"{path}: initializer `{tensor}` points outside the model's folder (`{location}`); "
            "bnnc reads external data only from files inside it"
        )
    if not os.path.isfile(target):
        raise ModelLoadError(f"{path}: external data file `{location}` of initializer `{tensor}` is missing or not a regular file")
    return target


def _int_field(value: str, what: str, path: str, tensor: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise ModelLoadError(f"{path}: initializer `{tensor}` has a non-integer external data {what} `{value}`") from None
    if n < 0:
        raise ModelLoadError(f"{path}: initializer `{tensor}` has a negative external data {what} ({n})")
    return n


def _load_external(tensor, folder: str, path: str) -> None:
    """Read an external tensor's bytes into raw_data, within the file's bounds."""
    from onnx import TensorProto

    info = {e.key: e.value for e in tensor.external_data}
    name = tensor.name or "(unnamed)"
    target = _inside(folder, info.get("location", ""), path, name)
    size = os.path.getsize(target)
    offset = _int_field(info.get("offset", "0"), "offset", path, name)
    if offset > size:
        raise ModelLoadError(
            f"{path}: initializer `{name}`: external data offset {offset} is past the end of "
            f"`{info['location']}` ({size} bytes)"
        )
    length = _int_field(info["length"], "length", path, name) if "length" in info else size - offset
    if offset + length > size:
        raise ModelLoadError(
            f"{path}: initializer `{name}`: external data [{offset}, {offset + length}) runs past the end of "
            f"`{info['location']}` ({size} bytes)"
        )
    with open(target, "rb") as f:
        f.seek(offset)
        data = f.read(length)
    if len(data) != length:
        raise ModelLoadError(f"{path}: initializer `{name}`: could not read {length} bytes of external data")
    tensor.raw_data = data
    del tensor.external_data[:]
    tensor.data_location = TensorProto.DEFAULT


def load_onnx_file(path: str):
    """Parse, resolve external data safely, check. Returns an onnx.ModelProto."""
    try:
        import onnx
        from google.protobuf.message import DecodeError
    except ImportError as exc:  # pragma: no cover - onnx is a dependency
        raise ModelLoadError(f"{path}: reading .onnx files needs the `onnx` package ({exc})") from exc
    from onnx import TensorProto

    path = os.fspath(path)
    if os.path.isdir(path):
        raise ModelLoadError(f"{path}: is a directory, not a model file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not data:
        raise ModelLoadError(f"{path}: the file is empty")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelLoadError(f"{path}: not a valid ONNX file (the protobuf does not parse: {exc}); truncated or corrupt?") from None
    if not model.HasField("graph") or not model.graph.node:
        raise ModelLoadError(f"{path}: not an ONNX model (no graph, or a graph without nodes); truncated or corrupt?")
    folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    for tensor in _tensors(model.graph):
        if tensor.data_location == TensorProto.EXTERNAL:
            _load_external(tensor, folder, path)
    for fn in model.functions:
        for node in fn.node:
            for attr in node.attribute:
                if attr.HasField("t") and attr.t.data_location == TensorProto.EXTERNAL:
                    _load_external(attr.t, folder, path)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises ValidationError, and C++ errors as others
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{path}: not a valid ONNX model: {first}") from None
    return model
