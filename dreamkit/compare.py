"""`dreamkit compare SWEEPDIR`: the variants of a sweep, with seeds and statistics.

    report = compare('logdir/cartpole_latents')     # prints nothing; see report.markdown
    report.rows        # one per task x variant: final / best (mean, 95% CI), seeds
    report.aggregate   # one per variant: IQM and median across tasks (rliable)

For each trial (`<sweepdir>/<task>/<variant>/seed<k>/`) it reads the metric `key`
(evaluation returns) from metrics.jsonl: the *final* value (the last evaluation) and
the *best* one. Per task x variant, the mean over the finished seeds with a 95%
percentile-bootstrap CI; seeds that are unfinished (running, stopped) or missing (no
logdir, or no evaluation yet) are counted and named, never silently dropped, and
left out of the statistics.

Across tasks, rliable's interquartile mean (IQM) and median of the final scores with
stratified-bootstrap 95% CIs (Agarwal et al. 2021, "Deep RL at the Edge of the
Statistical Precipice"; seeds resampled within each task). Scores are first put on a common scale: Atari games
gamer-normalised ((score - random) / (human_gamer - random)), DM Control divided by
1000 (`dreamkit.scores.normalize`); a single task needs no common scale and keeps its
returns; several tasks of which some have no scale (Gym) get no aggregate, and the
report says why.

Writes `compare.csv` (task x variant), `compare_trials.csv` (one row per seed),
`compare_aggregate.csv` and a PNG: one panel per task (mean curve per variant over
its finished seeds, with a 95% bootstrap band, and the paper's curve where the task is
an Atari or DMC one and x is frames) and the aggregate panel.
"""

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import scipy.stats

from dreamkit import scores as scores_lib
from dreamkit.errors import UserError
from dreamkit.outputs import plot as plot_lib
from dreamkit.sweeps import spec as spec_lib
from dreamkit.sweeps import trial as trial_lib

FINISHED, UNFINISHED, MISSING = 'finished', 'unfinished', 'missing'
CONFIDENCE = 0.95


@dataclasses.dataclass
class Seed:
  """One trial's outcome."""
  task: str
  variant: str
  seed: int
  status: str                 # finished | unfinished | missing
  step: float = math.nan      # The last step its metrics reached.
  final: float = math.nan     # The last evaluation's value of the key.
  best: float = math.nan      # The best evaluation's value.
  curve: tuple = None         # (xs, ys) of the key against x, or None.


@dataclasses.dataclass
class Report:
  seeds: list
  rows: list          # dicts: task, variant, seeds..., final_* / best_*
  aggregate: list     # dicts: variant, scale, runs, iqm*, median*
  aggregate_note: str
  markdown: str
  files: list


def compare(sweepdir, key='eval_return', x='frames', output=None, reps=2000, seed=0):
  """Reads the sweep in `sweepdir`, writes the CSVs and the PNG; returns a Report."""
  sweepdir = Path(sweepdir)
  if not sweepdir.is_dir():
    raise UserError(f'Cannot compare {sweepdir}: no such directory.')
  if reps < 100:
    raise UserError(f'--reps must be at least 100 for a 95% interval, got {reps}.')
  rng = np.random.default_rng(seed)
  seeds = [read_seed(sweepdir, entry, key, x) for entry in planned(sweepdir)]
  if not any(s.status != MISSING for s in seeds):
    raise UserError(f'{sweepdir} holds no trial with a {key} yet.')
  rows = summarise(seeds, rng, reps)
  aggregate, note = aggregates(seeds, seed, reps)
  markdown = render(rows, aggregate, note, seeds, key)
  files = [write_csv(sweepdir / 'compare.csv', rows),
           write_csv(sweepdir / 'compare_trials.csv', [
               {'task': s.task, 'variant': s.variant, 'seed': s.seed, 'status': s.status,
                'step': s.step, f'final_{key}': s.final, f'best_{key}': s.best}
               for s in seeds]),
           write_csv(sweepdir / 'compare_aggregate.csv', aggregate or [{'note': note}])]
  output = Path(output) if output else sweepdir / 'compare.png'
  figure = draw(seeds, aggregate, note, key, x, rng, reps)
  output.parent.mkdir(parents=True, exist_ok=True)
  figure.savefig(output)
  files.append(output)
  return Report(seeds, rows, aggregate, note, markdown, files)


# --- Reading the trials ----------------------------------------------------------------

def planned(sweepdir):
  """[{task, variant, seed, logdir}] from sweep.json, or the trial folders found."""
  trials = spec_lib.read_manifest(sweepdir)
  if trials is not None:
    return [{**t, 'logdir': str(Path(sweepdir) / t['logdir'])} for t in trials]
  found = []
  for logdir in sorted(Path(sweepdir).glob('*/*/seed*')):
    if not logdir.name[4:].isdigit() or not (logdir / plot_lib.METRICS_FILE).is_file():
      continue
    try:
      task = plot_lib.run_task(logdir)
    except UserError:
      task = logdir.parent.parent.name
    found.append({'task': task, 'variant': logdir.parent.name,
                  'seed': int(logdir.name[4:]), 'logdir': str(logdir)})
  if not found:
    raise UserError(
        f'{sweepdir} is not a sweep directory: it holds no sweep.json and no '
        '<task>/<variant>/seed<k>/metrics.jsonl. Pass the --logdir of `dreamkit sweep`.')
  return found


def read_seed(sweepdir, entry, key, x):
  """The Seed of one planned trial."""
  del sweepdir
  logdir = Path(entry['logdir'])
  base = dict(task=entry['task'], variant=entry['variant'], seed=int(entry['seed']))
  metrics = logdir / plot_lib.METRICS_FILE
  if not metrics.is_file():
    return Seed(status=MISSING, **base)
  rows = plot_lib.read_rows(metrics)
  steps = [row['step'] for row in rows if isinstance(row.get('step'), (int, float))]
  step = float(max(steps)) if steps else math.nan
  marker = logdir / trial_lib.MARKER
  done = marker.is_file() and json.loads(marker.read_text()).get('status') == 'finished'
  if not any(row.get(key) is not None for row in rows):
    return Seed(status=UNFINISHED if not done else FINISHED, step=step, **base)
  xs, ys = plot_lib.read_curve(metrics, key, x)
  return Seed(status=FINISHED if done else UNFINISHED, step=step, final=float(ys[-1]),
              best=float(ys.max()), curve=(xs, ys), **base)


# --- Statistics ------------------------------------------------------------------------

def bootstrap_mean(values, rng, reps):
  """(mean, low, high): the mean of `values` and its 95% percentile-bootstrap CI."""
  values = np.asarray(values, np.float64)
  if values.size == 0:
    return math.nan, math.nan, math.nan
  resampled = values[rng.integers(0, values.size, (reps, values.size))].mean(1)
  tail = (1 - CONFIDENCE) / 2 * 100
  low, high = np.percentile(resampled, [tail, 100 - tail])
  return float(values.mean()), float(low), float(high)


def summarise(seeds, rng, reps):
  """One row per task x variant (in the sweep's order)."""
  rows = []
  for (task, variant), group in _groups(seeds).items():
    done = [s for s in group if s.status == FINISHED and math.isfinite(s.final)]
    row = {'task': task, 'variant': variant, 'seeds_planned': len(group),
           'seeds_finished': len(done),
           'seeds_unfinished': ' '.join(f'seed{s.seed}@{_step(s.step)}'
                                        for s in group if s.status == UNFINISHED),
           'seeds_missing': ' '.join(f'seed{s.seed}' for s in group if s.status == MISSING)}
    for name in ('final', 'best'):
      mean, low, high = bootstrap_mean([getattr(s, name) for s in done], rng, reps)
      row.update({f'{name}_mean': mean, f'{name}_ci_low': low, f'{name}_ci_high': high})
    row['finished_seeds'] = ' '.join(f'seed{s.seed}' for s in done)
    rows.append(row)
  return rows


def _groups(seeds):
  groups = {}
  for s in seeds:
    groups.setdefault((s.task, s.variant), []).append(s)
  return groups


def _step(step):
  return 'no step' if not math.isfinite(step) else f'step {int(step):,}'


def aggregates(seeds, seed, reps):
  """([{variant, scale, runs, iqm, iqm_low, ...}], note) across tasks, with rliable."""
  tasks = list(dict.fromkeys(s.task for s in seeds))
  variants = list(dict.fromkeys(s.variant for s in seeds))
  if len(tasks) == 1:
    scale, normalise = 'return', lambda task, value: value
  elif all(scores_lib.normalizable(task) for task in tasks):
    scale = 'normalised (Atari: gamer; DMC: /1000)'
    normalise = scores_lib.normalize
  else:
    plain = [task for task in tasks if not scores_lib.normalizable(task)]
    return [], (f"No aggregate across tasks: {', '.join(plain)} have no common scale "
                '(known for Atari, gamer-normalised, and DM Control, /1000).')
  result, notes = [], []
  for variant in variants:
    columns = []
    for task in tasks:
      done = [s.final for s in seeds if s.task == task and s.variant == variant
              and s.status == FINISHED and math.isfinite(s.final)]
      columns.append(np.asarray([float(normalise(task, v)) for v in done]))
    runs = min(len(column) for column in columns)
    if runs == 0:
      notes.append(f'{variant}: no finished seed on '
                   + ', '.join(t for t, c in zip(tasks, columns) if not len(c)))
      continue
    if any(len(column) > runs for column in columns):
      notes.append(f'{variant}: the first {runs} finished seeds of each task')
    matrix = np.stack([column[:runs] for column in columns], axis=1)  # [runs, tasks]
    (iqm, median), (low, high) = interval_estimates(matrix, seed, reps)
    result.append({'variant': variant, 'scale': scale, 'runs_per_task': runs,
                   'tasks': len(tasks), 'iqm': iqm, 'iqm_ci_low': low[0],
                   'iqm_ci_high': high[0], 'median': median, 'median_ci_low': low[1],
                   'median_ci_high': high[1]})
  note = '; '.join(notes)
  return result, note


def interval_estimates(matrix, seed, reps):
  """((IQM, median), (lows, highs)) of a [runs, tasks] score matrix: rliable's
  aggregates, with 95% percentile CIs from a stratified bootstrap (runs resampled
  with replacement within each task, as rliable's StratifiedBootstrap does).

  The bootstrap is written here with NumPy: rliable's own goes through `arch`, whose
  versions rliable 1.2 accepts (< 8) do not import under pandas 3.
  """
  from rliable import metrics  # pylint: disable=import-outside-toplevel
  point = (float(metrics.aggregate_iqm(matrix)), float(metrics.aggregate_median(matrix)))
  runs, tasks = matrix.shape
  rng = np.random.default_rng(seed)
  resampled = matrix[rng.integers(0, runs, (reps, runs, tasks)), np.arange(tasks)]
  iqm = scipy.stats.trim_mean(resampled.reshape(reps, -1), 0.25, axis=1)
  median = np.median(resampled.mean(1), axis=1)  # rliable: the median of task means.
  tail = (1 - CONFIDENCE) / 2 * 100
  lows, highs = np.percentile(np.stack([iqm, median]), [tail, 100 - tail], axis=1)
  return point, (lows, highs)


# --- Output ----------------------------------------------------------------------------

def _number(value):
  return '' if value is None or not math.isfinite(value) else f'{value:.4g}'


def _interval(mean, low, high):
  if not math.isfinite(mean):
    return 'n/a'
  return f'{mean:.4g} [{low:.4g}, {high:.4g}]'


def render(rows, aggregate, note, seeds, key):
  """The Markdown report: per task x variant, the aggregate, and the seeds."""
  lines = [f'## {key}: final and best, mean [95% bootstrap CI] over finished seeds', '',
           '| task | variant | final | best | seeds done | unfinished | missing |',
           '| --- | --- | --- | --- | --- | --- | --- |']
  for row in rows:
    lines.append(
        f"| {row['task']} | {row['variant']} | "
        f"{_interval(row['final_mean'], row['final_ci_low'], row['final_ci_high'])} | "
        f"{_interval(row['best_mean'], row['best_ci_low'], row['best_ci_high'])} | "
        f"{row['seeds_finished']}/{row['seeds_planned']} | "
        f"{row['seeds_unfinished'] or '-'} | {row['seeds_missing'] or '-'} |")
  lines += ['', '## Aggregate of final scores (rliable: IQM and median, stratified '
            'bootstrap 95% CI)', '']
  if aggregate:
    lines += ['| variant | scale | runs x tasks | IQM | median |', '| --- | --- | --- | --- | --- |']
    for row in aggregate:
      lines.append(
          f"| {row['variant']} | {row['scale']} | {row['runs_per_task']} x {row['tasks']} | "
          f"{_interval(row['iqm'], row['iqm_ci_low'], row['iqm_ci_high'])} | "
          f"{_interval(row['median'], row['median_ci_low'], row['median_ci_high'])} |")
  if note:
    lines += ['', f'Note: {note}']
  lines += ['', '## Trials', '', f'| task | variant | seed | status | step | final | best |',
            '| --- | --- | --- | --- | --- | --- | --- |']
  for s in seeds:
    step = '' if not math.isfinite(s.step) else f'{int(s.step):,}'
    lines.append(f'| {s.task} | {s.variant} | {s.seed} | {s.status} | {step} | '
                 f'{_number(s.final)} | {_number(s.best)} |')
  return '\n'.join(lines) + '\n'


def write_csv(path, rows):
  columns = list(dict.fromkeys(name for row in rows for name in row))
  with open(path, 'w', newline='', encoding='utf-8') as file:
    writer = csv.DictWriter(file, columns)
    writer.writeheader()
    writer.writerows(rows)
  return path


def draw(seeds, aggregate, note, key, x, rng, reps):
  """The Figure: one panel per task, then the aggregate panel."""
  figure_class, canvas_class = plot_lib.matplotlib_figure()
  groups = _groups(seeds)
  tasks = list(dict.fromkeys(s.task for s in seeds))
  variants = list(dict.fromkeys(s.variant for s in seeds))
  colors = {variant: f'C{index}' for index, variant in enumerate(variants)}
  panels = len(tasks) + 1
  columns = min(panels, 3)
  rows = math.ceil(panels / columns)
  figure = figure_class(figsize=(4.6 * columns, 3.6 * rows), dpi=110)
  canvas_class(figure)
  axes_grid = figure.subplots(rows, columns, squeeze=False).ravel()
  for axes, task in zip(axes_grid, tasks):
    last_x = 0.0
    for variant in variants:
      group = groups.get((task, variant), [])
      curves = [s.curve for s in group if s.curve is not None and s.status == FINISHED]
      shown = 'finished'
      if not curves:
        curves, shown = [s.curve for s in group if s.curve is not None], 'unfinished'
      if not curves:
        continue
      xs, runs = scores_lib.align(curves)
      low, high = _band(runs, rng, reps)
      label = f'{variant} ({len(curves)}/{len(group)} seeds{"" if shown == "finished" else ", unfinished"})'
      axes.plot(xs, runs.mean(0), color=colors[variant], label=label, linewidth=1.5,
                marker='o', markersize=3 if len(xs) <= plot_lib.FEW_POINTS else 1.5)
      axes.fill_between(xs, low, high, color=colors[variant], alpha=0.2, linewidth=0)
      last_x = max(last_x, float(xs[-1]))
    if x == 'frames' and scores_lib.find(task) and last_x > 0:
      frames, published = scores_lib.aligned(task)
      plot_lib.draw_reference(axes, frames, published,
                              f'DreamerV2, paper ({len(published)} seeds)', last_x, 'gray')
    axes.set_title(task, fontsize='medium')
    axes.set_xlabel(x)
    axes.set_ylabel(key)
    axes.grid(alpha=0.3)
    axes.legend(fontsize='x-small')
  _draw_aggregate(axes_grid[len(tasks)], aggregate, note, colors)
  for axes in axes_grid[panels:]:
    axes.set_visible(False)
  figure.tight_layout()
  return figure


def _band(runs, rng, reps):
  """The 95% bootstrap band of the mean over the runs [seeds, points], per point."""
  if len(runs) == 1:
    return runs[0], runs[0]
  index = rng.integers(0, len(runs), (reps, len(runs)))
  means = runs[index].mean(1)
  tail = (1 - CONFIDENCE) / 2 * 100
  return np.percentile(means, tail, axis=0), np.percentile(means, 100 - tail, axis=0)


def _draw_aggregate(axes, aggregate, note, colors):
  """IQM and median per variant, each a point with its CI as a horizontal bar."""
  axes.set_title('Aggregate of final scores', fontsize='medium')
  if not aggregate:
    axes.text(0.5, 0.5, note or 'no aggregate', ha='center', va='center', wrap=True,
              fontsize='small', transform=axes.transAxes)
    axes.set_axis_off()
    return
  labels = []
  for index, row in enumerate(aggregate):
    for offset, metric in ((0.15, 'iqm'), (-0.15, 'median')):
      y = index + offset
      axes.errorbar(row[metric], y, xerr=[[row[metric] - row[f'{metric}_ci_low']],
                                          [row[f'{metric}_ci_high'] - row[metric]]],
                    fmt='o' if metric == 'iqm' else 's', color=colors[row['variant']],
                    capsize=3)
    labels.append(row['variant'])
  axes.set_yticks(range(len(labels)), labels)
  axes.set_ylim(-0.6, len(labels) - 0.4)
  axes.set_xlabel(f"{aggregate[0]['scale']}: IQM (o), median (s), 95% CI")
  axes.grid(alpha=0.3, axis='x')
