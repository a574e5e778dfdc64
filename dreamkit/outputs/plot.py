"""Learning curves from the `metrics.jsonl` files of one or more runs.

    plot(['runs/pong-1', 'runs/pong-2'], key='eval_return', output='pong.png')
    plot(runs, key=['eval_return', 'model_loss'])   # one panel per key
    plot(runs, paper=True)                            # with the paper's curve of the runs' task
    plot(runs, compare='my_scores.csv.gz', task='atari_pong')

draws one line per run (labelled by its directory name) with a marker at every
logged point, optionally smoothed. Reference curves go on the panels of returns: the
published DreamerV2 curve of the runs' task (`paper`, from `dreamkit.scores`), or the
curves of any scores file (`compare`): a CSV (gzipped or not) with the columns
`task, method, seed, frames, return`, one row per evaluation, or a JSON list of
`{"task", "method", "seed", "xs", "ys"}` objects, one per seed, as the DreamerV2
authors publish them. Their x values count environment frames (Atari: 4 per agent
step), so references are drawn against `x='frames'`.
"""

import collections
import difflib
import json
import os
import pathlib
import re

from dreamkit import scores
from dreamkit.errors import UserError

METRICS_FILE = 'metrics.jsonl'
CONFIG_FILE = 'config.gin'
# Runs with at most this many points get large markers; longer ones small dots.
FEW_POINTS = 40


def plot(
    logdirs, key='eval_return', x=None, output='curves.png', smooth=0,
    compare=None, task=None, title=None, paper=False):
  """Draws each of `key` against `x` for each run and saves a PNG.

  Args:
    logdirs: run directories (or metrics.jsonl paths), one curve each.
    key: the metric on the y axis, or a list of metrics: one panel each, stacked
      over a shared x axis.
    x: the column on the x axis: `step` (agent steps), `frames`, `wall_time` or any
      other key. Defaults to `frames` with `compare` or `paper` and to `step` without.
    output: path of the PNG to write (parent directories are created).
    smooth: moving-average window in points; 0 or 1 draws the raw values.
    compare: optional scores file (CSV or JSON, see the module doc); its curves for
      `task` are drawn on the panels of returns (keys ending in `return`) as the
      mean over seeds with the min-max range shaded, one per method, up to the
      runs' last x.
    task: the task to take from `compare`, such as `atari_pong` (`atari:pong`, or
      `pong` when unambiguous, work too); may be omitted when the file holds one.
    title: plot title; defaults to the key (with several panels: none).
    paper: draw the published DreamerV2 curve of the runs' task (read from their
      config.gin; an Atari or DM Control task) in the same way.

  Returns:
    The path of the written PNG.

  Raises:
    UserError: matplotlib is missing, a run has no metrics.jsonl, a key or `x` is
      never logged (the message lists the keys that are), or `compare` / `task` /
      `paper` is unusable.
  """
  figure = draw(logdirs, key, x, smooth, compare, task, title, paper)
  output = pathlib.Path(output).expanduser()
  output.parent.mkdir(parents=True, exist_ok=True)
  figure.savefig(output)
  return output


def draw(logdirs, key='eval_return', x=None, smooth=0, compare=None, task=None,
         title=None, paper=False):
  """The matplotlib Figure that `plot` saves (same arguments, no output)."""
  if isinstance(logdirs, (str, os.PathLike)):
    logdirs = [logdirs]
  if not logdirs:
    raise UserError('Name at least one run directory to plot.')
  keys = list(dict.fromkeys([key] if isinstance(key, str) else key))
  if not keys:
    raise UserError('Name at least one metric to plot (--key).')
  if int(smooth) < 0:
    raise UserError(f'--smooth must be 0 (off) or a window of points, not {smooth}.')
  if task is not None and not compare:
    raise UserError(f"--task {task} picks the reference task of --compare FILE; "
                    'give the file too.')
  with_references = bool(compare or paper)
  x = x or ('frames' if with_references else 'step')
  return_keys = [name for name in keys if name.endswith('return')]
  if with_references and x != 'frames':
    raise UserError(
        f"Reference scores count environment frames: plot against --x frames, not "
        f"'{x}', to compare.")
  if with_references and not return_keys:
    raise UserError(
        f"Reference scores are returns; none of the keys ({', '.join(keys)}) is one. "
        'Add --key eval_return.')
  figure_class, canvas_class = matplotlib_figure()

  paths = [metrics_path(logdir) for logdir in logdirs]
  references = {}
  if compare:
    references.update({
        f'{method} (reference, {len(runs)} seeds)': (xs, runs)
        for method, (xs, runs) in scores.read_reference(compare, task).items()})
  if paper:
    references.update(paper_reference(paths))
  labels = run_labels(paths)
  panels = {name: [] for name in keys}
  for path, label in zip(paths, labels):
    for name in keys:
      xs, ys = read_curve(path, name, x)
      panels[name].append((label, xs, smooth_values(ys, int(smooth))))
  last_x = max(float(xs[-1]) for curves in panels.values() for _, xs, _ in curves)

  figure = figure_class(figsize=(7, 4.5 if len(keys) == 1 else 1.2 + 2.6 * len(keys)),
                        dpi=120)
  canvas_class(figure)
  axes_list = figure.subplots(len(keys), 1, sharex=True, squeeze=False)[:, 0]
  for index, (name, axes) in enumerate(zip(keys, axes_list)):
    for label, xs, ys in panels[name]:
      axes.plot(xs, ys, label=label, linewidth=1.5, marker='o',
                markersize=4 if len(xs) <= FEW_POINTS else 2)
    shown = references if name in return_keys else {}
    for label, (xs, runs) in sorted(shown.items()):
      draw_reference(axes, xs, runs, label, last_x)
    axes.set_ylabel(name)
    axes.grid(alpha=0.3)
    if index == 0 or shown:
      axes.legend(fontsize='small')
  axes_list[-1].set_xlabel(x)
  if len(keys) == 1:
    axes_list[0].set_title(title or keys[0])
  elif title:
    figure.suptitle(title)
  figure.tight_layout()
  return figure


def matplotlib_figure():
  """(Figure, FigureCanvasAgg): matplotlib's classes, without pyplot's global state."""
  try:
    # pylint: disable=import-outside-toplevel
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
  except ImportError as error:
    raise UserError(
        f'Plotting needs matplotlib ({error}). Install it with: '
        'pip install dreamkit[plot]') from error
  return Figure, FigureCanvasAgg


def draw_reference(axes, xs, runs, label, last_x=None, color=None):
  """A reference on `axes`: the mean over its runs `[seeds, len(xs)]` (dashed) with
  their min-max range shaded, up to `last_x` (see `clip_reference`)."""
  if last_x is not None:
    xs, runs = clip_reference(xs, runs, last_x)
  line, = axes.plot(xs, runs.mean(0), linestyle='--', linewidth=1.2, label=label,
                    color=color)
  axes.fill_between(xs, runs.min(0), runs.max(0), color=line.get_color(), alpha=0.15,
                    linewidth=0)
  return line


def paper_reference(paths):
  """{label: (frames, runs)}: the published DreamerV2 curve of the runs' one task."""
  tasks = {run_task(path.parent) for path in paths}
  if len(tasks) != 1:
    raise UserError(
        f"--paper draws the published curve of one task, but the runs are of "
        f"{len(tasks)}: {', '.join(sorted(tasks))}. Plot each task on its own.")
  (task,) = tasks
  if scores.find(task) is None:
    scores.task_name(task)  # Raises the reason: a Gym task, an unknown game.
  frames, runs = scores.aligned(task)
  return {f'DreamerV2, paper ({len(runs)} seeds)': (frames, runs)}


_TASK_BINDING = re.compile(r"""^Pipeline\.task\s*=\s*['"]([^'"]+)['"]""", re.MULTILINE)


def run_task(logdir):
  """The task a run trained on ('atari:pong'), read from its config.gin."""
  path = pathlib.Path(logdir) / CONFIG_FILE
  try:
    text = path.read_text()
  except OSError as error:
    raise UserError(
        f'Cannot tell the task of {logdir}: its {CONFIG_FILE} cannot be read '
        f'({error.strerror or error}).') from error
  found = _TASK_BINDING.findall(text)
  if not found:
    raise UserError(f'Cannot tell the task of {logdir}: {path} binds no Pipeline.task.')
  return found[-1]


def clip_reference(xs, runs, last_x):
  """The reference up to the first point at or past `last_x` (the runs' end), so
  runs far shorter than the published ones are not squeezed into a corner. A
  reference that starts past `last_x` is kept whole."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  runs = np.asarray(runs)
  end = int(np.searchsorted(xs, last_x, side='left')) + 1
  if end <= 1:
    return xs, runs
  return xs[:end], runs[:, :end]


def metrics_path(logdir):
  """The metrics.jsonl of a run directory (or the file itself, if given)."""
  path = pathlib.Path(logdir).expanduser()
  if path.is_file():
    return path
  if not path.exists():
    raise UserError(f'Cannot plot {path}: no such directory.')
  if not (path / METRICS_FILE).is_file():
    raise UserError(
        f'Cannot plot {path}: it holds no {METRICS_FILE}. Pass run directories '
        'written with the JSONL output (Pipeline.outputs includes @outputs.JSONL).')
  return path / METRICS_FILE


def run_labels(paths):
  """Run directory names, lengthened to their distinct trailing parts if two clash."""
  dirs = [path.parent.resolve() for path in paths]
  labels = [d.name for d in dirs]
  if len(set(labels)) == len(labels):
    return labels
  common = pathlib.Path(os.path.commonpath([str(d) for d in dirs]))
  return [str(d.relative_to(common)) if d != common else d.name for d in dirs]


def read_rows(path):
  """The JSON objects of a metrics.jsonl file.

  A last line without its newline is being written right now (or was torn by a
  killed run) and is skipped, so live runs can be plotted.
  """
  rows = []
  with open(path, 'rb') as file:
    lines = file.read().split(b'\n')
  for number, line in enumerate(lines[:-1], 1):
    if not line.strip():
      continue
    try:
      rows.append(json.loads(line))
    except ValueError as error:
      raise UserError(f'{path}, line {number}: not valid JSON ({error}).') from error
  return rows


def read_curve(path, key, x):
  """(xs, ys) float arrays, sorted by x, from the rows of `path` holding `key`."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  rows = read_rows(path)
  if not any(row.get(key) is not None for row in rows):
    raise UserError(missing_key_message(path, key, rows, 'metric'))
  points = [
      (row.get(x), row[key]) for row in rows
      if row.get(key) is not None]
  if any(xvalue is None for xvalue, _ in points):
    raise UserError(missing_key_message(path, x, rows, 'x axis'))
  # Rows sharing an x value (several evaluation episodes at one step, or steps
  # logged again after resuming from an older checkpoint) are averaged.
  groups = collections.defaultdict(list)
  for xvalue, yvalue in points:
    try:
      groups[float(xvalue)].append(float(yvalue))
    except (TypeError, ValueError) as error:
      raise UserError(
          f"{path}: cannot plot '{key}' against '{x}': values {xvalue!r}, "
          f'{yvalue!r} are not numbers.') from error
  xs = np.array(sorted(groups), np.float64)
  ys = np.array([np.mean(groups[xvalue]) for xvalue in xs], np.float64)
  return xs, ys


def missing_key_message(path, key, rows, role):
  available = sorted({name for row in rows for name in row})
  if not rows:
    return f'{path} holds no rows yet: nothing to plot.'
  message = f"{path} has no {role} '{key}'"
  if role == 'x axis':
    message += ' in the rows that hold the plotted metric'
  message += '.'
  close = difflib.get_close_matches(key, available, n=3)
  if close:
    message += f" Did you mean: {', '.join(close)}?"
  return message + f" Available keys: {', '.join(available)}."


def smooth_values(values, window):
  """Trailing moving average over `window` points (shorter at the start)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  if window <= 1 or len(values) < 2:
    return values
  sums = np.cumsum(np.insert(values, 0, 0.0))
  counts = np.minimum(np.arange(1, len(values) + 1), window)
  starts = np.arange(1, len(values) + 1) - counts
  return (sums[1:] - sums[starts]) / counts
