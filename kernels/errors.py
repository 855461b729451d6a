"""Exceptions raised by the kernels package.

KernelError                  base: catch this to handle any failure of this package
├── MoEShapeError            inputs of kernels.moe have inconsistent shapes or an invalid top_k
└── KernelUnavailableError   an implementation was asked for that cannot run here (no CUDA/Triton,
                             unsupported dtype)
"""


class KernelError(Exception):
    """Base class of this package's errors."""


class MoEShapeError(KernelError, ValueError):
    """The tensors given to kernels.moe do not fit together."""


class KernelUnavailableError(KernelError, RuntimeError):
    """The requested implementation cannot run on this machine or for these inputs."""
