"""What changes with the step: hyperparameter schedules, and periodic work (`Every`).

    schedule(0.003, step)                    # a number: constant
    schedule('0.003', step)                  # a plain float string: constant
    schedule('linear(0.1,0,2.5e6)', step)    # 0.1 -> 0 over 2.5e6 steps, then 0
    schedule('warmup(1e4,0.1)', step)        # 0 -> 0.1 over 1e4 steps, then 0.1
    schedule('exp(1,0.1,1e5)', step)         # 1 decaying to 0.1 with half-life 1e5

`step` may be a Python number, a tensor or a `tf.Variable` read inside a `tf.function`:
the string is parsed once (`parse`) and only the arithmetic runs in the graph, so a
component parses its schedules in `__init__` and evaluates them in `train`.
"""

import math
import re

import tensorflow as tf

from dreamkit.errors import ConfigError

_NUMBER = r'\s*([-+0-9.eE]+)\s*'
_FORMS = {
    'linear': re.compile(rf'^linear\({_NUMBER},{_NUMBER},{_NUMBER}\)$'),
    'warmup': re.compile(rf'^warmup\({_NUMBER},{_NUMBER}\)$'),
    'exp': re.compile(rf'^exp\({_NUMBER},{_NUMBER},{_NUMBER}\)$'),
}
ACCEPTED = (
    "a number, a float string ('3e-4'), 'linear(start,end,steps)', "
    "'warmup(steps,value)' or 'exp(start,end,halflife)'")


class Schedule:
  """A parsed schedule: `value = schedule_object(step)` (float32 scalar tensor)."""

  def __init__(self, spec, kind, args):
    self.spec = spec
    self.kind = kind
    self.args = args

  def __call__(self, step):
    if self.kind == 'constant':
      return tf.constant(self.args[0], tf.float32)
    step = tf.cast(step, tf.float32)
    if self.kind == 'linear':
      start, end, steps = self.args
      mix = tf.clip_by_value(step / steps, 0.0, 1.0)
      return (1 - mix) * start + mix * end
    if self.kind == 'warmup':
      steps, value = self.args
      return tf.clip_by_value(step / steps, 0.0, 1.0) * value
    start, end, halflife = self.args
    return (start - end) * 0.5 ** (step / halflife) + end

  def __repr__(self):
    return f'Schedule({self.spec!r})'


def parse(spec, name='schedule'):
  """Parse `spec` (number or string) into a `Schedule`.

  `name` is the binding that gave it (`ActorCritic.actor_ent`), or a function that
  returns it; errors start with it. Components parse in `__init__`, so a bad string
  is refused when the run is built, not at the first update.
  """
  if isinstance(spec, Schedule):
    return spec

  def refuse(problem=''):
    where = name() if callable(name) else name
    return ConfigError(f'{where} must be {ACCEPTED}, got {spec!r}{problem}.')

  if isinstance(spec, bool) or not isinstance(spec, (int, float, str)):
    raise refuse()
  if isinstance(spec, (int, float)):
    if not math.isfinite(spec):
      raise refuse()
    return Schedule(spec, 'constant', (float(spec),))
  text = spec.strip()
  try:
    value = float(text)
  except ValueError:
    pass
  else:
    if not math.isfinite(value):
      raise refuse()
    return Schedule(spec, 'constant', (value,))
  for kind, pattern in _FORMS.items():
    match = pattern.match(text)
    if not match:
      continue
    try:
      args = tuple(float(group) for group in match.groups())
    except ValueError:
      break
    if not all(math.isfinite(arg) for arg in args):
      break
    duration = args[2] if kind in ('linear', 'exp') else args[0]
    if duration <= 0:
      raise refuse(f' (its step count, {duration:g}, must be positive)')
    return Schedule(spec, kind, args)
  raise refuse()


class Every:
  """`should(step)` is True once each time `step` reaches the next multiple of `every`.

      should_log = Every(1000, start=step)     # every <= 0: never
      if should_log(step): ...

  Counting from `start` lets a resumed run keep the same rhythm without firing for
  every period it skipped while it was down.
  """

  def __init__(self, every, start=0):
    self.every = int(every)
    self._last = None if self.every <= 0 else (int(start) // self.every) * self.every

  def __call__(self, step):
    if self.every <= 0:
      return False
    if step >= self._last + self.every:
      self._last = (int(step) // self.every) * self.every
      return True
    return False


def schedule(spec, step):
  """The value of `spec` at `step` as a float32 scalar tensor (see the module doc)."""
  return parse(spec)(step)
