"""Envs that crash or hang: the copy is restarted, its unfinished episode dropped, and
too many failures in a row stop with one line (docs/envs.md, "When an env fails")."""

import multiprocessing
import os
import signal
import time
from pathlib import Path

import gin
import numpy as np
import pytest

from dreamkit import config
from dreamkit.envs.batched import EnvFailed, SerialEnvs, copy_seed
from dreamkit.envs.fake import Faulty
from dreamkit.envs.parallel import ParallelEnvs
from dreamkit.errors import UserError
from dreamkit.outputs import Output
from dreamkit.replay.memory import MemoryReplay
from dreamkit.runner.driver import Driver
from dreamkit.runner.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[1]

LENGTH = 6  # Fake episodes of exactly LENGTH steps (+ the first), no terminations.
FAKE = f'envs.Fake.length = {LENGTH}\nenvs.Fake.terminal_prob = 0.0\n'


@pytest.fixture(scope='module')
def plugin(tmp_path_factory):
  """A plugin that registers `Faulty` (prefix 'faulty'), for the workers only."""
  path = tmp_path_factory.mktemp('plugin') / 'faulty_env_plugin.py'
  path.write_text('from dreamkit.envs import registry\n'
                  'from dreamkit.envs.fake import Faulty\n'
                  'registry.register(Faulty)\n')
  return str(path)


def faulty(plugin, num, fault, at, times=None, marker=None, seed=0, **settings):
  """ParallelEnvs of `faulty:discrete` copies that fail as asked."""
  config = (f"envs.Faulty.fault = '{fault}'\nenvs.Faulty.at = {at}\n"
            f'envs.Faulty.length = {LENGTH}\n')
  if marker is not None:
    config += f"envs.Faulty.marker = '{marker}'\nenvs.Faulty.times = {times}\n"
  return ParallelEnvs('faulty:discrete', num, gin_config=config, plugins=[plugin],
                      seed=seed, **settings)


def random_policy(obs, state):
  count = len(obs['is_first'])
  return {'action': np.eye(3, dtype=np.float32)[np.random.randint(3, size=count)]}, state


def check_complete(replay):
  """Every stored episode is whole: one first step, LENGTH more, the last one last."""
  for key in replay._index.keys():  # pylint: disable=protected-access
    episode = replay._episodes[key]  # pylint: disable=protected-access
    assert len(episode['is_first']) == LENGTH + 1
    assert episode['is_first'][0] and not episode['is_first'][1:].any()
    assert episode['is_last'][-1] and not episode['is_last'][:-1].any()


def test_a_worker_killed_mid_episode_is_replaced_and_the_loop_finishes():
  envs = ParallelEnvs('fake:discrete', 2, gin_config=FAKE, seed=0, max_restarts=1)
  replay = MemoryReplay(minlen=1, ongoing=True)
  restarts, episodes, steps_of_copy = [], [], [0, 0]
  envs.on_restart(lambda index, reason: restarts.append((index, reason)))
  driver = Driver(envs)
  driver.on_step(replay.add_step)
  driver.on_episode(lambda episode, index: episodes.append(index))
  killed = []

  def kill_copy_one(step, index):
    steps_of_copy[index] = 0 if step['is_first'] else steps_of_copy[index] + 1
    if index == 1 and not killed and len(episodes) >= 2 and steps_of_copy[1] == 3:
      killed.append(envs.workers[1].pid)  # Mid-episode: 3 of its 6 steps taken.
      os.kill(envs.workers[1].pid, signal.SIGKILL)

  driver.on_step(kill_copy_one)
  try:
    steps, finished = driver(random_policy, steps=60)
    assert killed and envs.restarts == 1
    assert restarts == [(1, restarts[0][1])] and 'signal 9' in restarts[0][1]
    assert envs.workers[1].pid != killed[0]
    assert steps >= 60  # Two copies step at once; the restart's call gave one step.
    # The killed copy's 3 steps were dropped: every stored episode is whole, and the
    # copy's ongoing episode began at its restart.
    check_complete(replay)
    assert replay.stats['episodes'] == finished == len(episodes)
    ongoing = replay._index._workers[1]  # pylint: disable=protected-access
    assert ongoing.length == 0 or ongoing.steps['is_first'][0]
    assert replay.stats['steps'] == finished * (LENGTH + 1)
    # Copy 0 played 31 steps (5 whole episodes); copy 1 played 2 episodes, 3 steps
    # that were dropped, then 2 more episodes.
    assert episodes.count(0) == 31 // LENGTH and episodes.count(1) == 4
  finally:
    envs.close()


def test_a_hanging_worker_is_detected_within_its_timeout(plugin):
  envs = faulty(plugin, 1, 'hang', at=2, timeout=1.5, max_restarts=0)
  try:
    envs.reset_all()
    envs.step(np.eye(3, dtype=np.float32)[:1])  # Step 1 answers.
    start = time.monotonic()
    with pytest.raises(EnvFailed, match='no answer within 1.5 s') as error:
      envs.step(np.eye(3, dtype=np.float32)[:1])  # Step 2 never does.
    elapsed = time.monotonic() - start
    assert 1.5 <= elapsed < 3.5, elapsed
    assert isinstance(error.value, UserError) and '\n' not in str(error.value)
    assert not envs.workers[0]._process.is_alive()  # pylint: disable=protected-access
  finally:
    envs.close()


def test_a_hanging_worker_is_restarted_and_stepping_goes_on(plugin, tmp_path):
  envs = faulty(plugin, 2, 'hang', at=2, times=1, marker=tmp_path / 'faults',
                timeout=1.0)
  try:
    driver = Driver(envs)
    steps, _ = driver(random_policy, steps=20)
    assert steps >= 20 and envs.restarts == 1
  finally:
    envs.close()


@pytest.mark.parametrize('fault', ['raise', 'segfault'])
def test_a_worker_whose_env_raises_or_segfaults_is_restarted(plugin, tmp_path, fault):
  envs = faulty(plugin, 2, fault, at=2, times=1, marker=tmp_path / 'faults')
  reasons = []
  envs.on_restart(lambda index, reason: reasons.append(reason))
  try:
    envs.reset_all()
    actions = np.eye(3, dtype=np.float32)[[0, 1]]
    assert not any(obs['is_first'] for obs in envs.step(actions))
    # Step 2: one copy fails (whichever reached the marker first), and answers with
    # the first step of a fresh episode; the other steps on.
    steps = envs.step(actions)
    assert sorted(obs['is_first'] for obs in steps) == [False, True]
    assert envs.restarts == 1
    expected = 'RuntimeError: Faulty env' if fault == 'raise' else 'signal 11'
    assert len(reasons) == 1 and expected in reasons[0]
    for _ in range(LENGTH):
      assert len(envs.step(actions)) == 2
    assert envs.restarts == 1
  finally:
    envs.close()


def test_too_many_failures_in_a_row_stop_with_one_line(plugin):
  # Every copy built fails at its second step: restarts never help.
  envs = faulty(plugin, 1, 'raise', at=2, max_restarts=2)
  try:
    driver = Driver(envs)
    with pytest.raises(EnvFailed) as error:
      driver(random_policy, steps=50)
    message = str(error.value)
    assert '\n' not in message
    assert 'failed 3 times in a row' in message and 'max_restarts = 2' in message
    assert 'RuntimeError: Faulty env: injected failure' in message
    assert envs.restarts == 2
  finally:
    envs.close()


def test_failures_count_in_a_row_only_until_an_episode_ends(plugin):
  # Each copy built plays one whole episode (length 1), then fails at its 2nd step.
  config = ("envs.Faulty.fault = 'raise'\nenvs.Faulty.at = 2\n"
            'envs.Faulty.length = 1\n')
  envs = ParallelEnvs('faulty:discrete', 1, gin_config=config, plugins=[plugin],
                      max_restarts=1)
  try:
    steps, episodes = Driver(envs)(random_policy, steps=4)
    assert (steps, episodes) == (4, 4) and envs.restarts == 3
  finally:
    envs.close()


def test_a_serial_copy_that_raises_is_rebuilt(tmp_path):
  built = []

  def make():
    built.append(Faulty('discrete', fault='raise', at=3, times=1,
                        marker=tmp_path / 'faults', length=LENGTH, seed=len(built)))
    return built[-1]

  envs = SerialEnvs([make, make], max_restarts=1)
  replay = MemoryReplay(minlen=1)
  driver = Driver(envs)
  driver.on_step(replay.add_step)
  steps, _ = driver(random_policy, steps=30)
  assert steps >= 30 and envs.restarts == 1 and len(built) == 3
  assert envs.envs[0] is built[2]  # Copy 0 failed first and was built again.
  check_complete(replay)
  envs.close()


def test_a_serial_copy_that_keeps_failing_stops_the_run():
  envs = SerialEnvs.from_task('fake:discrete', 1, seed=0, max_restarts=1)
  envs.envs[0] = Faulty('discrete', fault='raise', at=1)
  envs._factories[0] = lambda: Faulty('discrete', fault='raise', at=1)  # pylint: disable=protected-access
  with pytest.raises(EnvFailed, match='failed 2 times in a row'):
    Driver(envs)(random_policy, steps=10)
  assert envs.restarts == 1


def test_serial_env_objects_cannot_be_rebuilt_so_their_errors_propagate():
  envs = SerialEnvs([Faulty('discrete', fault='raise', at=1)])
  with pytest.raises(RuntimeError, match='injected failure'):
    Driver(envs)(random_policy, steps=3)
  assert envs.restarts == 0


def test_a_user_error_and_a_signal_handlers_exception_are_not_restarted():
  class Stop(Exception):
    pass

  def handler(signum, frame):
    raise Stop()

  class Signals(Faulty):
    def step(self, action):
      os.kill(os.getpid(), signal.SIGUSR1)  # The handler raises inside step.
      return super().step(action)

  previous = signal.signal(signal.SIGUSR1, handler)
  try:
    envs = SerialEnvs([lambda: Signals('discrete', at=100)])
    envs.reset([0])
    with pytest.raises(Stop):
      envs.step(np.eye(3, dtype=np.float32)[:1])
    assert envs.restarts == 0
  finally:
    signal.signal(signal.SIGUSR1, previous)

  def refuses():
    raise UserError('no such thing')

  envs = SerialEnvs([lambda: Faulty('discrete', at=100)])
  envs.reset([0])
  envs.envs[0].step = lambda action: refuses()
  with pytest.raises(UserError, match='no such thing'):
    envs.step(np.eye(3, dtype=np.float32)[:1])
  assert envs.restarts == 0


def test_a_restarted_copy_gets_a_seed_of_its_own():
  assert [copy_seed(7, index) for index in range(3)] == [7, 8, 9]
  again = [copy_seed(7, 1, restarts) for restarts in range(1, 4)]
  assert len(set(again) | {8, 7, 9}) == 6 and all(0 <= seed < 2**31 for seed in again)
  assert copy_seed(None, 1, 2) is None


def test_settings_are_checked():
  with pytest.raises(UserError, match='max_restarts'):
    SerialEnvs.from_task('fake:discrete', 1, max_restarts=-1)
  with pytest.raises(UserError, match='timeout'):
    ParallelEnvs('fake:discrete', 1, timeout=0)


class KillsATrainWorker(Output):
  """Records rows; at the first training row, SIGKILLs the oldest env worker (the
  first training copy: the training envs start before the evaluation envs)."""

  def __init__(self, logdir):
    del logdir
    self.rows, self.killed = [], None

  def write(self, step, metrics):
    self.rows.append(dict(metrics, step=step))
    if self.killed is None and 'model_loss' in metrics:
      worker = min(multiprocessing.active_children(), key=lambda process: process.pid)
      self.killed = worker.pid
      os.kill(worker.pid, signal.SIGKILL)

  def progress(self, step, counters):
    del step, counters


def parallel_run(logdir, *bindings):
  """A parallel run of the fake env at debug sizes (as tests/test_runner.py's)."""
  gin.clear_config()
  fake = logdir.parent / 'fake.gin'
  fake.write_text(
      f"include '{REPO / 'pipelines' / 'dreamerv2_defaults.gin'}'\n"
      "Pipeline.task = 'fake:discrete'\nMLP_KEYS = 'vector'\nCNN_KEYS = '$^'\n"
      'envs.Fake.image = False\n')
  config.load([fake, REPO / 'pipelines' / 'debug.gin'], [
      'Pipeline.prefill = 40', 'Pipeline.steps = 100', 'Pipeline.train_every = 10',
      'Pipeline.eval_every = 50', 'Pipeline.log_every = 10', 'Pipeline.video_every = 0',
      'Pipeline.checkpoint_every = 1000', 'Pipeline.parallel = True', *bindings])
  recorder = KillsATrainWorker(logdir)
  return gin.get_configurable(Pipeline)(
      logdir=logdir, outputs=[lambda _: recorder]), recorder


@pytest.mark.slow
def test_a_run_whose_env_worker_is_killed_finishes_and_counts_the_restart(tmp_path):
  run, recorder = parallel_run(tmp_path / 'run')
  run.run()
  assert recorder.killed is not None
  restarts = [row for row in recorder.rows if 'env_restarts' in row]
  assert [row['env_restarts'] for row in restarts] == [1]
  assert max(row['step'] for row in recorder.rows) == 100


@pytest.mark.slow
def test_a_run_stops_with_one_line_and_a_checkpoint_when_restarts_run_out(
    tmp_path, capsys):
  run, recorder = parallel_run(tmp_path / 'run', 'envs.ParallelEnvs.max_restarts = 0')
  with pytest.raises(EnvFailed) as error:
    run.run()
  assert recorder.killed is not None and '\n' not in str(error.value)
  assert 'max_restarts = 0' in str(error.value)
  assert (tmp_path / 'run' / 'checkpoints' / 'checkpoint').exists()
  # The run's last lines say what it saved where, as after any other stop.
  printed = capsys.readouterr().out
  assert f"Checkpoint: {tmp_path / 'run' / 'checkpoints'}" in printed, printed
