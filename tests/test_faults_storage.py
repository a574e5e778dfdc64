"""Storage faults: a checkpoint that cannot be read falls back to the one before it,
and a write that fails leaves the previous state complete, with a one-line error."""

import errno

import pytest
import tensorflow as tf

from dreamkit.errors import StorageError, UserError
from dreamkit.replay import hdf5
from dreamkit.runner import checkpoint as checkpoint_lib
from dreamkit.runner import train
from test_checkpoint import batch, tiny_agent
from test_runner import PREFILL, pipeline


@pytest.fixture
def eager():
  tf.config.run_functions_eagerly(True)
  yield
  tf.config.run_functions_eagerly(False)


def two_checkpoints(directory):
  """A tiny agent saved at steps 100 and 200 (different weights); returns the paths."""
  agent, counters = tiny_agent()
  agent.train(batch(0))
  saver = checkpoint_lib.Checkpoint(
      directory, agent, checkpoint_lib.numpy_rng(0), keep=3, **counters.as_dict())
  counters.step.assign(100)
  first = saver.save()
  agent.train(batch(1))
  counters.step.assign(200)
  return first, saver.save(), saver


def fresh_loader(directory):
  agent, counters = tiny_agent()
  agent.train(batch(5))
  loader = checkpoint_lib.Checkpoint(
      directory, agent, checkpoint_lib.numpy_rng(1), **counters.as_dict())
  return loader, counters


@pytest.mark.parametrize('damage', ['truncated data', 'missing data', 'empty index'])
def test_an_unreadable_latest_checkpoint_falls_back_to_the_previous(
    tmp_path, eager, damage):
  del eager
  first, latest, _ = two_checkpoints(tmp_path)
  data = next(tmp_path.glob(f'{latest.rsplit("/", 1)[1]}.data-*'))
  if damage == 'truncated data':
    with open(data, 'r+b') as file:
      file.truncate(100)
  elif damage == 'missing data':
    data.unlink()
  else:
    (tmp_path / (latest.rsplit('/', 1)[1] + '.index')).write_bytes(b'')
  loader, counters = fresh_loader(tmp_path)
  with pytest.warns(UserWarning, match='cannot be read.*trying the one before it'):
    assert loader.restore()
  assert loader.restored == first and int(counters.step) == 100


def test_no_readable_checkpoint_is_a_user_error(tmp_path, eager):
  del eager
  first, latest, _ = two_checkpoints(tmp_path)
  for path in (first, latest):
    next(tmp_path.glob(f'{path.rsplit("/", 1)[1]}.data-*')).unlink()
  loader, _ = fresh_loader(tmp_path)
  with pytest.warns(UserWarning), pytest.raises(UserError, match='No checkpoint in'):
    loader.restore()


def test_a_failed_checkpoint_save_removes_what_it_wrote(tmp_path, eager, monkeypatch):
  del eager
  first, latest, saver = two_checkpoints(tmp_path)
  before = sorted(path.name for path in tmp_path.iterdir())
  write = tf.train.Checkpoint._write  # pylint: disable=protected-access

  def full_disk(self, prefix, options=None):
    # Half a checkpoint, as TensorFlow leaves it when the disk fills up.
    temp = tmp_path / f'{prefix.rsplit("/", 1)[1]}_temp'
    temp.mkdir()
    (temp / 'part-00000-of-00001.data-00000-of-00001').write_bytes(b'x' * 10)
    raise tf.errors.ResourceExhaustedError(
        None, None, f'{temp}/part-00000-of-00001.data; No space left on device')

  monkeypatch.setattr(tf.train.Checkpoint, '_write', full_disk)
  with pytest.raises(StorageError) as failed:
    saver.save()
  message = str(failed.value)
  assert '\n' not in message and 'No space left on device' in message
  assert f'the last complete one is {latest}' in message
  assert sorted(path.name for path in tmp_path.iterdir()) == before
  monkeypatch.setattr(tf.train.Checkpoint, '_write', write)
  loader, counters = fresh_loader(tmp_path)
  assert loader.restore() and loader.restored == latest and int(counters.step) == 200
  del first


def test_a_full_disk_stops_the_run_with_one_line_after_closing(
    tmp_path, monkeypatch, capsys):
  logdir = tmp_path / 'run'
  run, recorder = pipeline(logdir)
  write = hdf5._write_dataset  # pylint: disable=protected-access
  closed = []
  monkeypatch.setattr(hdf5.HDF5Replay, 'close',
                      lambda self: closed.append(self._directory))  # pylint: disable=protected-access

  def fill_up(handle, key, *args):  # The disk fills up half-way through an episode.
    write(handle, key, *args)
    if recorder.rows and max(row['step'] for row in recorder.rows) > PREFILL + 10:
      raise OSError(errno.ENOSPC, 'No space left on device')

  monkeypatch.setattr(hdf5, '_write_dataset', fill_up)
  with pytest.raises(StorageError) as failed:
    run.run()
  assert '\n' not in str(failed.value) and 'No space left on device' in str(failed.value)
  assert closed == [logdir / 'replay']
  # The exit save could still write: it is complete and named.
  path = tf.train.latest_checkpoint(str(logdir / 'checkpoints'))
  assert path and f'Checkpoint: {path}' in capsys.readouterr().out
  # The episode that could not be written left nothing; those before it are whole.
  replay = logdir / 'replay'
  assert not list(replay.glob('*' + hdf5.TEMP_SUFFIX))
  assert all(hdf5.check_file(episode, hdf5.length_from_name(episode.name)) is None
             for episode in replay.glob('*.h5'))


def test_what_a_killed_save_left_is_removed_by_the_next_save(tmp_path, eager):
  del eager
  first, latest, saver = two_checkpoints(tmp_path)
  # A save SIGKILLed mid-write leaves TF's temporary folder (and maybe its temporary
  # state file) behind, in a folder whose complete checkpoints are untouched.
  torn = tmp_path / 'ckpt-7_temp'
  torn.mkdir()
  (torn / 'part-00000-of-00001.data-00000-of-00001').write_bytes(b'x' * 10)
  (tmp_path / 'checkpoint.tmp0123abcd').write_text('partial')
  loader, _ = fresh_loader(tmp_path)
  assert loader.restore() and loader.restored == latest
  assert torn.exists()  # Restoring (also `dreamkit eval`) writes and removes nothing.
  newest = saver.save()
  names = {path.name for path in tmp_path.iterdir()}
  assert 'ckpt-7_temp' not in names and 'checkpoint.tmp0123abcd' not in names
  assert {'ckpt-1.index', 'ckpt-2.index', 'ckpt-3.index', 'checkpoint'} <= names
  assert newest.endswith('ckpt-3') and first.endswith('ckpt-1')
