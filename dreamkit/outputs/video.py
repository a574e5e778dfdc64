"""Animated GIFs from video frames, and the `VideoFiles` sink that saves them.

GIF is the format TensorBoard animates inside an image summary, and any browser or
image viewer plays it, so videos need neither ffmpeg nor TensorBoard. Pillow does the
encoding (imported lazily to keep `import dreamkit.outputs` light).
"""

import io
import os
import pathlib
import re

import numpy as np

from dreamkit import validate
from dreamkit.outputs import registry
from dreamkit.outputs.base import Output


def as_video(frames):
  """Checks and converts frames to uint8 `[T, H, W, C]` with C in (1, 3).

  Accepts uint8 frames, float frames in [0, 1] (as `WorldModel.video_pred` returns;
  clipped and scaled to 255) and `[T, H, W]` grayscale frames. A batch of videos
  `[B, T, H, W, C]` (as `Agent.report` returns) is tiled side by side into
  `[T, H, B * W, C]`, the way the reference shows its `openl_*` videos.
  """
  frames = np.asarray(frames)
  if frames.ndim == 3:
    frames = frames[..., None]
  if frames.ndim == 5:
    batch, length, height, width, channels = frames.shape
    frames = frames.transpose(1, 2, 0, 3, 4).reshape(
        length, height, batch * width, channels)
  if frames.ndim != 4 or frames.shape[-1] not in (1, 3) or not frames.shape[0]:
    raise ValueError(
        f'A video must be [T, H, W, C] with T >= 1 and C = 1 or 3, not shape '
        f'{frames.shape}.')
  if np.issubdtype(frames.dtype, np.floating):
    frames = (np.clip(np.nan_to_num(frames), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
  elif frames.dtype != np.uint8:
    raise ValueError(
        f'Video frames must be uint8 or float in [0, 1], not {frames.dtype}.')
  return frames


def encode_gif(frames, fps=20):
  """Encodes frames as an animated, looping GIF.

  Args:
    frames: uint8 `[T, H, W, C]`, C = 1 (grayscale) or 3 (RGB); see `as_video`.
    fps: playback rate. GIF stores delays in hundredths of a second, so rates are
      rounded to that precision.

  Returns:
    The GIF file as bytes. Each RGB frame gets its own 256-colour palette.
    Consecutive identical frames are merged into one frame shown for their summed
    duration, so playback time is always T / fps.
  """
  from PIL import Image  # pylint: disable=import-outside-toplevel
  frames = as_video(frames)
  if fps <= 0:
    raise ValueError(f'fps must be positive, not {fps}.')
  if frames.shape[-1] == 1:
    images = [Image.fromarray(frame[..., 0]) for frame in frames]
  else:
    # Fast octree quantization is ~40x faster than Pillow's default median cut
    # (2 ms instead of 55 ms for a 192x384 frame) for a slightly larger colour error.
    # No dithering: it adds noise that hides small model errors and bloats the file.
    images = [
        Image.fromarray(frame).quantize(
            256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        for frame in frames]
  buffer = io.BytesIO()
  images[0].save(
      buffer, format='GIF', save_all=True, append_images=images[1:],
      duration=1000 / fps, loop=0)
  return buffer.getvalue()


def frames_grid(frames, columns=8):
  """Tiles the frames of a video into one still image, row by row.

  Args:
    frames: `[T, H, W, C]` (see `as_video`).
    columns: frames per row; the last row is padded with black frames.

  Returns:
    uint8 `[rows * H, columns' * W, C]` with `columns' = min(columns, T)`.
  """
  frames = as_video(frames)
  count, height, width, channels = frames.shape
  columns = max(1, min(columns, count))
  rows = -(-count // columns)
  padded = np.zeros((rows * columns, height, width, channels), np.uint8)
  padded[:count] = frames
  grid = padded.reshape(rows, columns, height, width, channels)
  return grid.transpose(0, 2, 1, 3, 4).reshape(
      rows * height, columns * width, channels)


def video_filename(name, step):
  """`<name>_<step>.gif` with the step zero-padded so files sort by step."""
  safe = re.sub(r'[^A-Za-z0-9_.-]+', '_', name).strip('._') or 'video'
  return f'{safe}_{int(step):09d}.gif'


@registry.register
class VideoFiles(Output):
  """Saves each video as `<logdir>/videos/<name>_<step>.gif` (no TensorBoard needed).

  Files are written to a temporary name and renamed, so a killed run never leaves a
  truncated GIF. Scalars and text are ignored.

  Args:
    logdir: the run directory.
    fps: playback rate of the GIFs.
    directory: subdirectory of `logdir` that receives the files.
  """

  def __init__(self, logdir, fps=20, directory='videos'):
    args = validate.Arguments(self)
    self._fps = args.positive(fps, 'fps')
    self._directory = pathlib.Path(logdir).expanduser() / args.text(directory, 'directory')

  def write(self, step, metrics):
    del step, metrics  # This sink only shows videos.

  def video(self, step, name, frames):
    self._directory.mkdir(parents=True, exist_ok=True)
    path = self._directory / video_filename(name, step)
    partial = path.with_name(path.name + '.tmp')
    partial.write_bytes(encode_gif(frames, self._fps))
    os.replace(partial, path)
