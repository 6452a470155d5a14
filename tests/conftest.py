import os

import torch

# Triton runs kernels on CPU tensors only in its interpreter, which is chosen when a kernel is defined,
# so it has to be set before any test imports one.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
