"""The published DreamerV2 scores shipped in dreamkit/scores, and `plot --paper`."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dreamkit import cli
from dreamkit import outputs
from dreamkit import scores
from dreamkit.errors import UserError


def test_the_files_ship_inside_the_package_with_their_citation():
  for name in (*scores.CURVE_FILES, scores.BASELINES_FILE, 'README.md'):
    assert (scores.DIRECTORY / name).is_file(), name
  readme = (scores.DIRECTORY / 'README.md').read_text()
  assert 'Mastering Atari with Discrete World Models' in readme
  published = scores.tasks()
  assert sum(t.startswith('atari_') for t in published) == 55
  assert sum(t.startswith('dmc_') for t in published) == 20  # The file holds 20 of the 22.


@pytest.mark.parametrize('spelling, name', [
    ('atari:pong', 'atari_pong'), ('pong', 'atari_pong'), ('ATARI_PONG', 'atari_pong'),
    ('atari_pong', 'atari_pong'), ('atari:mspacman', 'atari_ms_pacman'),
    ('atari:ms_pacman', 'atari_ms_pacman'), ('dmc:walker_walk', 'dmc_walker_walk'),
    ('walker_walk', 'dmc_walker_walk'), ('dmc_cheetah_run', 'dmc_cheetah_run')])
def test_task_name_accepts_every_spelling(spelling, name):
  assert scores.task_name(spelling) == name
  assert scores.find(spelling) == name


def test_tasks_without_published_scores_say_why():
  with pytest.raises(UserError, match='Atari .* and DM Control .* tasks only'):
    scores.task_name('gym:CartPole-v1')
  with pytest.raises(UserError, match='Did you mean: atari_pong'):
    scores.task_name('atari:pongg')
  assert scores.find('gym:CartPole-v1') is None and scores.find('atari:pongg') is None
  assert not scores.normalizable('gym:CartPole-v1') and scores.normalizable('pong')


def test_curves_are_the_published_rows_per_seed():
  runs = scores.curves('atari:pong')
  assert len(runs) == 8 and len({run.seed for run in runs}) == 8
  for run in runs:
    assert run.frames.shape == run.returns.shape
    assert np.all(np.diff(run.frames) > 0) and run.frames[0] == 1e6
  assert scores.methods('pong') == ['dreamerv2', 'nosched']
  assert len(scores.curves('pong', method='nosched')) >= 1
  with pytest.raises(UserError, match="no published curve of method 'dreamerv3'|"
                                      "No published curve of method 'dreamerv3'"):
    scores.curves('pong', method='dreamerv3')
  frames, returns = scores.aligned('dmc:walker_walk')
  assert frames[0] == 30000 and returns.shape == (5, len(frames))
  # Pong is solved at the end (the README's 18.1 at 200M frames, mean over seeds).
  assert 17 < returns_at_end('pong') < 20


def returns_at_end(task):
  return float(np.mean([run.returns[-1] for run in scores.curves(task)]))


def test_normalisation_reproduces_the_papers_median():
  assert scores.atari_anchors('pong') == (-20.7, 14.6)
  assert scores.atari_anchors('atari:pong') == scores.atari_anchors('atari_pong')
  assert scores.normalize('atari:pong', -20.7) == pytest.approx(0.0)
  assert scores.normalize('atari:pong', 14.6) == pytest.approx(1.0)
  np.testing.assert_allclose(scores.normalize('dmc:walker_walk', [0, 500, 1000]),
                             [0, 0.5, 1])
  games = [task for task in scores.tasks() if task.startswith('atari_')]
  median = np.median([scores.normalize(game, returns_at_end(game)) for game in games])
  assert median == pytest.approx(2.14, abs=0.01)  # The paper's headline (README.md).
  with pytest.raises(UserError, match='tasks only'):
    scores.normalize('gym:CartPole-v1', 100)


def test_read_reference_reads_json_files_of_the_authors_form(tmp_path):
  path = tmp_path / 'scores.json'
  path.write_text(json.dumps([
      {'task': 'atari_pong', 'method': 'm', 'seed': '1', 'xs': [0, 10], 'ys': [0, 10]},
      {'task': 'atari_pong', 'method': 'm', 'seed': '2', 'xs': [0, 5, 8], 'ys': [2, 2, 2]}]))
  xs, runs = scores.read_reference(path, 'pong')['m']
  np.testing.assert_array_equal(xs, [0, 5, 8])  # The seed that ends first.
  np.testing.assert_allclose(runs, [[0, 5, 8], [2, 2, 2]])


def fake_run(directory, task, steps=(1000, 2000, 3000)):
  """A run directory with a config.gin naming `task` and evaluation rows."""
  directory.mkdir(parents=True)
  (directory / 'config.gin').write_text(f"Pipeline.steps = 3000\nPipeline.task = '{task}'\n")
  output = outputs.JSONL(directory)
  for step in steps:
    output.write(step, {'eval_return': step / 1000, 'frames': 4 * step})
  output.close()
  return directory


def test_plot_paper_overlays_the_published_curve_of_the_runs_task(tmp_path):
  run = fake_run(tmp_path / 'pong', 'atari:pong', steps=(250_000, 500_000, 750_000))
  from dreamkit.outputs import plot as plot_lib
  figure = plot_lib.draw([run], paper=True)
  (axes,) = figure.axes
  assert axes.get_xlabel() == 'frames'
  paper = axes.lines[-1]
  assert paper.get_label() == 'DreamerV2, paper (8 seeds)'
  frames, returns = scores.aligned('pong')
  # Clipped at the first published point at or past the run's 3M frames.
  np.testing.assert_array_equal(paper.get_xdata(), frames[:3])
  np.testing.assert_allclose(paper.get_ydata(), returns.mean(0)[:3])
  assert len(axes.collections) == 1  # The seeds' range, shaded.
  output = tmp_path / 'paper.png'
  result = CliRunner().invoke(cli.cli, ['plot', str(run), '--paper', '-o', str(output)])
  assert result.exit_code == 0, result.output
  assert Image.open(output).format == 'PNG'


def test_plot_paper_refuses_gym_tasks_and_mixed_tasks(tmp_path):
  cartpole = fake_run(tmp_path / 'cartpole', 'gym:CartPole-v1')
  pong = fake_run(tmp_path / 'pong', 'atari:pong')
  result = CliRunner().invoke(cli.cli, [
      'plot', str(cartpole), '--paper', '-o', str(tmp_path / 'x.png')])
  assert result.exit_code == 2
  assert "No published DreamerV2 scores for 'gym:CartPole-v1'" in result.stderr
  result = CliRunner().invoke(cli.cli, [
      'plot', str(cartpole), str(pong), '--paper', '-o', str(tmp_path / 'x.png')])
  assert result.exit_code == 2 and 'the runs are of 2' in result.stderr
  (tmp_path / 'bare').mkdir()
  (tmp_path / 'bare' / 'metrics.jsonl').write_text('{"step": 1, "eval_return": 1}\n')
  result = CliRunner().invoke(cli.cli, [
      'plot', str(tmp_path / 'bare'), '--paper', '--x', 'frames', '-o', str(tmp_path / 'x.png')])
  assert result.exit_code == 2 and 'Cannot tell the task' in result.stderr
