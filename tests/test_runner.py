"""The pipeline's loop in this process, at debug sizes on the fake env: the order of
prefill, evaluation and training, the rows it writes, and what stopping keeps."""

import os
import signal
import time
from pathlib import Path

import gin
import pytest

from dreamkit import config
from dreamkit.errors import UserError
from dreamkit.outputs import Output
from dreamkit.runner import rows as rows_lib
from dreamkit.runner.pipeline import EXIT_SIGTERM, Pipeline

REPO = Path(__file__).resolve().parents[1]
PREFILL, STEPS, TRAIN_EVERY = 40, 80, 10  # Fake episodes last <= 20 steps.


class Recorder(Output):
  """Keeps every row and progress call; optionally SIGTERMs this process at a step."""

  def __init__(self, logdir, kill_at=None):
    del logdir
    self.rows, self.progress_calls, self.kill_at = [], [], kill_at

  def write(self, step, metrics):
    self.rows.append(dict(metrics, step=step))
    if self.kill_at is not None and step >= self.kill_at and 'train_return' in metrics:
      self.kill_at = None
      os.kill(os.getpid(), signal.SIGTERM)

  def progress(self, step, counters):
    self.progress_calls.append((step, counters))


def pipeline(logdir, bindings=(), outputs=(), recorder=Recorder, **kwargs):
  """A Pipeline of the fake env at debug sizes, recording its rows (with `recorder`,
  built with `kwargs`), and writing to `outputs` too (factories of the logdir)."""
  gin.clear_config()
  fake = logdir.parent / 'fake.gin'
  fake.write_text(
      f"include '{REPO / 'pipelines' / 'dreamerv2_defaults.gin'}'\n"
      "Pipeline.task = 'fake:discrete'\nMLP_KEYS = 'vector'\nCNN_KEYS = '$^'\n"
      'envs.Fake.image = False\n')
  config.load([fake, REPO / 'pipelines' / 'debug.gin'], [
      f'Pipeline.prefill = {PREFILL}', f'Pipeline.steps = {STEPS}',
      f'Pipeline.train_every = {TRAIN_EVERY}', 'Pipeline.eval_every = 20',
      'Pipeline.log_every = 20', 'Pipeline.video_every = 0',
      'Pipeline.checkpoint_every = 1000', *bindings])
  recorder = recorder(logdir, **kwargs)
  return gin.get_configurable(Pipeline)(
      logdir=logdir, outputs=[lambda _: recorder, *outputs]), recorder


def checkpoint_files(logdir):
  directory = logdir / 'checkpoints'
  return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_loop_rows_and_a_refused_resume(tmp_path):
  logdir = tmp_path / 'run'
  run, recorder = pipeline(logdir)
  run.run()
  rows = recorder.rows
  evals = [row for row in rows if 'eval_return' in row]
  # The first evaluation comes right after prefill and pretrain, before collecting.
  assert evals[0]['step'] == PREFILL
  assert [row['step'] for row in evals][:3] == [40, 60, 80]
  assert all(row['frames'] == row['step'] for row in evals)  # Fake: action repeat 1.
  logs = [row for row in rows if 'model_loss' in row]
  # One building update, `pretrain` 1, then one every TRAIN_EVERY steps after prefill.
  assert logs[-1]['updates'] == 2 + (STEPS - PREFILL) // TRAIN_EVERY
  assert logs[-1]['step'] == STEPS
  assert {'fps', 'step_fps', 'train_fps', 'frames', 'model_skipped'} <= set(logs[-1])
  assert recorder.progress_calls and recorder.progress_calls[0][0] <= PREFILL
  assert (logdir / 'operative_config.gin').exists()

  # Another architecture on the same logdir is refused, and nothing of the run's
  # is overwritten: not its checkpoints, not its config.gin.
  saved, config_text = checkpoint_files(logdir), (logdir / 'config.gin').read_text()
  other, _ = pipeline(logdir, ['DETER = 24'])
  with pytest.raises(UserError, match='different configuration'):
    other.run()
  assert checkpoint_files(logdir) == saved
  assert (logdir / 'config.gin').read_text() == config_text


class SkewedClock:
  """The `time` module as rows.py sees it, an hour ahead after its first reading
  (when the Rows start counting), so a run seems to have trained for an hour."""

  HOUR = 3600.0

  def __init__(self):
    self.readings = 0

  def time(self):
    self.readings += 1
    return time.time() + (self.HOUR if self.readings > 1 else 0.0)


def test_sigterm_saves_a_checkpoint_and_the_resume_continues_wall_time(
    tmp_path, monkeypatch):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  logdir = tmp_path / 'run'
  before = signal.getsignal(signal.SIGTERM)
  monkeypatch.setattr(rows_lib, 'time', SkewedClock())
  run, stopped_rows = pipeline(logdir, kill_at=PREFILL + 5)
  with pytest.raises(SystemExit) as stopped:
    run.run()
  assert stopped.value.code == EXIT_SIGTERM
  path = tf.train.latest_checkpoint(str(logdir / 'checkpoints'))
  reader = tf.train.load_checkpoint(path)
  step = int(reader.get_tensor('step/.ATTRIBUTES/VARIABLE_VALUE'))
  assert PREFILL + 5 <= step < STEPS
  assert signal.getsignal(signal.SIGTERM) == before  # The handler is put back.
  # The checkpoint carries the seconds trained so far (the skewed hour included).
  saved = float(reader.get_tensor('wall_time/.ATTRIBUTES/VARIABLE_VALUE'))
  first = [row['wall_time'] for row in stopped_rows.rows if 'wall_time' in row]
  assert first and SkewedClock.HOUR <= first[-1] <= saved

  # Resumed on the real clock, wall_time goes on from the checkpoint's: a restart at
  # 0 would stay far below the skewed hour.
  monkeypatch.setattr(rows_lib, 'time', time)
  resumed, resumed_rows = pipeline(logdir)
  started = time.time()
  resumed.run()
  second = [row['wall_time'] for row in resumed_rows.rows if 'wall_time' in row]
  assert resumed_rows.rows[-1]['step'] == STEPS and len(second) >= 2
  assert saved <= second[0] and second[-1] - saved <= time.time() - started
  assert first + second == sorted(first + second)


def test_the_pipeline_seed_fixes_the_initial_weights():
  """Keras seeds its initializers from Python's `random`: seeding TensorFlow alone
  gave every process (and every build) other initial weights for the same seed."""
  import types
  import keras
  import numpy as np
  from dreamkit.networks import heads
  from dreamkit.runner import restore

  def weights(seed):
    restore.prepare(types.SimpleNamespace(seed=seed, precision=32, eager=False))
    head = heads.MLPHead((), layers=1, units=8)
    head.build((1, 4))
    return [np.asarray(v) for v in head.weights]

  first, again, other = weights(3), weights(3), weights(4)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(first[0], other[0])
  keras.utils.set_random_seed(0)  # As conftest.py leaves it.
