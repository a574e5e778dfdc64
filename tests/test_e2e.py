"""End to end through `dreamkit run`: the files a run leaves, learning, and resume.

These start real processes and train for a few hundred steps at debug sizes, so they
are marked slow (`python -m pytest -m "not slow"` skips them); CI runs them.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import tensorflow as tf

REPO = Path(__file__).resolve().parents[1]
PIPELINES = REPO / 'pipelines'
EXPECTED_KEYS = {
    'step', 'frames', 'fps', 'train_fps', 'train_return', 'train_length', 'eval_return',
    'eval_length', 'model_loss', 'kl_loss', 'reward_loss', 'actor_loss', 'critic_loss',
    'actor_ent', 'model_grad_norm', 'actor_grad_norm', 'critic_grad_norm'}

pytestmark = pytest.mark.slow


def dreamkit(*args, timeout=900):
  return subprocess.run(
      [sys.executable, '-m', 'dreamkit.cli', *map(str, args)], capture_output=True,
      text=True, timeout=timeout, cwd=REPO)


def check_run(logdir, keys):
  logdir = Path(logdir)
  rows = pd.read_json(logdir / 'metrics.jsonl', lines=True)
  missing = (EXPECTED_KEYS | set(keys)) - set(rows.columns)
  assert not missing, missing
  assert list(logdir.glob('events.out.tfevents.*')), 'no TensorBoard events'
  assert list((logdir / 'replay').glob('*.h5')), 'no HDF5 episodes'
  assert (logdir / 'checkpoints' / 'checkpoint').exists(), 'no checkpoint'
  assert (logdir / 'config.gin').read_text().strip()
  assert 'Pipeline.task' in (logdir / 'operative_config.gin').read_text()
  losses = rows['model_loss'].dropna().to_numpy()
  assert len(losses) >= 2 and losses[-1] < losses[0], losses
  tags = set()
  for path in logdir.glob('events.out.tfevents.*'):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      tags.update(value.tag for value in event.summary.value)
  assert any(tag.endswith('model_loss') for tag in tags), tags
  return rows


def test_pixel_env_trains_through_the_cli(tmp_path):
  logdir = tmp_path / 'pong'
  result = dreamkit(
      'run', PIPELINES / 'atari_dreamerv2.gin', PIPELINES / 'debug.gin',
      '--task', 'atari:pong', '--steps', 400, '--logdir', logdir,
      '-b', 'Pipeline.eager = False', '-b', 'Pipeline.train_every = 5',
      '-b', 'Pipeline.log_every = 100')
  assert result.returncode == 0, result.stderr[-3000:]
  rows = check_run(logdir, {'image_loss', 'discount_loss'})
  assert rows['step'].max() == 400
  assert (rows['frames'].dropna() == rows.loc[rows['frames'].notna(), 'step'] * 4).all()
  assert 'unused' not in result.stdout.lower()


def test_vector_env_trains_through_the_cli_with_parallel_envs(tmp_path):
  logdir = tmp_path / 'cartpole'
  result = dreamkit(
      'run', PIPELINES / 'cartpole_dreamerv2.gin', PIPELINES / 'debug.gin',
      '--steps', 400, '--logdir', logdir, '-b', 'Pipeline.eager = False',
      '-b', 'Pipeline.train_every = 5', '-b', 'Pipeline.log_every = 100',
      '-b', 'Pipeline.envs = 2', '-b', 'Pipeline.parallel = True')
  assert result.returncode == 0, result.stderr[-3000:]
  rows = check_run(logdir, {'vector_loss'})
  assert rows['step'].max() == 400


def checkpoint_step(logdir, counter='step'):
  path = tf.train.latest_checkpoint(str(logdir / 'checkpoints'))
  return int(tf.train.load_checkpoint(path).get_tensor(f'{counter}/.ATTRIBUTES/VARIABLE_VALUE'))


def test_sigkill_mid_training_resumes_from_the_last_checkpoint(tmp_path):
  logdir = tmp_path / 'run'
  (tmp_path / 'fake.gin').write_text(
      "include '%s'\nPipeline.task = 'fake:discrete'\nMLP_KEYS = 'vector'\n"
      'envs.Fake.size = (64, 64)\nPipeline.eval_eps = 0\n' % (PIPELINES / 'dreamerv2_defaults.gin'))
  run = ['run', tmp_path / 'fake.gin', PIPELINES / 'debug.gin', '--logdir', logdir,
         '-b', 'Pipeline.eager = False', '-b', 'Pipeline.checkpoint_every = 50',
         '-b', 'Pipeline.log_every = 50', '-b', 'Pipeline.video_every = 0']
  command = [sys.executable, '-m', 'dreamkit.cli', *run, '--steps', 100000]
  log = open(tmp_path / 'first_run.log', 'w')
  process = subprocess.Popen(list(map(str, command)), cwd=REPO, stdout=log,
                             stderr=subprocess.STDOUT, text=True)
  deadline = time.time() + 600
  try:
    # Wait for a second checkpoint, so the kill lands mid-training, not at start.
    while not list((logdir / 'checkpoints').glob('ckpt-3.index')):
      assert process.poll() is None, (tmp_path / 'first_run.log').read_text()[-3000:]
      assert time.time() < deadline, 'no checkpoint in time'
      time.sleep(0.5)
    time.sleep(2)
  finally:
    if process.poll() is None:
      os.kill(process.pid, signal.SIGKILL)
    process.wait()
    log.close()
  assert process.returncode == -signal.SIGKILL
  saved = checkpoint_step(logdir)
  saved_updates = checkpoint_step(logdir, 'updates')
  episodes = sorted(path.name for path in (logdir / 'replay').glob('*.h5'))
  assert saved >= 100 and episodes

  result = dreamkit(*run, '--steps', saved + 100)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f'at step {saved}.' in result.stdout, result.stdout[-2000:]
  assert 'Prefilling' not in result.stdout
  after = {path.name for path in (logdir / 'replay').glob('*.h5')}
  assert set(episodes) <= after, 'replay lost episodes on resume'
  rows = pd.read_json(logdir / 'metrics.jsonl', lines=True)
  assert rows['step'].max() == saved + 100
  assert checkpoint_step(logdir) == saved + 100
  # The update counter continued too: one building update (its result is replaced
  # by the restore), then one every train_every (debug: 10) steps.
  assert checkpoint_step(logdir, 'updates') == saved_updates + 100 // 10


def test_plugin_outside_the_repo_trains_through_the_cli(tmp_path):
  plugin = tmp_path / 'elsewhere' / 'my_encoder.py'
  plugin.parent.mkdir()
  plugin.write_text((REPO / 'plugins' / 'impala_encoder.py').read_text())
  (tmp_path / 'fake.gin').write_text(
      "include '%s'\nPipeline.task = 'fake:discrete'\nMLP_KEYS = 'vector'\n"
      'envs.Fake.size = (64, 64)\n' % (PIPELINES / 'dreamerv2_defaults.gin'))
  logdir = tmp_path / 'run'
  result = dreamkit(
      'run', tmp_path / 'fake.gin', PIPELINES / 'debug.gin', '--plugin', plugin,
      '-b', 'WorldModel.encoder = @encoders.ImpalaEncoder',
      '-b', 'encoders.ImpalaEncoder.depths = (4, 8)',
      '-b', 'encoders.ImpalaEncoder.embed_size = 32',
      '--steps', 200, '--logdir', logdir, '-b', 'Pipeline.eager = False',
      '-b', 'Pipeline.train_every = 5', '-b', 'Pipeline.log_every = 100',
      '-b', 'Pipeline.video_every = 0')
  assert result.returncode == 0, result.stderr[-3000:]
  assert '@encoders.ImpalaEncoder' in (logdir / 'operative_config.gin').read_text()
  assert str(plugin.resolve()) in (logdir / 'plugins.json').read_text()
  rows = pd.read_json(logdir / 'metrics.jsonl', lines=True)
  assert rows['model_loss'].notna().any()
