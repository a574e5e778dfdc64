"""Metric sinks: where the runner's metrics rows, videos and config text go.

Each sink is an `Output` registered here, bound in gin as a factory that the pipeline
calls with the run directory:

    Pipeline.outputs = [@outputs.Terminal, @outputs.JSONL, @outputs.TensorBoard]

| sink | writes |
| --- | --- |
| `Terminal` | a live progress line and a line per row of results |
| `JSONL` | `<logdir>/metrics.jsonl`, one JSON object per row |
| `TensorBoard` | event files in `<logdir>`: scalars, GIF videos, text |
| `VideoFiles` | `<logdir>/videos/<name>_<step>.gif` |

`dreamkit.outputs.plot.plot(logdirs, key=...)` draws learning curves from
metrics.jsonl files.
"""

from dreamkit.outputs.base import Output
from dreamkit.registry import Registry

registry = Registry('outputs', Output)

# Imported after `registry` exists: each module registers its sinks with it.
# pylint: disable=wrong-import-position
from dreamkit.outputs.jsonl import JSONL
from dreamkit.outputs.tensorboard import TensorBoard
from dreamkit.outputs.terminal import Terminal
from dreamkit.outputs.video import VideoFiles
from dreamkit.outputs.video import encode_gif

__all__ = [
    'JSONL', 'Output', 'TensorBoard', 'Terminal', 'VideoFiles', 'encode_gif',
    'registry']
