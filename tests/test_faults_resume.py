"""Step accounting that never goes backwards, and stops in every phase.

A killed run is simulated in this process by an exception no handler catches,
raised by a recording output, with its exit save failing the same way: what remains
is what a SIGKILL leaves, the files written so far."""

import json
import os
import signal

import pytest
import tensorflow as tf

from dreamkit import agent as agent_lib
from dreamkit.outputs import JSONL
from dreamkit.runner import checkpoint as checkpoint_lib
from dreamkit.runner.pipeline import EXIT_SIGTERM
from test_runner import PREFILL, STEPS, Recorder, pipeline


class Killed(BaseException):
  """The process died here (nothing catches it, as nothing catches a SIGKILL)."""


class Killer(Recorder):
  """Records rows and kills the run at the first episode row at or past `kill_step`."""

  def __init__(self, logdir, kill_step):
    super().__init__(logdir)
    self.kill_step = kill_step

  def write(self, step, metrics):
    super().write(step, metrics)
    if step >= self.kill_step and 'train_return' in metrics:
      raise Killed()


def metrics_steps(logdir):
  return [json.loads(line)['step']
          for line in (logdir / 'metrics.jsonl').read_text().splitlines()]


def checkpoint_step(logdir):
  path = tf.train.latest_checkpoint(str(logdir / 'checkpoints'))
  return int(tf.train.load_checkpoint(path).get_tensor('step/.ATTRIBUTES/VARIABLE_VALUE'))


def test_a_run_killed_before_its_first_checkpoint_resumes_its_counters(
    tmp_path, monkeypatch, capsys):
  logdir = tmp_path / 'run'
  killed_at = PREFILL + 15  # In the loop, before any checkpoint (checkpoint_every 1000).
  run, first = pipeline(logdir, outputs=[JSONL], recorder=Killer, kill_step=killed_at)

  def die(self, number=None):
    raise Killed()  # The exit save never happens: the process is gone.

  with monkeypatch.context() as patch:
    patch.setattr(checkpoint_lib.Checkpoint, 'save', die)
    with pytest.raises(Killed):
      run.run()
  assert not (logdir / 'checkpoints' / 'checkpoint').exists()
  episodes = sorted(path.name for path in (logdir / 'replay').glob('*.h5'))
  assert episodes
  with open(logdir / 'metrics.jsonl', 'ab') as file:  # Torn by the kill mid-write.
    file.write(b'{"step": 1, "train_ret')
  last = max(row['step'] for row in first.rows)
  assert last >= killed_at
  capsys.readouterr()

  resumed, second = pipeline(logdir, outputs=[JSONL])
  resumed.run()
  out = capsys.readouterr().out
  assert 'Resuming without a checkpoint' in out and 'fresh weights' in out
  assert 'Prefilling' not in out  # The kept replay holds the prefill.
  assert second.rows[0]['step'] >= last
  assert second.rows[-1]['step'] == STEPS
  # The episodes of the killed run are kept, and trained on.
  assert set(episodes) <= {path.name for path in (logdir / 'replay').glob('*.h5')}
  steps = metrics_steps(logdir)
  assert steps == sorted(steps) and steps[-1] == STEPS
  updates = [row['updates'] for row in second.rows if 'updates' in row]
  assert updates == sorted(updates)


def test_rows_written_after_the_checkpoint_move_the_resumed_counters(
    tmp_path, monkeypatch, capsys):
  """A SIGKILL long after the last checkpoint: the metrics went on past it."""
  logdir = tmp_path / 'run'
  run, first = pipeline(logdir, ['Pipeline.checkpoint_every = 10'], outputs=[JSONL],
                        recorder=Killer, kill_step=PREFILL + 25)
  save = checkpoint_lib.Checkpoint.save

  def save_until(self, number=None):  # Periodic saves until step PREFILL + 10 only.
    if int(self.counters['step']) > PREFILL + 10:
      raise Killed()
    return save(self, number)

  with monkeypatch.context() as patch:
    patch.setattr(checkpoint_lib.Checkpoint, 'save', save_until)
    with pytest.raises(Killed):
      run.run()
  saved = checkpoint_step(logdir)
  last = max(row['step'] for row in first.rows)
  assert saved < last
  capsys.readouterr()
  resumed, second = pipeline(logdir, outputs=[JSONL])
  resumed.run()
  assert 'go on past the checkpoint' in capsys.readouterr().out
  assert second.rows[0]['step'] >= last
  steps = metrics_steps(logdir)
  assert steps == sorted(steps)


def sigterm_on_first_call(monkeypatch, owner, name):
  """`owner.name` sends this process SIGTERM as its first call starts."""
  original = getattr(owner, name)
  calls = []

  def wrapper(*args, **kwargs):
    calls.append(1)
    if len(calls) == 1:
      os.kill(os.getpid(), signal.SIGTERM)
    return original(*args, **kwargs)

  monkeypatch.setattr(owner, name, wrapper)
  return calls


def test_sigterm_during_the_first_update_saves_a_checkpoint(
    tmp_path, monkeypatch, capsys):
  logdir = tmp_path / 'run'
  run, _ = pipeline(logdir)
  calls = sigterm_on_first_call(monkeypatch, agent_lib.Agent, 'train')
  with pytest.raises(SystemExit) as stopped:
    run.run()
  assert stopped.value.code == EXIT_SIGTERM
  assert len(calls) == 1  # Stopped right after the first update; no pretrain.
  assert checkpoint_step(logdir) == PREFILL
  out = capsys.readouterr().out
  assert 'Stopped (SIGTERM).' in out and 'Checkpoint: ' in out and '(step 40)' in out


def test_sigterm_during_a_save_completes_it(tmp_path, monkeypatch):
  logdir = tmp_path / 'run'
  run, _ = pipeline(logdir, ['Pipeline.checkpoint_every = 20'])
  calls = sigterm_on_first_call(monkeypatch, checkpoint_lib.Checkpoint, 'save')
  with pytest.raises(SystemExit) as stopped:
    run.run()
  assert stopped.value.code == EXIT_SIGTERM and len(calls) == 1
  # The save that the signal interrupted finished: the checkpoint is complete.
  assert checkpoint_step(logdir) > PREFILL
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(logdir / 'checkpoints')))
  assert reader.get_variable_to_shape_map()


def test_sigterm_during_the_prefill_says_why_no_checkpoint(tmp_path, capsys):
  logdir = tmp_path / 'run'
  run, _ = pipeline(logdir, kill_at=PREFILL // 2)  # Test_runner's Recorder: SIGTERM.
  with pytest.raises(SystemExit) as stopped:
    run.run()
  assert stopped.value.code == EXIT_SIGTERM
  out = capsys.readouterr().out
  assert 'Checkpoint: none written (stopped during the prefill, before the first ' \
         'update; the episodes collected are kept' in out
