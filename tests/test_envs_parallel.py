"""ParallelEnvs: copies in spawn workers, stepped together, with the parent's gin."""

import os
import pathlib
import signal
import subprocess
import sys

import gin
import numpy as np
import pytest

from dreamkit.envs.batched import EnvFailed
from dreamkit.envs.parallel import ParallelEnvs, Worker, WorkerError
from dreamkit.errors import UserError


@pytest.fixture(scope='module')
def fakes():
  # Bound in the parent only; the workers must receive it through gin.config_str().
  gin.parse_config('envs.Fake.length = 3\nenvs.Fake.terminal_prob = 0.0')
  envs = ParallelEnvs('fake:discrete', 2, seed=10)
  gin.clear_config()
  yield envs
  envs.close()


@pytest.fixture(scope='module')
def cartpoles():
  gin.parse_config('envs.Gym.action_repeat = 2')
  envs = ParallelEnvs('gym:CartPole-v1', 2, seed=0)
  gin.clear_config()
  yield envs
  envs.close()


def test_workers_are_spawned_processes(fakes):
  pids = {worker.pid for worker in fakes.workers}
  assert len(pids) == 2 and os.getpid() not in pids
  assert all(type(worker._process).__name__ == 'SpawnProcess' for worker in fakes.workers)


def test_fake_copies_step_together_with_gin_bindings(fakes):
  first = fakes.reset_all()
  assert len(first) == 2 and all(obs['is_first'] for obs in first)
  assert first[0]['image'].shape == (16, 16, 1)
  # Seeds 10 and 11: the copies differ.
  assert not np.array_equal(first[0]['vector'], first[1]['vector'])
  actions = np.eye(3, dtype=np.float32)[[0, 1]]
  ends = []
  for _ in range(3):
    steps = fakes.step(actions)
    assert len(steps) == 2
    ends.append([obs['is_last'] for obs in steps])
  # envs.Fake.length = 3 reached the workers.
  assert ends == [[False, False], [False, False], [True, True]]
  assert not any(obs['is_terminal'] for obs in steps)
  again = fakes.reset([1])
  assert len(again) == 1 and again[0]['is_first']


def test_spaces_come_from_the_workers(fakes):
  assert fakes.act_space.n == 3 and fakes.num == 2 and fakes.action_repeat == 1
  assert fakes.obs_space['vector'].shape == (4,)


def test_cartpole_copies(cartpoles):
  obs = cartpoles.reset_all()
  assert [o['vector'].shape for o in obs] == [(4,), (4,)]
  assert cartpoles.action_repeat == 2
  steps = cartpoles.step(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32))
  # Two CartPole steps per agent step: the workers read envs.Gym.action_repeat.
  assert all(o['reward'] == 2.0 and not o['is_first'] for o in steps)
  with pytest.raises(ValueError):
    cartpoles.step(np.zeros((3, 2)))


def test_user_error_in_a_worker_reaches_the_parent():
  with pytest.raises(UserError, match='Unknown fake task'):
    ParallelEnvs('fake:bogus', 1)


def test_dead_worker_is_an_error_not_a_hang():
  # With no restarts allowed, a death is the run's error (tests/test_env_faults.py
  # covers restarts).
  envs = ParallelEnvs('fake:continuous', 1, max_restarts=0)
  envs.reset_all()
  os.kill(envs.workers[0].pid, signal.SIGKILL)
  with pytest.raises(EnvFailed, match='worker 0.*died.*signal 9'):
    envs.step(np.zeros((1, 2)))
  envs.close()


def test_a_dead_worker_is_an_error_for_its_caller():
  worker = Worker('dreamkit.envs.parallel.build_env',
                  dict(task='fake:discrete', gin_config='', plugins=(), overrides={}),
                  'a worker')
  worker.call('reset')
  os.kill(worker.pid, signal.SIGKILL)
  with pytest.raises(WorkerError, match='died with exit code -9'):
    worker.call('step', 0)


def test_an_error_in_one_copy_leaves_the_others_usable(cartpoles):
  cartpoles.reset_all()
  before = cartpoles.restarts
  steps = cartpoles.step([np.zeros(2), np.zeros(5)])  # Copy 1 gets a malformed action.
  # Copy 1 raised (ValueError), so it was restarted: a fresh episode's first step.
  assert [obs['is_first'] for obs in steps] == [False, True]
  assert cartpoles.restarts == before + 1
  steps = cartpoles.step(np.eye(2, dtype=np.float32))
  assert len(steps) == 2 and not any(obs['is_first'] for obs in steps)


def test_a_script_that_never_closes_its_envs_still_exits(tmp_path):
  # At exit multiprocessing joins non-daemon workers with no timeout; they must have
  # been told to stop first, whatever finalizers other libraries registered earlier.
  script = tmp_path / 'forgets_close.py'
  script.write_text(
      'import weakref\n'
      'class Early: pass\n'
      'early = Early()\n'
      'weakref.finalize(early, print)\n'
      'from dreamkit.envs.parallel import ParallelEnvs\n'
      'if __name__ == "__main__":\n'
      '  envs = ParallelEnvs("fake:discrete", 1)\n'
      '  envs.reset_all()\n')
  repo = str(pathlib.Path(__file__).resolve().parents[1])
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      p for p in (repo, os.environ.get('PYTHONPATH')) if p))
  result = subprocess.run([sys.executable, str(script)], timeout=120,
                          capture_output=True, text=True, env=env)
  assert result.returncode == 0, result.stderr


def test_worker_config_drops_only_dreamkit_imports_outside_envs():
  from dreamkit.envs.parallel import worker_config
  text = ('import dreamkit.networks.encoders\n'
          'import dreamkit.envs\n'
          'import my_package.envs\n'
          'import dreamkit.world_model\n'
          'Fake.length = 3\n')
  assert worker_config(text).split() == [
      'import', 'dreamkit.envs', 'import', 'my_package.envs', 'Fake.length', '=', '3']
