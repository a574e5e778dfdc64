"""`dreamkit sweep`: plan, check, then run the trials on Ray Tune.

    result = sweep('pipelines/sweeps/cartpole_latents.gin', ['pipelines/debug.gin'],
                   logdir='logdir/latents', max_concurrent=2)

In order, and why:
 1. Read the sweep file and plan one trial per task x variant x seed.
 2. Parse and check every trial's config (before Ray starts: a bad binding costs a
    second and names its variant, and no trial has started).
 3. Skip the trials finished by an earlier run of the sweep; write sweep.json.
 4. Start Ray (a local one inside this process, or join the cluster at `address`).
 5. A Tune grid over the remaining trials (or a search over `Sweep.space`): each trial
    is a `dreamkit run` in its own process (`trial.py`), with its own resources.
"""

import dataclasses
import os
import socket
import time
from pathlib import Path

from dreamkit.errors import UserError
from dreamkit.sweeps import progress as progress_lib
from dreamkit.sweeps import spec as spec_lib
from dreamkit.sweeps import trial as trial_lib


@dataclasses.dataclass
class Result:
  """How a sweep ended."""
  sweepdir: Path
  trials: list            # The planned Trials.
  finished: list          # Names of trials finished (now or before).
  failed: list            # Names of trials that failed.
  skipped: list           # Names of trials finished by an earlier run, not rerun.
  ray_start_seconds: float
  stopped: list           # Names of trials a scheduler stopped early (resumable).


def sweep(sweep_file, files=(), bindings=(), plugins=(), logdir=None, address=None,
          cpus_per_trial=1.0, gpus_per_trial=0.0, max_concurrent=None, stream=None):
  """Runs the sweep `sweep_file` (with extra `files` / `bindings` for every trial).

  Returns a Result. Raises UserError for a bad sweep file or trial config (before
  anything runs) and for an unreachable `address`.
  """
  if cpus_per_trial <= 0 or gpus_per_trial < 0:
    raise UserError(f'--cpus-per-trial must be > 0 and --gpus-per-trial >= 0, got '
                    f'{cpus_per_trial} and {gpus_per_trial}.')
  if max_concurrent is not None and max_concurrent < 1:
    raise UserError(f'--max-concurrent must be at least 1, got {max_concurrent}.')
  sweep_file = Path(sweep_file)
  # `-b 'Sweep.seeds = 1'` changes the sweep; every other binding goes to the trials.
  sweep_bindings = [b for b in bindings if spec_lib.is_sweep_binding(b)]
  bindings = [b for b in bindings if not spec_lib.is_sweep_binding(b)]
  spec = spec_lib.read(sweep_file, plugins, sweep_bindings)
  sweepdir = Path(logdir or Path('logdir') / sweep_file.stem).resolve()
  trials = spec_lib.check(
      spec_lib.plan(spec, sweepdir, files, bindings, plugins), sweepdir)
  if spec.search is not None:
    spec_lib.sample_space(spec.space)  # Checks the distributions before Ray starts.
  if address:
    check_address(address)
  spec_lib.write_manifest(sweepdir, sweep_file, trials, files, bindings)

  if spec.search is None:
    todo = [t for t in trials if not trial_lib.finished(t.logdir, t.steps)]
  else:
    todo = trials
  skipped = [t.name for t in trials if t not in todo]
  # A search's trials are named as Tune samples them (the table grows).
  table = progress_lib.Table([t.name for t in trials] if spec.search is None else [],
                             stream=stream)
  for name in skipped:
    table.skipped(name)
  if not todo:
    table.final()
    return Result(sweepdir, trials, skipped, [], skipped, 0.0, [])

  ray_start = start_ray(address)
  try:
    grid = _tuner(spec, todo, sweepdir, table, cpus_per_trial, gpus_per_trial,
                  max_concurrent).fit()
  finally:
    import ray  # pylint: disable=import-outside-toplevel
    ray.shutdown()
  table.final()
  ran = [(trial_lib.trial_of(result.config), result.error) for result in grid]
  if spec.search is not None:  # The sampled trials, for `dreamkit compare`.
    trials = [trial for trial, _ in ran]
    spec_lib.write_manifest(sweepdir, sweep_file, trials, files, bindings)
  failed = [trial.name for trial, error in ran if error is not None]
  finished = skipped + [trial.name for trial, error in ran
                        if error is None and trial_lib.finished(trial.logdir, trial.steps)]
  stopped = [trial.name for trial, error in ran
             if error is None and trial.name not in finished]
  return Result(sweepdir, trials, finished, failed, skipped, ray_start, stopped)


def _name(config):
  return trial_lib.trial_of(config).name


def _finished(tune_trial):
  """Whether a trial Tune completed ran to its end (a scheduler may stop it early)."""
  trial = trial_lib.trial_of(tune_trial.config)
  return trial_lib.finished(trial.logdir, trial.steps)


def check_address(address):
  """A one-line UserError when nothing answers at `address` ('host:port')."""
  if address in ('auto', 'local') or address.startswith('ray://'):
    target = address[len('ray://'):] if address.startswith('ray://') else None
  else:
    target = address
  if not target:
    return
  host, _, port = target.rpartition(':')
  if not host or not port.isdigit():
    raise UserError(f"--address {address} is not of the form host:port (the address "
                    "`ray start --head` prints, e.g. 10.0.0.5:6379).")
  try:
    with socket.create_connection((host, int(port)), timeout=5):
      pass
  except OSError as error:
    raise UserError(
        f'No Ray cluster answers at --address {address} ({error.strerror or error}): '
        'start one with `ray start --head` on that machine, or leave out --address '
        'to run on a local Ray.') from None


def start_ray(address=None):
  """Starts a local Ray (or joins `address`); returns the seconds it took."""
  os.environ.setdefault('RAY_AIR_NEW_OUTPUT', '0')  # Tune's own tables: off (ours).
  os.environ.setdefault('RAY_DEDUP_LOGS', '0')
  if address is None:
    # A local Ray's raylet reads this: a worker that dies leaves its trial's run to
    # the kernel's SIGTERM (trial.py), which saves, instead of SIGKILLing it.
    os.environ.setdefault('RAY_kill_child_processes_on_worker_exit', 'false')
  import logging  # pylint: disable=import-outside-toplevel
  import ray  # pylint: disable=import-outside-toplevel
  start = time.monotonic()
  try:
    ray.init(address=address, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR, configure_logging=True)
  except (ConnectionError, RuntimeError) as error:
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    raise UserError(f'Could not start or join Ray at --address {address}: {first}') from None
  return time.monotonic() - start


def _tuner(spec, trials, sweepdir, table, cpus_per_trial, gpus_per_trial, max_concurrent):
  """A Tune Tuner over `trials` (a grid), or over `Sweep.space` (a search)."""
  from ray import tune  # pylint: disable=import-outside-toplevel
  resources = {'cpu': cpus_per_trial, 'gpu': gpus_per_trial}
  trainable = tune.with_resources(trial_lib.run_trial, resources)
  if spec.search is None:
    param_space = {'trial': tune.grid_search([dataclasses.asdict(t) for t in trials])}
    num_samples = 1
  else:
    (template,) = trials
    param_space = {'trial': dataclasses.asdict(template),
                   'space': spec_lib.sample_space(spec.space)}
    num_samples = spec.samples
  names = {}

  def name_of(trial):
    if trial.trial_id not in names:
      names[trial.trial_id] = _name(trial.config)
      table.add(names[trial.trial_id])  # A searched trial's row is new.
    return names[trial.trial_id]

  def dirname(trial):
    return spec_lib.folder(name_of(trial)) + f'_{trial.trial_id}'

  tune_config = tune.TuneConfig(
      metric=spec.metric, mode=spec.mode, num_samples=num_samples,
      max_concurrent_trials=max_concurrent,
      scheduler=spec.scheduler, search_alg=spec.search,
      trial_name_creator=name_of, trial_dirname_creator=dirname)
  run_config = tune.RunConfig(
      name=time.strftime('tune-%Y%m%d-%H%M%S'), storage_path=str(sweepdir / '.tune'),
      failure_config=tune.FailureConfig(max_failures=spec.max_failures),
      callbacks=[progress_lib.Reporter(table, name_of, _finished)], verbose=0)
  return tune.Tuner(trainable, param_space=param_space, tune_config=tune_config,
                    run_config=run_config)
