"""`dreamkit compare`: per task x variant statistics, seeds that are missing or
unfinished, rliable aggregates on the paper's scales, the CSVs and the PNG.

Sweep directories are written here as a sweep leaves them (sweep.json, trial logdirs
with metrics.jsonl and trial.json), with known returns; tests/test_sweeps.py compares
a real one."""

import json

import numpy as np
import pytest
import scipy.stats
from click.testing import CliRunner
from PIL import Image

from dreamkit import cli
from dreamkit import compare as compare_lib
from dreamkit import scores
from dreamkit.errors import UserError
from dreamkit.sweeps import spec
from dreamkit.sweeps import trial as trial_lib


def write_trial(sweepdir, task, variant, seed, returns, finished=True, steps=None):
  """A trial logdir with one evaluation row per return (every 1,000 steps, 4 frames
  per step) and, when `finished`, its trial.json."""
  logdir = sweepdir / spec.folder(task) / variant / f'seed{seed}'
  logdir.mkdir(parents=True)
  (logdir / 'config.gin').write_text(f"Pipeline.task = '{task}'\n")
  with open(logdir / 'metrics.jsonl', 'w') as file:
    for index, value in enumerate(returns, 1):
      file.write(json.dumps({'step': 1000 * index, 'frames': 4000 * index,
                             'train_return': 0.0}) + '\n')
      file.write(json.dumps({'step': 1000 * index, 'frames': 4000 * index,
                             'eval_return': value}) + '\n')
  if finished:
    (logdir / trial_lib.MARKER).write_text(json.dumps(
        {'status': 'finished', 'steps': steps or 1000 * len(returns)}))
  return logdir


def write_manifest(sweepdir, trials):
  sweepdir.mkdir(parents=True, exist_ok=True)
  (sweepdir / spec.MANIFEST).write_text(json.dumps({'trials': [
      {'task': task, 'variant': variant, 'seed': seed,
       'logdir': f'{spec.folder(task)}/{variant}/seed{seed}', 'steps': 3000}
      for task, variant, seed in trials]}))


# Final returns per (task, variant): three seeds each.
FINAL = {
    ('atari:pong', 'categorical'): [10.0, 12.0, 14.0],
    ('atari:pong', 'gaussian'): [-20.0, -10.0, 0.0],
    ('atari:breakout', 'categorical'): [100.0, 200.0, 300.0],
    ('atari:breakout', 'gaussian'): [20.0, 30.0, 40.0],
}


@pytest.fixture
def atari_sweep(tmp_path):
  """Two games x two variants x three seeds; gaussian seed2 on breakout is unfinished
  and categorical seed2 on pong missing (never started)."""
  sweepdir = tmp_path / 'sweep'
  write_manifest(sweepdir, [(task, variant, seed) for task, variant in FINAL
                            for seed in range(3)])
  for (task, variant), finals in FINAL.items():
    for seed, final in enumerate(finals):
      if (task, variant, seed) == ('atari:pong', 'categorical', 2):
        continue
      unfinished = (task, variant, seed) == ('atari:breakout', 'gaussian', 2)
      # A best value above the final one: the peak is at the second evaluation.
      returns = [final / 2, final + 5, final] if not unfinished else [final / 2]
      write_trial(sweepdir, task, variant, seed, returns, finished=not unfinished)
  return sweepdir


def test_rows_count_missing_and_unfinished_seeds_and_leave_them_out(atari_sweep):
  report = compare_lib.compare(atari_sweep, reps=500)
  rows = {(row['task'], row['variant']): row for row in report.rows}
  pong = rows['atari:pong', 'categorical']
  assert (pong['seeds_planned'], pong['seeds_finished']) == (3, 2)
  assert pong['seeds_missing'] == 'seed2' and pong['seeds_unfinished'] == ''
  assert pong['final_mean'] == pytest.approx(11.0)
  assert pong['best_mean'] == pytest.approx(16.0)
  assert 10.0 <= pong['final_ci_low'] <= 11.0 <= pong['final_ci_high'] <= 12.0
  breakout = rows['atari:breakout', 'gaussian']
  assert breakout['seeds_finished'] == 2
  assert breakout['seeds_unfinished'] == 'seed2@step 1,000'
  assert breakout['final_mean'] == pytest.approx(25.0)
  statuses = {(s.task, s.variant, s.seed): s.status for s in report.seeds}
  assert statuses['atari:pong', 'categorical', 2] == 'missing'
  assert statuses['atari:breakout', 'gaussian', 2] == 'unfinished'
  assert list(statuses.values()).count('finished') == 10
  markdown = report.markdown
  assert '| atari:pong | categorical | 11 [10, 12] | 16 [15, 17] | 2/3 | - | seed2 |' in markdown
  assert '| atari:breakout | gaussian | 25 [20, 30] | 30 [25, 35] | 2/3 | seed2@step 1,000 | - |' in markdown
  assert '| atari:pong | categorical | 2 | missing |  |  |  |' in markdown


def test_aggregate_is_rliables_iqm_and_median_of_gamer_normalised_scores(atari_sweep):
  report = compare_lib.compare(atari_sweep, reps=1000)
  aggregate = {row['variant']: row for row in report.aggregate}
  categorical = aggregate['categorical']
  # Pong has two finished seeds: the first two of each game form the [2, 2] matrix.
  assert (categorical['runs_per_task'], categorical['tasks']) == (2, 2)
  matrix = np.array([[scores.normalize('pong', v) for v in (10.0, 12.0)],
                     [scores.normalize('breakout', v) for v in (100.0, 200.0)]]).T
  assert categorical['iqm'] == pytest.approx(scipy.stats.trim_mean(matrix, 0.25, axis=None))
  # rliable's median: of the per-task means.
  assert categorical['median'] == pytest.approx(np.median(matrix.mean(0)))
  for row in report.aggregate:
    assert row['scale'].startswith('normalised')
    for metric in ('iqm', 'median'):
      assert row[f'{metric}_ci_low'] <= row[metric] <= row[f'{metric}_ci_high']
  assert 'categorical: the first 2 finished seeds of each task' in report.aggregate_note
  # Seeded: the same intervals again.
  again = compare_lib.compare(atari_sweep, reps=1000)
  assert again.aggregate == report.aggregate


def test_files_and_the_picture(atari_sweep, tmp_path):
  output = tmp_path / 'report.png'
  result = CliRunner().invoke(cli.cli, ['compare', str(atari_sweep), '-o', str(output),
                                        '--reps', '300'])
  assert result.exit_code == 0, result.output
  assert result.stdout.startswith('## eval_return: final and best')
  for name in ('compare.csv', 'compare_trials.csv', 'compare_aggregate.csv'):
    assert f'Wrote {atari_sweep / name}' in result.stdout
  trials = (atari_sweep / 'compare_trials.csv').read_text().splitlines()
  assert trials[0] == 'task,variant,seed,status,step,final_eval_return,best_eval_return'
  assert len(trials) == 13  # Every planned seed, the missing one too.
  assert 'atari:pong,categorical,2,missing,nan,nan,nan' in trials
  assert Image.open(output).size[0] > 800
  figure = compare_lib.draw(*_draw_arguments(atari_sweep))
  pong, breakout, aggregate = figure.axes
  assert [pong.get_title(), breakout.get_title()] == ['atari:pong', 'atari:breakout']
  labels = [line.get_label() for line in pong.lines]
  assert labels[:2] == ['categorical (2/3 seeds)', 'gaussian (3/3 seeds)']
  assert labels[2].startswith('DreamerV2, paper (')  # The published curve, in frames.
  assert aggregate.get_title() == 'Aggregate of final scores'
  assert [tick.get_text() for tick in aggregate.get_yticklabels()] == ['categorical', 'gaussian']


def _draw_arguments(sweepdir):
  seeds = [compare_lib.read_seed(sweepdir, entry, 'eval_return', 'frames')
           for entry in compare_lib.planned(sweepdir)]
  aggregate, note = compare_lib.aggregates(seeds, 0, 200)
  return seeds, aggregate, note, 'eval_return', 'frames', np.random.default_rng(0), 200


def test_gym_tasks_alone_or_mixed(tmp_path):
  # One task: its returns are the scale.
  single = tmp_path / 'single'
  for seed, final in enumerate([400.0, 500.0]):
    write_trial(single, 'gym:CartPole-v1', 'categorical', seed, [final])
  report = compare_lib.compare(single, reps=200)  # Without sweep.json: found by folder.
  (row,) = report.aggregate
  assert row['scale'] == 'return' and row['iqm'] == pytest.approx(450.0)
  # A Gym task next to an Atari game: no common scale, no aggregate, and why.
  mixed = tmp_path / 'mixed'
  write_trial(mixed, 'gym:CartPole-v1', 'categorical', 0, [400.0])
  write_trial(mixed, 'atari:pong', 'categorical', 0, [10.0])
  report = compare_lib.compare(mixed, reps=200)
  assert report.aggregate == []
  assert report.aggregate_note.startswith('No aggregate across tasks: gym:CartPole-v1')
  assert 'Note: No aggregate across tasks' in report.markdown


def test_user_errors(tmp_path):
  with pytest.raises(UserError, match='no such directory'):
    compare_lib.compare(tmp_path / 'nowhere')
  (tmp_path / 'empty').mkdir()
  with pytest.raises(UserError, match='is not a sweep directory'):
    compare_lib.compare(tmp_path / 'empty')
  write_manifest(tmp_path / 'planned', [('gym:CartPole-v1', 'a', 0)])
  with pytest.raises(UserError, match='holds no trial with a eval_return yet'):
    compare_lib.compare(tmp_path / 'planned')
  result = CliRunner().invoke(cli.cli, ['compare', str(tmp_path / 'empty')])
  assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


def test_bootstrap_mean():
  rng = np.random.default_rng(0)
  assert compare_lib.bootstrap_mean([7.0], rng, 200) == (7.0, 7.0, 7.0)
  mean, low, high = compare_lib.bootstrap_mean([0.0, 10.0, 20.0, 30.0], rng, 2000)
  assert mean == 15.0 and 0.0 <= low < 15.0 < high <= 30.0
  assert all(np.isnan(compare_lib.bootstrap_mean([], rng, 200)))
