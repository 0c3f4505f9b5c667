"""Load object code into this process and hand out callable kernels.

Object code (from ``TargetMachine.emit_object``) is linked in memory by LLVM's MCJIT dynamic
linker: the execution engine is created around an *empty* module and the object is added
with ``add_object_file``, so nothing is optimized or code-generated again at load time
(that is what makes loading a saved or cached model cheap).  External calls in the object
(``exp`` for LightGBM's transforms) resolve against the symbols already loaded in the process
(libm); NumPy's own loops are reached through a table (``codegen.numpy_loops``).

Kernels are called through ``ctypes.CFUNCTYPE``, which releases the GIL for the call, so
several threads can run kernels at once.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import llvmlite.binding as llvm

from codegen import numpy_loops, target

#: ctypes prototype of the tree kernels (see ``codegen.emit_trees.KERNEL_TYPE``).
KERNEL_PROTO = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                ctypes.c_void_p)


class LoadError(RuntimeError):
    """Object code could not be loaded or a symbol is missing."""


class Library:
    """Object code linked into the process; keeps the code alive while referenced."""

    def __init__(self, engine, object_code: bytes, addresses: dict):
        self._engine = engine
        self.object_code = object_code
        self.addresses = addresses

    def function(self, name: str, proto=KERNEL_PROTO):
        """A ctypes callable for symbol ``name`` (the Library must outlive it)."""
        try:
            return proto(self.addresses[name])
        except KeyError:
            raise LoadError(f"symbol {name!r} was not requested at load time; "
                            f"loaded: {sorted(self.addresses)}") from None


_ELF_MACHINES = {"x86_64": 62, "aarch64": 183, "ppc64le": 21, "s390x": 22}


def _check_object(data: bytes) -> None:
    """Refuse bytes that are not a relocatable ELF object for this machine.

    LLVM's object reader trusts its input (garbage crashes the process), so the header is
    checked here; saved artifacts additionally carry a checksum of the whole object.
    """
    import platform
    import struct

    if len(data) < 64 or data[:4] != b"\x7fELF":
        raise LoadError("could not link object code: not an ELF object file")
    if data[4] != 2 or data[5] != 1:
        raise LoadError("could not link object code: not a 64-bit little-endian ELF object")
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    (e_shoff,) = struct.unpack_from("<Q", data, 40)
    e_shentsize, e_shnum = struct.unpack_from("<HH", data, 58)
    expected = _ELF_MACHINES.get(platform.machine())
    if e_type != 1 or (expected is not None and e_machine != expected):
        raise LoadError(f"could not link object code: not a relocatable object for "
                        f"{platform.machine()} (ELF type {e_type}, machine {e_machine})")
    if e_shoff + e_shentsize * e_shnum > len(data):
        raise LoadError("could not link object code: truncated ELF object")


def load(object_code: bytes | str | os.PathLike, symbols) -> Library:
    """Link ``object_code`` (bytes or a path to an object file) and resolve ``symbols``."""
    if not isinstance(object_code, (bytes, bytearray)):
        path = Path(object_code)
        if not path.is_file():
            raise LoadError(f"object file not found: {path}")
        object_code = path.read_bytes()
    object_code = bytes(object_code)
    _check_object(object_code)
    tm = target.new_target_machine()
    empty = llvm.parse_assembly("")
    empty.triple = tm.triple
    engine = llvm.create_mcjit_compiler(empty, tm)
    numpy_loops.register()  # kernels calling NumPy's own loops read their addresses there
    try:
        engine.add_object_file(llvm.ObjectFileRef.from_data(object_code))
        engine.finalize_object()
    except Exception as err:  # corrupt bytes, foreign architecture, unresolved symbol
        raise LoadError(f"could not link object code: {err}") from err
    used = [i for i in range(len(numpy_loops.LOOPS))
            if engine.get_global_value_address(numpy_loops.use_marker(i))]
    try:
        numpy_loops.require(used)
    except RuntimeError as err:
        raise LoadError(str(err)) from None
    addresses = {}
    for name in symbols:
        addr = engine.get_function_address(name)
        if not addr:
            raise LoadError(f"symbol {name!r} not found in the object code")
        addresses[name] = addr
    return Library(engine, object_code, addresses)


# ---------------------------------------------------------------------------------------------
# Calling a kernel on NumPy arrays without reading their addresses in Python
#
# A pipeline stage kernel takes ``(void **arrays, int64 start, int64 stop)``.  Reading one
# array's data address in Python (``__array_interface__``, ``.ctypes.data``) costs ~2 us, as
# much as a one-row kernel call, so small calls go through ``mloc_call_arrays`` instead: it
# takes a tuple of arrays and a spec (argument count, kernel address, then per argument the
# expected type, dtype, ndim, width and flags), checks each array against it (exact ndarray
# type, dtype, shape, C-contiguous, aligned, writeable for outputs), collects the data
# pointers and calls the kernel.  Any mismatch returns -1 before the kernel runs, so the caller
# can take its checked Python path (which converts, or raises the right error).
#
# It reads CPython's tuple and NumPy's array structs at fixed offsets (NumPy's
# ``PyArrayObject_fields``: ``PyArray_DATA`` & co. are inline reads of it, so it is part of
# NumPy's ABI).  ``_layout_matches`` checks every offset and flag bit on probe arrays before
# the trampoline is used; if any differs (another Python build or NumPy), it is not used.

_OB_TYPE, _TUPLE_SIZE, _TUPLE_ITEMS = 8, 16, 24
_AR_DATA, _AR_ND, _AR_DIMS, _AR_DESCR, _AR_FLAGS = 16, 24, 32, 56, 64
NPY_C_CONTIGUOUS, NPY_ALIGNED, NPY_WRITEABLE = 0x1, 0x100, 0x400

_TRAMPOLINE_IR = f"""
define i32 @mloc_call_arrays(ptr %tuple, ptr %head, i64 %n) {{
entry:
  %k = load i64, ptr %head
  %kernel.at = getelementptr i64, ptr %head, i64 1
  %kernel = load ptr, ptr %kernel.at
  %spec = getelementptr i64, ptr %head, i64 2
  %size.at = getelementptr i8, ptr %tuple, i64 {_TUPLE_SIZE}
  %size = load i64, ptr %size.at
  %size.ok = icmp eq i64 %size, %k
  br i1 %size.ok, label %start, label %bad
start:
  %ptrs = alloca ptr, i64 %k
  %items = getelementptr i8, ptr %tuple, i64 {_TUPLE_ITEMS}
  br label %loop
loop:
  %i = phi i64 [0, %start], [%i.next, %store]
  %more = icmp slt i64 %i, %k
  br i1 %more, label %check, label %call
check:
  %item.at = getelementptr ptr, ptr %items, i64 %i
  %obj = load ptr, ptr %item.at
  %row = mul i64 %i, 5
  %sp = getelementptr i64, ptr %spec, i64 %row
  %want.type = load i64, ptr %sp
  %sp.descr = getelementptr i64, ptr %sp, i64 1
  %want.descr = load i64, ptr %sp.descr
  %sp.nd = getelementptr i64, ptr %sp, i64 2
  %want.nd = load i64, ptr %sp.nd
  %sp.width = getelementptr i64, ptr %sp, i64 3
  %want.width = load i64, ptr %sp.width
  %sp.flags = getelementptr i64, ptr %sp, i64 4
  %want.flags = load i64, ptr %sp.flags
  %type.at = getelementptr i8, ptr %obj, i64 {_OB_TYPE}
  %type = load i64, ptr %type.at
  %type.ok = icmp eq i64 %type, %want.type
  br i1 %type.ok, label %check.array, label %bad
check.array:
  %descr.at = getelementptr i8, ptr %obj, i64 {_AR_DESCR}
  %descr = load i64, ptr %descr.at
  %descr.ok = icmp eq i64 %descr, %want.descr
  %nd.at = getelementptr i8, ptr %obj, i64 {_AR_ND}
  %nd32 = load i32, ptr %nd.at
  %nd = sext i32 %nd32 to i64
  %nd.ok = icmp eq i64 %nd, %want.nd
  %flags.at = getelementptr i8, ptr %obj, i64 {_AR_FLAGS}
  %flags32 = load i32, ptr %flags.at
  %flags = sext i32 %flags32 to i64
  %flags.have = and i64 %flags, %want.flags
  %flags.ok = icmp eq i64 %flags.have, %want.flags
  %ok1 = and i1 %descr.ok, %nd.ok
  %ok2 = and i1 %ok1, %flags.ok
  br i1 %ok2, label %check.rows, label %bad
check.rows:
  %dims.at = getelementptr i8, ptr %obj, i64 {_AR_DIMS}
  %dims = load ptr, ptr %dims.at
  %rows = load i64, ptr %dims
  %rows.ok = icmp eq i64 %rows, %n
  %is2d = icmp eq i64 %want.nd, 2
  %need.width = and i1 %rows.ok, %is2d
  br i1 %need.width, label %check.width, label %rows.done
check.width:
  %width.at = getelementptr i64, ptr %dims, i64 1
  %width = load i64, ptr %width.at
  %width.ok = icmp eq i64 %width, %want.width
  br label %rows.done
rows.done:
  %shape.ok = phi i1 [%rows.ok, %check.rows], [%width.ok, %check.width]
  br i1 %shape.ok, label %store, label %bad
store:
  %data.at = getelementptr i8, ptr %obj, i64 {_AR_DATA}
  %data = load ptr, ptr %data.at
  %slot = getelementptr ptr, ptr %ptrs, i64 %i
  store ptr %data, ptr %slot
  %i.next = add i64 %i, 1
  br label %loop
call:
  %status = call i32 %kernel(ptr %ptrs, i64 0, i64 %n)
  ret i32 %status
bad:
  ret i32 -1
}}
"""

_TRAMPOLINE_PROTO = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.py_object, ctypes.c_void_p,
                                     ctypes.c_int64)


def _layout_matches() -> bool:
    """Whether tuples and arrays in this process sit at the offsets the trampoline reads."""
    import numpy as np

    def word(obj, offset, ctype=ctypes.c_int64):
        return ctype.from_address(id(obj) + offset).value

    base = np.zeros((6, 4))
    probes = [np.arange(3.0), base, base[:, ::2], base[1:, 1:], np.zeros(5, dtype=bool),
              np.frombuffer(b"\0" * 17, dtype=np.uint8), np.zeros(3, dtype=np.int64)]
    probes.append(np.frombuffer(b"\0" * 17, dtype=np.uint8)[1:].view(np.int64))  # unaligned
    probes[-2].flags.writeable = False
    t = tuple(probes)
    try:
        if word(t, _OB_TYPE) != id(tuple) or word(t, _TUPLE_SIZE) != len(t):
            return False
        if any(word(t, _TUPLE_ITEMS + 8 * i) != id(a) for i, a in enumerate(t)):
            return False
        for a in probes:
            flags = word(a, _AR_FLAGS, ctypes.c_int32)
            dims = word(a, _AR_DIMS)
            shape = tuple(ctypes.c_int64.from_address(dims + 8 * d).value for d in range(a.ndim))
            if (word(a, _OB_TYPE) != id(np.ndarray)
                    or word(a, _AR_DATA) != a.__array_interface__["data"][0]
                    or word(a, _AR_ND, ctypes.c_int32) != a.ndim or shape != a.shape
                    or word(a, _AR_DESCR) != id(a.dtype)
                    or bool(flags & NPY_C_CONTIGUOUS) != a.flags.c_contiguous
                    or bool(flags & NPY_ALIGNED) != a.flags.aligned
                    or bool(flags & NPY_WRITEABLE) != a.flags.writeable):
                return False
    except (ValueError, OverflowError):
        return False
    return True


_trampoline: list = []  # [callable or None], built on first use


def _get_trampoline():
    if not _trampoline:
        fn = None
        if _layout_matches():
            # hand-written SSA: no IR passes needed, and loading a saved pipeline must not run
            # LLVM's optimizer (only the backend runs, once per process)
            lib = load(target.compile_ir(_TRAMPOLINE_IR, speed_level=0), ["mloc_call_arrays"])
            fn = lib.function("mloc_call_arrays", _TRAMPOLINE_PROTO)
            fn._library = lib  # the code lives as long as the callable
        _trampoline.append(fn)
    return _trampoline[0]


class ArrayCall:
    """A kernel ``int32 (void **arrays, int64 start, int64 stop)`` called on a tuple of arrays.

    ``layouts`` gives, per argument, ``(dtype, width, writable)``: a 1-D array of ``n`` rows
    when ``width`` is None, else ``(n, width)``; every array must be an exact, C-contiguous,
    aligned ``np.ndarray`` of that dtype.  ``ArrayCall.create`` returns None where the
    trampoline cannot be used (see ``_layout_matches``).
    """

    def __init__(self, trampoline, kernel_address: int, layouts):
        import numpy as np
        spec = [len(layouts), kernel_address]  # the header: argument count, kernel address
        self._dtypes = []  # the dtype objects whose addresses the spec holds, kept alive
        for dtype, width, writable in layouts:
            dt = np.dtype(dtype)
            self._dtypes.append(dt)
            flags = NPY_C_CONTIGUOUS | NPY_ALIGNED | (NPY_WRITEABLE if writable else 0)
            spec += [id(np.ndarray), id(dt), 1 if width is None else 2, width or 0, flags]
        self._spec = (ctypes.c_int64 * len(spec))(*spec)  # read by the trampoline
        self._spec_at = ctypes.addressof(self._spec)
        self._trampoline = trampoline

    @classmethod
    def create(cls, kernel_address: int, layouts) -> "ArrayCall | None":
        trampoline = _get_trampoline()
        return None if trampoline is None else cls(trampoline, kernel_address, layouts)

    def __call__(self, arrays: tuple, n: int) -> int:
        """The kernel's status for rows ``[0, n)`` (``n >= 1``), or -1 (nothing ran) when an
        array does not have the expected layout."""
        return self._trampoline(arrays, self._spec_at, n)
