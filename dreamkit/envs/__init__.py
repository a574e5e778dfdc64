"""Environments: Atari, DM Control, Gymnasium and a fake, chosen by `prefix:name`.

    env = dreamkit.envs.make('atari:pong')          # gin bindings of envs.Atari apply
    env = dreamkit.envs.make('gym:Pendulum-v1', action_repeat=2)

Nothing in this package imports TensorFlow, and simulators are imported only when an
env is built: DM Control renders in `spawn` worker processes that must stay free of
TensorFlow (see dmc.py).
"""

import difflib

from gymnasium import spaces

from dreamkit.envs import wrappers
from dreamkit.envs.base import Env
from dreamkit.errors import UserError
from dreamkit.registry import Registry
from dreamkit.spaces import check_action_space, is_discrete


def _check_prefix(cls, name):
  """Refuses an env class whose `prefix` another registered class already has.

  Otherwise `prefix:name` tasks would pick one of the two silently, by name order.
  """
  prefix = getattr(cls, 'prefix', None)
  for entry in registry.entries():
    if prefix and entry.cls.prefix == prefix:
      raise ValueError(
          f"Cannot register {cls.__module__}.{cls.__qualname__} as envs.{name}: its "
          f"prefix '{prefix}' is taken by envs.{entry.name} "
          f'({entry.cls.__module__}.{entry.cls.__qualname__}). Set another prefix '
          "in the class (prefix = '...'); tasks are chosen by it.")


registry = Registry('envs', Env, check=_check_prefix)

# The built-ins register themselves with `registry` on import.
from dreamkit.envs.atari import Atari  # noqa: E402
from dreamkit.envs.dmc import DMC  # noqa: E402
from dreamkit.envs.fake import Fake  # noqa: E402
from dreamkit.envs.gym import Gym  # noqa: E402
from dreamkit.envs.parallel import ParallelEnvs  # noqa: E402
from dreamkit.envs.batched import BatchedEnvs, EnvFailed, SerialEnvs  # noqa: E402


def prefixes():
  """{prefix: registered name} of every registered env class."""
  result = {}
  for entry in registry.entries():
    if entry.cls.prefix:
      result[entry.cls.prefix] = entry.name
  return result


def parse_task(task, source='task'):
  """Checks `task` = 'prefix:name' against the registered prefixes; (class name, name).

  `source` says where the task came from in the messages (`--task`).
  """
  if not isinstance(task, str) or ':' not in task:
    raise UserError(
        f"{source.capitalize()} {task!r} is not of the form 'prefix:name' (for example "
        "'atari:pong', 'dmc:walker_walk', 'gym:CartPole-v1'). Prefixes: "
        f"{', '.join(sorted(prefixes()))}.")
  prefix, name = task.split(':', 1)
  available = prefixes()
  if prefix not in available:
    close = difflib.get_close_matches(prefix, list(available), n=1, cutoff=0.3)
    hint = f" Did you mean '{close[0]}:{name}'?" if close else ''
    raise UserError(
        f"Unknown env prefix '{prefix}' in {source} '{task}'.{hint} "
        f"Available prefixes: {', '.join(sorted(available))}.")
  if not name:
    raise UserError(
        f"{source.capitalize()} '{task}' names no {prefix} task after the colon, e.g. "
        f"'{prefix}:<name>'.")
  return available[prefix], name


def make(task, **overrides):
  """Builds the env for `task` = 'prefix:name' with its gin-configured constructor.

  `overrides` are constructor arguments that win over gin bindings (for example
  `seed=3` for the third parallel copy).
  """
  class_name, name = parse_task(task)
  env = registry.configured(class_name)(task=name, **overrides)
  try:
    check_spaces(env, task)
  except UserError:
    env.close()
    raise
  return env


def check_spaces(env, task):
  """Refuses an env whose spaces break the contract of docs/envs.md, naming the fault."""
  where = f'{type(env).__qualname__} ({task})'
  obs = env.obs_space
  if not isinstance(obs, dict) or not all(
      isinstance(space, spaces.Box) for space in obs.values()):
    raise UserError(
        f'{where}: obs_space must be a dict of gymnasium.spaces.Box; got {obs!r}. '
        'Set self.obs_space in __init__, for example with '
        'dreamkit.envs.wrappers.obs_space({...}) (docs/envs.md).')
  missing = [key for key in ('reward', *wrappers.FLAG_KEYS) if key not in obs]
  if missing or len(obs) == len(wrappers.FLAG_KEYS) + 1:
    raise UserError(
        f"{where}: obs_space needs at least one observation key and 'reward', "
        f"'is_first', 'is_last', 'is_terminal'; it has {sorted(obs)}. "
        'dreamkit.envs.wrappers.obs_space(keys) adds the last four (docs/envs.md).')
  check_action_space(env.act_space, f'{where}: act_space')


__all__ = ['Env', 'registry', 'is_discrete', 'make', 'parse_task', 'check_spaces',
           'prefixes', 'Atari', 'DMC', 'Fake', 'Gym', 'BatchedEnvs', 'ParallelEnvs',
           'SerialEnvs']
