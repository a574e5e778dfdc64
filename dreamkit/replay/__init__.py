"""Replay stores: keep episodes, sample `[B, T]` training chunks (docs/replay.md).

Stores are registered here and bound in gin as factories the pipeline calls with
the run's directory: `Pipeline.replay = @replays.HDF5Replay`.
"""

from dreamkit.registry import Registry
from dreamkit.replay.base import Replay

registry = Registry('replays', Replay)

# Imported after `registry` exists: the modules register their stores with it.
from dreamkit.replay.hdf5 import HDF5Replay  # pylint: disable=g-import-not-at-top
from dreamkit.replay.memory import MemoryReplay  # pylint: disable=g-import-not-at-top
