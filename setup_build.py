"""cffi builder for cowsim._core (API out-of-line mode).

The declarations come from csrc/cowsim.h, the one header of the C API: its
preprocessor lines are dropped and the rest is handed to ffi.cdef().
Set COWSIM_WERROR=1 to turn warnings into errors (CI does), COWSIM_SANITIZE=1 to build with AddressSanitizer + UBSan, COWSIM_DEBUG=1
for -O0 -g.
"""
import os
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent
CSRC = "csrc"  # relative: absolute source paths break wheel and editable builds


def _cdef_text() -> str:
    header = (ROOT / CSRC / "cowsim.h").read_text()
    return "\n".join(line for line in header.splitlines() if not line.lstrip().startswith("#"))


def _compile_args() -> tuple[list[str], list[str]]:
    cflags = ["-std=c11", "-Wall", "-Wextra", "-fvisibility=hidden"]
    ldflags: list[str] = []
    if os.environ.get("COWSIM_WERROR"):  # CI: the core must build without warnings
        cflags.append("-Werror")
    if os.environ.get("COWSIM_SANITIZE"):
        san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]
        cflags += san + ["-O1", "-g"]
        ldflags += san
    elif os.environ.get("COWSIM_DEBUG"):
        cflags += ["-O0", "-g"]
    else:
        cflags += ["-O2"]
    return cflags, ldflags


SOURCES = sorted(f"{CSRC}/{p.name}" for p in (ROOT / CSRC).glob("*.c"))
_cflags, _ldflags = _compile_args()

ffibuilder = FFI()
ffibuilder.cdef(_cdef_text())
ffibuilder.set_source(
    "cowsim._core",
    '#include "cowsim.h"',
    sources=SOURCES,
    include_dirs=[CSRC],
    extra_compile_args=_cflags,
    extra_link_args=_ldflags + ["-lpthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
