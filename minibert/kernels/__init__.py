"""Hot loops: each file holds a kernel's plain-numpy reference beside its Numba (CPU) version.

Numba is imported on first use, not at `import minibert`. If it cannot be imported or a kernel
cannot be compiled, we warn once and run the numpy reference instead: slower, never wrong.
"""

from .jit import jit_kernel, numba_available, use_fast_kernels

__all__ = ["jit_kernel", "numba_available", "use_fast_kernels"]
