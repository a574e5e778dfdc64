"""Learning curves from the `metrics.jsonl` files of one or more runs.

    plot(['runs/pong-1', 'runs/pong-2'], key='eval_return', output='pong.png')

draws one line per run (labelled by its directory name), optionally smoothed, and
can add reference curves from a scores file shaped like those the DreamerV2 authors
published: a JSON list of `{"task", "method", "seed", "xs", "ys"}` objects, one per
seed. Their `xs` count environment frames (Atari: 4 per agent step), so compare with
`x='frames'`.
"""

import collections
import difflib
import json
import os
import pathlib

from dreamkit.errors import UserError

METRICS_FILE = 'metrics.jsonl'


def plot(
    logdirs, key='eval_return', x='step', output='curves.png', smooth=0,
    compare=None, task=None, title=None):
  """Draws `key` against `x` for each run and saves a PNG.

  Args:
    logdirs: run directories (or metrics.jsonl paths), one curve each.
    key: the metric on the y axis.
    x: the column on the x axis: `step` (agent steps), `frames` or any other key.
    output: path of the PNG to write (parent directories are created).
    smooth: moving-average window in points; 0 or 1 draws the raw values.
    compare: optional scores JSON file; its curves for `task` are drawn as the mean
      over seeds with the min-max range shaded, one per method.
    task: the task to take from `compare`, such as `atari_pong`; may be omitted
      when the file holds a single task.
    title: plot title; defaults to `key`.

  Returns:
    The path of the written PNG.

  Raises:
    UserError: matplotlib is missing, a run has no metrics.jsonl, `key` or `x` is
      never logged (the message lists the keys that are), or `compare` / `task` is
      unusable.
  """
  if isinstance(logdirs, (str, os.PathLike)):
    logdirs = [logdirs]
  if not logdirs:
    raise UserError('Name at least one run directory to plot.')
  if int(smooth) < 0:
    raise UserError(f'--smooth must be 0 (off) or a window of points, not {smooth}.')
  try:
    # pylint: disable=import-outside-toplevel
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    import numpy as np
  except ImportError as error:
    raise UserError(
        f'Plotting needs matplotlib ({error}). Install it with: '
        'pip install dreamkit[plot]') from error

  paths = [metrics_path(logdir) for logdir in logdirs]
  labels = run_labels(paths)
  curves = []
  for path, label in zip(paths, labels):
    xs, ys = read_curve(path, key, x)
    curves.append((label, xs, smooth_values(ys, int(smooth))))
  references = read_reference(compare, task) if compare else {}

  figure = Figure(figsize=(7, 4.5), dpi=120)
  FigureCanvasAgg(figure)
  axes = figure.add_subplot()
  for label, xs, ys in curves:
    axes.plot(xs, ys, label=label, linewidth=1.5)
  for method, (xs, runs) in sorted(references.items()):
    runs = np.asarray(runs)
    line, = axes.plot(
        xs, runs.mean(0), linestyle='--', linewidth=1.2,
        label=f'{method} (reference, {len(runs)} seeds)')
    axes.fill_between(
        xs, runs.min(0), runs.max(0), color=line.get_color(), alpha=0.15,
        linewidth=0)
  axes.set_xlabel(x)
  axes.set_ylabel(key)
  axes.set_title(title or key)
  axes.grid(alpha=0.3)
  axes.legend(fontsize='small')
  figure.tight_layout()
  output = pathlib.Path(output).expanduser()
  output.parent.mkdir(parents=True, exist_ok=True)
  figure.savefig(output)
  return output


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


def read_reference(path, task):
  """{method: (xs, [seeds, len(xs)])} for `task` from a scores JSON file.

  Seeds logged at different points are interpolated onto the x values of the
  shortest seed run.
  """
  import numpy as np  # pylint: disable=import-outside-toplevel
  path = pathlib.Path(path).expanduser()
  try:
    entries = json.loads(path.read_text())
  except (OSError, ValueError) as error:
    raise UserError(f'Cannot read reference scores {path}: {error}') from error
  fields = ('task', 'method', 'xs', 'ys')
  if not isinstance(entries, list) or not all(
      isinstance(entry, dict) and all(field in entry for field in fields)
      for entry in entries):
    raise UserError(
        f'{path} is not a scores file: expected a JSON list of objects with the '
        f"keys {', '.join(fields)} (and 'seed').")
  tasks = sorted({entry['task'] for entry in entries})
  if task is None:
    if len(tasks) != 1:
      raise UserError(
          f'{path} holds {len(tasks)} tasks; choose one with --task. '
          f"Tasks: {', '.join(tasks)}.")
    task = tasks[0]
  if task not in tasks:
    close = difflib.get_close_matches(task, tasks, n=3)
    hint = f" Did you mean: {', '.join(close)}?" if close else ''
    raise UserError(
        f"{path} has no task '{task}'.{hint} Tasks: {', '.join(tasks)}.")
  seeds = collections.defaultdict(list)
  for entry in entries:
    if entry['task'] == task and len(entry['xs']):
      seeds[entry['method']].append(
          (np.asarray(entry['xs'], np.float64), np.asarray(entry['ys'], np.float64)))
  references = {}
  for method, runs in seeds.items():
    grid = min((xs for xs, _ in runs), key=lambda xs: xs[-1])
    references[method] = (grid, [np.interp(grid, xs, ys) for xs, ys in runs])
  return references
