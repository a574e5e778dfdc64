"""DM Control renders in a spawn worker while TensorFlow lives in this process."""

import os
import signal
import sys

import numpy as np
import pytest

from dreamkit import envs
from dreamkit.envs.parallel import WorkerError
from dreamkit.errors import UserError


def _loaded_libraries(pid):
  with open(f'/proc/{pid}/maps') as maps:
    return maps.read()


@pytest.fixture(scope='module')
def walker():
  import tensorflow as tf  # First, as in training: the parent holds TensorFlow.
  tf.constant(1.0) + 1.0  # And has started its runtime.
  env = envs.make('dmc:walker_walk', obs='both')
  yield env
  env.close()


@pytest.fixture(scope='module')
def proprio():
  env = envs.make('dmc:walker_walk', obs='proprio', time_limit=3, seed=0)
  yield env
  env.close()


def test_walker_pixels_from_spawn_worker_with_tensorflow_loaded(walker):
  assert 'tensorflow' in sys.modules
  assert walker.worker_pid != os.getpid()
  obs = walker.reset()
  assert obs['image'].shape == (64, 64, 3) and obs['image'].dtype == np.uint8
  assert obs['image'].std() > 5  # A rendered scene, not a blank buffer.
  obs = walker.step(np.ones(6, np.float32))
  assert obs['image'].shape == (64, 64, 3) and not obs['is_first']
  assert obs['reward'].dtype == np.float32
  if os.path.exists(f'/proc/{walker.worker_pid}/maps'):
    assert 'tensorflow' not in _loaded_libraries(walker.worker_pid)
    assert 'tensorflow' in _loaded_libraries(os.getpid())


def test_walker_proprio_keys_and_spaces(walker):
  obs = walker.reset()
  shapes = {key: obs[key].shape for key in ('orientations', 'height', 'velocity')}
  assert shapes == {'orientations': (14,), 'height': (1,), 'velocity': (9,)}
  assert all(obs[key].dtype == np.float32 for key in shapes)
  assert walker.obs_space['height'].shape == (1,)
  assert walker.obs_space['image'].shape == (64, 64, 3)
  space = walker.act_space
  assert space.shape == (6,) and (space.low == -1).all() and (space.high == 1).all()
  assert not envs.is_discrete(space)
  assert walker.action_repeat == 2


def test_time_limit_sets_is_last_only(proprio):
  obs = proprio.reset()
  assert 'image' not in obs and obs['orientations'].shape == (14,)
  flags = []
  for _ in range(3):
    obs = proprio.step(np.zeros(6))
    flags.append((obs['is_last'], obs['is_terminal']))
  assert flags == [(False, False), (False, False), (True, False)]


def test_core_refuses_a_process_with_tensorflow(walker):
  # What a worker does if spawn re-imported a main script that imports TensorFlow:
  # refuse before dm_control is imported, instead of segfaulting at render time.
  from dreamkit.envs.dmc import DMCCore
  with pytest.raises(UserError, match='TensorFlow is imported'):
    DMCCore('walker_walk', 2, (64, 64), None, 'pixels', 0, None, os.environ['MUJOCO_GL'])


def test_backend_falls_back_when_the_user_set_none(monkeypatch):
  from dreamkit.envs import dmc
  monkeypatch.delenv('MUJOCO_GL')
  monkeypatch.setattr(dmc, 'DEFAULT_BACKENDS', ('no_such_backend', 'egl'))
  env = envs.make('dmc:cartpole_balance', obs='pixels', size=(8, 8))
  assert env.gl == 'egl' and env.reset()['image'].shape == (8, 8, 3)
  env.close()


def test_unknown_task_names_the_closest():
  with pytest.raises(UserError, match='walker_walk'):
    envs.make('dmc:walker_walkk', obs='proprio')


def test_dead_worker_is_an_error_not_a_hang():
  env = envs.make('dmc:cartpole_balance', obs='proprio')
  env.reset()
  os.kill(env.worker_pid, signal.SIGKILL)
  with pytest.raises(WorkerError, match='died'):
    env.step(np.zeros(1))
