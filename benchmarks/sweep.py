"""Sweep benchmark: the CartPole latent ablation on Ray, on this machine.

    python benchmarks/sweep.py                          # the real one: 6 trials of 30,000 steps
    python benchmarks/sweep.py --image docs/images/cartpole_latents.png
    python benchmarks/sweep.py --sweepdir /tmp/tiny pipelines/debug.gin \\
        -b 'Sweep.seeds = 1' -b 'Pipeline.steps = 300'   # a debug-size check of the script

Measures, and prints as Markdown:
 1. Ray's start-up: the seconds `ray.init` takes for a local Ray (no dashboard, as
    `dreamkit sweep` starts it) and the memory its processes hold (RSS summed over the
    Ray processes this starts, before any trial), in a process of its own.
 2. The sweep's wall clock: `dreamkit sweep pipelines/sweeps/cartpole_latents.gin`
    (extra files and -b bindings after it), `--max-concurrent` trials at once
    (default 2: one per core of a 2-core CPU).
 3. `dreamkit compare` on it: the table, and each trial's best eval return at or before
    step 30,000, against the goal: every categorical seed >= 450.
A rerun on the same --sweepdir skips finished trials (its wall clock then counts
only what was left). `--image` copies the compare PNG there.
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SWEEP = REPO / 'pipelines' / 'sweeps' / 'cartpole_latents.gin'
GOAL_RETURN = 450.0
GOAL_STEPS = 30000
PROBE = r'''
import json, logging, time, psutil, ray
start = time.monotonic()
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
         logging_level=logging.ERROR)
seconds = time.monotonic() - start
time.sleep(2)  # Let the first worker processes settle.
me = psutil.Process()
processes = me.children(recursive=True)
rss = sum(p.memory_info().rss for p in processes if p.is_running())
ray.shutdown()
print(json.dumps({'seconds': seconds, 'rss': rss, 'processes': len(processes)}))
'''


def ray_startup():
  """{'seconds', 'rss', 'processes'} of a local Ray started in a fresh process."""
  result = subprocess.run([sys.executable, '-c', PROBE], capture_output=True, text=True,
                          check=True)
  return json.loads(result.stdout.strip().splitlines()[-1])


def best_within(logdir, steps=GOAL_STEPS):
  """The best evaluation return at or before `steps` (None without evaluations)."""
  path = Path(logdir) / 'metrics.jsonl'
  if not path.is_file():
    return None
  values = []
  for line in path.read_text().splitlines():
    try:
      row = json.loads(line)
    except ValueError:
      continue
    if row.get('eval_return') is not None and row.get('step', 0) <= steps:
      values.append(float(row['eval_return']))
  return max(values) if values else None


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('files', nargs='*', help='More .gin files for every trial.')
  parser.add_argument('-b', dest='bindings', action='append', default=[],
                      help='A binding for every trial (or the sweep: Sweep.*).')
  parser.add_argument('--sweepdir', type=Path,
                      default=REPO / 'benchmarks' / 'results' / 'cartpole_latents')
  parser.add_argument('--max-concurrent', type=int, default=2)
  parser.add_argument('--image', type=Path, help='Copy the compare PNG here.')
  args = parser.parse_args()

  probe = ray_startup()
  command = [sys.executable, '-m', 'dreamkit.cli', 'sweep', str(SWEEP), *args.files]
  for binding in args.bindings:
    command += ['-b', binding]
  command += ['--logdir', str(args.sweepdir), '--max-concurrent', str(args.max_concurrent)]
  print('$', ' '.join(command), flush=True)
  start = time.monotonic()
  sweep = subprocess.run(command, check=False)
  wall = time.monotonic() - start
  compare = subprocess.run(
      [sys.executable, '-m', 'dreamkit.cli', 'compare', str(args.sweepdir)],
      capture_output=True, text=True, check=False)

  print('\n## Sweep benchmark\n')
  print('| measure | value |\n| --- | --- |')
  print(f"| Ray start-up (local, no dashboard) | {probe['seconds']:.1f} s |")
  print(f"| Ray memory before any trial | {probe['rss'] / 2**30:.2f} GB in "
        f"{probe['processes']} processes |")
  print(f'| sweep wall clock ({args.max_concurrent} at once) | {wall / 60:.1f} min |')
  print(f'| sweep exit code | {sweep.returncode} |')
  manifest = json.loads((args.sweepdir / 'sweep.json').read_text())
  budget = min([GOAL_STEPS] + [int(t['steps']) for t in manifest['trials']])
  shortened = '' if budget == GOAL_STEPS else f' (shortened: the goal allows {GOAL_STEPS:,})'
  print(f'\n## Best eval return within {budget:,} steps{shortened}, per trial\n')
  print('| trial | best | goal (categorical >= 450) |\n| --- | --- | --- |')
  met = []
  for trial in manifest['trials']:
    best = best_within(args.sweepdir / trial['logdir'])
    name = f"{trial['task']}/{trial['variant']}/seed{trial['seed']}"
    goal = ''
    if trial['variant'] == 'categorical':
      met.append(best is not None and best >= GOAL_RETURN)
      goal = 'yes' if met[-1] else 'no'
    print(f"| {name} | {'-' if best is None else f'{best:.0f}'} | {goal} |")
  if met:
    print(f'\nGoal: {sum(met)} of {len(met)} categorical seeds reach {GOAL_RETURN:.0f}.')
  print('\n' + (compare.stdout if compare.returncode == 0 else compare.stderr))
  if args.image and compare.returncode == 0:
    args.image.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.sweepdir / 'compare.png', args.image)
    print(f'Copied the picture to {args.image}')
  return sweep.returncode or compare.returncode


if __name__ == '__main__':
  sys.exit(main())
