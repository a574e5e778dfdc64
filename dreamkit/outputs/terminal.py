"""Training progress on the terminal: a live status line, and one line per result."""

import math
import shutil
import sys
import time

from dreamkit.outputs import registry
from dreamkit.outputs.base import Output

# Counters and rates the status line shows; every other key is a result.
PROGRESS_KEYS = ('steps_budget', 'frames', 'updates', 'fps', 'step_fps', 'train_fps')

# Shortest time between two redraws of the TTY status line for progress-only rows:
# redrawing on every env step would cost more than it shows.
TTY_REFRESH_SECONDS = 0.2

# Results are listed in this order, then the remaining keys alphabetically.
IMPORTANT_KEYS = (
    'train_return', 'train_length', 'eval_return', 'eval_length',
    'model_loss', 'kl_loss', 'image_loss', 'reward_loss', 'discount_loss',
    'actor_loss', 'critic_loss', 'actor_ent')


def format_number(value):
  """Compact text for a scalar: `0`, `12.35`, `3`, `1.2e-05`, `1e+06`, `nan`."""
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    try:
      value = value.item()  # NumPy scalars.
    except AttributeError:
      return str(value)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
      return str(value)
  if isinstance(value, int):
    return f'{value:,}' if abs(value) < 10**9 else f'{value:.1e}'
  if not math.isfinite(value):
    return str(value)
  if value == 0:
    return '0'
  if 0.01 <= abs(value) < 10000:
    return f'{value:.2f}'.rstrip('0').rstrip('.')
  return f'{value:.1e}'.replace('.0e', 'e')


def format_duration(seconds):
  """`42s`, `5m07s`, `3h12m`, `2d04h`."""
  seconds = int(round(seconds))
  if seconds < 60:
    return f'{seconds}s'
  minutes, seconds = divmod(seconds, 60)
  if minutes < 60:
    return f'{minutes}m{seconds:02d}s'
  hours, minutes = divmod(minutes, 60)
  if hours < 24:
    return f'{hours}h{minutes:02d}m'
  days, hours = divmod(hours, 24)
  return f'{days}d{hours:02d}h'


def ordered_results(metrics):
  """The non-progress keys of a row: important ones first, then alphabetical."""
  keys = [key for key in metrics if key not in PROGRESS_KEYS]
  first = [key for key in IMPORTANT_KEYS if key in metrics]
  return first + sorted(key for key in keys if key not in IMPORTANT_KEYS)


class _Rate:
  """Counts per second, smoothed over about `horizon` seconds of wall time.

  An exponential average weighted by elapsed time, not by calls, so irregular
  writes (bursts of training between acting) give a steady estimate.
  """

  def __init__(self, horizon):
    self.horizon = horizon
    self._last = None  # (time, count)
    self.value = None

  def update(self, now, count):
    if self._last is None or count < self._last[1]:
      self._last = (now, count)
      return
    elapsed = now - self._last[0]
    if elapsed <= 0:
      return
    rate = (count - self._last[1]) / elapsed
    if self.value is None:
      self.value = rate
    else:
      weight = 1 - math.exp(-elapsed / self.horizon)
      self.value += weight * (rate - self.value)
    self._last = (now, count)


@registry.register
class Terminal(Output):
  """Progress on the terminal: a live status line, and a line per row of results.

  The status line shows `step/budget`, frames, env steps/s, train steps/s, the last
  train and eval return and the ETA (from `steps_budget` and the smoothed step rate;
  while rows report `updates` 0, i.e. during prefill, `ETA after prefill`):

      1,200/50,000 steps 2.4% | 4,800 frames | 81.3 steps/s | 16.2 train/s |
      return 12 | eval 15.5 | ETA 10m00s   (one line)

  A row with results (any key besides the progress counters `steps_budget`,
  `frames`, `updates`, `fps`, `step_fps`, `train_fps`) also prints a permanent line:

      [1,200] train_return 12 / train_length 180 / model_loss 3.1 / kl_loss 1.02 / ...

  On a TTY, the status line is redrawn in place with a carriage return and result
  lines scroll above it. Elsewhere (CI logs, files) every line ends with a newline
  and holds no control characters: results print as `<status> | <results>`, and
  rows with only progress print at most once every `interval` seconds.

  Args:
    logdir: unused; outputs are built with the run directory.
    stream: text stream to write to; `sys.stdout` (looked up at each write) if None.
    interval: seconds between progress-only lines when not on a TTY.
    tty: force TTY (True) or plain (False) mode; detected from `stream` if None.
    rate_horizon: seconds over which the step rates are smoothed.
  """

  def __init__(
      self, logdir=None, stream=None, interval=30.0, tty=None, rate_horizon=60.0):
    del logdir
    self._stream = stream
    self._interval = interval
    self._tty = tty
    self._clock = time.monotonic
    self._step_rate = _Rate(rate_horizon)
    self._train_rate = _Rate(rate_horizon)
    self._last_plain = None
    self._last_redraw = None
    self._skipped_step = None  # A step whose redraw was skipped, shown on close.
    self._status_width = 0  # Characters of the status line now on screen.
    self._progress = {}
    self._last_return = None
    self._last_eval = None

  @property
  def stream(self):
    return self._stream if self._stream is not None else sys.stdout

  @property
  def is_tty(self):
    if self._tty is not None:
      return self._tty
    isatty = getattr(self.stream, 'isatty', None)
    try:
      return bool(isatty and isatty())
    except ValueError:  # A closed stream.
      return False

  def write(self, step, metrics):
    now = self._clock()
    step = int(step)
    if self._progress.get('updates') == 0 and metrics.get('updates', 0) > 0:
      # Training has started: the prefill's step rate says nothing about the ETA now.
      self._step_rate = _Rate(self._step_rate.horizon)
    self._progress.update(
        {key: metrics[key] for key in PROGRESS_KEYS if key in metrics})
    self._step_rate.update(now, step)
    if 'updates' in metrics:
      self._train_rate.update(now, float(metrics['updates']))
    if 'train_return' in metrics:
      self._last_return = metrics['train_return']
    if 'eval_return' in metrics:
      self._last_eval = metrics['eval_return']
    results = ordered_results(metrics)
    if self.is_tty:
      if results or self._last_redraw is None or (
          now - self._last_redraw >= TTY_REFRESH_SECONDS):
        self._last_redraw = now
        self._write_tty(step, metrics, results)
        self._skipped_step = None
      else:
        self._skipped_step = step
    elif results or self._last_plain is None or (
        now - self._last_plain >= self._interval):
      self._last_plain = now
      self._write_plain(step, metrics, results)

  def progress(self, step, counters):
    """Live counters between rows: the status line moves (throttled as `write`)."""
    self.write(step, {key: counters[key] for key in PROGRESS_KEYS if key in counters})

  def _write_tty(self, step, metrics, results):
    width = max(20, shutil.get_terminal_size((100, 24)).columns - 1)
    status = self.status(step)[:width]
    text = ''
    if results:
      # Erase the status line, print the results for good, redraw the status below.
      text += '\r' + ' ' * self._status_width + '\r'
      text += self.details(step, metrics, results) + '\n'
      self._status_width = 0
    # Spaces, not an ANSI erase code, clear the rest of a longer previous line.
    padding = ' ' * max(0, self._status_width - len(status))
    text += '\r' + status + padding
    self._status_width = len(status)
    self._emit(text)

  def _write_plain(self, step, metrics, results):
    # A return this row holds is listed with the results, not repeated in the status.
    line = self.status(step, exclude=results)
    if results:
      line += ' | ' + self.details(step, metrics, results, prefix=False)
    self._emit(line + '\n')

  def status(self, step, exclude=()):
    """The status line for `step` from the counters and rates seen so far.

    `exclude` may name `train_return` / `eval_return` to leave their last values out.
    """
    budget = self._progress.get('steps_budget')
    if budget:
      parts = [
          f'{format_number(step)}/{format_number(int(budget))} steps '
          f'{100 * step / budget:.1f}%']
    else:
      parts = [f'{format_number(step)} steps']
    if 'frames' in self._progress:
      parts.append(f"{format_number(int(self._progress['frames']))} frames")
    # Measured here rather than read from the row's `fps`, which the reference counts
    # in frames (agent steps x action repeat).
    step_rate = self._step_rate.value
    if step_rate is not None:
      parts.append(f'{float(step_rate):.1f} steps/s')
    train_rate = self._train_rate.value
    if train_rate is None:
      train_rate = self._progress.get('train_fps')
    if train_rate is not None:
      parts.append(f'{float(train_rate):.1f} train/s')
    if 'train_return' not in exclude and self._last_return is not None:
      parts.append(f'return {format_number(self._last_return)}')
    if 'eval_return' not in exclude and self._last_eval is not None:
      parts.append(f'eval {format_number(self._last_eval)}')
    if budget:
      rate = self._step_rate.value
      if step >= budget:
        parts.append('done')
      elif self._progress.get('updates') == 0:
        parts.append('ETA after prefill')  # Training, the slow part, has not begun.
      elif rate:
        parts.append(f'ETA {format_duration((budget - step) / rate)}')
      else:
        parts.append('ETA ?')
    return ' | '.join(parts)

  @staticmethod
  def details(step, metrics, keys, prefix=True):
    """`[step] key value / key value ...` for the given result keys."""
    text = ' / '.join(f'{key} {format_number(metrics[key])}' for key in keys)
    return f'[{format_number(step)}] {text}' if prefix else text

  def _emit(self, text):
    try:
      self.stream.write(text)
      self.stream.flush()
    except (BrokenPipeError, ValueError):
      pass  # The reader went away (`dreamkit train | head`); training goes on.

  def flush(self):
    try:
      self.stream.flush()
    except (BrokenPipeError, ValueError):
      pass

  def close(self):
    if self.is_tty and self._skipped_step is not None:
      self._write_tty(self._skipped_step, {}, [])
      self._skipped_step = None
    if self.is_tty and self._status_width:
      # Keep the last status visible and leave the cursor on a fresh line.
      self._emit('\n')
      self._status_width = 0
    self.flush()
