"""Offline training: the agent learns from a folder of episodes and steps no env.

    Pipeline.offline = True
    Pipeline.offline_data = 'logdir/pong/replay'   # None: the run's own replay/

The folder is any dreamkit HDF5 store (another run's `replay/`, or episodes you
converted, docs/after_training.md); the run's replay factory (`Pipeline.replay`,
with its sampling settings) opens it read-only, so nothing in it is written,
removed or deleted. The loop is the online one without collecting: the step counter
advances one agent step at a time and an update runs every `train_every` steps, so
a budget and every schedule (`log_every`, `eval_every`, `checkpoint_every`, the
actor's schedules) mean what they mean online, at the same ratio of updates to
steps. With `eval_eps > 0` the run evaluates on `Pipeline.task`, whose spaces must
match the data; with `eval_eps = 0` no env is built and the spaces come from the
data (`spaces_from_data`).
"""

import dataclasses
import pathlib

import h5py
import numpy as np
from gymnasium import spaces

from dreamkit import replay as replays_lib
from dreamkit.envs import wrappers
from dreamkit.errors import UserError
from dreamkit.replay import hdf5
from dreamkit.replay import sampling

_FLAGS = ('reward', 'action', *wrappers.FLAG_KEYS)
_SPACE_SAMPLE = 8  # episode files read to tell a discrete action space from a Box


@dataclasses.dataclass
class Spaces:
  """What the agent is built from: as a BatchedEnvs has them."""
  obs_space: dict
  act_space: object
  action_repeat: int = 1


def directory(s):
  """The dataset folder of the offline settings `s` (a Pipeline)."""
  return pathlib.Path(s.offline_data) if s.offline_data else s.logdir / 'replay'


def open_data(s):
  """The run's replay store over the offline folder, read-only."""
  folder = directory(s)
  try:
    store = replays_lib.registry.build(s.replay, 'Pipeline.replay', folder, read_only=True)
  except TypeError as error:
    if 'read_only' not in str(error):
      raise
    raise UserError(
        'Pipeline.offline trains from HDF5 episode files: bind Pipeline.replay = '
        '@replays.HDF5Replay (its store reads a folder without changing it).') from None
  if not store.stats['episodes']:
    raise UserError(
        f'No usable episode in {folder} (at least minlen steps, in the layout of '
        'docs/after_training.md): nothing to train on offline.')
  return store


def spaces_from_data(folder, signature):
  """Spaces of the episodes in `folder` whose sampled keys are `signature`.

  Image keys (uint8 [H, W, C]) and vector keys (float [D]) become Boxes; the action
  space is `Discrete(A)` when every action read (the newest episode files, first
  steps left out: they hold zeros) is one-hot, else a Box of [-1, 1]^A.
  """
  keys = {}
  for key, (dtype, shape) in signature.items():
    if key in _FLAGS:
      continue
    if dtype == np.uint8 and len(shape) == 3:
      keys[key] = wrappers.image_space(shape)
    elif len(shape) == 1:
      keys[key] = wrappers.vector_space(shape[0])
    else:
      raise UserError(
          f"Offline data: key '{key}' is {dtype} {list(shape)}; observations are "
          'uint8 images [H, W, C] or float vectors [D] (docs/after_training.md).')
  if 'action' not in signature or len(signature['action'][1]) != 1:
    raise UserError("Offline data: episodes need an 'action' dataset [T, A].")
  size = signature['action'][1][0]
  one_hot = True
  paths = sorted(pathlib.Path(folder).glob('*' + hdf5.SUFFIX))[-_SPACE_SAMPLE:]
  for path in paths:
    try:
      with h5py.File(path, 'r') as handle:
        actions = np.asarray(handle['action'][:], np.float32)
        first = np.asarray(handle['is_first'][:], bool)
    except (OSError, KeyError, RuntimeError, ValueError):
      continue  # The store skipped it with a warning already.
    actions = actions[~first]
    if len(actions) and not (np.isin(actions, (0.0, 1.0)).all()
                             and (actions.sum(-1) == 1).all()):
      one_hot = False
      break
  act_space = spaces.Discrete(size) if one_hot else wrappers.continuous_space(size)
  return Spaces(wrappers.obs_space(keys), act_space)


def check_against_env(envs, signature, folder):
  """A UserError when the env's observations are not the data's keys and shapes."""
  wanted = {key: (np.dtype(space.dtype), tuple(space.shape))
            for key, space in envs.obs_space.items() if key not in _FLAGS}
  have = {key: value for key, value in signature.items() if key not in _FLAGS}
  if {k: v[1] for k, v in wanted.items()} != {k: v[1] for k, v in have.items()}:
    describe = lambda keys: ', '.join(f'{k} {list(v[1])}' for k, v in sorted(keys.items()))
    raise UserError(
        f'The offline data in {folder} holds {describe(have)}, but the evaluation env '
        f'gives {describe(wanted)}: evaluate on the task the data came from, or set '
        'Pipeline.eval_eps = 0.')


def signature(store):
  """{key: (dtype, step shape)} of the episodes the store samples."""
  return {key: value for key, value in store.signature().items()
          if not key.startswith(sampling.LOG_PREFIX)}
