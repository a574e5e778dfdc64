"""N copies of an env stepped together: the interface the driver steps, the in-process
implementation (`ParallelEnvs` in parallel.py steps copies in workers), and what both
do when a copy fails.

    envs = SerialEnvs.from_task('gym:CartPole-v1', num=2, seed=0)
    first = envs.reset([0, 1])          # step dicts, in the order of the indices
    steps = envs.step(actions)          # actions [N, A]: one step dict per copy
    envs.close()

A copy that fails (its simulator raises, its worker dies or stops answering) is
restarted: built again, reset, and its answer to that call is the fresh episode's
first step dict (`is_first`), so the driver drops the unfinished episode. After
`max_restarts` restarts of one copy in a row (no finished episode in between) the
next failure raises `EnvFailed`, which stops the run with one line.
"""

import logging
import signal

import gin
import numpy as np

from dreamkit.envs.base import Env
from dreamkit import validate
from dreamkit.errors import UserError

DEFAULT_MAX_RESTARTS = 5


class EnvFailed(UserError):
  """One env copy failed more than `max_restarts` times in a row: the run stops."""


def copy_seed(seed, index, restarts=0):
  """The seed of copy `index` after `restarts` restarts; None leaves seeding to the env.

  A first start gets `seed + index` (so copies differ); a restarted copy gets a seed
  of its own, so it does not replay the episodes it already played.
  """
  if seed is None:
    return None
  if not restarts:
    return int(seed) + index
  return int(np.random.SeedSequence([int(seed), index, restarts]).generate_state(1)[0]
             % 2**31)


def summary(error):
  """One line about a failure: the first line of its message."""
  text = str(error).strip().splitlines()
  return text[0] if text else type(error).__name__


class BatchedEnvs:
  """`num` copies of one env; `obs_space`, `act_space`, `action_repeat` as an Env's.

  `reset(indices)` resets the copies named and returns their first step dicts;
  `step(actions)` steps every copy with its row of `actions` and returns the N step
  dicts in copy order. How the copies run (one after another, in workers) is the
  implementation's. A copy that was restarted during a call answers with a first
  step dict (`is_first`) even to `step`; `restarts` counts the restarts so far and
  `on_restart(callback)` calls `callback(index, reason)` after each.
  """

  num = 0
  obs_space = None
  act_space = None
  action_repeat = 1
  restarts = 0
  max_restarts = DEFAULT_MAX_RESTARTS

  def reset(self, indices):
    raise NotImplementedError

  def step(self, actions):
    raise NotImplementedError

  def close(self):
    """Release every copy."""

  def on_restart(self, callback):
    """Calls `callback(index, reason)` after copy `index` was restarted."""
    self._restart_callbacks.append(callback)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  # For implementations (call `_setup_restarts` in __init__, once `num` is set): the
  # bookkeeping of failures and restarts.

  def _setup_restarts(self, max_restarts):
    self.max_restarts = validate.Arguments(self).int_at_least(
        max_restarts, 'max_restarts', 0,
        '(0 or more: restarts of one env copy in a row before the run stops)')
    self.restarts = 0
    self._restart_callbacks = []
    self._in_a_row = [0] * self.num     # failures since the copy last ended an episode
    self._copy_restarts = [0] * self.num  # restarts of each copy, ever (for seeds)

  def _failed(self, index, what, reason):
    """Counts a failure of copy `index`; raises EnvFailed when it is one too many."""
    self._in_a_row[index] += 1
    if self._in_a_row[index] > self.max_restarts:
      raise EnvFailed(
          f'{what} failed {self._in_a_row[index]} times in a row without finishing an '
          f'episode; stopping. Last failure: {summary(reason)} (allowed: '
          f'{type(self).__name__}.max_restarts = {self.max_restarts} restarts in a row; '
          'docs/envs.md).')

  def _restarted(self, index, what, reason):
    self.restarts += 1
    self._copy_restarts[index] += 1
    logging.warning(
        '%s failed and was restarted (%d in a row, %d restarts in all); its unfinished '
        'episode was dropped. The failure: %s', what, self._in_a_row[index],
        self.restarts, reason)
    for callback in self._restart_callbacks:
      callback(index, summary(reason))

  def _answered(self, indices, results):
    """A copy that ends an episode is healthy again: its failures in a row reset."""
    for index, obs in zip(indices, results):
      if obs['is_last']:
        self._in_a_row[index] = 0


def raised_by_signal_handler(error):
  """Whether `error` came from a Python signal handler (SIGTERM's stop, say).

  Such an exception is the process being told to stop, not the env failing, whatever
  its class; it must pass through the env's error handling.
  """
  handlers = set()
  for number in signal.valid_signals():
    try:
      handler = signal.getsignal(number)
    except (ValueError, OSError):
      continue
    code = getattr(handler, '__code__', None)
    if code is not None:
      handlers.add(code)
  traceback = error.__traceback__
  while traceback is not None:
    if traceback.tb_frame.f_code in handlers:
      return True
    traceback = traceback.tb_next
  return False


class SerialEnvs(BatchedEnvs):
  """Env copies stepped one after another in this process.

  Args:
    envs: Env objects, or zero-argument callables that build one (factories). A copy
      given as a factory whose `reset` or `step` raises is built again (the old one
      closed) and reset; an Env given as an object cannot be rebuilt, so its error
      propagates. A `UserError`, and an exception raised by a signal handler, always
      propagate. A copy that hangs cannot be stopped in this process: use
      `ParallelEnvs` (its `timeout`) for envs that may hang.
    max_restarts: restarts of one copy in a row (no finished episode in between)
      before the next failure raises `EnvFailed`.
  """

  def __init__(self, envs, max_restarts=DEFAULT_MAX_RESTARTS):
    items = list(envs)
    if not items or not all(isinstance(item, Env) or callable(item) for item in items):
      raise ValueError(
          f'SerialEnvs needs one or more Env objects or env factories, got {envs!r}.')
    self.num = len(items)
    self._factories = [None if isinstance(item, Env) else item for item in items]
    self.envs = []
    try:
      for item in items:
        self.envs.append(item if isinstance(item, Env) else self._build(item))
    except BaseException:
      self.close()
      raise
    first = self.envs[0]
    self.obs_space, self.act_space = first.obs_space, first.act_space
    self.action_repeat = first.action_repeat
    self._setup_restarts(max_restarts)

  @classmethod
  def from_task(cls, task, num, seed=None, max_restarts=None):
    """`num` copies of `dreamkit.envs.make(task)`, copy i seeded `seed + i`; a
    restarted copy gets a fresh seed (`copy_seed`). `max_restarts=None` leaves it to
    the constructor (its default, or gin's binding when called on
    `gin.get_configurable(SerialEnvs)`)."""
    settings = {} if max_restarts is None else {'max_restarts': max_restarts}
    return cls([_Factory(task, seed, index) for index in range(int(num))], **settings)

  @staticmethod
  def _build(factory):
    env = factory()
    if not isinstance(env, Env):
      raise TypeError(f'The env factory {factory!r} returned {env!r}, not an Env.')
    return env

  def reset(self, indices):
    indices = list(indices)
    results = [self._call(index, 'reset') for index in indices]
    self._answered(indices, results)
    return results

  def step(self, actions):
    if len(actions) != self.num:
      raise ValueError(f'Got {len(actions)} actions for {self.num} envs.')
    results = [self._call(index, 'step', action) for index, action in enumerate(actions)]
    self._answered(range(self.num), results)
    return results

  def _call(self, index, method, *args):
    try:
      return getattr(self.envs[index], method)(*args)
    except Exception as error:  # pylint: disable=broad-except
      if (self._factories[index] is None or isinstance(error, UserError)
          or raised_by_signal_handler(error)):
        raise
      return self._restart(index, f'{type(error).__name__}: {error}')

  def _restart(self, index, reason):
    what = f'env copy {index} ({type(self.envs[index]).__name__})'
    while True:
      self._failed(index, what, reason)
      try:
        self.envs[index].close()
      except Exception:  # pylint: disable=broad-except
        pass  # A broken env may fail to close too; it is replaced either way.
      try:
        self.envs[index] = self._build(self._factories[index])
        obs = self.envs[index].reset()
      except Exception as error:  # pylint: disable=broad-except
        if isinstance(error, UserError) or raised_by_signal_handler(error):
          raise
        reason = f'{type(error).__name__} while restarting: {error}'
        continue
      self._restarted(index, what, reason)
      return obs

  def close(self):
    for env in self.envs:
      env.close()


# Settings in gin: `envs.SerialEnvs.max_restarts = 3`.
gin.register(SerialEnvs, module='dreamkit.envs')


class _Factory:
  """Builds copy `index` of `task`; each call after the first gets a fresh seed."""

  def __init__(self, task, seed, index):
    self.task, self.seed, self.index = task, seed, index
    self.calls = 0

  def __call__(self):
    from dreamkit import envs  # The package imports this module.
    seed = copy_seed(self.seed, self.index, self.calls)
    self.calls += 1
    return envs.make(self.task, **({} if seed is None else {'seed': seed}))

  def __repr__(self):
    return f'<env factory {self.task} copy {self.index}>'
