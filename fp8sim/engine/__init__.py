"""The GEMM engine: the MMA step model, the GEMM driver and its numba kernels, named kernels,
split-K and the pure-Python reference they are tested against."""
