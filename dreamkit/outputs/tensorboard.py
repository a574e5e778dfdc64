"""TensorBoard event files: scalars, animated GIF videos and text.

TensorFlow is imported when the sink is built, not when this module is imported, so
listing components or `dreamkit --help` stays fast.
"""

import logging
import pathlib

import numpy as np

from dreamkit import validate
from dreamkit.outputs import registry
from dreamkit.outputs import video as video_lib
from dreamkit.outputs.base import Output

logger = logging.getLogger(__name__)


@registry.register
class TensorBoard(Output):
  """Writes TensorBoard event files into the run directory.

  Scalars go under `scalars/<name>` (as in the reference), videos are animated GIFs
  inside image summaries (TensorBoard's image dashboard plays them), and text such as
  the config appears preformatted in the text dashboard. If a video cannot be
  encoded, its frames are written as one still PNG grid instead.

  Only TensorFlow's core summary ops are used, so writing works without the
  `tensorboard` package; viewing needs it: `tensorboard --logdir <logdir>`.

  Args:
    logdir: the run directory; event files are written directly into it.
    fps: playback rate of the videos.
    max_queue: summaries buffered before the writer flushes to disk.
    flush_millis: longest time a summary waits in the buffer.
  """

  def __init__(self, logdir, fps=20, max_queue=1000, flush_millis=30000):
    args = validate.Arguments(self)
    fps = args.positive(fps, 'fps')
    max_queue = args.positive_int(max_queue, 'max_queue')
    flush_millis = args.positive_int(flush_millis, 'flush_millis')
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    self._tf = tf
    self._fps = fps
    self._writer = tf.summary.create_file_writer(
        str(pathlib.Path(logdir).expanduser()), max_queue=max_queue,
        flush_millis=flush_millis)
    # `tf.summary.scalar` and `tf.summary.text` delegate to the tensorboard package;
    # `tf.summary.write` with the plugin's metadata writes the same records.
    self._scalar_metadata = _metadata(tf, 'scalars', data_class=1)  # SCALAR
    self._text_metadata = _metadata(tf, 'text', data_class=2)  # TENSOR
    self._last_step = 0

  def write(self, step, metrics):
    tf = self._tf
    self._last_step = step = int(step)
    with self._writer.as_default(step=step):
      for name, value in metrics.items():
        value = _scalar(value)
        if value is not None:
          tf.summary.write(
              'scalars/' + name, tf.constant(value, tf.float32),
              metadata=self._scalar_metadata)

  def video(self, step, name, frames):
    """Writes an animated GIF summary; frames uint8 `[T, H, W, C]`, C = 1 or 3."""
    frames = video_lib.as_video(frames)
    _, height, width, channels = frames.shape
    try:
      encoded = video_lib.encode_gif(frames, self._fps)
    except (OSError, ValueError) as error:
      logger.warning(
          "Could not encode video '%s' as a GIF (%s); writing its frames as a "
          'still image instead.', name, error)
      grid = video_lib.frames_grid(frames)
      height, width = grid.shape[:2]
      encoded = self._tf.io.encode_png(grid).numpy()
    self._image(int(step), name, encoded, height, width, channels)

  def _image(self, step, name, encoded, height, width, channels):
    # TensorBoard hands the bytes of an image summary to the browser, which animates
    # a GIF. The TF2 image op only takes raw pixels, so the summary proto is built by
    # hand and written as is.
    tf = self._tf
    summary = tf.compat.v1.Summary()
    image = tf.compat.v1.Summary.Image(
        height=height, width=width, colorspace=channels,
        encoded_image_string=encoded)
    summary.value.add(tag=name, image=image)
    with self._writer.as_default(step=step):
      tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=step)

  def text(self, name, text):
    """Writes text at the last step written; shown preformatted (as code)."""
    # TensorBoard renders text as Markdown; indenting makes it a code block, so the
    # line breaks and `#` comments of a config survive.
    body = '\n'.join('    ' + line for line in str(text).splitlines())
    with self._writer.as_default(step=self._last_step):
      self._tf.summary.write(
          name, self._tf.constant(body), metadata=self._text_metadata)

  def flush(self):
    self._writer.flush()

  def close(self):
    self._writer.close()


def _metadata(tf, plugin_name, data_class):
  """Serialized SummaryMetadata that routes a tensor to a TensorBoard dashboard."""
  plugin = tf.compat.v1.SummaryMetadata.PluginData(plugin_name=plugin_name)
  return tf.compat.v1.SummaryMetadata(
      plugin_data=plugin, data_class=data_class).SerializeToString()


def _scalar(value):
  """A float for numeric scalars (Python, NumPy, 0-d arrays), None otherwise."""
  if isinstance(value, (str, bytes)):
    return None
  if hasattr(value, 'numpy'):
    value = value.numpy()
  array = np.asarray(value)
  if array.ndim != 0 or not (
      np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
    return None
  return float(array)
