"""Any registered Gymnasium environment, turned into DreamerV2 step dicts.

Observation spaces become keys: a uint8 Box of shape [H, W] or [H, W, C] becomes an
image key, any other Box a flattened float32 vector key, a Discrete a one-hot vector
key, and a Dict one key per entry (nested entries joined with '_'). A plain Box
observation is called `image` or `vector`. Discrete actions stay Discrete(n); Box
actions become Box(-1, 1) and are rescaled to the env's bounds.
"""

import difflib
import re

import numpy as np
from gymnasium import spaces

from dreamkit.envs import registry
from dreamkit.envs import wrappers
from dreamkit.envs.base import Env
from dreamkit import validate
from dreamkit.errors import ConfigError, UserError

SUPPORTED = ('observations: Box (images: uint8 [H, W] or [H, W, C]; anything else is '
             'flattened to a float32 vector), Discrete (one-hot) and Dict of those; '
             'actions: Discrete and Box')


def _is_image(space):
  if space.dtype != np.uint8 or len(space.shape) not in (2, 3):
    return False
  return len(space.shape) == 2 or space.shape[-1] in (1, 3, 4)


def _describe(space):
  return f'{type(space).__name__} {space}'


# gymnasium's own suggestion ("Did you mean: `CartPole`?"): ours names whole ids.
_GYM_HINT = re.compile(r'\s*Did you mean:? [^?]*\?')


def _make_error(task, error):
  """The message for an id gymnasium.make refused: a missing dependency says what
  to install; an unknown id names the closest registered ids (never `task` itself)."""
  import gymnasium  # pylint: disable=import-outside-toplevel
  text = ' '.join(str(error).split()).rstrip('.')
  if isinstance(error, gymnasium.error.DependencyNotInstalled):
    # Registered, but its package is missing; gymnasium's text names the install.
    return (f"Gymnasium env 'gym:{task}' is registered but needs a package that is not "
            f'installed: {text}. Install it, then run again.')
  text = _GYM_HINT.sub('', text).rstrip('.')
  close = [name for name in difflib.get_close_matches(task, list(gymnasium.registry),
                                                      n=4, cutoff=0.5) if name != task]
  hint = f" Did you mean: {', '.join(close[:3])}?" if close else ''
  return (f"Cannot make Gymnasium env 'gym:{task}': {text}.{hint} Use a registered id, or "
          "'module:Id' to import the module that registers it.")


@registry.register
class Gym(Env):
  """A registered Gymnasium env by id: `gym:CartPole-v1`, `gym:my_package:MyEnv-v0`.

  Args:
    task: a Gymnasium id; the `module:Id` form imports `module` first.
    pixels: also render an `image` key (render_mode 'rgb_array').
    size: (height, width) every image key is area-resized to; None keeps the
      native size of observation images (rendered pixels always need a size).
    action_repeat: env steps per agent step (rewards summed).
    time_limit: cut episodes after this many agent steps (is_last only); 0 keeps
      the env's own limit (its TimeLimit wrapper, reported as truncation).
    seed: seeds the first reset; None for random.
  """

  prefix = 'gym'

  def __init__(self, task, pixels=False, size=(64, 64), action_repeat=1, time_limit=0,
               seed=None):
    import gymnasium
    args = validate.Arguments(self)
    self.action_repeat = self._repeat = args.positive_int(action_repeat, 'action_repeat')
    self._size = None if size is None else wrappers.check_size(size, args.name('size'))
    self._pixels = args.boolean(pixels, 'pixels')
    if self._pixels and self._size is None:
      raise ConfigError(
          f"{args.name('size')} must be a pair (height, width) when "
          f"{args.name('pixels')} is True, got None.")
    self._clock = wrappers.EpisodeClock(time_limit, args.name('time_limit'))
    seed = args.optional_seed(seed, 'seed')
    kwargs = {}
    if pixels:
      kwargs['render_mode'] = 'rgb_array'
    if self._clock.limit:
      # The env's own TimeLimit must not cut before ours.
      kwargs['max_episode_steps'] = self._clock.limit * self._repeat
    try:
      self._env = gymnasium.make(task, **kwargs)
    except (gymnasium.error.Error, ImportError) as e:  # Unknown id, or 'module:' fails.
      raise UserError(_make_error(task, e)) from None
    try:
      self.obs_space, self.act_space = self._spaces(task)
    except UserError:
      self._env.close()
      raise
    self._seed = seed
    self._seeded = False

  @property
  def env(self):
    """The Gymnasium env (with the wrappers gymnasium.make added)."""
    return self._env

  def reset(self):
    if self._seeded:
      obs, _ = self._env.reset()
    else:
      obs, _ = self._env.reset(seed=self._seed)
      if self._seed is not None:
        self._env.action_space.seed(self._seed)
      self._seeded = True
    self._clock.reset()
    return wrappers.step_dict(self._convert(obs), 0.0, True, False, False)

  def step(self, action):
    space = self._env.action_space
    if isinstance(space, spaces.Discrete):
      action = int(space.start) + wrappers.discrete_index(action, int(space.n))
    else:
      action = wrappers.rescale_action(action, space.low, space.high).astype(space.dtype)
    reward = 0.0
    terminated = truncated = False
    for _ in range(self._repeat):
      obs, frame_reward, terminated, truncated, _ = self._env.step(action)
      reward += float(frame_reward)
      if terminated or truncated:
        break
    cut = self._clock.tick()
    return wrappers.step_dict(
        self._convert(obs), reward, False, terminated or truncated or cut, terminated)

  def close(self):
    self._env.close()

  def _spaces(self, task):
    self._keys = {}  # key -> (path into the raw observation, converter)
    self._flatten(self._env.observation_space, (), None)
    if self._pixels:
      if 'image' in self._keys:
        raise UserError(
            f"gym:{task} observes an image already; pixels=True would add a second "
            "'image' key. Leave pixels off.")
      self._keys['image'] = ((), None)
    obs_space = wrappers.obs_space(self._key_spaces())
    space = self._env.action_space
    if isinstance(space, spaces.Discrete):
      return obs_space, spaces.Discrete(int(space.n))
    if isinstance(space, spaces.Box):
      return obs_space, wrappers.continuous_space(int(np.prod(space.shape)))
    raise UserError(
        f'gym:{task} has the action space {_describe(space)}, which dreamkit does '
        f'not support. Supported: {SUPPORTED}.')

  def _flatten(self, space, path, name):
    """Fills self._keys from the observation space; UserError for unsupported ones."""
    if isinstance(space, spaces.Dict):
      for key, subspace in space.spaces.items():
        self._flatten(subspace, path + (key,), key if name is None else f'{name}_{key}')
      return
    if isinstance(space, spaces.Box):
      kind = 'image' if _is_image(space) else 'vector'
    elif isinstance(space, spaces.Discrete):
      kind = 'onehot'
    else:
      raise UserError(
          f"The observation space {_describe(space)}"
          f"{f' (entry {name!r})' if name else ''} of this Gymnasium env is not "
          f'supported. Supported: {SUPPORTED}.')
    key = name if name is not None else ('image' if kind == 'image' else 'vector')
    if key in wrappers.RESERVED_KEYS:
      key = f'obs_{key}'
    self._keys[key] = (path, (kind, space))

  def _key_spaces(self):
    result = {}
    for key, (_, converter) in self._keys.items():
      if converter is None:
        result[key] = wrappers.image_space((*self._size, 3))
        continue
      kind, space = converter
      if kind == 'image':
        height, width = self._size or space.shape[:2]
        channels = space.shape[2] if len(space.shape) == 3 else 1
        result[key] = wrappers.image_space((height, width, channels))
      elif kind == 'vector':
        result[key] = wrappers.vector_space(int(np.prod(space.shape)))
      else:
        result[key] = wrappers.vector_space(int(space.n))
    return result

  def _convert(self, obs):
    result = {}
    for key, (path, converter) in self._keys.items():
      if converter is None:
        result[key] = self._render()
        continue
      value = obs
      for part in path:
        value = value[part]
      kind, space = converter
      if kind == 'image':
        image = np.asarray(value, np.uint8)
        if self._size is not None:
          image = wrappers.area_resize(image, self._size)
        result[key] = image[..., None] if image.ndim == 2 else image
      elif kind == 'vector':
        result[key] = np.asarray(value, np.float32).reshape(-1)
      else:
        onehot = np.zeros(int(space.n), np.float32)
        onehot[int(value) - int(space.start)] = 1.0
        result[key] = onehot
    return result

  def _render(self):
    import gymnasium
    try:
      frame = self._env.render()
    except gymnasium.error.DependencyNotInstalled as e:
      raise UserError(
          f'pixels=True needs this env to render, which failed: {e}') from None
    if frame is None:
      raise UserError(
          'pixels=True, but the env rendered nothing (render() returned None).')
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
      frame = np.clip(frame * 255 if frame.max() <= 1 else frame, 0, 255).astype(np.uint8)
    return wrappers.area_resize(frame[..., :3], self._size)
