"""Learning benchmark: does DreamerV2 learn CartPole and Pendulum on this CPU?

    python benchmarks/learning.py                      # both tasks, seed 0
    python benchmarks/learning.py --tasks cartpole --seeds 0 1 --root /tmp/learning
    python benchmarks/learning.py --stop-at-target     # stop each run at its target
    python benchmarks/learning.py --seeds 0 1 2 3 4 --stop-at-target --jobs 2

Runs `dreamkit run pipelines/<task>_dreamerv2.gin` for each task and seed (30,000 env
steps, logdir `<root>/<task>-seed<seed>`), one after the other (or `--jobs N` at once, each
pinned to its own 1/N of the CPU cores, so each run's time budget holds on fewer
cores), then prints two tables:
per run (steps and wall-clock time until the mean eval return first reaches the target,
best and final eval return, total time), and per task, which judges seeds, not a run
(how many seeds reach the target within both budgets, the median and the worst seed's
steps and minutes to target). It writes a PNG of eval return against env steps with
every seed's curve. Targets: CartPole-v1 >= 450, Pendulum-v1 >= -300, each within
30,000 env steps and 30 minutes. A seed that never reaches the target counts as the
worst, with no steps or minutes.
"""

import argparse
import json
import math
import os
import queue
from concurrent import futures
import signal
import subprocess
import threading
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
TASKS = {
    # name: (pipeline, target mean eval return)
    'cartpole': ('pipelines/cartpole_dreamerv2.gin', 450.0),
    'pendulum': ('pipelines/pendulum_dreamerv2.gin', -300.0),
}
STEP_BUDGET = 30000
TIME_BUDGET = 30 * 60


# Set by SIGTERM or Ctrl-C of this script: each run stops (saving its checkpoint) and
# no further run starts, so that no training process outlives the benchmark.
STOPPING = threading.Event()


def run(task, seed, root, extra, stop_at_target=False, cpus=None):
  """Trains one task and seed; with `stop_at_target`, SIGTERM (a clean stop that
  saves a checkpoint) once an evaluation reaches the target, or once the run is past
  the time budget and so can no longer pass. `cpus`: the set of CPU cores the run
  may use (all when None)."""
  pipeline, target = TASKS[task]
  logdir = root / f'{task}-seed{seed}'
  command = [sys.executable, '-m', 'dreamkit.cli', 'run', str(REPO / pipeline),
             '--logdir', str(logdir), '--steps', str(STEP_BUDGET),
             '-b', f'Pipeline.seed = {seed}', *extra]
  start = time.time()
  stopped = False
  with open(root / f'{task}-seed{seed}.log', 'w') as log:
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                               preexec_fn=pin)
    while process.poll() is None:
      time.sleep(1 if STOPPING.is_set() else 5)
      done = stop_at_target and (
          _best_eval(logdir) >= target or time.time() - start > TIME_BUDGET)
      if (done or STOPPING.is_set()) and not stopped:
        process.send_signal(signal.SIGTERM)
        stopped = True
  if process.returncode != 0 and not stopped:
    raise SystemExit(f'{task} seed {seed} failed (exit {process.returncode}); '
                     f'see {root}/{task}-seed{seed}.log')
  return logdir, time.time() - start


def run_all(trials, root, extra, stop_at_target, jobs):
  """Runs (task, seed) trials, `jobs` at a time, each pinned to its own equal share
  of this process's CPU cores so that concurrent runs do not compete for a core.
  Returns {(task, seed): (logdir, seconds)}."""
  cores = sorted(os.sched_getaffinity(0))
  if jobs > len(cores):
    raise SystemExit(f'--jobs {jobs} is more than the {len(cores)} CPU cores available')
  share = len(cores) // jobs
  free = queue.Queue()
  for index in range(jobs):
    free.put(set(cores[index * share:(index + 1) * share]) if jobs > 1 else None)

  def one(trial):
    if STOPPING.is_set():
      return trial, None
    cpus = free.get()
    try:
      return trial, run(*trial, root, extra, stop_at_target, cpus)
    finally:
      free.put(cpus)

  def stop(signum, _):
    STOPPING.set()
    print(f'{signal.Signals(signum).name}: stopping the runs (each saves a checkpoint).',
          file=sys.stderr, flush=True)

  previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
  try:
    with futures.ThreadPoolExecutor(jobs) as pool:
      finished = dict(pool.map(one, trials))
  finally:
    for sig, handler in previous.items():
      signal.signal(sig, handler)
  if STOPPING.is_set():
    raise SystemExit('Stopped before every run finished; run again with '
                     '--summarize-only to read the finished ones.')
  return finished


def _best_eval(logdir):
  """The best eval_return in a run's metrics.jsonl so far (-inf before the first)."""
  best = -math.inf
  path = logdir / 'metrics.jsonl'
  if not path.exists():
    return best
  for line in path.read_text().splitlines():
    try:
      row = json.loads(line)
    except ValueError:
      continue  # A line still being written.
    if row.get('eval_return') is not None:
      best = max(best, row['eval_return'])
  return best


def summarize(task, seed, logdir, seconds):
  _, target = TASKS[task]
  rows = pd.read_json(logdir / 'metrics.jsonl', lines=True)
  evals = rows.dropna(subset=['eval_return'])
  reached = evals[evals['eval_return'] >= target]
  first = reached.iloc[0] if len(reached) else None
  return {
      'task': task, 'seed': seed, 'target': target,
      'steps_to_target': int(first['step']) if first is not None else None,
      'minutes_to_target': round(first['wall_time'] / 60, 1) if first is not None else None,
      'best_eval': round(float(evals['eval_return'].max()), 1),
      'final_eval': round(float(evals['eval_return'].iloc[-1]), 1),
      'total_minutes': round(seconds / 60, 1),
      'passed': bool(first is not None and first['step'] <= STEP_BUDGET
                     and first['wall_time'] <= TIME_BUDGET),
  }, evals


def per_task(results):
  """The seeds' verdict per task: passed n/N, median and worst steps/minutes to target.

  A seed that failed counts as infinitely slow, so the median and the worst are None
  (shown empty) once failures reach them.
  """
  rows = []
  for task in dict.fromkeys(r['task'] for r in results):
    runs = [r for r in results if r['task'] == task]
    passed = [r for r in runs if r['passed']]

    def order(key):
      return sorted(r[key] if r['passed'] else math.inf for r in runs)

    steps, minutes = order('steps_to_target'), order('minutes_to_target')
    finite = lambda value: None if value == math.inf else value
    middle = (len(runs) - 1) // 2  # the lower median for an even count
    rows.append({
        'task': task, 'target': runs[0]['target'],
        'seeds_passed': f'{len(passed)}/{len(runs)}',
        'median_steps': finite(steps[middle]), 'worst_steps': finite(steps[-1]),
        'median_minutes': finite(minutes[middle]), 'worst_minutes': finite(minutes[-1]),
        'worst_best_eval': min(r['best_eval'] for r in runs),
    })
  return pd.DataFrame(rows)


def plot(curves, path):
  """curves: {task: {seed: evals}} -> one panel per task, one line per seed."""
  import matplotlib
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt
  fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.6), squeeze=False)
  for ax, (task, seeds) in zip(axes[0], curves.items()):
    for seed, evals in seeds.items():
      ax.plot(evals['step'], evals['eval_return'], marker='o', markersize=3,
              label=f'seed {seed}')
    ax.axhline(TASKS[task][1], color='gray', linestyle='--', label='target')
    ax.set_title(f'{task} (mean eval return)')
    ax.set_xlabel('env steps')
    ax.set_xlim(0, STEP_BUDGET)
    ax.grid(alpha=0.3)
    ax.legend(loc='lower right')
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--tasks', nargs='+', default=list(TASKS), choices=list(TASKS))
  parser.add_argument('--seeds', nargs='+', type=int, default=[0])
  parser.add_argument('--root', default='benchmarks/results/learning', type=Path)
  parser.add_argument('--stop-at-target', action='store_true',
                      help='Stop each run once an evaluation reaches the target '
                           '(time to target without the rest of the budget).')
  parser.add_argument('--jobs', type=int, default=1,
                      help='Runs at once, each pinned to its own share of the CPU cores '
                           '(its wall-clock budget then holds on fewer cores).')
  parser.add_argument('--summarize-only', action='store_true',
                      help='Read finished runs under --root instead of running.')
  parser.add_argument('-b', dest='bindings', action='append', default=[],
                      help='Extra gin binding for every run.')
  args = parser.parse_args()
  args.root.mkdir(parents=True, exist_ok=True)
  extra = [item for binding in args.bindings for item in ('-b', binding)]
  trials = [(task, seed) for task in args.tasks for seed in args.seeds]
  if args.summarize_only:
    finished = {}
    for task, seed in trials:
      logdir = args.root / f'{task}-seed{seed}'
      rows = pd.read_json(logdir / 'metrics.jsonl', lines=True)
      finished[task, seed] = logdir, float(rows['wall_time'].max())
  else:
    finished = run_all(trials, args.root, extra, args.stop_at_target, args.jobs)
  results, curves = [], {}
  for task, seed in trials:
    summary, evals = summarize(task, seed, *finished[task, seed])
    results.append(summary)
    curves.setdefault(task, {})[seed] = evals
  for table in (pd.DataFrame(results), per_task(results)):
    print(table.to_markdown(index=False) if _has_tabulate() else table.to_string(index=False))
    print()
  path = args.root / 'learning_curves.png'
  plot(curves, path)
  print(f'curves: {path}')


def _has_tabulate():
  try:
    import tabulate  # noqa: F401
    return True
  except ImportError:
    return False


if __name__ == '__main__':
  main()
