"""`dreamkit dream`: truth | imagination | difference from a trained run's replay."""

import json

import numpy as np
import pytest
from PIL import Image

from dreamkit import dream
from dreamkit.errors import UserError

import trained_run as helper

SIZE = 16  # the trained run's image height and width


@pytest.fixture
def entry_point(trained_run, monkeypatch):
  """The trained run's entry-point package, importable in this process."""
  monkeypatch.syspath_prepend(str(trained_run.site))


def frames_of(path):
  with Image.open(path) as gif:
    frames = []
    for index in range(gif.n_frames):
      gif.seek(index)
      frames.append(np.asarray(gif.convert('L'), np.float64))
  return frames


def test_dream_writes_truth_model_and_difference(trained_run, entry_point, tmp_path):
  del entry_point
  before = helper.files(trained_run.logdir)
  output = tmp_path / 'dream.gif'
  report = dream.dream(trained_run.logdir, context=3, horizon=6, samples=2, output=output)
  assert helper.files(trained_run.logdir) == before, 'dream changed a file of the run'

  frames = frames_of(output)
  assert 1 <= len(frames) <= 9  # identical consecutive frames are merged
  for frame in frames:
    assert frame.shape == (3 * SIZE, 2 * SIZE)  # rows: truth, model, difference
    truth, model, difference = frame[:SIZE], frame[SIZE:2 * SIZE], frame[2 * SIZE:]
    # The difference row is (model - truth + 1) / 2 in [0, 1] pixels, up to rounding.
    assert np.abs(difference - (model - truth + 255) / 2).max() <= 1.5
  # The truth row shows real observations: the fake env's bright bands.
  assert any(frame[:SIZE].max() == 255 for frame in frames)

  with Image.open(tmp_path / 'dream.png') as sheet:
    assert sheet.size == (9 * SIZE, 2 * 3 * SIZE)  # 9 steps (< 10 moments), 2 samples
  numbers = json.loads((tmp_path / 'dream.json').read_text())
  assert len(numbers['image_mse']['image']) == 9 and len(numbers['reward_abs_error']) == 9
  assert numbers['step'] == helper.STEPS and report.actions == 'actor'
  assert 'image mse' in report.text() and str(output) in report.text()


def test_dream_with_the_recorded_actions_and_refusals(trained_run, entry_point, tmp_path):
  del entry_point
  report = dream.dream(trained_run.logdir, context=2, horizon=2, samples=1,
                       output=tmp_path / 'real.gif', actions='real')
  assert len(report.reward_error) == 4
  with pytest.raises(UserError, match='no episode of 1002 steps'):
    dream.dream(trained_run.logdir, context=2, horizon=1000, output=tmp_path / 'x.gif')
  with pytest.raises(UserError, match='.gif or an .mp4'):
    dream.dream(trained_run.logdir, output=tmp_path / 'x.png')
