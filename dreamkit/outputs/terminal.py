"""Training progress on the terminal: a live status line, and one line per result."""

import logging
import math
import shutil
import sys
import threading
import time

from dreamkit import validate
from dreamkit.outputs import registry
from dreamkit.outputs.base import Output

# Counters and rates the status line shows; every other key is a result.
PROGRESS_KEYS = ('steps_budget', 'frames', 'updates', 'fps', 'step_fps', 'train_fps',
                 'prefill_until')

# Shortest time between two redraws of the TTY status line for progress-only rows:
# redrawing on every env step would cost more than it shows.
TTY_REFRESH_SECONDS = 0.2

# Results are listed in this order, then the remaining keys alphabetically.
IMPORTANT_KEYS = (
    'train_return', 'train_length', 'eval_return', 'eval_length',
    'model_loss', 'kl_loss', 'image_loss', 'reward_loss', 'discount_loss',
    'actor_loss', 'critic_loss', 'actor_ent')

# Results whose last value the status line keeps showing, as space allows.
STATUS_RESULTS = (
    ('train_return', 'return'), ('eval_return', 'eval'), ('model_loss', 'model_loss'),
    ('actor_loss', 'actor_loss'), ('critic_loss', 'critic_loss'))

# Erase from the cursor to the end of the line (ANSI, understood by every terminal).
_ERASE = '\x1b[K'


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


def format_budget(count):
  """A step budget, short: `50,000`, `1M`, `12.5M`, `1.2G` (the step shows in full)."""
  count = int(count)
  for size, suffix in ((10**9, 'G'), (10**6, 'M')):
    if count >= size:
      return f'{count / size:.3g}{suffix}'
  return f'{count:,}'


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

  The status line leads with what a glance looks for, the step, the rate and the
  ETA, then the last returns and losses and the update rate as the width allows
  (a part that does not fit is left out whole; the ETA is the last to go):

      1,200/50,000 steps 2.4% | 81.3 steps/s | ETA 10m00s | return 12 | eval 15.5 |
      model_loss 3.1 | actor_loss -0.2 | critic_loss 0.6 | 16.2 train/s | 4,800 frames

  While rows report `updates` 0 and progress names `prefill_until` (the step at
  which the random prefill ends), the status shows the prefill's own progress and
  ETA: `120/50,000 steps 0.2% | prefill 120/500 | 856.4 steps/s | prefill ETA 0s`.
  The step rate restarts when training starts: the prefill's says nothing about it.

  A row with results (any key besides the progress counters `steps_budget`,
  `frames`, `updates`, `fps`, `step_fps`, `train_fps`, `prefill_until`) also
  prints a permanent line:

      [1,200] train_return 12 / train_length 180 / model_loss 3.1 / kl_loss 1.02 / ...

  On a TTY, the status line is redrawn in place and result lines scroll above it.
  While it is on screen, whatever else the process writes to `sys.stdout`,
  `sys.stderr` or a logging handler on them (a component's print, a warning) first
  clears it, gets a line of its own, and the status line is redrawn below. Elsewhere
  (CI logs, files) every line ends with a newline and holds no control characters:
  results print as `<status> | <results>`, and rows with only progress print at
  most once every `interval` seconds.

  Args:
    logdir: unused; outputs are built with the run directory.
    stream: text stream to write to; `sys.stdout` if None (then, on a TTY, other
      output is routed around the status line as above).
    interval: seconds between progress-only lines when not on a TTY.
    tty: force TTY (True) or plain (False) mode; detected from `stream` if None.
    rate_horizon: seconds over which the step rates are smoothed.
  """

  def __init__(
      self, logdir=None, stream=None, interval=30.0, tty=None, rate_horizon=60.0):
    del logdir
    args = validate.Arguments(self)
    self._stream = stream
    self._interval = args.non_negative(interval, 'interval')
    self._tty = None if tty is None else args.boolean(tty, 'tty')
    rate_horizon = args.positive(rate_horizon, 'rate_horizon')
    self._clock = time.monotonic
    self._step_rate = _Rate(rate_horizon)
    self._train_rate = _Rate(rate_horizon)
    self._last_plain = None
    self._last_redraw = None
    self._step = None       # The step the status line shows.
    self._skipped = False   # A redraw was skipped (throttled); shown on close.
    self._progress = {}
    self._results = {}      # The last value of each STATUS_RESULTS key.
    self._lock = threading.RLock()  # Other threads may print while we draw.
    self._on_screen = False  # The status line is drawn; the cursor is at its end.
    self._hidden = False     # Cleared for another writer's line, to be redrawn.
    self._partial = False    # Another writer left a line without its newline.
    self._routed = None      # _Routing while sys.stdout / sys.stderr go through us.

  @property
  def stream(self):
    if self._stream is not None:
      return self._stream
    if self._routed is not None:
      return self._routed.stdout
    return sys.stdout

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
    with self._lock:
      self._write(int(step), metrics)

  def _write(self, step, metrics):
    now = self._clock()
    if self._progress.get('updates') == 0 and metrics.get('updates', 0) > 0:
      # Training has started: the prefill's rates say nothing about the ETA now.
      self._step_rate = _Rate(self._step_rate.horizon)
      self._train_rate = _Rate(self._train_rate.horizon)
    self._progress.update(
        {key: metrics[key] for key in PROGRESS_KEYS if key in metrics})
    if self._progress.get('updates'):
      self._progress.pop('prefill_until', None)
    self._step_rate.update(now, step)
    if 'updates' in metrics:
      self._train_rate.update(now, float(metrics['updates']))
    self._results.update(
        {key: metrics[key] for key, _ in STATUS_RESULTS if key in metrics})
    self._step = step
    results = ordered_results(metrics)
    if self.is_tty:
      prefill_until = self._prefill_until()
      milestone = prefill_until is not None and step >= prefill_until
      if results or milestone or self._last_redraw is None or (
          now - self._last_redraw >= TTY_REFRESH_SECONDS):
        self._last_redraw = now
        self._write_tty(step, metrics, results)
        self._skipped = False
      else:
        self._skipped = True
    elif results or self._last_plain is None or (
        now - self._last_plain >= self._interval):
      self._last_plain = now
      self._write_plain(step, metrics, results)

  def progress(self, step, counters):
    """Live counters between rows: the status line moves (throttled as `write`)."""
    self.write(step, {key: counters[key] for key in PROGRESS_KEYS if key in counters})

  def _write_tty(self, step, metrics, results):
    self._route_other_output()
    text = ''
    if results or not self._on_screen:
      text = self._leave_status_line()
    if results:
      # Printed for good where the status line was; the status line comes below.
      text += self.details(step, metrics, results) + '\n'
    text += '\r' + self.status(step, width=status_width()) + _ERASE
    self._on_screen, self._hidden = True, False
    self._emit(text)

  def _leave_status_line(self):
    """Text that puts the cursor at the start of a clean line."""
    if self._on_screen:
      text = '\r' + _ERASE
    elif self._partial:
      text = '\n'
    else:
      text = ''
    self._on_screen = self._partial = False
    return text

  def _write_plain(self, step, metrics, results):
    # A return or loss this row holds is listed with the results, not repeated.
    line = self.status(step, exclude=results)
    if results:
      line += ' | ' + self.details(step, metrics, results, prefix=False)
    self._emit(line + '\n')

  def _prefill_until(self):
    """The step at which the prefill ends, while the rows say it runs; else None."""
    if self._progress.get('updates') == 0 and self._progress.get('prefill_until'):
      return int(self._progress['prefill_until'])
    return None

  def status(self, step, width=None, exclude=()):
    """The status line for `step` from the counters, rates and results seen so far.

    With `width`, the parts that fit, in order of importance (ETA, step, prefill,
    rate, then the rest) but shown in their usual order. `exclude` names result
    keys (`train_return`, `model_loss`, ...) to leave out.
    """
    parts = self._status_parts(step, exclude)  # [(importance, text)], 0 first
    if width is None:
      return ' | '.join(text for _, text in parts)
    kept, used = set(), -len(' | ')
    for index in sorted(range(len(parts)), key=lambda index: parts[index][0]):
      size = len(' | ') + len(parts[index][1])
      if used + size <= width:
        kept.add(index)
        used += size
    if not kept:  # A terminal narrower than the ETA alone.
      return min(parts)[1][:width]
    return ' | '.join(text for index, (_, text) in enumerate(parts) if index in kept)

  def _status_parts(self, step, exclude):
    budget = self._progress.get('steps_budget')
    prefill_until = self._prefill_until()
    rate = self._step_rate.value
    parts = []
    if budget:
      parts.append((3 if prefill_until else 1, f'{format_number(step)}/'
                    f'{format_budget(budget)} steps {100 * step / budget:.1f}%'))
    else:
      parts.append((1, f'{format_number(step)} steps'))
    if prefill_until:
      parts.append((1, f'prefill {format_number(min(step, prefill_until))}/'
                       f'{format_number(prefill_until)}'))
    # Measured here rather than read from the row's `fps`, which the reference counts
    # in frames (agent steps x action repeat).
    if rate is not None:
      parts.append((2, f'{float(rate):.1f} steps/s'))
    eta = self._eta(step, budget, prefill_until, rate)
    if eta:
      parts.append((0, eta))
    for importance, (key, label) in enumerate(STATUS_RESULTS, start=4):
      if key in self._results and key not in exclude:
        parts.append((importance, f'{label} {format_number(self._results[key])}'))
    train_rate = self._train_rate.value
    if train_rate is None:
      train_rate = self._progress.get('train_fps')
    if train_rate is not None and not prefill_until:
      parts.append((10, f'{float(train_rate):.1f} train/s'))
    if 'frames' in self._progress:
      parts.append((11, f"{format_number(int(self._progress['frames']))} frames"))
    return parts

  def _eta(self, step, budget, prefill_until, rate):
    if prefill_until:
      if step >= prefill_until:
        return 'prefill done'
      return f'prefill ETA {format_duration((prefill_until - step) / rate)}' \
          if rate else 'prefill ETA ?'
    if not budget:
      return None
    if step >= budget:
      return 'done'
    if rate and self._progress.get('updates') != 0:
      return f'ETA {format_duration((budget - step) / rate)}'
    return 'ETA ?'  # No rate yet, or training (the slow part) has not begun.

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

  # Other writers, while the status line is on screen.

  def _route_other_output(self):
    if self._routed is None and self._stream is None:
      self._routed = _Routing(self)

  def _write_other(self, target, text):
    """Writes another writer's `text` to `target` on lines of its own."""
    with self._lock:
      if not text:
        return 0
      if self._on_screen:
        self._emit(self._leave_status_line())
        self._hidden = True
      written = target.write(text)
      if text.endswith('\n'):
        self._partial = False
        target.flush()
        if self._hidden and self._step is not None:
          self._write_tty(self._step, {}, [])
      else:
        self._partial = True
      return written

  def flush(self):
    try:
      self.stream.flush()
    except (BrokenPipeError, ValueError):
      pass

  def close(self):
    with self._lock:
      if self.is_tty and self._skipped and self._step is not None:
        self._write_tty(self._step, {}, [])
        self._skipped = False
      if self._on_screen:
        # Keep the last status visible and leave the cursor on a fresh line.
        self._emit('\n')
        self._on_screen = False
      if self._routed is not None:
        self._routed.restore()
        self._routed = None
      self.flush()


def status_width():
  """Columns the status line may use: the terminal's, less one (no line wrap)."""
  return max(20, shutil.get_terminal_size((100, 24)).columns - 1)


class _RoutedStream:
  """Stands in for sys.stdout or sys.stderr while the status line is on screen."""

  def __init__(self, terminal, target):
    self._terminal = terminal
    self.target = target

  def write(self, text):
    return self._terminal._write_other(self.target, text)  # pylint: disable=protected-access

  def writelines(self, lines):
    for line in lines:
      self.write(line)

  def flush(self):
    self.target.flush()

  def __getattr__(self, name):  # fileno, isatty, encoding, buffer, ...
    return getattr(self.target, name)


class _Routing:
  """sys.stdout, sys.stderr and the logging handlers on them, routed to a Terminal.

  Logging handlers keep the stream they were built with (TensorFlow's logger holds
  the sys.stderr of its import), so they are routed one by one. `restore()` puts
  back each stream that is still ours.
  """

  def __init__(self, terminal):
    self.stdout, self.stderr = sys.stdout, sys.stderr
    self._stdout = _RoutedStream(terminal, self.stdout)
    self._stderr = _RoutedStream(terminal, self.stderr)
    sys.stdout, sys.stderr = self._stdout, self._stderr
    self._handlers = []
    for handler in _stream_handlers():
      stream = handler.stream
      if stream is self.stdout or stream is self.stderr:
        handler.setStream(self._stdout if stream is self.stdout else self._stderr)
        self._handlers.append((handler, stream))

  def restore(self):
    if sys.stdout is self._stdout:
      sys.stdout = self.stdout
    if sys.stderr is self._stderr:
      sys.stderr = self.stderr
    for handler, stream in self._handlers:
      if handler.stream is self._stdout or handler.stream is self._stderr:
        handler.setStream(stream)


def _stream_handlers():
  loggers = [logging.getLogger()] + [
      logger for logger in list(logging.Logger.manager.loggerDict.values())
      if isinstance(logger, logging.Logger)]
  return [handler for logger in loggers for handler in logger.handlers
          if isinstance(handler, logging.StreamHandler)]
