"""Hardware capture: record FP8 GEMMs and casts on a GPU, replay them through fp8sim.

One job per module (the numpy-only ones import everywhere; the GPU-side ones need torch
and are imported only when a capture runs):

- `cases`: what to capture, the numpy case groups drawn deterministically from a seed;
- `run`: running the groups on the GPU and saving one ``.npz`` per group;
- `verify`: replaying a capture, bit agreement per kernel family (``fp8sim verify``);
- `golden`: the capture file format, what each array means, and replaying outputs;
- `saver`: the size-capped ``.npz`` writer and the crop rule of large shapes;
- `kernels` (GPU): the Triton kernels, ``torch._scaled_mm`` calls and CUDA conversions;
- `stacks`: the registry of real-FP8-stack groups (data), one module per stack (GPU).
"""
