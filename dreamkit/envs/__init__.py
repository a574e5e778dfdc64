"""Environments: Atari, DM Control, Gymnasium and a fake, chosen by `prefix:name`.

    env = dreamkit.envs.make('atari:pong')          # gin bindings of envs.Atari apply
    env = dreamkit.envs.make('gym:Pendulum-v1', action_repeat=2)

Nothing in this package imports TensorFlow, and simulators are imported only when an
env is built: DM Control renders in `spawn` worker processes that must stay free of
TensorFlow (see dmc.py).
"""

import difflib

from gymnasium import spaces

from dreamkit.envs.base import Env
from dreamkit.errors import UserError
from dreamkit.registry import Registry

registry = Registry('envs', Env)

# The built-ins register themselves with `registry` on import.
from dreamkit.envs.atari import Atari  # noqa: E402
from dreamkit.envs.dmc import DMC  # noqa: E402
from dreamkit.envs.fake import Fake  # noqa: E402
from dreamkit.envs.gym import Gym  # noqa: E402
from dreamkit.envs.parallel import ParallelEnvs  # noqa: E402


def is_discrete(space):
  """True for a Discrete action space (one-hot actions), False for a Box."""
  return isinstance(space, spaces.Discrete)


def prefixes():
  """{prefix: registered name} of every registered env class."""
  result = {}
  for entry in registry.entries():
    if entry.cls.prefix:
      result[entry.cls.prefix] = entry.name
  return result


def make(task, **overrides):
  """Builds the env for `task` = 'prefix:name' with its gin-configured constructor.

  `overrides` are constructor arguments that win over gin bindings (for example
  `seed=3` for the third parallel copy).
  """
  if not isinstance(task, str) or ':' not in task:
    raise UserError(
        f"Task {task!r} is not of the form 'prefix:name' (for example 'atari:pong', "
        "'dmc:walker_walk', 'gym:CartPole-v1'). Prefixes: "
        f"{', '.join(sorted(prefixes()))}.")
  prefix, name = task.split(':', 1)
  available = prefixes()
  if prefix not in available:
    close = difflib.get_close_matches(prefix, list(available), n=1, cutoff=0.3)
    hint = f" Did you mean '{close[0]}:{name}'?" if close else ''
    raise UserError(
        f"Unknown env prefix '{prefix}' in task '{task}'.{hint} "
        f"Available prefixes: {', '.join(sorted(available))}.")
  if not name:
    raise UserError(f"Task '{task}' names no {prefix} task after the colon.")
  return registry.configured(available[prefix])(task=name, **overrides)


__all__ = ['Env', 'registry', 'is_discrete', 'make', 'prefixes', 'Atari', 'DMC',
           'Fake', 'Gym', 'ParallelEnvs']
