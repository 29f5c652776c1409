"""Check a GGUF file's structure before llama.cpp sees it.

llama.cpp trusts the file it is given: a truncated download or a file that is not a model can
make it read past the end of its memory map and crash the whole process. This module walks the
header, the metadata and the tensor table (never the weights) and checks that every tensor's
data lies inside the file, so a bad file gets a :class:`ModelLoadError` naming it instead.

The ``gguf`` package's ``GGUFReader`` parses every metadata value into Python objects, which
takes seconds for a tokenizer of 50,000 entries; this walk skips values it does not need and
takes milliseconds. It uses the package's constants for value types and quantization sizes.
"""

from __future__ import annotations

import mmap
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from langchain_stream.errors import ModelLoadError

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
# Far above any real model, low enough that garbage counts fail fast.
_MAX_ENTRIES = 1 << 20
_MAX_DIMS = 8

# Sizes of the fixed-width metadata value types, by GGUFValueType number.
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY, _UINT32 = 8, 9, 4
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")


@dataclass(frozen=True)
class GGUFInfo:
    """What the check learned about a well-formed GGUF file."""

    path: Path
    version: int
    tensors: int
    quantization: str
    """llama.cpp's file type (``MOSTLY_Q4_1``), or the most common tensor type (``Q4_1``)."""
    architecture: str | None


class _Reader:
    """Reads little-endian values from a memory map, tracking its position."""

    def __init__(self, data: mmap.mmap | bytes) -> None:
        self.data = data
        self.size = len(data)
        self.pos = 0

    def read(self, n: int) -> bytes:
        if self.pos + n > self.size:
            raise EOFError("header")
        start, self.pos = self.pos, self.pos + n
        return self.data[start : self.pos]

    def u32(self) -> int:
        return _U32.unpack(self.read(4))[0]

    def u64(self) -> int:
        return _U64.unpack(self.read(8))[0]

    def skip(self, n: int) -> None:
        if self.pos + n > self.size:
            raise EOFError("header")
        self.pos += n

    def string(self) -> bytes:
        return self.read(self.u64())

    def skip_string(self) -> None:
        self.skip(self.u64())

    def count(self) -> int:
        n = self.u64()
        if n > _MAX_ENTRIES:
            raise ValueError(f"implausible entry count {n}")
        return n


def check_gguf_file(path: Path) -> GGUFInfo:
    """Validate ``path`` as a complete GGUF model file and describe it.

    Raises:
        ModelLoadError: the file is missing, a directory, unreadable, not GGUF, of an
            unsupported GGUF version, or truncated or corrupt in its header or tensor table.
    """
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}", path=str(path))
    if path.is_dir():
        raise ModelLoadError(f"model path is a directory, not a GGUF file: {path}", path=str(path))
    fix = "download the model again or set STREAM_LOCAL_MODEL to a complete GGUF file"
    try:
        with path.open("rb") as handle:
            if path.stat().st_size < len(GGUF_MAGIC):
                raise ModelLoadError(f"not a GGUF model file (empty): {path}", path=str(path))
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _walk(path, _Reader(data))
    except ModelLoadError:
        raise
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc}", path=str(path)) from exc
    except EOFError as exc:
        raise ModelLoadError(
            f"model file {path} is truncated (it ends inside its {exc}): {fix}", path=str(path)
        ) from exc
    except (ValueError, struct.error) as exc:
        raise ModelLoadError(
            f"model file {path} is corrupt ({exc}): {fix}", path=str(path)
        ) from exc


def _walk(path: Path, reader: _Reader) -> GGUFInfo:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

    magic = reader.read(4)
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"not a GGUF model file (bad magic {magic!r}): {path}", path=str(path))
    version = reader.u32()
    if version not in SUPPORTED_VERSIONS:
        raise ModelLoadError(
            f"unsupported GGUF version {version} in {path} (llama.cpp reads versions 2 and 3)",
            path=str(path),
        )
    n_tensors, n_kv = reader.count(), reader.count()
    alignment, file_type, architecture = DEFAULT_ALIGNMENT, None, None
    for _ in range(n_kv):
        key = reader.string()
        value_type = reader.u32()
        if key == b"general.alignment" and value_type == _UINT32:
            alignment = reader.u32()
        elif key == b"general.file_type" and value_type == _UINT32:
            file_type = reader.u32()
        elif key == b"general.architecture" and value_type == _STRING:
            architecture = reader.string().decode("utf-8", "replace")
        else:
            _skip_value(reader, value_type)
    if alignment == 0 or alignment & (alignment - 1):
        raise ValueError(f"alignment {alignment} is not a power of two")
    tensors: list[tuple[int, int, int]] = []  # (type, elements, offset)
    for _ in range(n_tensors):
        reader.skip_string()
        n_dims = reader.u32()
        if n_dims > _MAX_DIMS:
            raise ValueError(f"a tensor with {n_dims} dimensions")
        elements = 1
        for _ in range(n_dims):
            elements *= reader.u64()
        tensor_type, offset = reader.u32(), reader.u64()
        tensors.append((tensor_type, elements, offset))
    data_start = -(-reader.pos // alignment) * alignment
    type_counts: Counter[str] = Counter()
    for tensor_type, elements, offset in tensors:
        try:
            kind = GGMLQuantizationType(tensor_type)
            block, block_bytes = GGML_QUANT_SIZES[kind]
        except (ValueError, KeyError) as exc:
            raise ValueError(f"unknown tensor type {tensor_type}") from exc
        type_counts[kind.name] += 1
        end = data_start + offset + elements // block * block_bytes
        if end > reader.size:
            raise EOFError("tensor data")
    if file_type is not None:
        try:
            quantization = LlamaFileType(file_type).name
        except ValueError:
            quantization = f"file_type_{file_type}"
    else:
        quantization = type_counts.most_common(1)[0][0] if type_counts else "none"
    return GGUFInfo(
        path=path,
        version=version,
        tensors=n_tensors,
        quantization=quantization,
        architecture=architecture,
    )


def _skip_value(reader: _Reader, value_type: int) -> None:
    if value_type in _SCALAR_SIZES:
        reader.skip(_SCALAR_SIZES[value_type])
    elif value_type == _STRING:
        reader.skip_string()
    elif value_type == _ARRAY:
        item_type, n = reader.u32(), reader.u64()
        if item_type in _SCALAR_SIZES:
            reader.skip(_SCALAR_SIZES[item_type] * n)
        elif item_type == _STRING:
            if n > reader.size:
                raise EOFError("header")
            for _ in range(n):
                reader.skip_string()
        else:
            raise ValueError(f"unsupported array item type {item_type}")
    else:
        raise ValueError(f"unknown metadata value type {value_type}")
