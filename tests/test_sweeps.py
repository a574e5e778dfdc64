"""`dreamkit sweep`: the sweep file, the checks before any trial, the live table, and a
tiny sweep on a local Ray end to end: killed with SIGKILL mid-way, rerun, compared."""

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from dreamkit import cli
from dreamkit.errors import ConfigError, UserError
from dreamkit.sweeps import driver
from dreamkit.sweeps import progress
from dreamkit.sweeps import spec
from dreamkit.sweeps import trial as trial_lib

ROOT = Path(__file__).resolve().parent.parent
CARTPOLE_SWEEP = ROOT / 'pipelines' / 'sweeps' / 'cartpole_latents.gin'
DEBUG = ROOT / 'pipelines' / 'debug.gin'
# Debug sizes, shorter still: 150 agent steps, a checkpoint and an evaluation every 50.
TINY = ['Pipeline.steps = 150', 'Pipeline.prefill = 50', 'Pipeline.eval_every = 50',
        'Pipeline.checkpoint_every = 50', 'Pipeline.log_every = 50', 'TIME_LIMIT = 50',
        'Sweep.seeds = 2']


def sweep_command(sweepdir, *extra):
  argv = [sys.executable, '-m', 'dreamkit.cli', 'sweep', str(CARTPOLE_SWEEP), str(DEBUG)]
  for binding in TINY:
    argv += ['-b', binding]
  return argv + ['--logdir', str(sweepdir), '--max-concurrent', '2', *extra]


def write_sweep(path, text):
  path.write_text(text)
  return path


# --- The sweep file and the plan -------------------------------------------------------

def test_the_shipped_sweeps_plan_their_trials(tmp_path):
  sweep = spec.read(CARTPOLE_SWEEP, bindings=['Sweep.seeds = 2'])
  assert sweep.seeds == [0, 1] and list(sweep.variants) == ['categorical', 'gaussian']
  trials = spec.check(spec.plan(sweep, tmp_path, [DEBUG], ['Pipeline.steps = 150']),
                      tmp_path)
  assert [t.name for t in trials] == [
      'gym:CartPole-v1/categorical/seed0', 'gym:CartPole-v1/categorical/seed1',
      'gym:CartPole-v1/gaussian/seed0', 'gym:CartPole-v1/gaussian/seed1']
  gaussian = trials[3]
  assert gaussian.logdir == str(tmp_path.resolve() / 'gym_CartPole-v1' / 'gaussian' / 'seed1')
  assert gaussian.steps == 150
  # Shared settings first, then the task, the variant, and the seed last.
  assert gaussian.bindings == [
      'Pipeline.steps = 150', "Pipeline.task = 'gym:CartPole-v1'",
      'WorldModel.dynamics = @dynamics.GaussianRSSM', 'Pipeline.seed = 1']
  assert gaussian.files == [str((ROOT / 'pipelines' / 'cartpole_dreamerv2.gin').resolve()),
                            str(DEBUG.resolve())]
  command = gaussian.command('python')
  assert command[:4] == ['python', '-m', 'dreamkit.cli', 'run']
  assert command[-2:] == ['--logdir', gaussian.logdir]
  atari = spec.read(ROOT / 'pipelines' / 'sweeps' / 'latent_ablation.gin')
  assert len(atari.tasks) == 4 and atari.seeds == [0, 1, 2]
  assert len(spec.plan(atari, tmp_path)) == 24


def test_a_bad_variant_binding_names_the_variant(tmp_path):
  sweep_file = write_sweep(tmp_path / 'bad.gin', f"""
Sweep.pipelines = ['{ROOT / 'pipelines' / 'cartpole_dreamerv2.gin'}']
Sweep.variants = {{'categorical': [], 'typo': ['WorldModel.dynamics = @dynamics.GausianRSSM']}}
""")
  sweep = spec.read(sweep_file)
  with pytest.raises(ConfigError, match=r"^Variant 'typo': Unknown component "
                                        r"'dynamics.GausianRSSM' in the variant's binding "
                                        r"'WorldModel.dynamics = .*Did you mean: "
                                        r"dynamics.GaussianRSSM"):
    spec.check(spec.plan(sweep, tmp_path / 'out'), tmp_path / 'out')


def test_the_cli_stops_a_bad_variant_before_any_trial(tmp_path):
  sweep_file = write_sweep(tmp_path / 'bad.gin', f"""
Sweep.pipelines = ['{ROOT / 'pipelines' / 'cartpole_dreamerv2.gin'}']
Sweep.seeds = 2
Sweep.variants = {{'baseline': [], 'wide': ['MLP_UNITS = 64'], 'broken': ['WorldModel.no_such = 1']}}
""")
  result = CliRunner().invoke(cli.cli, [
      'sweep', str(sweep_file), str(DEBUG), '--logdir', str(tmp_path / 'out')])
  assert result.exit_code == 2, result.output
  error = result.stderr.strip()
  assert len(error.splitlines()) == 1
  assert error.startswith("Error: Variant 'broken': 'WorldModel' has no parameter "
                          "'no_such' (the variant's binding 'WorldModel.no_such = 1')")
  assert not (tmp_path / 'out').exists()  # No trial started, nothing written.


def test_sweep_file_mistakes_are_one_line_errors(tmp_path):
  stray = write_sweep(tmp_path / 'stray.gin', """
Sweep.pipelines = ['../x.gin']
Pipeline.steps = 10
""")
  with pytest.raises(ConfigError, match='is a sweep file: it binds Sweep .* not Pipeline'):
    spec.read(stray)
  empty = write_sweep(tmp_path / 'empty.gin', 'Sweep.seeds = 2\n')
  with pytest.raises(ConfigError, match='sets no Sweep.pipelines'):
    spec.read(empty)
  missing = write_sweep(tmp_path / 'missing.gin', "Sweep.pipelines = ['nowhere.gin']\n")
  with pytest.raises(ConfigError, match='No such pipeline file: .*nowhere.gin'):
    spec.read(missing)
  bad_name = write_sweep(tmp_path / 'name.gin', f"""
Sweep.pipelines = ['{DEBUG}']
Sweep.variants = {{'a/b': []}}
""")
  with pytest.raises(ConfigError, match="'a/b' is not a usable variant name"):
    spec.read(bad_name)
  search = write_sweep(tmp_path / 'search.gin', f"""
Sweep.pipelines = ['{DEBUG}']
Sweep.search = @tune.OptunaSearch
""")
  with pytest.raises(ConfigError, match='Sweep.search needs Sweep.space'):
    spec.read(search)


def test_a_scheduler_and_a_search_are_named_in_the_sweep_file(tmp_path):
  from ray.tune.schedulers import ASHAScheduler  # pylint: disable=import-outside-toplevel
  from ray.tune.search.optuna import OptunaSearch  # pylint: disable=import-outside-toplevel
  sweep_file = write_sweep(tmp_path / 'search.gin', f"""
Sweep.pipelines = ['{DEBUG}']
Sweep.search = @tune.OptunaSearch
Sweep.samples = 4
Sweep.space = {{'ActorCritic.actor_lr': ('loguniform', 1e-5, 1e-3)}}
Sweep.scheduler = @tune.ASHAScheduler
tune.ASHAScheduler.time_attr = 'step'
tune.ASHAScheduler.max_t = 1000
tune.ASHAScheduler.grace_period = 200
""")
  sweep = spec.read(sweep_file)
  scheduler = sweep.scheduler  # Built by read(), with the file's bindings.
  assert isinstance(scheduler, ASHAScheduler)
  assert scheduler._time_attr == 'step' and scheduler._max_t == 1000  # pylint: disable=protected-access
  assert isinstance(sweep.search, OptunaSearch) and sweep.samples == 4
  two_seeds = write_sweep(tmp_path / 'seeds.gin', sweep_file.read_text() + 'Sweep.seeds = 2\n')
  with pytest.raises(ConfigError, match='samples one task with one seed'):
    spec.read(two_seeds)


def test_search_spaces_and_sampled_trials(tmp_path):
  domains = spec.sample_space({'ActorCritic.actor_lr': ('loguniform', 1e-5, 1e-3),
                               'MLP_UNITS': ('choice', [32, 64])})
  assert 1e-5 <= domains['ActorCritic.actor_lr'].sample() <= 1e-3
  assert domains['MLP_UNITS'].sample() in (32, 64)
  with pytest.raises(ConfigError, match=r"Sweep.space\['x'\] must be \(distribution"):
    spec.sample_space({'x': ('gaussian', 0, 1)})
  template = spec.Trial('gym:CartPole-v1', 'baseline', 0,
                        str(tmp_path / 'gym_CartPole-v1' / 'baseline' / 'seed0'),
                        [], ['Pipeline.seed = 0'], [], 100)
  sampled = trial_lib.trial_of({'trial': vars(template),
                                'space': {'ActorCritic.actor_lr': 0.000123456, 'MLP_UNITS': 64}})
  assert sampled.variant == 'actor_lr=0.000123,MLP_UNITS=64'
  assert sampled.bindings[-2:] == ['ActorCritic.actor_lr = 0.000123456', 'MLP_UNITS = 64']
  assert sampled.logdir == str(tmp_path / 'gym_CartPole-v1' / sampled.variant / 'seed0')


def test_an_unreachable_address_is_one_line(tmp_path):
  with socket.socket() as probe:  # A port nothing listens on.
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
  started = time.monotonic()
  result = CliRunner().invoke(cli.cli, [
      'sweep', str(CARTPOLE_SWEEP), str(DEBUG), '--address', f'127.0.0.1:{port}',
      '--logdir', str(tmp_path / 'out')])
  assert result.exit_code == 2, result.output
  error = result.stderr.strip()
  assert len(error.splitlines()) == 1
  assert error.startswith(f'Error: No Ray cluster answers at --address 127.0.0.1:{port}')
  assert 'ray start --head' in error
  assert time.monotonic() - started < 60
  with pytest.raises(UserError, match='not of the form host:port'):
    driver.check_address('somewhere')


# --- The trial side: rows reported as written, the progress table ---------------------

def test_rows_are_read_as_written_with_the_last_values_carried(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  rows = trial_lib.Rows(path)
  assert rows.new() == []  # No file yet.
  path.write_text('{"step": 100, "eval_return": 12.0, "frames": 100}\n{"step": 150, "mod')
  (first,) = rows.new()
  assert first['eval_return'] == 12.0 and first['step'] == 100
  with open(path, 'a') as file:  # The torn line is completed, and a row follows.
    file.write('el_loss": 3.5, "frames": 150}\n{"step": 200, "train_return": 9}\n')
  second, third = rows.new()
  assert second['model_loss'] == 3.5 and second['eval_return'] == 12.0  # Carried.
  assert third['step'] == 200 and third['eval_return'] == 12.0 and third['frames'] == 150
  assert rows.new() == []


def test_finished_marker_counts_only_for_the_same_budget(tmp_path):
  assert not trial_lib.finished(tmp_path, 100)
  (tmp_path / trial_lib.MARKER).write_text(json.dumps({'status': 'finished', 'steps': 100}))
  assert trial_lib.finished(tmp_path, 100) and not trial_lib.finished(tmp_path, 200)


def test_the_run_imports_the_same_dreamkit_as_the_sweep(monkeypatch, tmp_path):
  # From a checkout that is not installed, the trial's `python -m dreamkit.cli` must
  # still find this dreamkit, ahead of whatever else PYTHONPATH holds.
  monkeypatch.setenv('PYTHONPATH', os.pathsep.join([str(tmp_path), '']))
  monkeypatch.setenv('RAY_ADDRESS', 'somewhere:6379')
  env = trial_lib._environment()  # pylint: disable=protected-access
  paths = env['PYTHONPATH'].split(os.pathsep)
  root = Path(trial_lib.__file__).resolve().parents[2]
  assert paths == [str(root), str(tmp_path)]
  assert 'RAY_ADDRESS' not in env
  found = subprocess.run(
      [sys.executable, '-c', 'import dreamkit; print(dreamkit.__file__)'],
      env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
  assert Path(found.stdout.strip()).resolve() == root / 'dreamkit' / '__init__.py'


def test_progress_table_lines_and_eta(monkeypatch):
  stream = io.StringIO()
  table = progress.Table(['a/x/seed0', 'a/y/seed0', 'a/y/seed1'], stream=stream)
  table.skipped('a/y/seed1')
  clock = iter([100.0, 110.0])
  monkeypatch.setattr(progress.time, 'monotonic', lambda: next(clock))
  table.update('a/x/seed0', status=progress.RUNNING)
  table.update('a/x/seed0', step=100, budget=1100)
  table.update('a/x/seed0', step=200, eval_return=17.5)  # 100 steps in 10 s.
  header, first, second, third, summary = table.text()
  assert header.split() == ['trial', 'status', 'step', 'eval', 'return', 'ETA']
  assert first.split() == ['a/x/seed0', 'running', '200/1,100', '17.5', '1m30s']
  assert second.split() == ['a/y/seed0', 'pending']
  assert third.split()[:3] == ['a/y/seed1', 'done', 'before']
  assert summary == '3 trials: 1 running, 1 pending, 1 done before'
  # Not a terminal: one line per change of status.
  assert stream.getvalue().splitlines() == ['a/y/seed1: done before', 'a/x/seed0: running']


class FakeTerminal(io.StringIO):
  def isatty(self):
    return True


def test_progress_table_redraws_in_place_on_a_terminal():
  stream = FakeTerminal()
  table = progress.Table(['a/x/seed0', 'a/y/seed0'], stream=stream, interval=0.0)
  table.update('a/x/seed0', status=progress.RUNNING)
  first = stream.getvalue()
  assert first.startswith('\x1b[J') and first.count('\n') == 4  # Header, 2 rows, summary.
  table.update('a/x/seed0', status=progress.FINISHED)
  second = stream.getvalue()[len(first):]
  assert second.startswith('\x1b[4F\x1b[J')  # Up over the 4 lines drawn, clear, redraw.
  assert 'a/x/seed0  finished' in second and '1 finished, 1 pending' in second


# --- A tiny sweep on a local Ray, end to end ------------------------------------------

def checkpoint_step(logdir):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  latest = tf.train.latest_checkpoint(str(Path(logdir) / 'checkpoints'))
  return None if latest is None else int(tf.train.load_variable(
      latest, 'step/.ATTRIBUTES/VARIABLE_VALUE'))


def trial_dirs(sweepdir):
  return sorted(Path(sweepdir).glob('gym_CartPole-v1/*/seed*'))


@pytest.fixture(scope='module')
def killed_and_resumed_sweep(tmp_path_factory):
  """A 2 variants x 2 seeds debug sweep, SIGKILLed once a trial is finished and another
  has a checkpoint, then run again to the end. Returns what the test checks."""
  sweepdir = tmp_path_factory.mktemp('sweep') / 'latents'
  started = time.monotonic()
  first = subprocess.Popen(sweep_command(sweepdir), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
  finished, interrupted, processes = [], [], []
  try:
    deadline = time.monotonic() + 480
    while time.monotonic() < deadline and first.poll() is None:
      processes = {p.pid: p for p in [*processes, *_descendants(first.pid)]}.values()
      processes = list(processes)
      dirs = trial_dirs(sweepdir)
      finished = [d for d in dirs if (d / trial_lib.MARKER).exists()]
      # Mid-way: a checkpoint, and well before the last step (150).
      interrupted = [d for d in dirs if not (d / trial_lib.MARKER).exists()
                     and (d / 'checkpoints' / 'checkpoint').exists()
                     and 0 < _last_step(d) <= 110]
      if finished and interrupted:
        break
      time.sleep(0.3)
    assert finished and interrupted, (
        f'no moment with a finished and a checkpointed trial:\n{_output(first)}')
    first.send_signal(signal.SIGKILL)
  finally:
    if first.poll() is None:
      first.kill()
    first.wait()
  killed_at = time.monotonic() - started
  # The runs of the killed sweep end by themselves (SIGTERM from the kernel when their
  # worker dies: they save and stop). Ray's agents take minutes to notice: ended here.
  runs = [p for p in processes if _is_run(p)]
  _, alive = psutil.wait_procs(runs, timeout=60)
  leftovers = [f'{p.pid} {p.cmdline()}' for p in alive if p.is_running()]
  _, alive = psutil.wait_procs(processes, timeout=5)
  for process in alive:
    process.kill()
  before = {d: {'marker': (d / trial_lib.MARKER).read_text(),
                'metrics': (d / 'metrics.jsonl').read_bytes()} for d in finished}
  steps = {d: checkpoint_step(d) for d in interrupted}
  second = subprocess.run(sweep_command(sweepdir), capture_output=True, text=True,
                          timeout=600, check=False)
  return {'sweepdir': sweepdir, 'finished': finished, 'before': before, 'steps': steps,
          'leftovers': leftovers, 'second': second, 'killed_at': killed_at,
          'seconds': time.monotonic() - started}


def _last_step(logdir):
  rows = trial_lib.Rows(Path(logdir) / 'metrics.jsonl').new()
  return max((row['step'] for row in rows if row['step'] == row['step']), default=0)


def _descendants(pid):
  try:
    return psutil.Process(pid).children(recursive=True)
  except psutil.NoSuchProcess:
    return []


def _is_run(process):
  try:
    return 'run' in process.cmdline() and 'dreamkit.cli' in process.cmdline()
  except psutil.NoSuchProcess:
    return False


def _output(process):
  if process.poll() is None:
    process.kill()
  return process.communicate()[0][-3000:]


@pytest.mark.slow
def test_killed_sweep_reruns_skip_finished_and_resume_interrupted(killed_and_resumed_sweep):
  state = killed_and_resumed_sweep
  second = state['second']
  assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
  assert not state['leftovers'], f"processes outlived the killed sweep: {state['leftovers']}"
  dirs = trial_dirs(state['sweepdir'])
  assert len(dirs) == 4
  for logdir in dirs:  # Four complete trial logdirs: ordinary runs.
    assert (logdir / trial_lib.MARKER).is_file(), logdir
    for name in ('config.gin', 'metrics.jsonl', 'run.log'):
      assert (logdir / name).is_file(), logdir / name
    assert checkpoint_step(logdir) == 150
  # Finished trials were not run again.
  for logdir, before in state['before'].items():
    assert (logdir / trial_lib.MARKER).read_text() == before['marker']
    assert (logdir / 'metrics.jsonl').read_bytes() == before['metrics']
    assert (logdir / 'run.log').read_text().count('=== ') == 1
  # Interrupted ones resumed at their checkpoint's step.
  for logdir, step in state['steps'].items():
    assert step is not None and 0 < step < 150
    log = (logdir / 'run.log').read_text()
    assert log.count('=== ') == 2
    stopped, resumed = log.split('=== ')[1:]
    assert 'Stopped (SIGTERM).' in stopped, stopped[-2000:]  # It saved as it stopped.
    assert f'at step {step:,}.' in resumed, resumed[-2000:]
  table = second.stdout
  assert 'done before' in table and '4 of 4 trials finished' in table
  assert f"({len(state['before'])} before this run)" in table
  config = (state['sweepdir'] / 'gym_CartPole-v1' / 'gaussian' / 'seed1' / 'config.gin').read_text()
  assert 'WorldModel.dynamics = @dynamics.GaussianRSSM' in config
  assert 'Pipeline.seed = 1' in config
  print(f"sweep: killed after {state['killed_at']:.0f} s, done after {state['seconds']:.0f} s")


@pytest.mark.slow
def test_compare_on_the_finished_sweep(killed_and_resumed_sweep, tmp_path):
  sweepdir = killed_and_resumed_sweep['sweepdir']
  output = tmp_path / 'report.png'
  result = CliRunner().invoke(cli.cli, ['compare', str(sweepdir), '-o', str(output),
                                        '--reps', '500'])
  assert result.exit_code == 0, result.output
  lines = result.stdout.splitlines()
  rows = [line for line in lines if line.startswith('| gym:CartPole-v1 | ')]
  # Two task x variant rows, then four seed rows; the aggregate rows name no task.
  assert sum(' | 2/2 | - | - |' in line for line in rows) == 2
  assert sum(line.startswith('| gym:CartPole-v1 | categorical | ') for line in rows) == 3
  assert sum(line.startswith(('| categorical | return | 2 x 1 |',
                              '| gaussian | return | 2 x 1 |')) for line in lines) == 2
  assert [line.split(' | ')[3] for line in rows[-4:]] == ['finished'] * 4
  assert f'Wrote {output}' in result.stdout
  assert output.stat().st_size > 10_000
  csv_lines = (sweepdir / 'compare.csv').read_text().splitlines()
  assert csv_lines[0].startswith('task,variant,seeds_planned,seeds_finished')
  assert [line.split(',')[:4] for line in csv_lines[1:]] == [
      ['gym:CartPole-v1', 'categorical', '2', '2'], ['gym:CartPole-v1', 'gaussian', '2', '2']]
  assert len((sweepdir / 'compare_trials.csv').read_text().splitlines()) == 5
  aggregate = (sweepdir / 'compare_aggregate.csv').read_text().splitlines()
  assert [line.split(',')[0] for line in aggregate[1:]] == ['categorical', 'gaussian']
