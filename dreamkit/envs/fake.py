"""A tiny seeded env for tests and smoke runs: no simulator, microseconds per step.

Every step shows a random target (as a bright band in `image` and in `vector`); the
reward is high when the action matches the target of the observation it answers, so
an agent can learn something. Episodes end at random with `is_terminal` or are cut at
`length` steps with `is_last` only, so both ends of an episode occur.

`Faulty` is a Fake that fails on purpose (raises, hangs, exits or segfaults), for the
tests of env restarts. It is not registered; a test registers it in a plugin to run
it in `ParallelEnvs` workers.
"""

import os
import pathlib
import signal
import time

import numpy as np
from gymnasium import spaces

from dreamkit.envs import registry
from dreamkit.envs import wrappers
from dreamkit.envs.base import Env
from dreamkit import validate
from dreamkit.errors import ConfigError, UserError

TASKS = ('discrete', 'continuous')


@registry.register
class Fake(Env):
  """A fake env with image and vector keys: `fake:discrete` or `fake:continuous`.

  Args:
    task: 'discrete' (Discrete(actions), reward 1 for the target action, else 0) or
      'continuous' (Box dim, reward 1 - mean |action - target| / 2, in [0, 1]).
    image: include an `image` key (uint8 [*size, channels]).
    vector: include a `vector` key (float32 [actions + 1] or [dim + 1]).
    size: (height, width) of the image.
    channels: image channels.
    length: the time limit in steps (is_last without is_terminal).
    actions: number of discrete actions.
    dim: size of the continuous action.
    terminal_prob: chance per step that the episode terminates (is_terminal).
    seed: seeds the targets and terminations; None for random.
  """

  prefix = 'fake'

  def __init__(self, task, image=True, vector=True, size=(16, 16), channels=1,
               length=20, actions=3, dim=2, terminal_prob=0.05, seed=None):
    if task not in TASKS:
      raise UserError(
          f"Unknown fake task '{task}'. Use fake:discrete or fake:continuous.")
    args = validate.Arguments(self)
    self._image = args.boolean(image, 'image')
    self._vector = args.boolean(vector, 'vector')
    if not image and not vector:
      raise ConfigError(f"{args.name('image')} and {args.name('vector')} must not both "
                        'be False: the env needs an observation.')
    self._discrete = task == 'discrete'
    self._size = wrappers.check_size(size, args.name('size'))
    self._channels = args.positive_int(channels, 'channels')
    self._length = args.positive_int(length, 'length')
    self._actions = args.positive_int(actions, 'actions')
    self._dim = args.positive_int(dim, 'dim')
    self._terminal_prob = args.number(
        terminal_prob, 'terminal_prob', 0, 1, high_open=True)
    seed = args.optional_seed(seed, 'seed')
    self._random = np.random.default_rng(seed)
    self._clock = wrappers.EpisodeClock(self._length)
    self._target = None
    keys = {}
    if self._image:
      keys['image'] = wrappers.image_space((*self._size, self._channels))
    if self._vector:
      width = self._actions if self._discrete else self._dim
      keys['vector'] = wrappers.vector_space(width + 1)
    self.obs_space = wrappers.obs_space(keys)
    self.act_space = (spaces.Discrete(self._actions) if self._discrete
                      else wrappers.continuous_space(self._dim))

  def reset(self):
    self._clock.reset()
    self._new_target()
    return wrappers.step_dict(self._obs(), 0.0, True, False, False)

  def step(self, action):
    if self._target is None:
      raise RuntimeError('Call reset() before step().')
    if self._discrete:
      reward = float(wrappers.discrete_index(action, self._actions) == self._target)
    else:
      action = wrappers.rescale_action(action, -np.ones(self._dim), np.ones(self._dim))
      reward = 1.0 - float(np.abs(action - self._target).mean()) / 2.0
    terminal = bool(self._random.random() < self._terminal_prob)
    cut = self._clock.tick()
    self._new_target()
    return wrappers.step_dict(self._obs(), reward, False, terminal or cut, terminal)

  def _new_target(self):
    if self._discrete:
      self._target = int(self._random.integers(self._actions))
    else:
      self._target = self._random.uniform(-1, 1, self._dim).astype(np.float32)

  def _obs(self):
    obs = {}
    progress = np.float32(self._clock.steps / self._length)
    if self._discrete:
      code = np.eye(self._actions, dtype=np.float32)[self._target]
    else:
      code = self._target.astype(np.float32)
    if self._vector:
      obs['vector'] = np.concatenate([code, [progress]]).astype(np.float32)
    if self._image:
      height, width = self._size
      image = np.zeros((height, width, self._channels), np.uint8)
      # One vertical band per action (discrete) or per action dimension whose
      # brightness is the target (continuous).
      bands = np.array_split(np.arange(width), len(code))
      for band, value in zip(bands, code):
        brightness = value if self._discrete else (value + 1) / 2
        image[:, band, :] = np.uint8(round(255 * float(brightness)))
      obs['image'] = image
    return obs


FAULTS = ('raise', 'hang', 'exit', 'segfault')


class Faulty(Fake):
  """A Fake whose `step` fails at its `at`-th step since it was built.

  Args:
    task: as Fake's ('discrete' or 'continuous').
    fault: 'raise' (a RuntimeError), 'hang' (sleeps for good), 'exit' (the process
      exits with code 3) or 'segfault' (the process kills itself with SIGSEGV).
    at: the step (counted from 1 since the env was built) that fails.
    times: how many faults in all, counted across processes and restarts with files
      `<marker>.0`, `<marker>.1`, ...; with no marker, every copy built fails at its
      `at`-th step.
    marker: a path prefix for those files.
    length, terminal_prob, seed: as Fake's.
  """

  prefix = 'faulty'

  def __init__(self, task, fault='raise', at=3, times=1, marker=None, length=20,
               terminal_prob=0.0, seed=None):
    args = validate.Arguments(self)
    self._fault = args.one_of(fault, 'fault', FAULTS, 'a fault')
    self._at = args.positive_int(at, 'at')
    self._times = args.non_negative_int(times, 'times')
    super().__init__(task, length=length, terminal_prob=terminal_prob, seed=seed)
    self._marker = pathlib.Path(marker) if marker else None
    self._steps = 0

  def step(self, action):
    self._steps += 1
    if self._steps == self._at and self._due():
      self._fail()
    return super().step(action)

  def _due(self):
    """Whether this step fails: claims one of the `times` faults, atomically (copies
    in several processes may reach their `at`-th step at once)."""
    if self._marker is None:
      return True
    for number in range(self._times):
      try:
        os.close(os.open(f'{self._marker}.{number}', os.O_CREAT | os.O_EXCL))
        return True
      except FileExistsError:
        continue
    return False

  def _fail(self):
    if self._fault == 'raise':
      raise RuntimeError(f'Faulty env: injected failure at step {self._steps}.')
    if self._fault == 'hang':
      while True:
        time.sleep(60)
    if self._fault == 'exit':
      os._exit(3)  # pylint: disable=protected-access
    os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(60)  # The signal arrives; never reached.
