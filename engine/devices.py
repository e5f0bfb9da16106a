"""Device strings, checked in one place: every `--device` option and `Engine(device=...)`.

gsvd runs on "cpu" or a CUDA GPU ("cuda", "cuda:N"); "auto" takes the GPU when there is one.
Anything else, or a GPU that is not there, is an InvalidInput with a sentence for the user
(the CLIs print it and exit 2; the daemon refuses to start), not a torch traceback.
`check_device` needs no torch (configuration can be checked before anything heavy loads);
`resolve_device` asks torch what is present.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from gsvd.engine.errors import InvalidInput

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device(spec: str | torch.device) -> str:
    """The device string, normalized (trimmed, lower case); InvalidInput when it is not one gsvd runs on."""
    text = str(spec).strip().lower()
    if not _DEVICE.fullmatch(text):
        raise InvalidInput(f"device must be {DEVICE_CHOICES}, not {str(spec)!r}", "device")
    return text


def resolve_device(spec: str | torch.device) -> torch.device:
    """The torch device for `spec` ("auto": CUDA when present, else CPU); InvalidInput when the GPU asked
    for is not there."""
    import torch

    text = check_device(spec)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(text)
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        build = "a CPU-only build of torch" if torch.version.cuda is None else f"torch built for CUDA {torch.version.cuda}"
        raise InvalidInput(f"device {text!r} asked for, but no CUDA GPU is usable here ({build}, "
                           f"{torch.__version__}); use --device cpu or auto", "device")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise InvalidInput(f"device {text!r} asked for, but this machine has {count} CUDA device(s) "
                           f"(cuda:0..cuda:{count - 1})", "device")
    return device
