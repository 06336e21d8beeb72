"""Which attention implementation a load uses: the caller's explicit choice, else the config's if this machine can run
it, else `sdpa` with one warning line.

The published config.json asks for FlashAttention-2 (`"_attn_implementation": "flash_attention_2"`, some writers
spell it `attn_implementation`). FlashAttention needs the flash-attn package *and* a CUDA GPU; transformers raises an
ImportError at model construction when either is missing. A choice the caller makes explicitly
(`from_pretrained(..., attn_implementation=...)`, `AutoModel`, every CLI) is always used as given: an impossible
explicit choice is transformers' one clear error. A choice that only the config makes is a default, so on a machine
that cannot honour it the model loads with `sdpa` (same math, PyTorch's kernel) and says so once.
"""

from __future__ import annotations

import importlib.util
import logging
import re

import torch

logger = logging.getLogger(__name__)

FALLBACK = "sdpa"
ALWAYS_AVAILABLE = ("eager", "sdpa")  # the model's own code paths: run on every device
# FlashAttention major version -> the Python package transformers imports for it.
FLASH_PACKAGES = {2: "flash_attn", 3: "flash_attn_interface", 4: "flash_attn"}
CONFIG_KEYS = ("_attn_implementation", "attn_implementation")  # both spellings found in config.json files


def flash_attn_installed(version: int) -> bool:
    package = FLASH_PACKAGES.get(version)
    return package is not None and importlib.util.find_spec(package) is not None


def cuda_available() -> bool:
    return torch.cuda.is_available()


def unavailable_reason(implementation: str) -> str | None:
    """Why this machine cannot run `implementation` (None when it can)."""
    if implementation in ALWAYS_AVAILABLE:
        return None
    match = re.fullmatch(r"flash_attention_(\d)", implementation)
    if match is None:
        return f"this bundle runs {', '.join(ALWAYS_AVAILABLE)} and FlashAttention (flash_attention_2/3/4)"
    version = int(match.group(1))
    missing = []
    if not flash_attn_installed(version):
        missing.append(f"the {FLASH_PACKAGES.get(version, 'flash-attn')} package is not installed")
    if not cuda_available():
        missing.append("no CUDA GPU is visible to torch")
    return " and ".join(missing) or None


def config_choice(requested: str) -> str:
    """The implementation to use for a choice made only by a config: `requested` if it runs here, else `sdpa` (one
    warning line naming what was asked for and why it cannot run)."""
    reason = unavailable_reason(requested)
    if reason is None:
        return requested
    logger.warning(
        "config.json asks for attn_implementation=%r, which cannot run here (%s): loading with %r instead "
        "(pass attn_implementation=... to choose)",
        requested,
        reason,
        FALLBACK,
    )
    return FALLBACK
