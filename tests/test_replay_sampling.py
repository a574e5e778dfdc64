"""Chunk sampling statistics and chunk contents (shared by every replay store)."""

import collections

import numpy as np
import pytest

from dreamkit.errors import UserError
from dreamkit.replay import memory
from dreamkit.replay import sampling


def draw_many(total, minlen, maxlen, prioritize_ends, draws=22000, seed=0):
  rng = np.random.default_rng(seed)
  return [
      sampling.draw_sequence(rng, total, minlen, maxlen, prioritize_ends)
      for _ in range(draws)]


def test_uniform_starts_reach_every_index_equally():
  draws = draw_many(total=10, minlen=4, maxlen=4, prioritize_ends=False)
  assert {length for _, length in draws} == {4}
  counts = collections.Counter(start for start, _ in draws)
  assert sorted(counts) == list(range(7))  # Starts 0..6 all reachable, no others.
  expected = len(draws) / 7
  chi_square = sum((count - expected) ** 2 / expected for count in counts.values())
  assert chi_square < 30  # 6 degrees of freedom: p < 1e-4 for a biased sampler.


def test_prioritize_ends_gives_the_last_start_length_extra_shares():
  uniform = draw_many(10, 4, 4, prioritize_ends=False)
  ends = draw_many(10, 4, 4, prioritize_ends=True)
  last = 10 - 4
  uniform_rate = np.mean([start == last for start, _ in uniform])
  ends_rate = np.mean([start == last for start, _ in ends])
  # The draw range 0..10 is clipped to 6: start 6 gets 5 of 11 shares.
  assert abs(uniform_rate - 1 / 7) < 0.015
  assert abs(ends_rate - 5 / 11) < 0.015
  counts = collections.Counter(start for start, _ in ends)
  assert sorted(counts) == list(range(7))
  for start in range(last):
    assert abs(counts[start] / len(ends) - 1 / 11) < 0.015


def test_prioritize_ends_does_not_depend_on_minlen():
  """Lowering minlen (to keep short episodes) must keep the end of a long episode
  prioritized: with the reference's `+= minlen`, minlen 1 gave the last start of a
  300-step episode 2 shares in 252, and the terminal step was almost never replayed."""
  total, maxlen = 300, 50
  for minlen in (1, 10, 50):
    ends = draw_many(total, minlen, maxlen, prioritize_ends=True, draws=20000)
    at_end = np.mean([start + length == total for start, length in ends])
    # Each draw's end share is (length + 1) / (total - length + 1 + length) with
    # length in [max(minlen, 51 - minlen), 50]: about 51 / 301 for every minlen.
    assert 0.13 < at_end < 0.19, (minlen, at_end)
  uniform = draw_many(total, 1, maxlen, prioritize_ends=False, draws=20000)
  assert np.mean([start + length == total for start, length in uniform]) < 0.01


def test_sequence_lengths_follow_the_reference_rule():
  # length = max(minlen, min(total, maxlen) - randint(minlen)).
  draws = draw_many(total=20, minlen=3, maxlen=6, prioritize_ends=True, draws=3000)
  assert {length for _, length in draws} == {4, 5, 6}
  assert all(0 <= start <= 20 - length for start, length in draws)
  short = draw_many(total=4, minlen=3, maxlen=6, prioritize_ends=True, draws=3000)
  assert {length for _, length in short} == {3, 4}
  whole = draw_many(total=7, minlen=1, maxlen=0, prioritize_ends=False, draws=100)
  assert set(whole) == {(0, 7)}


@pytest.mark.parametrize('minlen, maxlen', [(0, 5), (5, 3), (2.5, 4)])
def test_bad_lengths_are_user_errors(minlen, maxlen):
  with pytest.raises(UserError, match='minlen|maxlen'):
    memory.MemoryReplay(minlen=minlen, maxlen=maxlen)


def make_episode(index, length, size=3):
  """Steps whose reward encodes (episode, step) so a chunk can be checked."""
  steps = np.arange(length)
  image = (index * 7 + steps[:, None, None, None] + np.zeros((1, size, size, 1)))
  return {
      'image': (image % 256).astype(np.uint8),
      'vector': np.stack([steps, -steps], 1).astype(np.float64),
      'action': np.eye(4)[(steps + index) % 4],
      'reward': 1000.0 * index + steps,
      'is_first': steps == 0,
      'is_last': steps == length - 1,
      'is_terminal': steps == length - 1,
      'log_info': steps,
  }


def check_chunks(batch, episodes, minlen, maxlen):
  """Every step equals its stored step; `is_first` exactly at sequence starts."""
  rows, length = batch['reward'].shape
  assert 'log_info' not in batch
  pieces = []  # Lengths of sequences, a sequence cut at a row end continuing below.
  previous = None
  for row in range(rows):
    for pos in range(length):
      index, step = divmod(int(batch['reward'][row, pos]), 1000)
      episode = episodes[index]
      for key in ('image', 'vector', 'action', 'is_last', 'is_terminal'):
        np.testing.assert_array_equal(batch[key][row, pos], episode[key][step])
      continues = previous == (index, step - 1)
      assert batch['is_first'][row, pos] == (pos == 0 or not continues)
      if continues:
        pieces[-1] += 1
      else:
        pieces.append(1)
      previous = (index, step)
  # The first and last pieces may continue from / into the neighbouring batch.
  assert min(pieces[1:-1]) >= minlen
  return pieces[1:-1]


def test_chunks_hold_the_stored_values_and_mark_sequence_starts():
  replay = memory.MemoryReplay(minlen=3, maxlen=7, prioritize_ends=True, seed=1)
  episodes = [make_episode(index, 3 + index % 9) for index in range(40)]
  for episode in episodes:
    replay.add_episode(episode)
  pieces = []
  for _ in range(20):
    batch = replay.sample(8, 16)
    assert batch['image'].shape == (8, 16, 3, 3, 1)
    assert batch['image'].dtype == np.uint8
    assert batch['vector'].dtype == np.float32
    assert batch['is_first'].dtype == bool
    pieces += check_chunks(batch, episodes, 3, 7)
  # Short episodes fill a row from several sequences; rows split sequences too.
  assert max(pieces) <= 7 * 2  # Two adjacent sequences of one episode at most.
  assert np.mean(pieces) < 8


def test_every_chunk_of_a_short_episode_starts_at_a_sequence_start():
  replay = memory.MemoryReplay(minlen=5, maxlen=5, prioritize_ends=False, seed=2)
  replay.add_episode(make_episode(0, 5))
  batch = replay.sample(4, 10)
  # Each row is the whole episode twice: two sequences, each starting is_first.
  expected = np.tile(np.arange(5.0), 2)
  np.testing.assert_array_equal(batch['reward'], np.tile(expected, (4, 1)))
  np.testing.assert_array_equal(batch['is_first'][0], np.tile([1, 0, 0, 0, 0], 2))
