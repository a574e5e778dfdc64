"""Step-dict logic shared by every env: spaces, action conversion, time limits, resizing.

Nothing here imports a simulator, so worker processes and the parent can both use it.
"""

import numpy as np
from gymnasium import spaces

from dreamkit import validate
from dreamkit.errors import ConfigError

# Keys every step dict carries besides the observation keys (docs/architecture.md).
FLAG_KEYS = ('is_first', 'is_last', 'is_terminal')
RESERVED_KEYS = ('reward', 'action') + FLAG_KEYS


def image_space(shape):
  """uint8 [H, W, C] image key."""
  return spaces.Box(0, 255, tuple(shape), np.uint8)


def vector_space(size):
  """float32 [D] vector key."""
  return spaces.Box(-np.inf, np.inf, (int(size),), np.float32)


def obs_space(keys):
  """The full obs_space: `keys` (name -> Box) plus reward and the is_* flags."""
  for name in keys:
    if name in RESERVED_KEYS:
      raise ValueError(f"Observation key '{name}' clashes with a step-dict key.")
  result = dict(keys)
  result['reward'] = spaces.Box(-np.inf, np.inf, (), np.float32)
  for name in FLAG_KEYS:
    result[name] = spaces.Box(0, 1, (), bool)
  return result


def step_dict(obs, reward, is_first, is_last, is_terminal):
  """One step dict with the dtypes of the contract (reward float32, flags bool)."""
  result = dict(obs)
  result['reward'] = np.float32(reward)
  result['is_first'] = bool(is_first)
  result['is_last'] = bool(is_last)
  result['is_terminal'] = bool(is_terminal)
  return result


def continuous_space(dim):
  """The agent-side Box action space: [-1, 1]^dim, float32."""
  return spaces.Box(-1.0, 1.0, (int(dim),), np.float32)


def discrete_index(action, n):
  """The index of a Discrete(n) action given as an int or a one-hot [n] vector."""
  if isinstance(action, (int, np.integer)):
    index = int(action)
  else:
    array = np.asarray(action)
    if array.ndim == 0 and np.issubdtype(array.dtype, np.integer):
      index = int(array)
    elif array.shape == (n,):
      # argmax rather than exact one-hot checks: a relaxed sample still picks one index.
      index = int(np.argmax(array))
    else:
      raise ValueError(
          f'A Discrete({n}) action must be an int or a one-hot vector of shape ({n},); '
          f'got shape {array.shape}.')
  if not 0 <= index < n:
    raise ValueError(f'Action index {index} is outside Discrete({n}).')
  return index


def rescale_action(action, low, high):
  """Maps an agent action in [-1, 1]^d onto the env's bounds [low, high] (same shape).

  Actions are clipped to [-1, 1] first. Dimensions with an infinite bound pass through
  unscaled, since no affine map fits them.
  """
  low = np.asarray(low, np.float64)
  high = np.asarray(high, np.float64)
  action = np.asarray(action, np.float64)
  if action.size != low.size:
    raise ValueError(
        f'A continuous action must have {low.size} entries; got shape {action.shape}.')
  action = np.clip(action.reshape(low.shape), -1.0, 1.0)
  finite = np.isfinite(low) & np.isfinite(high)
  scaled = low + (action + 1.0) / 2.0 * (high - low)
  return np.where(finite, scaled, action)


class EpisodeClock:
  """Counts agent steps and says when the time limit cuts the episode.

  `limit` 0 means no limit of our own (the simulator's own end still applies).
  A cut sets `is_last` only: `is_terminal` stays False (the reference's TimeLimit).
  """

  def __init__(self, limit, where='time_limit'):
    self.limit = validate.int_at_least(
        limit, where, 0, '(0 for none, else agent steps)')
    self.steps = 0

  def reset(self):
    self.steps = 0

  def tick(self):
    """Counts one agent step; True when this step reaches the limit."""
    self.steps += 1
    return bool(self.limit) and self.steps >= self.limit


def check_size(size, where):
  """A (height, width) pair of positive ints, or a ConfigError naming `where` (the
  binding, `envs.Atari.size`)."""
  size = validate.sizes(size, where)
  if len(size) != 2:
    raise ConfigError(
        f'{validate.binding(where)} must be a pair (height, width) of positive whole '
        f'numbers, got {size!r}.')
  return size


def _area_weights(source, target):
  """Which source pixels make up each target pixel, and their weights.

  Target pixel i covers the source interval [i * s, (i + 1) * s) with s = source /
  target; each source pixel j (the interval [j, j + 1)) contributes its overlap,
  divided by s. This is area interpolation (what OpenCV's INTER_AREA does when
  shrinking), including fractional edge pixels for non-integer ratios.

  Returns:
    index: int [target, K], the source pixels of each target pixel (padded).
    weight: float32 [target, K], their shares (0 for padding); rows sum to 1.
  """
  scale = source / target
  starts = np.arange(target)[:, None] * scale
  pixels = np.arange(source)[None, :]
  overlap = np.minimum(starts + scale, pixels + 1) - np.maximum(starts, pixels)
  overlap = np.clip(overlap, 0, None)
  overlap[overlap < 1e-9] = 0
  dense = overlap / overlap.sum(1, keepdims=True)
  width = int((dense > 0).sum(1).max())
  first = np.argmax(dense > 0, axis=1)
  index = np.minimum(first[:, None] + np.arange(width)[None, :], source - 1)
  weight = np.take_along_axis(dense, index, 1)
  # A clamped (repeated) last index must not count twice.
  weight[(first[:, None] + np.arange(width)[None, :]) >= source] = 0
  return index, weight.astype(np.float32)


_WEIGHTS = {}


def area_resize(image, size):
  """Resizes a uint8 [H, W, C] or [H, W] image to `size` = (height, width) by area.

  Each output pixel is the mean of the input area it covers (fractional pixels at the
  edges weighted by their overlap), rounded to the nearest integer. When enlarging,
  each output pixel takes the input pixel(s) under it.
  """
  image = np.asarray(image)
  height, width = size
  if image.shape[:2] == (height, width):
    return image
  key = (image.shape[0], image.shape[1], height, width)
  if key not in _WEIGHTS:
    _WEIGHTS[key] = (_area_weights(image.shape[0], height),
                     _area_weights(image.shape[1], width))
  (row_index, row_weight), (col_index, col_weight) = _WEIGHTS[key]
  pixels = image.astype(np.float32)
  extra = (None,) * (pixels.ndim - 2)
  # Each output pixel mixes only a few input pixels: gather them and weight, which on
  # a busy machine is far faster than a dense (multi-threaded BLAS) matrix product.
  rows = (pixels[row_index] * row_weight[(...,) + (None,) + extra]).sum(1)
  out = (rows[:, col_index] * col_weight[(None, ...) + extra]).sum(2)
  return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)
