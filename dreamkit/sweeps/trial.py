"""One trial of a sweep, as Ray Tune runs it: an ordinary `dreamkit run` in a process
of its own, whose metric rows are reported to Tune as the run writes them.

    run_trial(config)   # the Tune trainable; config = {'trial': Trial fields, 'space': {...}}

The Tune function runs in a Ray worker process (a thread of it); the training itself
runs in a child process started with the trial's `dreamkit run` command line, so no
two trials ever share TensorFlow's state, and the trial's logdir is exactly a run's
logdir (`dreamkit plot`, TensorBoard and resume work on it). The run's output goes to
`<logdir>/run.log`. When the run ends with exit code 0, `<logdir>/trial.json` marks the
trial finished (with its step budget): a rerun of the sweep skips it. Any other end is
an error for Tune, which restarts the trial (up to `Sweep.max_failures`); the restart
is a rerun of the same command on the same logdir, which resumes from its checkpoint.

If the worker process dies (the sweep was stopped, or killed with SIGKILL), the run
receives SIGTERM from the kernel (PR_SET_PDEATHSIG), saves a checkpoint and stops; it
runs in a session of its own, out of the worker's process group, which Ray kills with
SIGKILL.
"""

import ctypes
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dreamkit.sweeps import spec as spec_lib

MARKER = 'trial.json'
LOG = 'run.log'
POLL_SECONDS = 1.0
STOP_SECONDS = 120.0  # How long a stopped trial's run may take to save before SIGKILL.
# Reported with every row (the last value seen; NaN before the first one), so that
# schedulers and the progress table always find them.
CARRIED = ('step', 'frames', 'eval_return', 'train_return', 'steps_budget', 'wall_time')


def finished(logdir, steps):
  """Whether the trial in `logdir` ended by itself with a budget of at least `steps`."""
  try:
    marker = json.loads((Path(logdir) / MARKER).read_text())
  except (OSError, ValueError):
    return False
  return marker.get('status') == 'finished' and int(marker.get('steps', 0)) >= int(steps)


def run_trial(config):
  """The Tune trainable: runs the trial's `dreamkit run` and reports its rows."""
  from ray import tune  # pylint: disable=import-outside-toplevel
  trial = trial_of(config)
  logdir = Path(trial.logdir)
  logdir.mkdir(parents=True, exist_ok=True)
  started = time.time()
  with open(logdir / LOG, 'ab') as log:
    log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} sweep trial {trial.name}: "
              f"{' '.join(trial.command('python'))}\n".encode())
    log.flush()
    process = subprocess.Popen(  # pylint: disable=consider-using-with
        trial.command(sys.executable), stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent, env=_environment(),
        # Its own process group: Ray ends a worker by SIGKILLing the worker's group,
        # which would stop the run mid-step; the run gets SIGTERM instead, and saves.
        start_new_session=True)
  rows = Rows(logdir / 'metrics.jsonl')
  # Rows of the last step wait for the run's end and its marker: a scheduler that
  # stops trials at the budget (ASHA at max_t) then stops a finished trial.
  last = []
  try:
    while process.poll() is None:
      for metrics in rows.new():
        if metrics['step'] >= trial.steps:
          last.append(metrics)
        else:
          tune.report(metrics)
      time.sleep(POLL_SECONDS)
  finally:
    if process.poll() is None:  # Tune stopped the trial (or the worker is exiting).
      stop(process)
  last += rows.new()
  code = process.returncode
  if code != 0:
    raise RuntimeError(
        f'dreamkit run of {trial.name} exited with code {code}; the end of '
        f'{logdir / LOG}:\n{tail(logdir / LOG)}')
  marker = {'status': 'finished', 'steps': trial.steps, 'task': trial.task,
            'variant': trial.variant, 'seed': trial.seed,
            'seconds': round(time.time() - started, 1)}
  (logdir / (MARKER + '.tmp')).write_text(json.dumps(marker))
  (logdir / (MARKER + '.tmp')).replace(logdir / MARKER)
  if last:
    # The rows of the last step as one report (the evaluation with the losses): a
    # scheduler stopping at the budget reads only the first report there. It goes
    # twice, since Tune takes a function's last report for its end-of-trial
    # duplicate and passes that to no scheduler or callback.
    final = {}
    for metrics in last:
      final.update(metrics)
    tune.report(final)
    tune.report(final)


def trial_of(config):
  """The Trial of a Tune config; a searched trial gets its sampled bindings and a
  variant (and logdir) named by its values."""
  trial = spec_lib.Trial(**config['trial'])
  values = config.get('space') or {}
  if values:
    trial.variant = spec_lib.sampled_variant(values)
    trial.bindings = [*trial.bindings, *spec_lib.sampled_bindings(values)]
    trial.logdir = str(Path(trial.logdir).parent.parent / trial.variant / f'seed{trial.seed}')
  return trial


class Rows:
  """Reads the rows a run appends to its metrics.jsonl; each comes back with the
  last values of `CARRIED` filled in."""

  def __init__(self, path):
    self.path = Path(path)
    self.offset = 0
    self.last = {key: math.nan for key in CARRIED}

  def new(self):
    """The complete rows written since the last call (a torn last line waits)."""
    try:
      with open(self.path, 'rb') as file:
        file.seek(self.offset)
        data = file.read()
    except FileNotFoundError:
      return []
    end = data.rfind(b'\n') + 1
    self.offset += end
    result = []
    for line in data[:end].splitlines():
      try:
        row = json.loads(line)
      except ValueError:
        continue
      numbers = {key: float(value) for key, value in row.items()
                 if isinstance(value, (int, float)) and not isinstance(value, bool)}
      self.last.update({key: numbers[key] for key in CARRIED if key in numbers})
      result.append({**numbers, **self.last})
    return result


def stop(process, seconds=STOP_SECONDS):
  """SIGTERM (the run saves a checkpoint), then SIGKILL if it takes too long."""
  process.send_signal(signal.SIGTERM)
  try:
    process.wait(seconds)
  except subprocess.TimeoutExpired:
    process.kill()
    process.wait()


def tail(path, lines=5):
  try:
    text = Path(path).read_text(errors='replace')
  except OSError:
    return '(no log)'
  return '\n'.join(text.rstrip().splitlines()[-lines:])


def _environment():
  """The worker's environment for the run, with Ray's own variables for its workers
  (which would make a TF process think it is a Ray worker) left out."""
  env = {key: value for key, value in os.environ.items()
         if not key.startswith(('RAY_', 'TUNE_'))}
  env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  env['PYTHONUNBUFFERED'] = '1'
  # The run imports the same dreamkit as this worker, even from a source checkout that
  # is not installed (or with another dreamkit installed).
  root = str(Path(__file__).resolve().parents[2])
  paths = [path for path in env.get('PYTHONPATH', '').split(os.pathsep) if path]
  env['PYTHONPATH'] = os.pathsep.join([root] + [path for path in paths if path != root])
  return env


_PR_SET_PDEATHSIG = 1


def _die_with_parent():
  """In the child, before exec: SIGTERM it when the worker that started it dies."""
  if sys.platform.startswith('linux'):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
