"""DeepMind Control Suite tasks, simulated and rendered in a `spawn` worker process.

TensorFlow and MuJoCo rendering cannot share a process here (creating the render
context segfaults once TensorFlow is imported, whatever the order), and a `fork` after
TensorFlow hangs. So `DMC` is a thin proxy: the dm_control env (`DMCCore`) always
lives in a worker started with `spawn`, which imports dm_control and never TensorFlow.
"""

import difflib
import os
import sys

import numpy as np

from dreamkit.envs import registry
from dreamkit.envs import wrappers
from dreamkit.envs.base import Env
from dreamkit.envs.parallel import Worker, WorkerError
from dreamkit import validate
from dreamkit.errors import UserError

OBS_MODES = ('pixels', 'proprio', 'both')
# MuJoCo rendering backends tried in order when the user did not set MUJOCO_GL.
DEFAULT_BACKENDS = ('egl', 'osmesa')
# The reference renders quadruped tasks from camera 2 (the others from camera 0).
DEFAULT_CAMERAS = {'quadruped': 2}


def _split(name, tasks):
  """'ball_in_cup_catch' -> ('ball_in_cup', 'catch') using the suite's task list."""
  for domain, task in tasks:
    if f'{domain}_{task}' == name:
      return domain, task
  names = sorted(f'{domain}_{task}' for domain, task in tasks)
  close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
  hint = f" Did you mean: {', '.join(close)}?" if close else ''
  raise UserError(f"Unknown DM Control task '{name}'.{hint} Tasks: {', '.join(names)}.")


class DMCCore(Env):
  """The dm_control env itself; build it only in a process without TensorFlow.

  Same arguments as `DMC`, plus `gl`, the MuJoCo rendering backend (MUJOCO_GL).
  """

  def __init__(self, task, action_repeat, size, camera, obs, time_limit, seed, gl):
    os.environ['MUJOCO_GL'] = gl
    if 'tensorflow' in sys.modules:
      main = getattr(sys.modules.get('__main__'), '__file__', '?')
      raise UserError(
          'TensorFlow is imported in the DM Control worker process (the main module '
          f'{main} is re-imported by spawn and imports it at top level). MuJoCo '
          'rendering segfaults next to TensorFlow: import TensorFlow inside functions '
          'of the main script, not at its top.')
    from dm_control import suite
    domain, task_name = _split(task, suite.ALL_TASKS)
    self._env = suite.load(domain, task_name, task_kwargs={'random': seed})
    self._repeat = action_repeat
    self._size = size
    if camera is None:
      camera = DEFAULT_CAMERAS.get(domain, 0)
    self._camera = camera if isinstance(camera, str) else int(camera)
    self._pixels = obs in ('pixels', 'both')
    self._proprio = obs in ('proprio', 'both')
    self._clock = wrappers.EpisodeClock(time_limit)
    spec = self._env.action_spec()
    self._low, self._high = spec.minimum, spec.maximum
    self.act_space = wrappers.continuous_space(int(np.prod(spec.shape)))
    keys = {}
    if self._pixels:
      keys['image'] = wrappers.image_space((*size, 3))
    self._names = {}
    if self._proprio:
      for name, array_spec in self._env.observation_spec().items():
        key = f'obs_{name}' if name in wrappers.RESERVED_KEYS + ('image',) else name
        self._names[key] = name
        keys[key] = wrappers.vector_space(max(1, int(np.prod(array_spec.shape))))
    self.obs_space = wrappers.obs_space(keys)
    if self._pixels:
      self._render()  # Fail now, in the build, if the GL backend cannot render.

  def reset(self):
    self._clock.reset()
    time_step = self._env.reset()
    return wrappers.step_dict(self._obs(time_step), 0.0, True, False, False)

  def step(self, action):
    action = wrappers.rescale_action(action, self._low, self._high)
    reward = 0.0
    for _ in range(self._repeat):
      time_step = self._env.step(action)
      reward += time_step.reward or 0.0
      if time_step.last():
        break
    # dm_control ends every episode at the task's step limit with discount 1; a
    # discount of 0 marks a real termination.
    terminal = time_step.last() and time_step.discount == 0
    is_last = time_step.last() or self._clock.tick()
    return wrappers.step_dict(self._obs(time_step), reward, False, is_last, terminal)

  def close(self):
    self._env.close()

  def _obs(self, time_step):
    obs = {}
    if self._pixels:
      obs['image'] = self._render()
    for key, name in self._names.items():
      obs[key] = np.asarray(time_step.observation[name], np.float32).reshape(-1)
    return obs

  def _render(self):
    height, width = self._size
    return self._env.physics.render(height, width, camera_id=self._camera)


@registry.register
class DMC(Env):
  """A DM Control task `dmc:domain_task` (walker_walk, cartpole_swingup, ...).

  The simulator runs in a spawned worker process; this object only forwards calls.

  Args:
    task: '<domain>_<task>' as in dm_control.suite (ball_in_cup_catch).
    action_repeat: simulator steps per agent step (rewards summed).
    size: (height, width) of the rendered image.
    camera: camera id or name; None picks the reference's (2 for quadruped, else 0).
    obs: 'pixels' (an `image` key), 'proprio' (the task's observation arrays as
      flattened float32 keys) or 'both'.
    time_limit: cut episodes after this many agent steps (is_last only); 0 keeps
      only the task's own limit (1000 simulator steps for most tasks).
    seed: seeds the task's randomness; None for random.
    timeout: seconds to wait for the worker's answer to any one call.
  """

  prefix = 'dmc'

  def __init__(self, task, action_repeat=2, size=(64, 64), camera=None, obs='pixels',
               time_limit=0, seed=None, timeout=120.0):
    # Every value is checked here, before a worker starts.
    args = validate.Arguments(self)
    obs = args.one_of(obs, 'obs', OBS_MODES, 'an observation mode')
    action_repeat = args.positive_int(action_repeat, 'action_repeat')
    time_limit = wrappers.EpisodeClock(time_limit, args.name('time_limit')).limit
    size = wrappers.check_size(size, args.name('size'))
    if camera is not None and not isinstance(camera, str):
      camera = args.non_negative_int(camera, 'camera')
    seed = args.optional_seed(seed, 'seed')
    timeout = args.positive(timeout, 'timeout')
    kwargs = dict(task=task, action_repeat=action_repeat, size=size, camera=camera,
                  obs=obs, time_limit=time_limit, seed=seed)
    user_gl = os.environ.get('MUJOCO_GL')
    backends = [user_gl] if user_gl else list(DEFAULT_BACKENDS)
    failures = []
    for gl in backends:
      try:
        self._worker = Worker('dreamkit.envs.dmc.DMCCore', dict(kwargs, gl=gl),
                              f'DM Control worker ({task}, MUJOCO_GL={gl})',
                              timeout=timeout, daemon=True)
        break
      except WorkerError as e:
        failures.append(str(e))
    else:
      raise UserError(
          f'Could not start DM Control for dmc:{task} with MUJOCO_GL in '
          f"{backends}: {' | '.join(failures)} Install EGL (libegl1) or OSMesa "
          '(libosmesa6), or set MUJOCO_GL to a backend that works here.')
    self.gl = gl
    self.action_repeat = int(action_repeat)
    self.obs_space = self._worker.call('obs_space')
    self.act_space = self._worker.call('act_space')

  @property
  def worker_pid(self):
    return self._worker.pid

  def reset(self):
    return self._worker.call('reset')

  def step(self, action):
    return self._worker.call('step', np.asarray(action, np.float32))

  def close(self):
    self._worker.close()
