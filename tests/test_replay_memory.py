"""MemoryReplay: step buffering per worker, capacity, ongoing episodes, errors."""

import sys

import gin
import numpy as np
import pytest

from dreamkit import replay as replay_lib
from dreamkit.errors import UserError
from dreamkit.replay import memory


def step(index, t, length):
  return {
      'image': np.full((2, 2, 1), t, np.uint8),
      'action': np.zeros(3, np.float64),
      'reward': np.float64(100 * index + t),
      'count': np.int64(t),
      'is_first': t == 0,
      'is_last': t == length - 1,
      'is_terminal': False,
  }


def episode(length, index=0):
  return {key: np.stack([step(index, t, length)[key] for t in range(length)])
          for key in step(0, 0, 1)}


def test_registered_as_a_replay_component():
  assert replay_lib.registry.get('MemoryReplay') is memory.MemoryReplay
  assert replay_lib.registry.get('HDF5Replay') is replay_lib.HDF5Replay


def test_gin_binds_store_parameters_and_rejects_misspelled_ones(tmp_path):
  gin.parse_config(
      'replays.MemoryReplay.capacity = 30\nreplays.MemoryReplay.minlen = 2')
  factory = replay_lib.registry.configured('MemoryReplay')
  replay = factory(str(tmp_path))  # Called like the pipeline does: (directory).
  assert replay._index.capacity == 30 and replay._minlen == 2
  with pytest.raises(ValueError, match='capcity'):
    gin.parse_config('replays.HDF5Replay.capcity = 30')


def test_steps_of_interleaved_workers_form_separate_episodes():
  replay = memory.MemoryReplay(minlen=2, maxlen=2, seed=0)
  for t in range(4):
    replay.add_step(step(1, t, 4), worker=0)
    if t < 3:
      replay.add_step(step(2, t, 3), worker=1)
  assert replay.stats['episodes'] == 2
  assert replay.stats['steps'] == 7
  stored = [replay._episodes[key] for key in replay._index.keys()]
  np.testing.assert_array_equal(stored[0]['reward'], [200, 201, 202])
  np.testing.assert_array_equal(stored[1]['reward'], [100, 101, 102, 103])
  # Stored dtypes follow the contract: float32, int32, uint8, bool.
  assert stored[0]['reward'].dtype == np.float32
  assert stored[0]['action'].dtype == np.float32
  assert stored[0]['count'].dtype == np.int32
  assert stored[0]['image'].dtype == np.uint8
  assert stored[0]['is_last'].dtype == bool


def test_a_reset_mid_episode_starts_a_new_episode_instead_of_joining_them():
  # Prefill ends mid-episode and the driver resets the env: the next is_first must
  # not continue the unfinished episode (a chunk would run across the join).
  replay = memory.MemoryReplay(minlen=4, maxlen=4, seed=0)
  for t in range(5):
    replay.add_step(step(1, t, 10))          # Cut off after 5 of 10 steps.
  for t in range(4):
    replay.add_step(step(2, t, 4))
  assert replay.stats['episodes'] == 1 and replay.stats['steps'] == 4
  (stored,) = [replay._episodes[key] for key in replay._index.keys()]
  np.testing.assert_array_equal(stored['reward'], [200, 201, 202, 203])
  np.testing.assert_array_equal(stored['is_first'], [True, False, False, False])
  batch = replay.sample(3, 4)
  np.testing.assert_array_equal(batch['reward'] // 100, 2)


def test_capacity_evicts_the_oldest_episodes():
  replay = memory.MemoryReplay(capacity=25, minlen=1, maxlen=5, seed=0)
  for index in range(6):
    replay.add_episode(episode(10, index))
    assert replay.stats['steps'] <= 25
  assert replay.stats == {
      'steps': 20, 'episodes': 2, 'total_steps': 60, 'total_episodes': 6,
      'skipped_episodes': 0}
  kept = {int(replay._episodes[key]['reward'][0]) // 100
          for key in replay._index.keys()}
  assert kept == {4, 5}
  rewards = replay.sample(16, 5)['reward']
  assert set((rewards // 100).astype(int).ravel()) <= {4, 5}


def test_capacity_keeps_the_newest_episode_even_when_longer():
  replay = memory.MemoryReplay(capacity=5, minlen=1, maxlen=5, seed=0)
  replay.add_episode(episode(3))
  replay.add_episode(episode(8, 1))
  assert replay.stats['episodes'] == 1
  assert replay.stats['steps'] == 8


def test_short_episodes_are_not_stored_and_said_once():
  replay = memory.MemoryReplay(minlen=5, maxlen=5)
  with pytest.warns(UserWarning, match='shorter than minlen 5') as record:
    replay.add_episode(episode(4))
    replay.add_episode(episode(3))
  assert len(record) == 1 and 'MemoryReplay.minlen' in str(record[0].message)
  assert replay.stats['episodes'] == 0 and replay.stats['skipped_episodes'] == 2


def test_ongoing_episodes_are_sampled_only_when_enabled():
  with_ongoing = memory.MemoryReplay(minlen=3, maxlen=3, ongoing=True, seed=0)
  without = memory.MemoryReplay(minlen=3, maxlen=3, ongoing=False, seed=0)
  for t in range(5):
    with_ongoing.add_step(step(7, t, 100))
    without.add_step(step(7, t, 100))
  with_ongoing.add_episode(episode(4, 1))
  without.add_episode(episode(4, 1))
  rewards = with_ongoing.sample(32, 3)['reward']
  assert 7 in set((rewards // 100).astype(int).ravel())
  rewards = without.sample(32, 3)['reward']
  assert set((rewards // 100).astype(int).ravel()) == {1}


def test_empty_store_raises_a_clear_error_before_loading_tensorflow():
  loaded = 'tensorflow' in sys.modules
  replay = memory.MemoryReplay(minlen=1, maxlen=1)
  with pytest.raises(UserError, match='empty'):
    replay.dataset(4, 5)
  with pytest.raises(UserError, match='empty'):
    replay.sample(4, 5)
  assert loaded or 'tensorflow' not in sys.modules


def test_strings_are_rejected_with_a_clear_message():
  replay = memory.MemoryReplay(minlen=1, maxlen=1)
  bad = episode(3)
  bad['log_name'] = np.array(['a', 'b', 'c'])
  with pytest.raises(TypeError, match='numeric'):
    replay.add_episode(bad)
