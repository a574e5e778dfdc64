"""The two action spaces dreamkit supports, and the one check of them.

    spaces.is_discrete(space)              # Discrete(n): one-hot actions
    spaces.action_size(space)              # n, or d for Box(-1, 1, (d,))
    spaces.check_action_space(space, who)  # a UserError that starts with `who` otherwise
"""

import numpy as np
from gymnasium import spaces

from dreamkit.errors import UserError


def is_discrete(space):
  """True for a `gymnasium.spaces.Discrete` action space (one-hot actions)."""
  return isinstance(space, spaces.Discrete)


def action_size(space):
  """The length of an action vector: n for Discrete(n), d for Box(-1, 1, (d,))."""
  return int(space.n) if is_discrete(space) else int(space.shape[0])


def check_action_space(space, who):
  """Raises a UserError unless `space` is Discrete(n) or Box(-1, 1, (d,)).

  `who` starts the message and names the space, e.g. 'Atari (pong): act_space'.
  """
  if is_discrete(space):
    return
  if (isinstance(space, spaces.Box) and len(space.shape) == 1 and
      np.all(space.low == -1) and np.all(space.high == 1)):
    return
  raise UserError(
      f'{who} {space!r} is not supported. Use gymnasium.spaces.Discrete(n) '
      'or Box(-1, 1, (d,), float32) and rescale to the simulator inside the env '
      '(dreamkit.envs.wrappers.continuous_space(d)).')
