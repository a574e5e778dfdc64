"""`dreamkit eval`: a trained run's checkpoint played again, read-only, with the
runner's own evaluation seeds (tests/trained_run.py trains the run once)."""

import json

import numpy as np
import pytest
from PIL import Image

from dreamkit import evaluate
from dreamkit import scores
from dreamkit.errors import UserError
from dreamkit.runner import evaluation
from dreamkit.runner import restore

import trained_run as helper


def runner_evaluations(logdir):
  rows = [json.loads(line) for line in (logdir / 'metrics.jsonl').read_text().splitlines()]
  return {row['step']: row for row in rows if 'eval_return' in row}


def test_eval_replays_the_runners_evaluation_and_touches_nothing(trained_run, tmp_path):
  logdir = trained_run.logdir
  before = helper.files(logdir)
  video = tmp_path / 'first.gif'
  # By the logdir alone: the plugin file is gone (its copy in the logdir is used)
  # and the entry-point package is found on the PYTHONPATH.
  result = helper.dreamkit('eval', logdir, '--video', video, env=trained_run.env)
  assert result.returncode == 0, result.stderr[-3000:]
  assert helper.files(logdir) == before, 'eval changed a file of the run'

  rows = [json.loads(line)
          for line in (logdir / 'eval' / f'{helper.STEPS:09d}.jsonl').read_text().splitlines()]
  summary = rows[-1]
  assert summary['summary'] and summary['step'] == helper.STEPS
  assert [row['episode'] for row in rows[:-1]] == [0]  # The run's eval_eps.
  runner = runner_evaluations(logdir)[helper.STEPS]
  assert summary['eval_return'] == pytest.approx(runner['eval_return'])
  assert summary['eval_length'] == pytest.approx(runner['eval_length'])
  assert f"{summary['eval_return']:.4g}" in result.stdout
  assert 'steps evaluated' in result.stdout

  # The video holds the first episode's image observations, 16x16.
  with Image.open(video) as gif:
    assert gif.size == (16, 16)
    assert gif.n_frames <= summary['eval_length_max'] + 1


def test_a_missing_entry_point_package_is_named(trained_run):
  result = helper.dreamkit('eval', trained_run.logdir)  # No PYTHONPATH: not installed.
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr
  assert 'trained-ep' in lines[0] and 'pip install trained-ep==1.0' in lines[0]


def test_checkpoint_steps(trained_run):
  path, step = restore.find_checkpoint(trained_run.logdir, 'latest')
  assert step == helper.STEPS and path.endswith('ckpt-1')
  assert restore.find_checkpoint(trained_run.logdir, str(helper.STEPS)) == (path, step)
  with pytest.raises(UserError, match=f'no checkpoint at step 50;.*keeps the steps {helper.STEPS}'):
    restore.find_checkpoint(trained_run.logdir, '50')
  with pytest.raises(UserError, match='not a dreamkit run|no config.gin'):
    evaluate.evaluate(trained_run.logdir / 'replay')


def test_evaluation_seeds_depend_on_seed_and_step_only():
  assert evaluation.seeds(0, 300) == evaluation.seeds(0, 300)
  assert len({evaluation.seeds(0, 300), evaluation.seeds(1, 300),
              evaluation.seeds(0, 600)}) == 3
  assert all(0 <= value < 2**31 for value in evaluation.seeds(7, 10**9))


def test_atari_rows_carry_the_papers_scores(tmp_path):
  result = evaluate.Result(
      logdir=tmp_path, checkpoint='ckpt-9', step=500_000, frames=2_000_000,
      task='atari:pong', mode='eval', seed=0, envs=1, returns=[-10.0, 0.0],
      lengths=[900, 1100], rows=tmp_path / 'eval' / 'rows.jsonl')
  evaluate._published_scores(result)  # pylint: disable=protected-access
  random, human = scores.atari_anchors('pong')
  assert result.normalized == pytest.approx((-5.0 - random) / (human - random))
  curves = scores.curves('atari:pong')
  expected = np.mean([np.interp(2e6, curve.frames, curve.returns) for curve in curves])
  assert result.paper['return'] == pytest.approx(expected)
  text = evaluate.table(result)
  assert 'gamer-normalised score' in text and "paper's DreamerV2 at 2,000,000 frames" in text
  row = evaluate.summary(result)
  assert row['gamer_normalized'] == pytest.approx(result.normalized)
  assert row['eval_return_min'] == -10.0 and row['steps_evaluated'] == 2000


def test_a_gym_task_has_no_published_scores(tmp_path):
  result = evaluate.Result(
      logdir=tmp_path, checkpoint='ckpt-1', step=100, frames=100, task='gym:CartPole-v1',
      mode='eval', seed=0, envs=1, returns=[500.0], lengths=[500], rows=tmp_path / 'r')
  evaluate._published_scores(result)  # pylint: disable=protected-access
  assert result.paper is None and result.normalized is None
  assert 'gamer' not in evaluate.table(result)


def test_mp4_without_ffmpeg_or_a_gif(tmp_path):
  frames = np.zeros((3, 8, 8, 1), np.uint8)
  assert evaluate.write_video(tmp_path / 'a.gif', frames).exists()
  try:
    evaluate.write_video(tmp_path / 'a.mp4', frames)
  except UserError as error:
    assert 'imageio[ffmpeg]' in str(error)
  else:
    assert (tmp_path / 'a.mp4').stat().st_size > 0
