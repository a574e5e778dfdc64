"""The published DreamerV2 results, shipped as data (see README.md in this folder).

    from dreamkit import scores
    scores.task_name('atari:pong')            # 'atari_pong' (also 'pong', 'ATARI_PONG')
    scores.curves('atari:pong')               # [Curve(seed, frames, returns), ...]
    frames, runs = scores.aligned('dmc:walker_walk')   # runs: [seeds, len(frames)]
    scores.atari_anchors('pong')              # (random, human_gamer) = (-20.7, 14.6)
    scores.normalize('atari:pong', 18.1)      # gamer-normalised: 1.0 is the human gamer

Files (one row per evaluation; frames are environment frames, agent steps x action
repeat): `atari_dreamerv2.csv.gz` and `dmc_vision_dreamerv2.csv.gz` with the columns
`task, method, seed, frames, return`, and `atari_baselines.csv` (per game: `random`,
`human_gamer` and the model-free baselines' final scores). Task names are
`atari_<game>` and `dmc_<domain>_<task>`.

`read_reference(path, task)` reads any scores file of that shape (CSV, gzipped or not,
or the authors' JSON list of `{task, method, seed, xs, ys}`); `dreamkit plot --compare`
uses it for files of your own.
"""

import collections
import csv
import dataclasses
import difflib
import functools
import gzip
import json
import pathlib

import numpy as np

from dreamkit.errors import UserError

DIRECTORY = pathlib.Path(__file__).resolve().parent
CURVE_FILES = ('atari_dreamerv2.csv.gz', 'dmc_vision_dreamerv2.csv.gz')
BASELINES_FILE = 'atari_baselines.csv'
COLUMNS = ('task', 'method', 'seed', 'frames', 'return')
PAPER_METHOD = 'dreamerv2'  # The paper's agent; the Atari file also holds 'nosched'.
# The env prefixes of dreamkit tasks that have published curves ('atari:pong').
PREFIXES = ('atari', 'dmc')
DMC_MAX_RETURN = 1000.0  # Every DM Control task's return lies in [0, 1000].


@dataclasses.dataclass(frozen=True)
class Curve:
  """One seed's published evaluation returns: float64 arrays of equal length, sorted
  by frames (environment frames)."""
  seed: str
  frames: np.ndarray
  returns: np.ndarray


# --- Task names ----------------------------------------------------------------------

def tasks():
  """Every task with a published curve, sorted: `atari_alien`, ..., `dmc_walker_walk`."""
  return sorted(_published())


def find(task):
  """The published task name for `task`, or None when none is published (a Gym task,
  an Atari game outside the 55): the quiet form of `task_name`."""
  try:
    return task_name(task)
  except UserError:
    return None


def task_name(task):
  """The published name of `task` ('atari_pong') from any spelling of it.

  Accepts dreamkit tasks ('atari:pong', 'dmc:walker_walk', 'atari:mspacman'), the
  file's names ('atari_pong', any case) and a bare name when it is unique ('pong').
  Raises UserError naming close tasks when there is none.
  """
  names = _published()
  spelled = str(task).strip()
  if spelled in names:
    return spelled
  prefix, colon, name = spelled.partition(':')
  if colon:
    if prefix.lower() not in PREFIXES:
      raise UserError(
          f"No published DreamerV2 scores for '{task}': the paper reports Atari "
          "('atari:<game>') and DM Control ('dmc:<domain>_<task>') tasks only.")
    candidates = [n for n in names if n.startswith(prefix.lower() + '_')]
    wanted = _key(name)
    found = [n for n in candidates if _key(n.split('_', 1)[1]) == wanted]
  else:
    wanted = _key(spelled)
    found = [n for n in names if _key(n) == wanted]
    if not found:  # A bare game or domain_task: 'pong', 'walker_walk'.
      found = [n for n in names if _key(n.split('_', 1)[1]) == wanted]
  if len(found) == 1:
    return found[0]
  if found:
    raise UserError(f"'{task}' names {len(found)} published tasks: "
                    f"{', '.join(sorted(found))}. Name one with its prefix.")
  close = difflib.get_close_matches(
      spelled.lower().replace(':', '_'), sorted(names), n=3, cutoff=0.6)
  hint = f" Did you mean: {', '.join(close)}?" if close else ''
  raise UserError(
      f"No published DreamerV2 scores for '{task}'.{hint} `dreamkit.scores.tasks()` "
      f'lists the {len(names)} published tasks (Atari games and DM Control tasks).')


def _key(name):
  return name.lower().replace('_', '').replace('-', '').replace(' ', '')


# --- Curves --------------------------------------------------------------------------

def methods(task):
  """The methods published for `task`, sorted ('dreamerv2', and 'nosched' on Atari)."""
  return sorted(_published()[task_name(task)])


def curves(task, method=PAPER_METHOD):
  """[Curve(seed, frames, returns)] of `method` on `task`, one per seed, sorted by seed."""
  name = task_name(task)
  by_method = _published()[name]
  if method not in by_method:
    raise UserError(f"No published curve of method '{method}' for {name}; it has: "
                    f"{', '.join(sorted(by_method))}.")
  # Seeds are strings: '2' before '10'.
  ordered = sorted(by_method[method].items(), key=lambda item: (len(item[0]), item[0]))
  return [Curve(seed, xs, ys) for seed, (xs, ys) in ordered]


def aligned(task, method=PAPER_METHOD):
  """(frames, returns [seeds, len(frames)]) of `method` on `task`: every seed on the
  frames of the seed that ends first (linear interpolation), for a mean and a range."""
  runs = curves(task, method)
  return align([(run.frames, run.returns) for run in runs])


def align(runs):
  """(grid, [len(runs), len(grid)]) from [(xs, ys)]: the runs interpolated onto the xs
  of the run that ends first."""
  grid = min((xs for xs, _ in runs), key=lambda xs: xs[-1])
  return grid, np.stack([np.interp(grid, xs, ys) for xs, ys in runs])


@functools.lru_cache(maxsize=None)
def _published():
  """{task: {method: {seed: (frames, returns)}}} of the shipped curve files."""
  result = {}
  for file in CURVE_FILES:
    for entry in _read_csv(DIRECTORY / file):
      order = np.argsort(entry['xs'], kind='stable')
      seeds = result.setdefault(entry['task'], {}).setdefault(entry['method'], {})
      seeds[entry['seed']] = (np.asarray(entry['xs'])[order], np.asarray(entry['ys'])[order])
  return result


# --- Normalisation -------------------------------------------------------------------

def atari_anchors(game):
  """(random, human_gamer) scores of an Atari game ('pong', 'atari:pong', 'atari_pong'):
  the anchors of the gamer-normalised score the paper reports."""
  spelled = str(game).strip()
  if ':' not in spelled and not spelled.lower().startswith('atari_'):
    spelled = 'atari:' + spelled
  name = task_name(spelled)
  anchors = _baselines().get(name, {})
  random, human = anchors.get('random'), anchors.get('human_gamer')
  if random is None or human is None:
    raise UserError(f'The Atari table has no random and human gamer scores for {name}.')
  return random, human


def normalizable(task):
  """Whether `normalize` knows a scale for `task` (published Atari and DMC tasks)."""
  return find(task) is not None


def normalize(task, score):
  """`score` (a number or array of returns) on the paper's scale for `task`.

  Atari: gamer-normalised, (score - random) / (human_gamer - random), so 0 is the random
  policy and 1 the human gamer. DM Control: score / 1000, the maximum return.
  Raises UserError for tasks without a published scale (Gym tasks).
  """
  name = task_name(task)
  score = np.asarray(score, np.float64)
  if name.startswith('atari_'):
    random, human = atari_anchors(name)
    return (score - random) / (human - random)
  return score / DMC_MAX_RETURN


@functools.lru_cache(maxsize=None)
def _baselines():
  """{task: {column: float}} of atari_baselines.csv (empty cells left out)."""
  table = {}
  with open(DIRECTORY / BASELINES_FILE, encoding='utf-8', newline='') as file:
    for row in csv.DictReader(file):
      task = row.pop('task')
      table[task] = {k: float(v) for k, v in row.items() if v not in ('', None)}
  return table


# --- Any scores file (CSV or JSON), as `dreamkit plot --compare FILE` reads it --------

def read_reference(path, task):
  """{method: (xs, [seeds, len(xs)])} for `task` from a scores file (CSV or JSON).

  Seeds logged at different points are interpolated onto the x values of the seed run
  that ends first. `task` may be omitted when the file holds a single task.
  """
  path = pathlib.Path(path).expanduser()
  entries = read(path)
  names = sorted({entry['task'] for entry in entries})
  task = resolve_task(path, task, names)
  seeds = collections.defaultdict(list)
  for entry in entries:
    if entry['task'] == task and len(entry['xs']):
      try:
        xs = np.asarray(entry['xs'], np.float64)
        ys = np.asarray(entry['ys'], np.float64)
      except (TypeError, ValueError) as error:
        raise UserError(f'{path}: {task} seed {entry.get("seed")} holds values that '
                        f'are not numbers ({error}).') from error
      if xs.shape != ys.shape or xs.ndim != 1:
        raise UserError(f'{path}: {task} seed {entry.get("seed")} has {xs.size} xs '
                        f'but {ys.size} ys.')
      order = np.argsort(xs, kind='stable')
      seeds[entry['method']].append((xs[order], ys[order]))
  return {method: align(runs) for method, runs in seeds.items()}


def read(path):
  """The entries `{task, method, seed, xs, ys}` of a scores file, CSV or JSON."""
  path = pathlib.Path(path)
  if path.name.endswith(('.csv', '.csv.gz')):
    return _read_csv(path)
  try:
    with _open_text(path) as file:
      entries = json.load(file)
  except (OSError, ValueError) as error:
    raise UserError(f'Cannot read reference scores {path}: {error}') from error
  fields = ('task', 'method', 'xs', 'ys')
  if not isinstance(entries, list) or not all(
      isinstance(entry, dict) and all(field in entry for field in fields)
      for entry in entries):
    raise UserError(
        f'{path} is not a scores file: expected a JSON list of objects with the '
        f"keys {', '.join(fields)} (and 'seed'), or a CSV with the columns "
        f"{', '.join(COLUMNS)}.")
  return entries


def _read_csv(path):
  """Entries from a CSV of one row per evaluation: task, method, seed, frames, return."""
  curves_by_key = collections.defaultdict(lambda: ([], []))
  try:
    with _open_text(path) as file:
      reader = csv.DictReader(file)
      columns = reader.fieldnames or []
      if not set(COLUMNS) <= set(columns):
        raise UserError(
            f'{path} is not a scores file: expected the columns '
            f"{', '.join(COLUMNS)} (one row per evaluation), found "
            f"{', '.join(columns[:8]) or 'none'}{', ...' if len(columns) > 8 else ''}.")
      for number, row in enumerate(reader, 2):
        xs, ys = curves_by_key[row['task'], row['method'], row['seed']]
        try:
          xs.append(float(row['frames']))
          ys.append(float(row['return']))
        except (TypeError, ValueError) as error:
          raise UserError(
              f'{path}, line {number}: frames and return must be numbers '
              f"({row['frames']!r}, {row['return']!r}).") from error
  except (OSError, EOFError, UnicodeDecodeError, csv.Error) as error:
    raise UserError(f'Cannot read reference scores {path}: {error}') from error
  return [{'task': task, 'method': method, 'seed': seed, 'xs': xs, 'ys': ys}
          for (task, method, seed), (xs, ys) in curves_by_key.items()]


def _open_text(path):
  if path.name.endswith('.gz'):
    return gzip.open(path, 'rt', encoding='utf-8', newline='')
  return open(path, encoding='utf-8', newline='')


def resolve_task(path, task, names):
  """The task of `names` (a file's tasks) that `task` names: itself, `atari_pong` for
  `atari:pong`, or a unique `_<task>` suffix (`pong`); the only one when `task` is None."""
  if task is None:
    if len(names) != 1:
      raise UserError(
          f'{path} holds {len(names)} tasks; choose one with --task. '
          f"Tasks: {', '.join(names)}.")
    return names[0]
  if task in names:
    return task
  spelled = task.strip().lower().replace(':', '_')
  if spelled in names:
    return spelled
  suffixed = [name for name in names if name.endswith('_' + spelled)]
  if len(suffixed) == 1:
    return suffixed[0]
  close = suffixed or difflib.get_close_matches(spelled, names, n=3)
  hint = f" Did you mean: {', '.join(close[:3])}?" if close else ''
  raise UserError(
      f"{path} has no task '{task}'.{hint} Tasks: {', '.join(names)}.")
