"""Learning-curve plots from metrics.jsonl files."""

import builtins
import json

import numpy as np
import pytest
from PIL import Image

from dreamkit import outputs
from dreamkit.errors import UserError
from dreamkit.outputs import plot as plot_lib


def fake_run(directory, scale, steps=(1000, 2000, 3000, 4000)):
  """A run directory whose metrics.jsonl mixes training and evaluation rows."""
  output = outputs.JSONL(directory)
  for step in steps:
    output.write(step, {'model_loss': 3.0 / step, 'frames': 4 * step})
    output.write(step, {'eval_return': scale * step / 1000, 'frames': 4 * step})
  output.close()
  return directory


@pytest.fixture
def two_runs(tmp_path):
  return [fake_run(tmp_path / 'alpha', 1.0), fake_run(tmp_path / 'beta', 2.0)]


def test_plot_writes_a_png_with_one_curve_per_run(two_runs, tmp_path):
  path = plot_lib.plot(
      [str(run) for run in two_runs], key='eval_return',
      output=str(tmp_path / 'out' / 'curves.png'), smooth=2)
  assert path == tmp_path / 'out' / 'curves.png'
  image = Image.open(path)
  assert image.format == 'PNG' and image.size[0] > 300
  # Not a blank canvas: the two coloured curves are drawn.
  pixels = np.asarray(image.convert('RGB')).reshape(-1, 3).astype(int)
  coloured = np.abs(pixels - pixels.mean(1, keepdims=True)).max(1) > 60
  assert coloured.sum() > 100


def test_read_curve_keeps_rows_with_the_key_in_step_order(tmp_path):
  run = fake_run(tmp_path / 'run', 1.0, steps=(3000, 1000, 2000))
  xs, ys = plot_lib.read_curve(run / 'metrics.jsonl', 'eval_return', 'frames')
  np.testing.assert_array_equal(xs, [4000, 8000, 12000])
  np.testing.assert_array_equal(ys, [1.0, 2.0, 3.0])


def test_rows_at_the_same_x_are_averaged(tmp_path):
  output = outputs.JSONL(tmp_path)
  for step, value in [(1000, 1.0), (2000, 2.0), (2000, 4.0), (1000, 5.0)]:
    output.write(step, {'eval_return': value})
  output.close()
  xs, ys = plot_lib.read_curve(tmp_path / 'metrics.jsonl', 'eval_return', 'step')
  assert list(xs) == [1000, 2000] and list(ys) == [3.0, 3.0]


def test_a_missing_key_lists_the_available_keys(two_runs, tmp_path):
  with pytest.raises(UserError) as error:
    plot_lib.plot(two_runs, key='eval_retrun', output=str(tmp_path / 'x.png'))
  message = str(error.value)
  assert "no metric 'eval_retrun'" in message
  assert 'Did you mean: eval_return' in message
  assert 'Available keys: eval_return, frames, model_loss, step' in message
  assert not (tmp_path / 'x.png').exists()


def test_a_missing_x_column_is_a_user_error(two_runs, tmp_path):
  with pytest.raises(UserError, match="no x axis 'env_steps'"):
    plot_lib.plot(two_runs, x='env_steps', output=str(tmp_path / 'x.png'))


def test_a_non_numeric_metric_is_a_user_error(tmp_path):
  output = outputs.JSONL(tmp_path)
  output.write(1, {'task': 'pong'})
  output.close()
  with pytest.raises(UserError, match="cannot plot 'task'"):
    plot_lib.read_curve(tmp_path / 'metrics.jsonl', 'task', 'step')


def test_a_directory_without_metrics_is_a_user_error(tmp_path):
  (tmp_path / 'empty').mkdir()
  with pytest.raises(UserError, match='holds no metrics.jsonl'):
    plot_lib.plot([tmp_path / 'empty'], output=str(tmp_path / 'x.png'))
  with pytest.raises(UserError, match='no such directory'):
    plot_lib.plot([tmp_path / 'missing'], output=str(tmp_path / 'x.png'))


def test_a_live_run_with_a_partial_last_line_can_be_plotted(tmp_path):
  run = fake_run(tmp_path / 'live', 1.0)
  with open(run / 'metrics.jsonl', 'ab') as file:
    file.write(b'{"step": 5000, "eval_ret')
  xs, _ = plot_lib.read_curve(run / 'metrics.jsonl', 'eval_return', 'step')
  assert list(xs) == [1000, 2000, 3000, 4000]


def test_labels_are_directory_names_made_distinct(tmp_path):
  paths = [tmp_path / 'a' / 'seed0' / 'metrics.jsonl',
           tmp_path / 'b' / 'seed0' / 'metrics.jsonl']
  assert plot_lib.run_labels(paths) == ['a/seed0', 'b/seed0']
  assert plot_lib.run_labels(paths[:1]) == ['seed0']


def test_smoothing_is_a_trailing_moving_average():
  smoothed = plot_lib.smooth_values(np.array([0.0, 2.0, 4.0, 6.0]), 2)
  np.testing.assert_allclose(smoothed, [0.0, 1.0, 3.0, 5.0])
  values = np.array([1.0, 5.0])
  assert plot_lib.smooth_values(values, 0) is values


def write_scores(path, entries):
  path.write_text(json.dumps(entries))
  return path


def test_reference_scores_are_averaged_over_seeds(tmp_path, two_runs):
  scores = write_scores(tmp_path / 'scores.json', [
      {'task': 'atari_pong', 'method': 'dreamerv2', 'seed': '1',
       'xs': [0, 8000, 16000], 'ys': [-21, -10, 0]},
      {'task': 'atari_pong', 'method': 'dreamerv2', 'seed': '2',
       'xs': [0, 4000, 8000, 12000], 'ys': [-21, -15, -12, -11]},
      {'task': 'atari_boxing', 'method': 'dreamerv2', 'seed': '1',
       'xs': [0], 'ys': [0]}])
  references = plot_lib.read_reference(scores, 'atari_pong')
  xs, runs = references['dreamerv2']
  np.testing.assert_array_equal(xs, [0, 4000, 8000, 12000])
  np.testing.assert_allclose(runs[0], [-21, -15.5, -10, -5])
  path = plot_lib.plot(
      two_runs, x='frames', compare=str(scores), task='atari_pong',
      output=str(tmp_path / 'compare.png'))
  assert Image.open(path).format == 'PNG'


def test_reference_task_errors(tmp_path):
  scores = write_scores(tmp_path / 'scores.json', [
      {'task': 'atari_pong', 'method': 'm', 'seed': '1', 'xs': [0], 'ys': [0]},
      {'task': 'atari_boxing', 'method': 'm', 'seed': '1', 'xs': [0], 'ys': [0]}])
  with pytest.raises(UserError, match='choose one with --task'):
    plot_lib.read_reference(scores, None)
  with pytest.raises(UserError, match='Did you mean: atari_pong'):
    plot_lib.read_reference(scores, 'atari_pon')
  bad = write_scores(tmp_path / 'bad.json', {'atari_pong': [1, 2]})
  with pytest.raises(UserError, match='not a scores file'):
    plot_lib.read_reference(bad, None)


def test_missing_matplotlib_says_how_to_install(two_runs, tmp_path, monkeypatch):
  real_import = builtins.__import__

  def fake_import(name, *args, **kwargs):
    if name.startswith('matplotlib'):
      raise ImportError(f'No module named {name!r}')
    return real_import(name, *args, **kwargs)
  monkeypatch.setattr(builtins, '__import__', fake_import)
  with pytest.raises(UserError, match=r'pip install dreamkit\[plot\]'):
    plot_lib.plot(two_runs, output=str(tmp_path / 'x.png'))
