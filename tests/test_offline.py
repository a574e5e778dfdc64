"""Offline training from a folder of episodes, read-only, and bringing your own data."""

import json
import os
import shutil
import warnings

import gin
import h5py
import numpy as np
import pytest

from dreamkit import config
from dreamkit.errors import UserError
from dreamkit.replay.hdf5 import HDF5Replay
from dreamkit.runner import offline
from dreamkit.runner.pipeline import Pipeline
from dreamkit.tools import npz_to_hdf5

import trained_run as helper


def snapshot(folder):
  return {path.name: (path.read_bytes(), path.stat().st_mtime_ns)
          for path in sorted(folder.iterdir())}


def test_offline_training_lowers_the_model_loss_and_reads_only(trained_run, tmp_path):
  replay = trained_run.logdir / 'replay'
  before = snapshot(replay)
  gin.clear_config()
  pipeline = tmp_path / 'offline.gin'
  # Another pipeline, no plugins: a fresh agent learns from the run's episodes.
  pipeline.write_text(
      f"include '{helper.REPO / 'pipelines' / 'dreamerv2_defaults.gin'}'\n"
      "Pipeline.task = 'fake:discrete'\nCNN_KEYS = 'image'\nMLP_KEYS = 'vector'\n"
      'heads.DreamerDecoder.cnn_kernels = (2, 2, 2, 2)\n'
      'encoders.DreamerEncoder.cnn_kernels = (2, 2, 2, 2)\n')
  config.load([pipeline, helper.REPO / 'pipelines' / 'debug.gin'], [
      'Pipeline.offline = True', f"Pipeline.offline_data = '{replay}'",
      'Pipeline.eval_eps = 0', 'Pipeline.steps = 80', 'Pipeline.log_every = 20',
      'Pipeline.video_every = 0', 'Pipeline.checkpoint_every = 1000',
      'Pipeline.outputs = [@outputs.JSONL]', 'WorldModel.model_lr = 1e-3'])
  logdir = tmp_path / 'offline'
  Pipeline(logdir=logdir).run()

  assert snapshot(replay) == before, 'offline training wrote into its dataset'
  assert not (logdir / 'replay').exists()
  rows = [json.loads(line) for line in (logdir / 'metrics.jsonl').read_text().splitlines()]
  losses = [row['model_loss'] for row in rows if 'model_loss' in row]
  assert len(losses) == 4 and losses[-1] < losses[0]
  assert rows[-1]['updates'] == 2 + 80 // 10 and rows[-1]['step'] == 80
  assert not any('train_return' in row or 'eval_return' in row for row in rows)
  assert (logdir / 'checkpoints' / 'checkpoint').exists()
  assert not (logdir / 'unused_bindings.txt').exists()


def write_episode(path, length, image_shape=(16, 16, 1)):
  with h5py.File(path, 'w') as handle:
    handle.attrs['length'] = length
    handle.attrs['format_version'] = 1
    handle['image'] = np.zeros((length, *image_shape), np.uint8)
    handle['action'] = np.eye(3, dtype=np.float32)[np.arange(length) % 3]
    handle['reward'] = np.zeros(length, np.float32)
    for flag in ('is_first', 'is_last', 'is_terminal'):
      handle[flag] = np.zeros(length, bool)


def test_torn_and_foreign_files_are_skipped_with_warnings(trained_run, tmp_path):
  folder = tmp_path / 'data'
  folder.mkdir()
  for path in sorted((trained_run.logdir / 'replay').glob('*.h5'))[:3]:
    shutil.copy(path, folder)
  good = sorted(os.listdir(folder))
  torn = folder / '20990101T000000000000-torn-20.h5'
  torn.write_bytes((folder / good[0]).read_bytes()[:300])
  (folder / 'notes.txt').write_text('not an episode')
  (folder / 'left.h5.tmp').write_bytes(b'unfinished')
  write_episode(folder / '20990101T000000000001-other-12.h5', 12, (8, 8, 3))
  before = snapshot(folder)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    store = HDF5Replay(folder, minlen=1, read_only=True)
  messages = ' | '.join(str(warning.message) for warning in caught)
  assert 'torn-20.h5' in messages and 'notes.txt' in messages
  assert 'left.h5.tmp' in messages and 'other-12.h5' in messages
  assert store.stats['episodes'] == len(good)
  assert store.sample(2, 5)['image'].shape == (2, 5, 16, 16, 1)
  with pytest.raises(UserError, match='read-only'):
    store.add_episode({key: np.asarray(value) for key, value in
                       h5py.File(folder / good[0], 'r').items()})
  store.close()
  assert snapshot(folder) == before


def test_spaces_from_data(tmp_path):
  write_episode(tmp_path / '20990101T000000000000-a-6.h5', 6)
  store = HDF5Replay(tmp_path, minlen=1, read_only=True)
  spaces = offline.spaces_from_data(tmp_path, offline.signature(store))
  assert spaces.act_space.n == 3
  assert spaces.obs_space['image'].shape == (16, 16, 1)
  with h5py.File(tmp_path / '20990101T000000000000-a-6.h5', 'a') as handle:
    handle['action'][2] = [0.5, -0.2, 0.1]
  spaces = offline.spaces_from_data(tmp_path, offline.signature(store))
  assert spaces.act_space.shape == (3,)  # not one-hot: continuous
  with pytest.raises(UserError, match='No episode directory'):
    HDF5Replay(tmp_path / 'missing', read_only=True)
  assert not (tmp_path / 'missing').exists()


def test_npz_converter(tmp_path):
  source = tmp_path / 'npz'
  source.mkdir()
  rng = np.random.default_rng(0)
  for index in range(2):
    np.savez(source / f'episode{index}.npz',
             image=rng.integers(0, 255, (12, 8, 8), dtype=np.uint8),
             action=rng.integers(0, 4, 12), reward=rng.random(12),
             discount=np.r_[np.ones(11), 0.0])
  np.savez(source / 'broken.npz', image=np.zeros((5, 8, 8), np.uint8))  # no action
  with pytest.warns(UserWarning, match="broken.npz: no 'action' array"):
    code = npz_to_hdf5.main([str(source), str(tmp_path / 'h5'), '--actions', '4'])
  assert code == 0
  store = HDF5Replay(tmp_path / 'h5', minlen=1, read_only=True)
  assert store.stats['episodes'] == 2
  path = sorted((tmp_path / 'h5').glob('*.h5'))[0]
  with h5py.File(path, 'r') as handle:
    assert handle['image'].shape == (12, 8, 8, 1) and handle['action'].shape == (12, 4)
    assert handle['is_first'][0] and not handle['is_first'][1:].any()
    assert handle['is_terminal'][-1] and handle['is_last'][-1]
    assert not handle['action'][0].any() and (handle['action'][1:].sum(-1) == 1).all()
  spaces = offline.spaces_from_data(tmp_path / 'h5', offline.signature(store))
  assert spaces.act_space.n == 4
