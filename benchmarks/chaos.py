"""Chaos: train CartPole while killing it, then check that nothing was lost.

    python benchmarks/chaos.py --kills 20 --root /tmp/chaos
    python benchmarks/chaos.py --kills 6 --root /tmp/chaos-tiny --gin pipelines/debug.gin \\
        --steps 1500 --target 0 --checkpoint-every 200

Runs `dreamkit run pipelines/cartpole_dreamerv2.gin` (parallel env workers, a
checkpoint every `--checkpoint-every` steps) and, `--kills` times, interrupts it at a
chosen moment, then starts it again on the same logdir:

  prefill       SIGKILL / SIGTERM while the random policy fills the replay
  first_update  SIGKILL / SIGTERM during the update that builds the agent (every
                start runs one, before it restores its checkpoint)
  save          SIGKILL / SIGTERM while a checkpoint is being written (seen as TF's
                temporary files in checkpoints/)
  random        SIGKILL / SIGTERM at a random time after the start
  worker        SIGKILL of one env worker process from outside: the run itself must
                go on (an `env_restarts` row), so it is not restarted

After every kill of the run it checks the logdir: every line of metrics.jsonl is
whole JSON and the steps never go backwards; every episode file that existed before
the kill still exists and reads back whole. At the end it lets the run go on until an
evaluation reaches `--target` (or its step budget), starts it once more to show that
the final checkpoint loads (a resumed run that finishes at once), and prints a table:
kills tried and survived per kind, episodes lost, whether the steps stayed monotone,
whether the final checkpoint loaded and the target was reached. Exit status 1 when any
check failed.

A kill that lands in a different phase than planned (a prefill that had already
ended) is counted under the phase it really hit.
"""

import argparse
import collections
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / 'pipelines' / 'cartpole_dreamerv2.gin'
KINDS = ('prefill', 'first_update', 'save', 'random', 'worker')
# Lines of the run's output that mark its phases.
PREFILL_LINE = re.compile(r'^Prefilling \d')
FIRST_UPDATE_LINE = re.compile(r'^Optimizer model: ')
TRAINING_LINE = re.compile(r'model_loss|^Resumed from ')


class Run:
  """One start of the training command; its output lines are read by a thread."""

  def __init__(self, command, log):
    self.lines = []
    self._log = log
    self._new_line = threading.Condition()
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    # Its own session: the run and its env workers are one process group, which is
    # what a machine that kills a job kills.
    self.process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=env, start_new_session=True)
    self.started = time.time()
    threading.Thread(target=self._read, daemon=True).start()

  def _read(self):
    for line in self.process.stdout:
      self._log.write(line)
      self._log.flush()
      with self._new_line:
        self.lines.append(line.rstrip('\n'))
        self._new_line.notify_all()
    with self._new_line:
      self._new_line.notify_all()

  def wait_for(self, pattern, timeout):
    """Waits until a line matches `pattern`; False if the run ended or time ran out."""
    deadline = time.time() + timeout
    seen = 0
    with self._new_line:
      while True:
        for line in self.lines[seen:]:
          if pattern.search(line):
            return True
        seen = len(self.lines)
        if self.process.poll() is not None or time.time() > deadline:
          return False
        self._new_line.wait(0.2)

  def seen(self, pattern):
    with self._new_line:
      return any(pattern.search(line) for line in self.lines)

  def alive(self):
    return self.process.poll() is None

  def signal(self, number):
    if self.alive():
      self.process.send_signal(number)

  def end(self, timeout=300):
    """Waits for the run to exit (a SIGTERM saves first), then kills what is left of
    its process group (orphaned env workers). Returns the exit code."""
    try:
      code = self.process.wait(timeout)
    except subprocess.TimeoutExpired:
      self.process.kill()
      code = self.process.wait()
    try:
      os.killpg(self.process.pid, signal.SIGKILL)
    except ProcessLookupError:
      pass
    return code

  def phase(self):
    """The phase the run is in, judged from its output so far."""
    if self.seen(TRAINING_LINE):
      return 'training'
    if self.seen(FIRST_UPDATE_LINE):
      return 'first_update'
    if self.seen(PREFILL_LINE):
      return 'prefill'
    return 'start'


def workers(pid):
  """The env worker processes (multiprocessing `spawn` children) of process `pid`."""
  found = []
  for entry in Path('/proc').iterdir():
    if not entry.name.isdigit():
      continue
    try:
      stat = (entry / 'stat').read_text()
      parent = int(stat.rsplit(')', 1)[1].split()[1])
      command = (entry / 'cmdline').read_bytes().replace(b'\0', b' ').decode()
    except (OSError, IndexError, ValueError):
      continue
    if parent == pid and 'spawn_main' in command:
      found.append(int(entry.name))
  return sorted(found)


def temporary(checkpoints):
  """The names of TF's temporary checkpoint files and folders in `checkpoints`."""
  try:
    return {path.name for path in checkpoints.iterdir()
            if '_temp' in path.name or '.tmp' in path.name}
  except FileNotFoundError:
    return set()


def metric_rows(logdir):
  """(rows, torn): metrics.jsonl's rows, and the lines that are not whole JSON."""
  rows, torn = [], []
  path = logdir / 'metrics.jsonl'
  if not path.exists():
    return rows, torn
  for number, line in enumerate(path.read_text().splitlines(), 1):
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError:
      torn.append(number)
  return rows, torn


def episodes(logdir):
  """{file name: whole?} for the finished episode files of the replay."""
  found = {}
  for path in sorted((logdir / 'replay').glob('*.h5')):
    length = int(path.stem.rsplit('-', 1)[1])
    try:
      with h5py.File(path, 'r') as handle:
        whole = bool(handle.keys()) and all(
            handle[key].shape[0] == length for key in handle.keys())
        for key in handle.keys():
          handle[key][()]  # Reads every value.
    except (OSError, KeyError, ValueError):
      whole = False
    found[path.name] = whole
  return found


def kill_plan(kills, rng):
  """Two prefill kills first (the prefill happens only at the start), then the other
  kinds in a shuffled rotation, each with SIGKILL and SIGTERM."""
  plan = [('prefill', signal.SIGKILL), ('prefill', signal.SIGTERM)][:kills]
  rotation = [(kind, number) for kind in KINDS[1:] for number in
              ((signal.SIGKILL,) if kind == 'worker' else (signal.SIGKILL, signal.SIGTERM))]
  while len(plan) < kills:
    rng.shuffle(rotation)
    plan.extend(rotation[:kills - len(plan)])
  return plan


def strike(run, kind, number, logdir, rng):
  """Signals the run at the moment `kind` asks for; returns the phase it hit, or None
  when the run ended (or never reached that moment) before it could be struck."""
  checkpoints = logdir / 'checkpoints'
  if kind == 'prefill':
    if not run.wait_for(PREFILL_LINE, 300):
      kind = 'first_update'  # The replay was already full: no prefill this start.
    else:
      time.sleep(rng.uniform(0.0, 1.0))
      hit = run.phase()
      run.signal(number)
      return hit
  if kind == 'first_update':
    if not run.wait_for(FIRST_UPDATE_LINE, 600):
      return None
    time.sleep(rng.uniform(0.0, 1.5))
    hit = run.phase()
    run.signal(number)
    return 'first_update' if hit == 'first_update' else hit
  if kind == 'save':
    if not run.wait_for(TRAINING_LINE, 900):
      return None
    # A save in progress: a temporary file that was not there before (one left by an
    # earlier killed save is not a save; the run removes those when it next saves).
    stale = temporary(checkpoints)
    deadline = time.time() + 900
    while run.alive() and time.time() < deadline:
      if temporary(checkpoints) - stale:
        run.signal(number)
        return 'save'
      time.sleep(0.002)
    return None
  if kind == 'random':
    time.sleep(rng.uniform(5.0, 90.0))
    hit = run.phase()
    run.signal(number)
    return f'random ({hit})'
  raise ValueError(kind)


def restarts_written(logdir):
  rows, _ = metric_rows(logdir)
  return sum(1 for row in rows if 'env_restarts' in row)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--kills', type=int, default=20)
  parser.add_argument('--root', type=Path, default=Path('/tmp/dreamkit-chaos'))
  parser.add_argument('--seed', type=int, default=0, help='The run\'s seed.')
  parser.add_argument('--chaos-seed', type=int, default=0,
                      help='Seed of the kill plan and the moments.')
  parser.add_argument('--steps', type=int, default=30000)
  parser.add_argument('--target', type=float, default=450.0,
                      help='Mean eval return the run must still reach.')
  parser.add_argument('--checkpoint-every', type=int, default=1000)
  parser.add_argument('--gin', action='append', default=[], type=Path,
                      help='Extra gin file after the CartPole pipeline '
                           '(pipelines/debug.gin for a tiny trial of the script).')
  parser.add_argument('-b', dest='bindings', action='append', default=[],
                      help='Extra gin binding for the run.')
  args = parser.parse_args()

  rng = random.Random(args.chaos_seed)
  logdir = args.root / 'run'
  args.root.mkdir(parents=True, exist_ok=True)
  if logdir.exists():
    raise SystemExit(f'{logdir} exists: give a new --root.')
  command = [
      sys.executable, '-m', 'dreamkit.cli', 'run', str(PIPELINE),
      *[str(path.resolve()) for path in args.gin], '--logdir', str(logdir),
      '--steps', str(args.steps), '--seed', str(args.seed),
      '-b', 'Pipeline.parallel = True',
      '-b', f'Pipeline.checkpoint_every = {args.checkpoint_every}',
      *[flag for binding in args.bindings for flag in ('-b', binding)]]
  log = open(args.root / 'chaos.log', 'w')  # pylint: disable=consider-using-with
  tried = collections.Counter()
  survived = collections.Counter()
  problems = []
  known = {}  # Every episode file seen whole so far.
  lost = set()
  start = time.time()

  def check(after):
    rows, torn = metric_rows(logdir)
    steps = [row['step'] for row in rows]
    ok = True
    if torn:
      problems.append(f'{after}: torn metrics lines {torn}')
      ok = False
    if any(later < earlier for earlier, later in zip(steps, steps[1:])):
      problems.append(f'{after}: metrics steps went backwards')
      ok = False
    now = episodes(logdir)
    for name in known:
      if not now.get(name):
        lost.add(name)
        problems.append(f'{after}: episode {name} missing or unreadable')
        ok = False
    known.update({name: True for name, whole in now.items() if whole})
    broken = [name for name, whole in now.items() if not whole]
    if broken:
      problems.append(f'{after}: unreadable episode files {broken}')
      ok = False
    return ok

  plan = kill_plan(args.kills, rng)
  run = Run(command, log)
  for index, (kind, number) in enumerate(plan, 1):
    name = signal.Signals(number).name
    if not run.alive():
      run.end()
      check(f'kill {index - 1}')
      run = Run(command, log)
    if kind == 'worker':
      if not run.wait_for(TRAINING_LINE, 900):
        problems.append(f'kill {index}: the run ended before training')
        continue
      before = restarts_written(logdir)
      pids = workers(run.process.pid)
      if not pids:
        problems.append(f'kill {index}: no env worker found')
        continue
      os.kill(rng.choice(pids), signal.SIGKILL)
      tried['worker', name] += 1
      deadline = time.time() + 300
      while run.alive() and restarts_written(logdir) <= before and time.time() < deadline:
        time.sleep(1)
      if restarts_written(logdir) > before and run.alive():
        survived['worker', name] += 1
      else:
        problems.append(f'kill {index}: no env_restarts row after a worker kill')
      print(f'kill {index:2d}: worker {name}', flush=True)
      continue
    hit = strike(run, kind, number, logdir, rng)
    if hit is None:
      problems.append(f'kill {index} ({kind}): the run ended before the moment came')
      continue
    code = run.end()
    tried[hit, name] += 1
    by_us = code in (-number, 128 + number, 130, 143) or (
        number == signal.SIGTERM and code == 0)
    ok = check(f'kill {index}')
    if not by_us:
      problems.append(f'kill {index}: the run exited with {code} (see {log.name})')
    if ok and by_us:
      survived[hit, name] += 1
    step = max((row['step'] for row in metric_rows(logdir)[0]), default=0)
    print(f'kill {index:2d}: {hit} {name} at step {step:,} '
          f'({len(known)} episodes kept)', flush=True)

  # The last start goes on until the target (or the budget), then stops cleanly.
  if run.alive():
    run.end()
  check('the kills')

  def target_reached():
    rows, _ = metric_rows(logdir)
    return next((row['step'] for row in rows
                 if row.get('eval_return', -float('inf')) >= args.target), None)

  reached = target_reached()
  if reached is None:
    run = Run(command, log)
    while run.alive() and reached is None:
      time.sleep(5)
      reached = target_reached()
    run.signal(signal.SIGTERM)
    code = run.end(timeout=600)
    # 0: the budget ran out; 143: our SIGTERM, handled (or -15, when it came before
    # the run had installed its handler).
    if code not in (0, 143, -signal.SIGTERM):
      problems.append(f'the last run exited with {code}')
    check('the last run')
  rows, _ = metric_rows(logdir)
  returns = [row['eval_return'] for row in rows if 'eval_return' in row]
  final_step = max((row['step'] for row in rows), default=0)

  # The final checkpoint loads: a start whose budget is its step resumes and finishes.
  last = subprocess.run(
      [*command[:command.index('--steps') + 1], str(final_step),
       *command[command.index('--steps') + 2:]],
      cwd=REPO, capture_output=True, text=True, check=False)
  log.write(last.stdout + last.stderr)
  loaded = last.returncode == 0 and 'Resumed from' in last.stdout
  if not loaded:
    problems.append(f'the final checkpoint did not load: {last.stdout[-500:]}'
                    f'{last.stderr[-500:]}')

  minutes = (time.time() - start) / 60
  rows, _ = metric_rows(logdir)
  steps = [row['step'] for row in rows]
  print()
  print('| kind | signal | tried | survived |')
  print('| --- | --- | --- | --- |')
  for key in sorted(tried):
    print(f'| {key[0]} | {key[1]} | {tried[key]} | {survived[key]} |')
  print(f'| all | | {sum(tried.values())} | {sum(survived.values())} |')
  print()
  print(f'episodes kept: {len(known)}, lost: {len(lost)}')
  print('metrics steps monotone: '
        f'{all(b >= a for a, b in zip(steps, steps[1:]))} ({len(rows)} rows)')
  print(f'final checkpoint loads: {loaded} (step {final_step:,})')
  best = max(returns, default=float('nan'))
  print(f'target {args.target:g}: '
        + (f'reached at step {reached:,}' if reached is not None
           else f'not reached (best eval return {best:.1f})'))
  print(f'wall clock: {minutes:.1f} min; log: {log.name}')
  for problem in problems:
    print('problem:', problem)
  if problems or reached is None:
    raise SystemExit(1)


if __name__ == '__main__':
  main()
