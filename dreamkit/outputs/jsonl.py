"""`<logdir>/metrics.jsonl`: one JSON object per metrics row, kept across resumes."""

import json
import logging
import math
import os
import pathlib

from dreamkit import validate
from dreamkit.outputs import registry
from dreamkit.outputs.base import Output

logger = logging.getLogger(__name__)

# JSON has no NaN or infinity. NaN becomes null (pandas reads it back as NaN). An
# infinity becomes 1e309, a valid JSON number that overflows to inf when parsed by
# Python, pandas and JavaScript, so a diverging loss stays visible as inf.
_POSITIVE_INFINITY = '1e309'
_NEGATIVE_INFINITY = '-1e309'


def to_json_value(value):
  """A Python/NumPy scalar (or 0-d array or eager tensor) as a JSON-ready value.

  Returns `None` for values that are not scalars (arrays, videos): this sink skips
  them. Floats stay floats (non-finite ones are handled by `dumps_row`).
  """
  if isinstance(value, (bool, int, float, str)):
    return value
  if hasattr(value, 'numpy'):  # An eager tf.Tensor.
    value = value.numpy()
  if getattr(value, 'ndim', None) == 0 or getattr(value, 'shape', None) == ():
    value = value.item()  # NumPy scalar or 0-d array to the Python type.
    if isinstance(value, bytes):
      value = value.decode('utf-8', 'replace')
    if isinstance(value, (bool, int, float, str)):
      return value
  return None


def dumps_row(row):
  """One line of JSON (without the newline) for a dict of JSON-ready scalars."""
  parts = []
  for key, value in row.items():
    if isinstance(value, float) and not math.isfinite(value):
      if math.isnan(value):
        text = 'null'
      else:
        text = _POSITIVE_INFINITY if value > 0 else _NEGATIVE_INFINITY
    else:
      text = json.dumps(value, allow_nan=False)
    parts.append(f'{json.dumps(str(key))}: {text}')
  return '{' + ', '.join(parts) + '}'


def repair_torn_tail(path):
  """Cuts off a partial last line left by a run killed in the middle of a write.

  Every complete line ends with a newline, so a file that does not is torn. A tail
  that still parses as a JSON object only lost its newline and is completed instead.

  Returns:
    The number of bytes removed.
  """
  with open(path, 'rb+') as file:
    size = file.seek(0, os.SEEK_END)
    if not size:
      return 0
    file.seek(size - 1)
    if file.read(1) == b'\n':
      return 0
    # Scan backwards in blocks for the last newline: metrics files grow large.
    end, start = size, size
    while start > 0:
      start = max(0, end - 65536)
      file.seek(start)
      block = file.read(end - start)
      index = block.rfind(b'\n')
      if index >= 0:
        start += index + 1
        break
      end = start
    file.seek(start)
    tail = file.read()
    try:
      complete = isinstance(json.loads(tail), dict)
    except ValueError:
      complete = False
    if complete:
      file.seek(size)
      file.write(b'\n')
      logger.warning(
          'Completed the last line of %s, which lacked its newline.', path)
      return 0
    file.truncate(start)
    logger.warning(
        'Removed a partial last line (%d bytes) from %s: the previous run stopped '
        'while writing it.', size - start, path)
    return size - start


@registry.register
class JSONL(Output):
  """Appends each row to `<logdir>/metrics.jsonl` as `{"step": ..., <metric>: ...}`.

  Read it with `pandas.read_json(path, lines=True)`. Rows differ in their keys
  (evaluation rows carry `eval_return`, training rows the losses); pandas fills the
  gaps with NaN. NaN values are written as null and infinities as +-1e309, so the
  file is standard JSON that still parses back to nan / inf.

  Each line reaches the file in one `write` call on an unbuffered append-mode file,
  so a concurrent reader never sees half a row from a live run; `flush` and `close`
  also fsync. On open, a partial last line from a killed run is removed (with a
  warning), so a resumed run appends cleanly.

  Args:
    logdir: the run directory (created if missing).
    filename: name of the file inside `logdir`.
  """

  def __init__(self, logdir, filename='metrics.jsonl'):
    filename = validate.Arguments(self).text(filename, 'filename')
    self.path = pathlib.Path(logdir).expanduser() / filename
    self.path.parent.mkdir(parents=True, exist_ok=True)
    if self.path.exists():
      repair_torn_tail(self.path)
    # Unbuffered: every write below is one system call on an O_APPEND descriptor.
    self._file = open(  # pylint: disable=consider-using-with
        self.path, 'ab', buffering=0)

  def write(self, step, metrics):
    row = {'step': int(step)}
    for key, value in metrics.items():
      if key == 'step':
        raise ValueError(
            "Metrics must not contain a 'step' key: the step is passed to "
            'write(step, metrics) separately.')
      value = to_json_value(value)
      if value is not None:
        row[key] = value
    data = (dumps_row(row) + '\n').encode('utf-8')
    # A raw file may accept fewer bytes than given (a full disk, a signal).
    written = self._file.write(data)
    while written is not None and written < len(data):
      data = data[written:]
      written = self._file.write(data)

  def flush(self):
    if not self._file.closed:
      os.fsync(self._file.fileno())

  def close(self):
    if not self._file.closed:
      self.flush()
      self._file.close()
