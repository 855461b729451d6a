"""kernels: fast GPU kernels for the trainer, each beside a plain-PyTorch reference with the same API.

Importing this package never imports Triton; the Triton paths import it when first used.
"""

from kernels.errors import KernelError, KernelUnavailableError, MoEShapeError
from kernels.moe import moe
from kernels.moe_reference import moe_reference

__all__ = ["KernelError", "KernelUnavailableError", "MoEShapeError", "moe", "moe_reference"]
