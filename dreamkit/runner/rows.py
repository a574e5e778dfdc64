"""The run's metrics rows: what the outputs receive, and when.

    rows = Rows(outputs, counters, action_repeat, budget)
    rows.update(metrics)            # after every update: kept until the next row
    rows.write(step, replay_steps)  # a row of the updates' means and the rates
    rows.episode(episode)           # a row per finished training episode
    rows.evaluation(returns, lengths, extra)
    rows.progress()                 # live counters, at most once a second
    with rows.prefilling(steps):    # progress names the step the prefill ends at
    rows.record_wall_time()         # before saving a checkpoint
    recorded_counters(logdir / 'metrics.jsonl', replay.stats)  # what a logdir reached

Counters are the run's `Counters` (agent steps, updates, episodes, wall time). Frames
are agent steps times the env's action repeat, as the reference counts them.
`wall_time` in a row is the seconds of training since the run first started, summed
across resumes: the checkpoint carries the total up to its save, and this process
adds the seconds since it started (the time between a run's last checkpoint and its
stop is lost, as are its rows after that checkpoint).

Counters never go backwards: a run resumed from its logdir starts them from the
largest of its checkpoint's values and `recorded_counters`, what its metrics rows
and its stored episodes show it reached (the reference counts its steps from its
stored episodes alone, which a capacity or `minlen` makes an undercount).
"""

import collections
import contextlib
import dataclasses
import json
import math
import time

import numpy as np
import tensorflow as tf

PROGRESS_SECONDS = 1.0  # between live progress updates to the outputs


@dataclasses.dataclass
class Counters:
  """The run's counters, tf.Variables so that the checkpoint carries them."""
  step: tf.Variable       # agent steps (env steps after action repeat)
  updates: tf.Variable    # training updates (world model + actor-critic)
  episodes: tf.Variable   # finished training episodes
  wall_time: tf.Variable  # seconds of training up to the last checkpoint (float64)

  @classmethod
  def create(cls):
    make = lambda name: tf.Variable(0, dtype=tf.int64, trainable=False, name=name)
    wall_time = tf.Variable(0.0, dtype=tf.float64, trainable=False, name='wall_time')
    return cls(make('step'), make('updates'), make('episodes'), wall_time)

  def as_dict(self):
    return {'step': self.step, 'updates': self.updates, 'episodes': self.episodes,
            'wall_time': self.wall_time}

  def advance_to(self, reached):
    """Raises each counter named in `reached` ({name: value}) to at least that value.

    Returns the names that moved.
    """
    moved = []
    for name, value in reached.items():
      counter = getattr(self, name)
      if value > counter.numpy():
        counter.assign(tf.cast(value, counter.dtype))
        moved.append(name)
    return moved


def recorded_counters(metrics_path, replay_stats):
  """The counters a logdir's record shows its run reached, at least.

  Args:
    metrics_path: its `metrics.jsonl` (missing: no rows). Lines that do not parse
      (a torn last line from a killed run) are skipped.
    replay_stats: its replay store's `stats`, right after reopening: each stored
      episode of T steps (`total_steps`, `total_episodes`) is T - 1 agent steps
      after its first.

  Returns:
    {'step', 'episodes', 'updates', 'wall_time'}: the largest value of each in the
    rows, the step and episodes at least the replay's.
  """
  episodes = int(replay_stats.get('total_episodes', replay_stats.get('episodes', 0)))
  steps = int(replay_stats.get('total_steps', replay_stats.get('steps', 0)))
  reached = {'step': max(0, steps - episodes), 'episodes': episodes, 'updates': 0,
             'wall_time': 0.0}
  try:
    lines = metrics_path.read_bytes().splitlines()
  except FileNotFoundError:
    lines = []
  for line in lines:
    try:
      row = json.loads(line)
    except ValueError:
      continue
    if not isinstance(row, dict):
      continue
    for name, value in row.items():
      if (name in reached and isinstance(value, (int, float))
          and not isinstance(value, bool) and math.isfinite(value)):
        reached[name] = max(reached[name], type(reached[name])(value))
  return reached


class Rows:
  """Turns updates, episodes and evaluations into rows for every output."""

  def __init__(self, outputs, counters, action_repeat, budget):
    self.outputs = outputs
    self.counters = counters
    self.action_repeat = int(action_repeat)
    self.budget = int(budget)
    self.metrics = collections.defaultdict(list)
    # counters.wall_time holds the seconds up to its last record (a restore sets it
    # to the checkpoint's); the seconds since then are counted from here.
    self._recorded_at = time.time()
    self._clock = {'time': self._recorded_at, 'step': int(counters.step),
                   'updates': int(counters.updates)}
    self._last_progress = 0.0
    self._prefill_until = None  # The step the prefill ends at, while it runs.

  def update(self, metrics):
    for key, value in metrics.items():
      self.metrics[key].append(float(np.mean(value)))

  def emit(self, step, row):
    for output in self.outputs:
      output.write(step, row)

  def wall_time(self, now=None):
    """Seconds of training since the run first started, summed across resumes."""
    now = time.time() if now is None else now
    return float(self.counters.wall_time) + (now - self._recorded_at)

  def record_wall_time(self):
    """Moves the seconds counted so far into counters.wall_time (before a save)."""
    now = time.time()
    self.counters.wall_time.assign(self.wall_time(now))
    self._recorded_at = now

  def frames(self, step):
    return step * self.action_repeat

  def write(self, step, replay_steps):
    """A row of the means of the updates since the last row, and the rates."""
    now = time.time()
    row = {
        # Counters (`*_skipped`) are totals: their latest value, not a window mean.
        key: float(values[-1] if key.endswith('_skipped') else np.mean(values))
        for key, values in self.metrics.items() if values}
    if not row:
      return  # Nothing trained since the last row.
    elapsed = max(now - self._clock['time'], 1e-9)
    steps = step - self._clock['step']
    updates = int(self.counters.updates)
    row.update(
        frames=self.frames(step),
        fps=steps * self.action_repeat / elapsed,  # frames/s, as the reference logs
        step_fps=steps / elapsed,                  # agent steps/s
        train_fps=(updates - self._clock['updates']) / elapsed,
        updates=updates, episodes=int(self.counters.episodes),
        replay_steps=int(replay_steps), steps_budget=self.budget,
        wall_time=self.wall_time(now))
    self._clock = {'time': now, 'step': step, 'updates': updates}
    self.metrics.clear()
    self.emit(step, row)

  def episode(self, episode):
    """A row per finished training episode, as the reference logs them."""
    step = int(self.counters.step)
    self.emit(step, {
        'train_return': float(np.sum(episode['reward'])),
        'train_length': len(episode['reward']) - 1,
        'frames': self.frames(step), 'episodes': int(self.counters.episodes),
        'updates': int(self.counters.updates), 'steps_budget': self.budget})

  def evaluation(self, returns, lengths, extra=None):
    step = int(self.counters.step)
    row = {'eval_return': float(np.mean(returns)), 'eval_length': float(np.mean(lengths)),
           'frames': self.frames(step), 'wall_time': self.wall_time()}
    row.update(extra or {})
    self.emit(step, row)

  def progress(self, force=False):
    """Live counters for the outputs that show progress (the terminal's status line)."""
    now = time.time()
    if not force and now - self._last_progress < PROGRESS_SECONDS:
      return
    self._last_progress = now
    step = int(self.counters.step)
    counters = {'frames': self.frames(step), 'updates': int(self.counters.updates),
                'steps_budget': self.budget}
    if self._prefill_until is not None:
      counters['prefill_until'] = self._prefill_until
    for output in self.outputs:
      output.progress(step, counters)

  @contextlib.contextmanager
  def prefilling(self, steps):
    """While the random prefill of `steps` agent steps runs, progress says where
    it ends (`prefill_until`), so a status line can show its progress and ETA."""
    self._prefill_until = int(self.counters.step) + int(steps)
    try:
      yield
      self.progress(force=True)  # The prefill's last step, shown before the build.
    finally:
      self._prefill_until = None

  def flush(self):
    for output in self.outputs:
      output.flush()
