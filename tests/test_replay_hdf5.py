"""HDF5Replay: file layout, crash safety, reopening, eviction, threads, tf.data.

Run as a script (`python test_replay_hdf5.py DIR MODE`) it is the writer process
that the crash tests kill.
"""

import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time
import warnings

import h5py
import numpy as np
import pytest

from dreamkit.replay import hdf5

NAME = re.compile(r'^\d{8}T\d{12}-[0-9a-f]{32}-(\d+)\.h5$')


def make_episode(index, length=None):
  """A small episode whose reward encodes (episode, step): 1000 * index + t."""
  length = length or 5 + index % 7
  steps = np.arange(length)
  rng = np.random.default_rng(index)
  return {
      'image': rng.integers(0, 255, (length, 6, 6, 1), dtype=np.uint8),
      'action': np.eye(3, dtype=np.float32)[steps % 3],
      'reward': (1000.0 * index + steps).astype(np.float32),
      'position': rng.normal(size=(length, 2)).astype(np.float32),
      'is_first': steps == 0,
      'is_last': steps == length - 1,
      'is_terminal': np.zeros(length, bool),
  }


def episode_files(directory):
  return sorted(pathlib.Path(directory).glob('*.h5'))


def stored_indices(directory):
  indices = []
  for path in episode_files(directory):
    with h5py.File(path, 'r') as handle:
      indices.append(int(handle['reward'][0]) // 1000)
  return indices


def open_episode_files():
  """How many .h5 files this process holds open."""
  paths = []
  for descriptor in os.listdir('/proc/self/fd'):
    try:
      paths.append(os.readlink(f'/proc/self/fd/{descriptor}'))
    except OSError:
      pass  # The descriptor listdir itself used.
  return len([path for path in paths if path.endswith('.h5')])


def test_file_layout_is_plain_hdf5(tmp_path):
  replay = hdf5.HDF5Replay(tmp_path, minlen=1, maxlen=5, chunk_steps=4)
  episode = make_episode(3, length=10)
  replay.add_episode(episode)
  (path,) = episode_files(tmp_path)
  assert NAME.match(path.name).group(1) == '10'
  assert not list(tmp_path.glob('*.tmp'))
  with h5py.File(path, 'r') as handle:
    assert handle.attrs['length'] == 10
    assert handle.attrs['format_version'] == hdf5.FORMAT_VERSION
    assert handle.attrs['dreamkit_version']
    assert set(handle) == set(episode)
    for key, value in episode.items():
      assert handle[key].dtype == value.dtype
      np.testing.assert_array_equal(handle[key][()], value)
    assert handle['image'].chunks == (4, 6, 6, 1)
    assert handle['image'].compression == 'gzip'  # the default
    assert handle['reward'].chunks is None
  gzip = hdf5.HDF5Replay(tmp_path / 'gzip', minlen=1, maxlen=5, compression='gzip')
  gzip.add_episode(episode)
  with h5py.File(episode_files(tmp_path / 'gzip')[0], 'r') as handle:
    assert handle['image'].compression == 'gzip'
    assert handle['image'].compression_opts == 1


def test_names_sort_in_the_order_episodes_were_added(tmp_path):
  replay = hdf5.HDF5Replay(tmp_path, minlen=1, maxlen=5)
  for index in range(30):
    replay.add_episode(make_episode(index))
  assert stored_indices(tmp_path) == list(range(30))


def test_chunks_read_from_files_equal_the_stored_steps(tmp_path):
  replay = hdf5.HDF5Replay(
      tmp_path, minlen=3, maxlen=8, cache_steps=0, open_files=3, chunk_steps=4,
      seed=0)
  episodes = [make_episode(index) for index in range(20)]
  for episode in episodes:
    replay.add_episode(episode)
  for _ in range(10):
    batch = replay.sample(6, 12)
    previous = None
    for row in range(6):
      for pos in range(12):
        index, t = divmod(int(batch['reward'][row, pos]), 1000)
        for key in ('image', 'action', 'position', 'is_last', 'is_terminal'):
          np.testing.assert_array_equal(batch[key][row, pos], episodes[index][key][t])
        continues = previous == (index, t - 1)
        assert batch['is_first'][row, pos] == (pos == 0 or not continues)
        previous = (index, t)
    assert replay.stats['open_files'] <= 3
  # Files dropped from the LRU are really closed (no descriptor leak).
  assert 1 <= open_episode_files() <= 3
  replay.close()
  assert open_episode_files() == 0


def test_cache_and_files_give_the_same_chunks(tmp_path):
  cached = hdf5.HDF5Replay(tmp_path, minlen=3, maxlen=6, cache_steps=10**6, seed=5)
  for index in range(10):
    cached.add_episode(make_episode(index))
  assert cached.stats['cached_steps'] == cached.stats['steps']
  reopened = hdf5.HDF5Replay(tmp_path, minlen=3, maxlen=6, cache_steps=0, seed=5)
  assert reopened.stats['cached_steps'] == 0
  for _ in range(3):
    first, second = cached.sample(4, 9), reopened.sample(4, 9)
    for key in first:
      np.testing.assert_array_equal(first[key], second[key])


def test_capacity_deletes_the_oldest_files(tmp_path):
  replay = hdf5.HDF5Replay(tmp_path, capacity=30, minlen=1, maxlen=5, cache_steps=12)
  for index in range(12):
    replay.add_episode(make_episode(index, length=10))
    assert replay.stats['steps'] <= 30
    assert replay.stats['cached_steps'] <= 12
  assert stored_indices(tmp_path) == [9, 10, 11]
  assert replay.stats['episodes'] == 3
  assert replay.stats['total_episodes'] == 12
  # Reopening with a smaller capacity keeps the newest episodes only.
  smaller = hdf5.HDF5Replay(tmp_path, capacity=20, minlen=1, maxlen=5)
  assert smaller.stats['episodes'] == 2
  assert stored_indices(tmp_path) == [10, 11]


def test_reopening_resumes_and_skips_damaged_files(tmp_path):
  replay = hdf5.HDF5Replay(tmp_path, minlen=1, maxlen=5)
  for index in range(5):
    replay.add_episode(make_episode(index))
  replay.close()
  good = episode_files(tmp_path)[2]
  truncated = tmp_path / good.name.replace(good.name[:8], '29990101')
  truncated.write_bytes(good.read_bytes()[:good.stat().st_size // 2])
  garbage = tmp_path / f'29990102T000000000000-{"a" * 32}-7.h5'
  garbage.write_bytes(b'not hdf5 at all')
  (tmp_path / 'stray.h5.tmp').write_bytes(b'half an episode')
  future = tmp_path / f'29990103T000000000000-{"b" * 32}-6.h5'
  hdf5.write_atomic(future, make_episode(9, length=6), 'lzf', 50)
  with h5py.File(future, 'a') as handle:
    handle.attrs['format_version'] = hdf5.FORMAT_VERSION + 1
  # Damaged metadata (not truncation): h5py raises RuntimeError, not OSError.
  damaged = tmp_path / good.name.replace(good.name[:8], '29990104')
  data = bytearray(good.read_bytes())
  data[data.find(b'TREE'):data.find(b'TREE') + 4] = b'XXXX'
  damaged.write_bytes(bytes(data))
  with pytest.warns(UserWarning) as record:
    reopened = hdf5.HDF5Replay(tmp_path, minlen=1, maxlen=5)
  messages = '\n'.join(str(warning.message) for warning in record)
  assert 'stray.h5.tmp' in messages and truncated.name in messages
  assert garbage.name in messages
  assert future.name in messages and 'newer' in messages
  assert damaged.name in messages
  assert reopened.stats['episodes'] == 5
  assert not (tmp_path / 'stray.h5.tmp').exists()
  rewards = reopened.sample(8, 5)['reward']
  assert set((rewards // 1000).astype(int).ravel()) <= set(range(5))


def test_a_file_removed_behind_the_stores_back_is_dropped(tmp_path, caplog):
  replay = hdf5.HDF5Replay(tmp_path, minlen=2, maxlen=2, cache_steps=0, seed=0)
  for index in range(3):
    replay.add_episode(make_episode(index))
  episode_files(tmp_path)[1].unlink()
  for _ in range(10):
    rewards = replay.sample(4, 2)['reward']
    assert 1 not in set((rewards // 1000).astype(int).ravel())
  assert replay.stats['episodes'] == 2
  assert 'unreadable episode file' in caplog.text


def run_writer(directory, mode):
  return subprocess.Popen(
      [sys.executable, __file__, str(directory), mode],
      stdout=subprocess.PIPE, text=True)


def test_a_writer_killed_inside_a_write_loses_only_that_episode(tmp_path):
  writer = run_writer(tmp_path, 'hold')
  lines = []
  for line in writer.stdout:
    lines.append(line.strip())
    if line.startswith('holding'):
      break
  writer.send_signal(signal.SIGKILL)
  writer.wait()
  assert lines[-2:] == ['99', 'holding']
  assert len(list(tmp_path.glob('*.tmp'))) == 1  # The torn 101st episode.
  with pytest.warns(UserWarning, match='unfinished episode file'):
    replay = hdf5.HDF5Replay(tmp_path, minlen=1, maxlen=5)
  assert replay.stats['episodes'] == 100
  assert stored_indices(tmp_path) == list(range(100))
  assert not list(tmp_path.glob('*.tmp'))


def test_a_writer_killed_at_random_leaves_only_complete_episodes(tmp_path):
  writer = run_writer(tmp_path, 'loop')
  done = -1
  deadline = time.time() + np.random.default_rng().uniform(0.2, 0.6)
  for line in writer.stdout:
    done = int(line)
    if time.time() > deadline and done >= 5:
      break
  writer.send_signal(signal.SIGKILL)
  writer.wait()
  # The writer ran ahead of our reading: its last complete line is what it finished.
  for line in writer.stdout.read().split('\n')[:-1]:
    done = int(line)
  with warnings.catch_warnings(record=True) as record:
    warnings.simplefilter('always')
    replay = hdf5.HDF5Replay(tmp_path, minlen=1, maxlen=5)
  assert all('unfinished' in str(warning.message) for warning in record)
  indices = stored_indices(tmp_path)
  # The episode being written when killed may or may not have been renamed.
  assert indices in (list(range(done + 1)), list(range(done + 2)))
  assert replay.stats['episodes'] == len(indices)
  for path in episode_files(tmp_path):
    assert hdf5.check_file(path, int(NAME.match(path.name).group(1))) is None


def test_sampling_while_the_main_thread_adds_and_evicts(tmp_path):
  replay = hdf5.HDF5Replay(
      tmp_path, capacity=60, minlen=2, maxlen=4, cache_steps=0, open_files=2,
      seed=0)
  replay.add_episode(make_episode(0))
  errors, batches = [], [0]
  stop = threading.Event()

  def sample():
    try:
      while not stop.is_set():
        batch = replay.sample(4, 6)
        index, t = np.divmod(batch['reward'].astype(int), 1000)
        assert (t < 5 + index % 7).all()
        batches[0] += 1
    except Exception as error:  # pylint: disable=broad-except
      errors.append(error)

  thread = threading.Thread(target=sample)
  thread.start()
  index, deadline = 0, time.time() + 60
  # Both threads must overlap for a while, however loaded the machine is.
  while (index < 150 or batches[0] < 20) and time.time() < deadline and not errors:
    index += 1
    replay.add_episode(make_episode(index))
  stop.set()
  thread.join()
  assert not errors, errors
  assert batches[0] >= 20
  assert replay.stats['steps'] <= 60
  assert len(episode_files(tmp_path)) == replay.stats['episodes']


def test_dataset_yields_batches_of_the_stored_dtypes(tmp_path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  replay = hdf5.HDF5Replay(tmp_path, minlen=3, maxlen=5, seed=0)
  for index in range(4):
    replay.add_episode(make_episode(index))
  dataset = replay.dataset(batch=3, length=7)
  assert dataset.element_spec['image'].shape == (3, 7, 6, 6, 1)
  for batch in dataset.take(2):
    assert batch['image'].dtype == tf.uint8
    assert batch['image'].shape == (3, 7, 6, 6, 1)
    assert batch['action'].shape == (3, 7, 3)
    assert batch['position'].dtype == tf.float32
    assert batch['reward'].shape == (3, 7)
    assert batch['is_first'].dtype == tf.bool
    assert batch['is_first'][:, 0].numpy().all()


def test_dataset_samples_ahead_of_the_consumer(tmp_path):
  # The training loop must not wait on disk: after one batch is taken, tf.data's
  # prefetch keeps sampling more in the background.
  from dreamkit.replay import dataset as dataset_lib  # pylint: disable=g-import-not-at-top
  replay = hdf5.HDF5Replay(tmp_path, minlen=3, maxlen=5, seed=0)
  for index in range(4):
    replay.add_episode(make_episode(index))
  sampled = []
  make_sampler = replay.sampler

  def counting_sampler():
    sampler = make_sampler()
    sample = sampler.sample
    sampler.sample = lambda *args: (sampled.append(1), sample(*args))[1]
    return sampler

  replay.sampler = counting_sampler
  iterator = iter(replay.dataset(batch=2, length=5))
  next(iterator)
  deadline = time.time() + 20
  while len(sampled) < 1 + dataset_lib.PREFETCH and time.time() < deadline:
    time.sleep(0.05)
  assert len(sampled) >= 1 + dataset_lib.PREFETCH


def _writer(directory, mode):
  replay = hdf5.HDF5Replay(directory, capacity=0, minlen=1, maxlen=5)
  if mode == 'hold':
    original = hdf5._write_dataset  # pylint: disable=protected-access

    def write_then_hold(handle, key, *args):
      original(handle, key, *args)
      if replay.stats['episodes'] == 100 and key == 'image':
        handle.flush()
        print('holding', flush=True)
        time.sleep(600)

    hdf5._write_dataset = write_then_hold  # pylint: disable=protected-access
  for index in range(10**6):
    replay.add_episode(make_episode(index))
    print(index, flush=True)


if __name__ == '__main__':
  _writer(sys.argv[1], sys.argv[2])


@pytest.mark.parametrize('prioritize_ends', [False, True])
def test_store_sampling_statistics(tmp_path, prioritize_ends):
  # Through the store itself (files, no cache): episodes are chosen uniformly, every
  # valid start of each is reached, and prioritize_ends raises the last start.
  replay = hdf5.HDF5Replay(tmp_path, minlen=4, maxlen=4, cache_steps=0,
                           prioritize_ends=prioritize_ends, seed=0)
  replay.add_episode(make_episode(0, length=10))
  replay.add_episode(make_episode(1, length=30))
  rewards = replay.sample(2000, 4)['reward']
  replay.close()
  assert np.all(np.diff(rewards, axis=1) == 1)  # Each row is one 4-step sequence.
  episode, start = np.divmod(rewards[:, 0].astype(int), 1000)
  assert 850 < np.sum(episode == 0) < 1150
  counts = [np.bincount(start[episode == i], minlength=n) for i, n in ((0, 7), (1, 27))]
  assert all(np.all(count > 0) for count in counts) and len(counts[1]) == 27
  last, middle = counts[1][-1], np.median(counts[1][:-1])
  if prioritize_ends:
    assert last > 3 * middle  # (1 + length) / (27 + length) against 1 / (27 + length).
  else:
    assert last < 2 * middle


def test_a_failed_write_leaves_no_file_and_says_so_on_one_line(tmp_path, monkeypatch):
  """A full disk half-way through an episode: no torn or temporary file, the stored
  episodes complete and sampled, and a StorageError naming the file and the reason."""
  import errno  # pylint: disable=import-outside-toplevel
  from dreamkit.errors import StorageError  # pylint: disable=import-outside-toplevel
  replay = hdf5.HDF5Replay(tmp_path, minlen=1, maxlen=3, seed=0)
  for index in range(3):
    replay.add_episode(make_episode(index))
  before = episode_files(tmp_path)
  write = hdf5._write_dataset  # pylint: disable=protected-access
  written = []

  def full_after_one_key(handle, key, *args):
    if written:
      raise OSError(errno.ENOSPC, 'No space left on device')
    written.append(key)
    write(handle, key, *args)

  monkeypatch.setattr(hdf5, '_write_dataset', full_after_one_key)
  with pytest.raises(StorageError) as failed:
    replay.add_episode(make_episode(3))
  message = str(failed.value)
  assert '\n' not in message and 'No space left on device' in message
  assert 'the 3 episodes stored before it are complete' in message
  assert sorted(path.name for path in tmp_path.iterdir()) == [p.name for p in before]
  assert replay.stats['episodes'] == 3
  assert replay.sample(2, 3)['reward'].shape == (2, 3)
  monkeypatch.undo()
  replay.close()
  assert sorted(stored_indices(tmp_path)) == [0, 1, 2]
  assert hdf5.HDF5Replay(tmp_path, minlen=1, maxlen=3).stats['episodes'] == 3
