"""The sweep's live view: one table of trials (status, step, last eval return, ETA).

On a terminal the table is redrawn in place at most once a second; into a file or a
pipe, a line is printed whenever a trial starts, finishes or fails, and the whole
table at the end.
"""

import math
import shutil
import sys
import threading
import time

from ray import tune

PENDING, RUNNING, FINISHED, STOPPED, FAILED, SKIPPED = (
    'pending', 'running', 'finished', 'stopped early', 'FAILED', 'done before')


class Table:
  """The state of every trial and its rendering."""

  def __init__(self, names, stream=None, interval=1.0):
    self.stream = stream or sys.stdout
    self.interactive = self.stream.isatty()
    self.interval = interval
    self.rows = {}
    self.lock = threading.Lock()
    self.drawn_lines = 0
    self.last_draw = 0.0
    for name in names:
      self.add(name)

  def __getstate__(self):
    # Tune pickles its callbacks with the experiment's state: the stream and the lock
    # stay behind (an unpickled table prints to standard output).
    return {k: v for k, v in self.__dict__.items() if k not in ('stream', 'lock')}

  def __setstate__(self, state):
    self.__dict__.update(state, stream=sys.stdout, lock=threading.Lock())

  def add(self, name):
    """A row for trial `name` (pending), unless it has one."""
    self.rows.setdefault(name, {'status': PENDING, 'step': None, 'budget': None,
                                'eval_return': None, 'eta': None, 'seen': None})

  def skipped(self, name, eval_return=None, step=None):
    self.update(name, status=SKIPPED, eval_return=eval_return, step=step)

  def update(self, name, **values):
    """Sets a trial's values; a change of status is announced (or drawn)."""
    with self.lock:
      row = self.rows[name]
      changed = 'status' in values and values['status'] != row['status']
      row.update({k: v for k, v in values.items() if v is not None or k == 'status'})
      if 'step' in values and values['step'] is not None:
        self._estimate(row, values['step'])
      if changed and not self.interactive:
        self.stream.write(f"{name}: {row['status']}{self._detail(row)}\n")
        self.stream.flush()
    self.draw(force=changed)

  @staticmethod
  def _estimate(row, step):
    """ETA from the steps this sweep saw the trial take, and the seconds it took."""
    now = time.monotonic()
    if row['seen'] is None or step < row['seen'][1]:
      row['seen'] = (now, step)
      return
    start, first = row['seen']
    if row['budget'] and step > first and now > start:
      rate = (step - first) / (now - start)
      row['eta'] = max(0.0, (row['budget'] - step) / rate)

  @staticmethod
  def _detail(row):
    parts = []
    if row['step'] is not None:
      parts.append(f"step {int(row['step']):,}")
    if row['eval_return'] is not None:
      parts.append(f"eval_return {row['eval_return']:.4g}")
    return f" ({', '.join(parts)})" if parts else ''

  def text(self):
    """The table as lines of text."""
    header = ('trial', 'status', 'step', 'eval return', 'ETA')
    lines = []
    for name, row in self.rows.items():
      step = '' if row['step'] is None else f"{int(row['step']):,}"
      if row['budget'] and row['step'] is not None:
        step += f"/{int(row['budget']):,}"
      value = row['eval_return']
      shown = '' if value is None or not math.isfinite(value) else f'{value:.4g}'
      eta = _duration(row['eta']) if row['status'] == RUNNING and row['eta'] else ''
      lines.append((name, row['status'], step, shown, eta))
    widths = [max(len(str(r[i])) for r in [header, *lines]) for i in range(len(header))]
    def fmt(cells):
      return '  '.join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    counts = {}
    for row in self.rows.values():
      counts[row['status']] = counts.get(row['status'], 0) + 1
    summary = ', '.join(f'{count} {status}' for status, count in counts.items())
    return [fmt(header), *[fmt(line) for line in lines], f'{len(self.rows)} trials: {summary}']

  def draw(self, force=False):
    """Redraws the table in place on a terminal (at most once per `interval`)."""
    if not self.interactive:
      return
    with self.lock:
      now = time.monotonic()
      if not force and now - self.last_draw < self.interval:
        return
      self.last_draw = now
      width = shutil.get_terminal_size((100, 20)).columns
      lines = [line[:width - 1] for line in self.text()]
      up = f'\x1b[{self.drawn_lines}F' if self.drawn_lines else ''
      self.stream.write(up + '\x1b[J' + '\n'.join(lines) + '\n')
      self.stream.flush()
      self.drawn_lines = len(lines)

  def final(self):
    """The table once more, whole: on a terminal in place, else printed below."""
    if self.interactive:
      self.draw(force=True)
    else:
      self.stream.write('\n'.join(self.text()) + '\n')
      self.stream.flush()


def _duration(seconds):
  seconds = int(seconds)
  if seconds >= 3600:
    return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'
  if seconds >= 60:
    return f'{seconds // 60}m{seconds % 60:02d}s'
  return f'{seconds}s'


class Reporter(tune.Callback):
  """Feeds Tune's trial events into a `Table` (the driver's process)."""

  def __init__(self, table, name_of, finished):
    self.table = table
    self.name_of = name_of  # Tune trial -> the sweep's trial name.
    self.finished = finished  # Tune trial -> whether it ran to its end.

  def on_trial_start(self, iteration, trials, trial, **info):
    self.table.update(self.name_of(trial), status=RUNNING)

  def on_trial_restore(self, iteration, trials, trial, **info):
    self.table.update(self.name_of(trial), status=RUNNING)

  def on_trial_result(self, iteration, trials, trial, result, **info):
    values = {key: result.get(key) for key in ('step', 'eval_return', 'steps_budget')}
    values = {key: (None if value is None or (isinstance(value, float) and math.isnan(value))
                    else value) for key, value in values.items()}
    self.table.update(self.name_of(trial), step=values['step'],
                      eval_return=values['eval_return'], budget=values['steps_budget'])

  def on_trial_complete(self, iteration, trials, trial, **info):
    self.table.update(self.name_of(trial),
                      status=FINISHED if self.finished(trial) else STOPPED)

  def on_trial_error(self, iteration, trials, trial, **info):
    self.table.update(self.name_of(trial), status=FAILED)

  def on_step_end(self, iteration, trials, **info):
    self.table.draw()
