"""What the processor can do, read once, and the instruction-set path each kernel takes.

The features are LLVM's view of the host (llvmlite, which Numba compiles with), so a path is
chosen only where the compiler will emit its instructions. The int8 GEMM has five paths, best
first:

    amx          AMX tiles: `tdpbusd`, 16 x 16 int32 results from 16 x 64 u8 by 64 x 16 s8
                 per instruction (Sapphire Rapids and later; Linux must grant the tile state
                 with arch_prctl(ARCH_REQ_XCOMP_PERM) first, which amx_permitted() asks for)
    avx512-vnni  `vpdpbusd` on 512-bit vectors: 64 u8 x s8 multiply-adds per instruction
    avx-vnni     `vpdpbusd` on 256-bit vectors (AVX-VNNI, or AVX-512 VNNI with VL)
    avx512       `vpmaddwd` on 512-bit vectors: int16 pairs, 32 multiply-adds
    avx2         `vpmaddwd` on 256-bit vectors: int16 pairs, 16 multiply-adds; the portable
                 path (other CPUs compile the same loop to their own widening multiplies)

The two VNNI paths and AMX multiply unsigned by signed bytes: activations are shifted by +128
into u8, and 128 x the sum of each weight row is subtracted afterwards, so every path's int32
results equal the s8 x s8 product exactly (kernels/int8_matmul.py).

MINIBERT_ISA caps the choice, for tests and for machines where the best path misbehaves:
MINIBERT_ISA=avx2 (or avx512, avx-vnni, avx512-vnni, amx) allows that path and the ones below
it. `minibert info --cpu` prints the features seen and the path each kernel takes.
"""

import ctypes
import os
import platform

INT8_PATHS = ("amx", "avx512-vnni", "avx-vnni", "avx512", "avx2")  # best first
ISA_VARIABLE = "MINIBERT_ISA"
# LLVM feature names each path needs
REQUIRES = {
    "amx": ("amx-tile", "amx-int8"),
    "avx512-vnni": ("avx512f", "avx512bw", "avx512vnni"),
    "avx-vnni": ("avx2",),  # plus avxvnni, or avx512vnni with avx512vl: see _can_run
    "avx512": ("avx512f", "avx512bw"),
    "avx2": (),
}
FEATURES_SHOWN = (
    "sse4.2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512vnni",
    "avxvnni",
    "avx512bf16",
    "amx-tile",
    "amx-int8",
    "amx-bf16",
)

_STATE = {"features": None, "amx": None}
_PATHS = {}  # (MINIBERT_ISA's value, respect_cap) -> int8_paths()


def host_features() -> frozenset:
    """The features LLVM reports for this CPU (read once; empty without llvmlite)."""
    if _STATE["features"] is None:
        try:
            import llvmlite.binding as llvm  # comes with Numba; only kernels need it

            _STATE["features"] = frozenset(
                name for name, on in llvm.get_host_cpu_features().items() if on
            )
        except Exception:  # no llvmlite, or a platform it cannot read
            _STATE["features"] = frozenset()
    return _STATE["features"]


def cpu_name() -> str:
    """LLVM's name for the host CPU (the one Numba tunes for), or '' when it cannot tell."""
    try:
        import llvmlite.binding as llvm

        return llvm.get_host_cpu_name()
    except Exception:
        return ""


def amx_permitted() -> bool:
    """Ask Linux, once per process, for the AMX tile state (ARCH_REQ_XCOMP_PERM for
    XFEATURE_XTILEDATA); without it the first tile instruction kills the process. False on
    other systems, or when the kernel refuses."""
    if _STATE["amx"] is None:
        _STATE["amx"] = _request_amx()
    return _STATE["amx"]


def _request_amx() -> bool:
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # syscall(SYS_arch_prctl = 158, ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18)
        return libc.syscall(158, 0x1023, 18) == 0
    except Exception:
        return False


def _can_run(path: str, features: frozenset) -> bool:
    if not all(f in features for f in REQUIRES[path]):
        return False
    if path == "avx-vnni":
        return "avxvnni" in features or {"avx512vnni", "avx512vl"} <= features
    return True


def isa_cap() -> str | None:
    """MINIBERT_ISA's path (validated), or None when it is not set."""
    value = os.environ.get(ISA_VARIABLE, "").strip().lower()
    if not value:
        return None
    if value not in INT8_PATHS:
        raise ValueError(
            f"{ISA_VARIABLE}={value!r} is not a path; use one of {', '.join(INT8_PATHS)}"
        )
    return value


def int8_paths(respect_cap: bool = True) -> list[str]:
    """The int8 GEMM paths this process can run, best first (under MINIBERT_ISA's cap unless
    respect_cap=False; AMX only once Linux grants the tile state). Worked out once per value of
    MINIBERT_ISA: kernels ask at every call."""
    key = (os.environ.get(ISA_VARIABLE), respect_cap)
    if key not in _PATHS:
        _PATHS[key] = _int8_paths(respect_cap)
    return list(_PATHS[key])


def _int8_paths(respect_cap: bool) -> list[str]:
    features = host_features()
    paths = [p for p in INT8_PATHS if _can_run(p, features)]
    if "amx" in paths and not amx_permitted():
        paths.remove("amx")
    cap = isa_cap() if respect_cap else None
    if cap is not None:
        paths = [p for p in paths if INT8_PATHS.index(p) >= INT8_PATHS.index(cap)]
    return paths or ["avx2"]


def int8_path() -> str:
    """The path the int8 GEMM takes here: the best of int8_paths()."""
    return int8_paths()[0]


def float32_path() -> str:
    """The float32 tiles' path (kernels/float32_tile.py): avx512 where the CPU has 512-bit
    vectors and MINIBERT_ISA allows it, else avx2."""
    if "avx512f" in host_features() and "avx512" in int8_paths():
        return "avx512"
    return "avx2"


def skipped_int8_paths() -> dict:
    """{path: why this process cannot run it}, for tests that run every path they can."""
    features = host_features()
    reasons = {}
    for path in INT8_PATHS:
        if not _can_run(path, features):
            missing = [f for f in REQUIRES[path] if f not in features] or ["avxvnni"]
            reasons[path] = f"the CPU lacks {', '.join(missing)}"
        elif path == "amx" and not amx_permitted():
            reasons[path] = "Linux did not grant the AMX tile state (arch_prctl)"
    return reasons


def describe() -> dict:
    """What `minibert info --cpu` prints: the CPU, its features, and the paths taken."""
    features = host_features()
    return {
        "cpu": _model_name() or platform.processor() or platform.machine(),
        "llvm_cpu": cpu_name(),
        "features": [f for f in FEATURES_SHOWN if f in features],
        "isa_cap": isa_cap(),
        "int8_paths_available": int8_paths(respect_cap=False),
        "int8_path": int8_path(),
        "float32_path": float32_path(),
        "skipped": skipped_int8_paths(),
    }


def _model_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else ''."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""
