"""The errors plate_lib says to a user in one line (``plate``'s exit status 2), whose modules import torch:
defined here, with no torch, so that the CLI can catch them on a start that never imports it (``graph``).
``checkpoints``, ``models`` and ``dataset`` raise them and keep their names importable."""

from __future__ import annotations

import errno

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # no space left on the device; disk quota exceeded


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, unsafe to load or does not fit."""


class ModelError(ValueError):
    """An unknown model name or a size the model cannot take."""


class DiskFullError(RuntimeError):
    """A file that could not be written because the disk (or the user's quota) is full; the old file is intact."""
