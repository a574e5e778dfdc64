"""Converts a folder of NumPy `.npz` episodes into dreamkit's HDF5 episode layout.

    python -m dreamkit.tools.npz_to_hdf5 my_episodes/ data/replay/ [--actions N]

then train on them offline:

    dreamkit run pipelines/atari_dreamerv2.gin -b 'Pipeline.offline = True' \\
        -b "Pipeline.offline_data = 'data/replay'"

Each `.npz` file holds one episode, every array `[T, ...]` along time (the layout
the DreamerV2 reference itself saves, so its episodes convert as they are):

| key | shape, dtype | if missing |
| --- | --- | --- |
| observations, e.g. `image` | uint8 `[T, H, W, C]` (or `[T, H, W]`: grayscale) | at least one is needed |
| vector observations | float `[T, D]` (or `[T]`) | |
| `action` | float `[T, A]`, or int `[T]` indices (made one-hot over `--actions`) | required |
| `reward` | float `[T]` | required |
| `is_first` | bool `[T]` | True at step 0 only |
| `is_last` | bool `[T]` | True at the last step only |
| `is_terminal` | bool `[T]` | from `discount` (0 = terminal) if present, else False |

`action[t]` is the action that *led to* step t (so the first is zeros: give int
index -1 there, or any value, it is zeroed), and `reward[t]` the reward received on
arriving at step t. A `discount` key is used for `is_terminal` and not stored.
Files that do not convert are skipped with a warning naming the reason; the output
folder is written with the same code a run's replay uses (atomic writes, names that
carry the length), so any dreamkit HDF5 store opens it.
"""

import argparse
import pathlib
import sys
import warnings

import numpy as np

FLAGS = ('is_first', 'is_last', 'is_terminal')


def convert_episode(data, actions=None):
  """{key: [T, ...]} in dreamkit's step-dict layout from an episode's arrays.

  Args:
    data: a mapping of arrays (an opened .npz).
    actions: the number of discrete actions for int `action` indices; None: one
      more than the largest index in this episode.

  Raises:
    ValueError: the arrays do not make an episode (the message says why).
  """
  episode = {key: np.asarray(data[key]) for key in data.keys()}
  for key in ('action', 'reward'):
    if key not in episode:
      raise ValueError(f"no '{key}' array")
  length = len(episode['reward'])
  if length < 2:
    raise ValueError(f'{length} steps: an episode needs a first step and one more')
  for key, value in episode.items():
    if value.ndim == 0 or len(value) != length:
      raise ValueError(f"'{key}' has shape {value.shape}, not {length} steps like reward")
  action = episode['action']
  if np.issubdtype(action.dtype, np.integer):
    count = int(actions) if actions else int(action.max()) + 1
    if action.ndim != 1 or action.max() >= count:
      raise ValueError(f'int actions must be [T] indices below {count}')
    one_hot = np.zeros((length, count), np.float32)
    valid = action >= 0
    one_hot[np.arange(length)[valid], action[valid]] = 1.0
    action = one_hot
  elif action.ndim == 1:
    action = action[:, None]
  action = action.astype(np.float32)
  action[0] = 0.0  # Nothing led to the first step.
  episode['action'] = action
  episode['reward'] = episode['reward'].astype(np.float32).reshape(length)
  discount = episode.pop('discount', None)
  defaults = {
      'is_first': np.arange(length) == 0,
      'is_last': np.arange(length) == length - 1,
      'is_terminal': (np.asarray(discount).reshape(length) == 0) & (np.arange(length) > 0)
      if discount is not None else np.zeros(length, bool)}
  for flag in FLAGS:
    episode[flag] = np.asarray(episode.get(flag, defaults[flag])).astype(bool).reshape(length)
  observations = [key for key in episode if key not in ('action', 'reward', *FLAGS)]
  if not observations:
    raise ValueError('no observation array (an image or a vector)')
  for key in observations:
    value = episode[key]
    if value.dtype == np.uint8:
      if value.ndim == 3:
        value = value[..., None]
      if value.ndim != 4:
        raise ValueError(f"image '{key}' has shape {value.shape}; expected [T, H, W, C]")
    else:
      if not (np.issubdtype(value.dtype, np.number) or value.dtype == bool):
        raise ValueError(f"'{key}' has dtype {value.dtype}; only numbers are stored")
      value = value.astype(np.float32).reshape(length, -1)
    episode[key] = value
  return episode


def convert_folder(source, target, actions=None):
  """Converts every `source/*.npz` into `target` (created); returns (written, skipped)."""
  # pylint: disable=import-outside-toplevel
  from dreamkit.replay.hdf5 import HDF5Replay
  source, target = pathlib.Path(source), pathlib.Path(target)
  files = sorted(source.glob('*.npz'))
  if not files:
    raise SystemExit(f'No .npz files in {source}.')
  store = HDF5Replay(target, capacity=0, minlen=1, maxlen=0)
  written, skipped = 0, 0
  try:
    for path in files:
      try:
        with np.load(path, allow_pickle=False) as data:
          episode = convert_episode(data, actions)
      except (ValueError, OSError, KeyError) as error:
        warnings.warn(f"Skipping {path}: {str(error).rstrip('.')}.", stacklevel=2)
        skipped += 1
        continue
      store.add_episode(episode)
      written += 1
  finally:
    store.close()
  return written, skipped


def main(argv=None):
  parser = argparse.ArgumentParser(
      prog='python -m dreamkit.tools.npz_to_hdf5',
      description='Convert .npz episodes into dreamkit HDF5 episodes (offline training).')
  parser.add_argument('source', help='folder of .npz episode files')
  parser.add_argument('target', help='folder to write the .h5 episodes into')
  parser.add_argument('--actions', type=int, default=None,
                      help='number of discrete actions, for int action indices')
  args = parser.parse_args(argv)
  written, skipped = convert_folder(args.source, args.target, args.actions)
  print(f'Wrote {written} episodes to {args.target}'
        + (f'; skipped {skipped} (see the warnings)' if skipped else '') + '.')
  return 0 if written else 1


if __name__ == '__main__':
  sys.exit(main())
