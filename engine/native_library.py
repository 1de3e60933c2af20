"""Compile the engine's C kernels (``engine/native/*.c``) on first use and load them with ctypes.

Why compile on the user's machine instead of shipping binaries: the kernels are written with portable
vector extensions and gain most from the exact instruction set of the CPU they run on (``-march=native``:
AVX-512 where there is one), and a plain C file needs no PyTorch headers, so a build takes well under a
second. Built libraries are cached per user (keyed by the source, compiler, flags and CPU), so only the
first run on a machine compiles. Every failure -- no compiler (most Windows machines), a compiler without
OpenMP, a read-only cache -- leaves the engine on its plain PyTorch path with the reason on record
(``digit-studio devices`` prints it); nothing here ever stops training.

``DIGIT_STUDIO_NATIVE=0`` turns the kernels off, to compare or to rule them out.
Built with ``-fopenmp``, a library shares PyTorch's OpenMP runtime (same soname, already loaded), so it
runs on the thread count the engine set for the calling thread. OpenMP is asked for only where the
compiler's runtime is PyTorch's (GCC's libgomp for Linux wheels, LLVM's libomp for macOS ones): a second
runtime in one process fights the first over threads (:func:`flag_choices`).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.files import atomic_write

log = logging.getLogger(__name__)

SOURCE_DIR = Path(__file__).parent / "native"
DISABLE_VARIABLE = "DIGIT_STUDIO_NATIVE"
COMPILE_TIMEOUT_S = 120
# gnu11, not c11: in strict ISO mode GCC turns off fused multiply-adds (-ffp-contract=off), which the
# kernels are made of; asked for explicitly as well, for Clang
BASE_FLAGS = ("-O3", "-std=gnu11", "-ffp-contract=fast", "-shared", "-fPIC", "-fno-math-errno")
# tried in this order; the first that compiles wins (Apple's clang knows no -fopenmp). Always for this
# machine's own vector unit: the kernels' layout and register use follow from it (docs/performance.md).
FLAG_CHOICES = (("-march=native", "-fopenmp"), ("-march=native",))


@dataclass(frozen=True)
class NativeLibrary:
    """A loaded kernel library, or why there is none (``library`` None, ``reason`` says why)."""

    name: str
    library: ctypes.CDLL | None
    path: Path | None = None
    flags: tuple[str, ...] = ()
    reason: str = ""

    @property
    def available(self) -> bool:
        return self.library is not None

    def describe(self) -> str:
        if self.library is None:
            return f"not in use: {self.reason}"
        threads = "OpenMP threads" if "-fopenmp" in self.flags else "one thread"
        return f"in use ({' '.join(self.flags)}, {threads}; {self.path})"


_loaded: dict[str, NativeLibrary] = {}
_lock = threading.Lock()


def native_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("digit-studio", appauthor=False)) / "native"


def disabled() -> bool:
    return os.environ.get(DISABLE_VARIABLE, "").strip().lower() in ("0", "false", "no", "off")


def find_compiler() -> tuple[str | None, str]:
    """``$CC`` if set, else the first of cc, gcc, clang on the PATH; or None and why there is none."""
    configured = os.environ.get("CC", "").strip()
    if configured:
        found = shutil.which(configured.split()[0])
        return found, "" if found else f"the C compiler CC names ({configured}) was not found"
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return found, ""
    return None, "no C compiler found (install gcc or clang, or set CC)"


def _compiler_family(compiler: str) -> str:
    """ "clang" or "gcc" (what ``cc`` is, on most systems), from the compiler's own version line."""
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "gcc"
    return "clang" if "clang" in version.lower() else "gcc"


def _torch_openmp_runtime() -> str | None:
    """ "libgomp", "libomp" or None: the OpenMP runtime PyTorch ships with (and has loaded)."""
    import torch

    folder = Path(torch.__file__).parent / "lib"
    for runtime in ("libgomp", "libomp", "libiomp5"):
        if any(folder.glob(f"{runtime}*")):
            return runtime
    return None


def flag_choices(compiler: str) -> tuple[tuple[str, ...], ...]:
    """FLAG_CHOICES, less the OpenMP one where this compiler would link a runtime other than PyTorch's."""
    runtime = _torch_openmp_runtime()
    own = {"gcc": "libgomp", "clang": "libomp"}[_compiler_family(compiler)]
    return FLAG_CHOICES if own == runtime else tuple(f for f in FLAG_CHOICES if "-fopenmp" not in f)


def _cpu_identity() -> str:
    """What ``-march=native`` depends on: a cached build must not be loaded on a different CPU (a home
    directory shared between machines), where it could stop the process with an illegal instruction."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    wanted = ("model name", "flags", "Features", "CPU implementer", "CPU part")
    return "\n".join(sorted({line for line in lines if line.split(":")[0].strip() in wanted}))


def _build(compiler: str, source: Path, flags: tuple[str, ...], target: Path) -> str:
    """Compile ``source`` into ``target`` atomically; '' on success, else the compiler's complaint (or why
    the cache folder cannot take the file)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=target.parent, prefix=target.stem, suffix=".partial")
        os.close(fd)
    except OSError as exc:
        return f"cannot write to {target.parent}: {exc.strerror or exc}"
    try:
        done = subprocess.run(
            [compiler, *BASE_FLAGS, *flags, str(source), "-o", partial],
            capture_output=True,
            text=True,
            timeout=COMPILE_TIMEOUT_S,
        )
        if done.returncode != 0:
            return (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        digest = _digest(Path(partial))
        os.replace(partial, target)  # another process building the same file at once is harmless
        atomic_write(_digest_file(target), lambda tmp: Path(tmp).write_text(digest))
        return ""
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    finally:
        Path(partial).unlink(missing_ok=True)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _digest_file(library: Path) -> Path:
    return library.with_name(library.name + ".sha256")


def _untrusted(library: Path) -> str | None:
    """Why a cached library must not be loaded, or None: it is loaded only as this program built it (the
    SHA-256 recorded then), a regular file of this user's that no one else may write."""
    try:
        info = library.lstat()
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        if hasattr(os, "getuid") and (info.st_uid != os.getuid() or info.st_mode & 0o022):
            return "not this user's own file, or writable by others"
        recorded = _digest_file(library).read_text(encoding="ascii").strip()
        return None if recorded == _digest(library) else "its contents are not what was built"
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot be checked ({exc.strerror if isinstance(exc, OSError) else exc})"


def _compile_and_load(name: str) -> NativeLibrary:
    if sys.platform == "win32":
        return NativeLibrary(name, None, reason="not built on Windows (no C compiler with these flags)")
    source = SOURCE_DIR / f"{name}.c"
    compiler, missing = find_compiler()
    if compiler is None:
        return NativeLibrary(name, None, reason=missing)
    try:
        code = source.read_bytes()
        folder = native_cache_dir()
    except OSError as exc:
        return NativeLibrary(name, None, reason=f"cannot read {source}: {exc.strerror or exc}")
    complaints = []
    for flags in flag_choices(compiler):
        key = hashlib.sha256(
            b"\0".join([code, compiler.encode(), " ".join(BASE_FLAGS + flags).encode(), _cpu_identity().encode()])
        ).hexdigest()[:16]
        target = folder / f"{name}-{key}{'.dylib' if sys.platform == 'darwin' else '.so'}"
        fresh = not target.exists()
        while True:  # a damaged cached file is built again once; a fresh build that fails to load is final
            if fresh:
                complaint = _build(compiler, source, flags, target)
                if complaint:
                    complaints.append(complaint)
                    break
            problem = _untrusted(target)
            if problem is None:
                try:
                    return NativeLibrary(name, ctypes.CDLL(str(target)), target, flags)
                except OSError as exc:
                    complaints.append(str(exc))
            else:
                complaints.append(f"{target.name}: {problem}")
            if fresh:
                break
            fresh = True
    return NativeLibrary(name, None, reason=f"{Path(compiler).name} could not build {source.name}: {complaints[0]}")


def load(name: str) -> NativeLibrary:
    """The library built from ``engine/native/<name>.c``: compiled once per machine, loaded once per
    process. Thread-safe: the app's warm-up thread and a training thread may ask at the same time.
    ``DIGIT_STUDIO_NATIVE`` is read on every call, so that a benchmark can compare within one process."""
    if disabled():
        return _turned_off(name)
    with _lock:
        if name not in _loaded:
            library = _compile_and_load(name)
            if not library.available:
                log.info("native kernel %s %s", name, library.describe())
            _loaded[name] = library
        return _loaded[name]


def loaded(name: str) -> NativeLibrary | None:
    """What ``load`` found, without building anything: None if this process has not asked yet (a GUI
    thread must not wait for a compiler)."""
    return _turned_off(name) if disabled() else _loaded.get(name)


def _turned_off(name: str) -> NativeLibrary:
    return NativeLibrary(name, None, reason=f"turned off by {DISABLE_VARIABLE}=0")


@contextlib.contextmanager
def switched_off() -> Iterator[None]:
    """Run the plain PyTorch path inside this block (benchmarks and tests compare the two). Sets the
    process's environment, so it applies to every thread while it lasts."""
    before = os.environ.get(DISABLE_VARIABLE)
    os.environ[DISABLE_VARIABLE] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(DISABLE_VARIABLE, None)
        else:
            os.environ[DISABLE_VARIABLE] = before


def forget(name: str) -> None:
    """Drop the cached load result, so that the next ``load`` tries again (tests; settings changed)."""
    with _lock:
        _loaded.pop(name, None)
