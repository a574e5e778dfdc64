"""Learning-curve plots from metrics.jsonl files."""

import builtins
import gzip
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dreamkit import cli
from dreamkit import outputs
from dreamkit import scores as scores_lib
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


PUBLISHED = scores_lib.DIRECTORY  # The published DreamerV2 scores, shipped in the package.


def coloured_pixels(path):
  """How many pixels of a PNG are clearly coloured (not white, grey or black)."""
  pixels = np.asarray(Image.open(path).convert('RGB')).reshape(-1, 3).astype(int)
  return int((np.abs(pixels - pixels.mean(1, keepdims=True)).max(1) > 60).sum())


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
  references = scores_lib.read_reference(scores, 'atari_pong')
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
    scores_lib.read_reference(scores, None)
  with pytest.raises(UserError, match='Did you mean: atari_pong'):
    scores_lib.read_reference(scores, 'atari_pon')
  bad = write_scores(tmp_path / 'bad.json', {'atari_pong': [1, 2]})
  with pytest.raises(UserError, match='not a scores file'):
    scores_lib.read_reference(bad, None)


def test_missing_matplotlib_says_how_to_install(two_runs, tmp_path, monkeypatch):
  real_import = builtins.__import__

  def fake_import(name, *args, **kwargs):
    if name.startswith('matplotlib'):
      raise ImportError(f'No module named {name!r}')
    return real_import(name, *args, **kwargs)
  monkeypatch.setattr(builtins, '__import__', fake_import)
  with pytest.raises(UserError, match=r'pip install dreamkit\[plot\]'):
    plot_lib.plot(two_runs, output=str(tmp_path / 'x.png'))


def test_every_point_has_a_marker(tmp_path):
  # Two evaluations joined by a bare line would look like a perfect straight curve.
  run = fake_run(tmp_path / 'two', 1.0, steps=(1000, 2000))
  figure = plot_lib.draw([run])
  (line,) = figure.axes[0].lines
  assert line.get_marker() == 'o' and line.get_markersize() >= 4
  assert list(line.get_xdata()) == [1000, 2000]
  # A run with a single evaluation is a dot, not an empty plot (without the marker
  # only the legend's short line is coloured: under 30 pixels).
  single = fake_run(tmp_path / 'one', 1.0, steps=(1000,))
  assert coloured_pixels(plot_lib.plot([single], output=str(tmp_path / 'one.png'))) > 60


def test_several_keys_are_stacked_panels_sharing_x(two_runs):
  figure = plot_lib.draw(two_runs, key=['eval_return', 'model_loss'], title='pong')
  returns, losses = figure.axes
  assert [axes.get_ylabel() for axes in figure.axes] == ['eval_return', 'model_loss']
  assert returns.get_shared_x_axes().joined(returns, losses)
  assert [line.get_label() for line in losses.lines] == ['alpha', 'beta']
  np.testing.assert_allclose(losses.lines[1].get_ydata(), 3.0 / np.arange(1, 5) / 1000)
  assert losses.get_xlabel() == 'step' and figure.get_suptitle() == 'pong'
  with pytest.raises(UserError, match="no metric 'model_los'"):
    plot_lib.draw(two_runs, key=['eval_return', 'model_los'])


def write_csv_scores(path, rows, columns='task,method,seed,frames,return'):
  text = '\n'.join([columns] + [','.join(map(str, row)) for row in rows]) + '\n'
  if path.name.endswith('.gz'):
    path.write_bytes(gzip.compress(text.encode()))
  else:
    path.write_text(text)
  return path


def test_csv_reference_scores_and_task_spellings(tmp_path):
  scores = write_csv_scores(tmp_path / 'scores.csv.gz', [
      ('atari_pong', 'dreamerv2', 1, 8000, -10), ('atari_pong', 'dreamerv2', 1, 0, -21),
      ('atari_pong', 'dreamerv2', 2, 0, -19), ('atari_pong', 'dreamerv2', 2, 8000, -12),
      ('atari_ms_pacman', 'dreamerv2', 1, 0, 200)])
  xs, runs = scores_lib.read_reference(scores, 'atari_pong')['dreamerv2']
  np.testing.assert_array_equal(xs, [0, 8000])  # Rows sorted by frames.
  np.testing.assert_array_equal(np.asarray(runs), [[-21, -10], [-19, -12]])
  for spelling in ('atari:pong', 'pong', 'ATARI_PONG'):
    assert set(scores_lib.read_reference(scores, spelling)) == {'dreamerv2'}
  with pytest.raises(UserError, match='Did you mean: atari_ms_pacman'):
    scores_lib.read_reference(scores, 'ms_pacmann')
  # A table of final scores per game is not a scores file of curves.
  baselines = write_csv_scores(
      tmp_path / 'baselines.csv', [('atari_pong', -20.7, 14.6)], 'task,random,human_gamer')
  with pytest.raises(UserError, match='expected the columns task, method, seed, frames'):
    scores_lib.read_reference(baselines, 'atari_pong')
  broken = write_csv_scores(tmp_path / 'broken.csv', [('atari_pong', 'm', 1, 0, 'n/a')])
  with pytest.raises(UserError, match='line 2: frames and return must be numbers'):
    scores_lib.read_reference(broken, None)


def test_references_go_on_return_panels_up_to_the_runs_end(two_runs, tmp_path):
  # Runs end at 16000 frames; the published curve goes on to 40000.
  scores = write_csv_scores(tmp_path / 'scores.csv', [
      ('atari_pong', 'dreamerv2', seed, frames, seed + frames / 1000)
      for seed in (1, 2, 3) for frames in range(0, 40001, 5000)])
  figure = plot_lib.draw(
      two_runs, key=['eval_return', 'model_loss'], compare=scores, task='atari_pong')
  returns, losses = figure.axes
  assert returns.get_xlabel() == '' and losses.get_xlabel() == 'frames'  # The default.
  reference = returns.lines[-1]
  assert reference.get_label() == 'dreamerv2 (reference, 3 seeds)'
  assert reference.get_linestyle() == '--'
  np.testing.assert_array_equal(reference.get_xdata(), [0, 5000, 10000, 15000, 20000])
  np.testing.assert_allclose(reference.get_ydata(), [2, 7, 12, 17, 22])
  assert len(losses.lines) == 2  # The runs only.
  texts = [text.get_text() for text in returns.get_legend().get_texts()]
  assert texts == ['alpha', 'beta', 'dreamerv2 (reference, 3 seeds)']


def test_reference_misuse_is_a_user_error(two_runs, tmp_path):
  scores = write_csv_scores(tmp_path / 's.csv', [('atari_pong', 'm', 1, 0, 0)])
  with pytest.raises(UserError, match='plot against --x frames'):
    plot_lib.draw(two_runs, x='step', compare=scores)
  with pytest.raises(UserError, match='Add --key eval_return'):
    plot_lib.draw(two_runs, key='model_loss', compare=scores)
  with pytest.raises(UserError, match='give the file too'):
    plot_lib.draw(two_runs, task='atari_pong')


def test_published_dreamerv2_scores_read_as_the_paper_reports():
  references = scores_lib.read_reference(PUBLISHED / 'atari_dreamerv2.csv.gz', 'atari:pong')
  assert set(references) == {'dreamerv2', 'nosched'}
  xs, runs = references['dreamerv2']
  # Pong has 8 seeds of the paper's agent; three end at 199M frames, the rest at 200M.
  assert len(runs) == 8 and xs[0] == 1e6 and xs[-1] == 1.99e8
  with gzip.open(PUBLISHED / 'atari_dreamerv2.csv.gz', 'rt') as file:
    at_199m = [float(line.split(',')[4]) for line in file
               if line.startswith('atari_pong,dreamerv2,') and ',199000000,' in line]
  assert len(at_199m) == 8
  assert np.mean(runs, 0)[-1] == pytest.approx(np.mean(at_199m))
  dmc = scores_lib.read_reference(PUBLISHED / 'dmc_vision_dreamerv2.csv.gz', 'walker_walk')
  assert dmc['dreamerv2'][0][0] == 30000


def test_cli_plots_panels_with_reference_curves(two_runs, tmp_path):
  scores = write_csv_scores(tmp_path / 'scores.csv', [
      ('atari_pong', 'dreamerv2', 1, frames, frames / 4000) for frames in (0, 8000, 16000)])
  output = tmp_path / 'out.png'
  result = CliRunner().invoke(cli.cli, [
      'plot', *map(str, two_runs), '--key', 'eval_return', '--key', 'model_loss',
      '--compare', str(scores), '--task', 'pong', '-o', str(output)])
  assert result.exit_code == 0, result.output
  assert f'Wrote {output}' in result.output
  image = Image.open(output)
  assert image.size == (840, int(120 * (1.2 + 2 * 2.6)))  # Two panels, 120 dpi.
  result = CliRunner().invoke(cli.cli, [
      'plot', str(two_runs[0]), '--task', 'atari_pong', '-o', str(tmp_path / 'x.png')])
  assert result.exit_code == 2
  assert result.stderr.strip().startswith('Error: --task atari_pong picks the reference')
  assert not (tmp_path / 'x.png').exists()
