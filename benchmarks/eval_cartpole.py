"""`dreamkit eval` on a trained CartPole agent: its table, its start-up time, and
whether it replays the runner's own evaluation.

    python benchmarks/eval_cartpole.py                       # train to 450, then evaluate
    python benchmarks/eval_cartpole.py --logdir logdir/cp    # reuse a trained run there

Trains `pipelines/cartpole_dreamerv2.gin` (seed 0, or --seed) with a checkpoint at every
evaluation (evaluations come at prefill + k * eval_every = 1,000 + k * 2,500 steps, so
`checkpoint_every = 500` saves at each of them; 60 kept) and stops it (SIGTERM, which
saves) once an evaluation reaches 450, as benchmarks/learning.py --stop-at-target
does. Then, for the first evaluation step that reached the target:

  1. `dreamkit eval LOGDIR --checkpoint STEP` with the run's own settings (5 episodes,
     1 env copy): its mean return must equal the runner's eval_return at STEP;
  2. `dreamkit eval LOGDIR --checkpoint STEP --episodes 20`: the table for the note;

and prints both tables, the wall-clock time of each command (start-up included) and
whether the run's files stayed byte-identical. Takes ~10 minutes on a quiet 2-core CPU.
"""

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import learning  # pylint: disable=wrong-import-position

REPO = Path(__file__).resolve().parents[1]
TARGET = 450.0


def digest(logdir):
  """{path: sha256} of the run's files, its eval/ rows aside."""
  return {str(path.relative_to(logdir)): hashlib.sha256(path.read_bytes()).hexdigest()
          for path in sorted(logdir.rglob('*'))
          if path.is_file() and path.relative_to(logdir).parts[0] != 'eval'}


def evaluations(logdir):
  rows = [json.loads(line) for line in (logdir / 'metrics.jsonl').read_text().splitlines()
          if line.strip()]
  return {row['step']: row['eval_return'] for row in rows if 'eval_return' in row}


def dreamkit_eval(logdir, *args):
  start = time.time()
  result = subprocess.run(
      [sys.executable, '-m', 'dreamkit.cli', 'eval', str(logdir), *map(str, args)],
      capture_output=True, text=True, cwd=REPO, check=False)
  if result.returncode:
    raise SystemExit(result.stderr)
  return result.stdout, time.time() - start


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--logdir', type=Path, default=Path('benchmarks/results/eval_cartpole'))
  parser.add_argument('--seed', type=int, default=0, help="The training run's seed.")
  args = parser.parse_args()
  root = args.logdir
  logdir = root / f'cartpole-seed{args.seed}'
  if not (logdir / 'checkpoints').exists():
    root.mkdir(parents=True, exist_ok=True)
    learning.run('cartpole', args.seed, root, ['-b', 'Pipeline.checkpoint_every = 500',
                                       '-b', 'Pipeline.keep_checkpoints = 60'],
                 stop_at_target=True)
  reached = [step for step, value in sorted(evaluations(logdir).items()) if value >= TARGET]
  if not reached:
    raise SystemExit(f'No evaluation of {logdir} reached {TARGET}: {evaluations(logdir)}')
  step = reached[0]
  before = digest(logdir)
  replay, replay_seconds = dreamkit_eval(logdir, '--checkpoint', step, '--out',
                                         root / 'replayed.jsonl')
  table, table_seconds = dreamkit_eval(logdir, '--checkpoint', step, '--episodes', 20)
  replayed = [json.loads(line) for line in (root / 'replayed.jsonl').read_text().splitlines()][-1]
  print(f"The runner's eval_return at step {step:,}: {evaluations(logdir)[step]:.1f}; "
        f"dreamkit eval with its settings: {replayed['eval_return']:.1f} "
        f"({'equal' if abs(replayed['eval_return'] - evaluations(logdir)[step]) < 1e-6 else 'DIFFERENT'}), "
        f'{replay_seconds:.1f} s wall clock')
  print(replay)
  print(f'20 episodes ({table_seconds:.1f} s wall clock):')
  print(table)
  print('Run files byte-identical after both:', digest(logdir) == before)


if __name__ == '__main__':
  main()
