"""What every episode store shares: the episode index, chunk sampling and tf.data.

A store calls `_setup_index(...)` in its constructor and implements three things:
`_store(episode, length)` (keep a finished, converted episode and index it),
`signature()` ({key: (dtype, step shape)} of the sampled keys) and
`_read(key, start, stop, out, row, pos)` (the sampler's way into the stored steps,
see sampling.py). Adding steps, the minlen rule, sampling, the tf.data pipeline and
the basic stats live here once.
"""

import warnings

import numpy as np

from dreamkit import validate
from dreamkit.replay import base
from dreamkit.replay import dataset as dataset_lib
from dreamkit.replay import sampling


class IndexedReplay(base.Replay):
  """A replay store built on `sampling.EpisodeIndex` and `sampling.ChunkSampler`."""

  def _setup_index(self, capacity, minlen, maxlen, prioritize_ends, ongoing, seed):
    """Checks and keeps the options every store shares; call it first in __init__,
    before anything is created on disk."""
    args = validate.Arguments(self)
    where = args.name('minlen').rpartition('.')[0]  # 'replays.HDF5Replay'
    self._minlen, self._maxlen = sampling.check_sampling_options(minlen, maxlen, where)
    capacity = args.non_negative_int(capacity or 0, 'capacity')
    self._prioritize_ends = args.boolean(prioritize_ends, 'prioritize_ends')
    ongoing = args.boolean(ongoing, 'ongoing')
    self._index = sampling.EpisodeIndex(capacity, self._minlen, ongoing)
    self._seeds = np.random.SeedSequence(args.optional_seed(seed, 'seed'))
    self._signature = None
    self._skipped = 0

  def add_step(self, step, worker=0):
    episode = self._index.add_step(step, worker)
    if episode is not None:
      self.add_episode(episode)

  def add_episode(self, episode):
    episode = {key: sampling.convert(value) for key, value in episode.items()}
    length = sampling.episode_length(episode)
    if length < self._minlen:
      # The reference's rule. Said once, loudly: an env whose episodes are mostly
      # shorter than minlen leaves the agent training on the few long ones.
      self._skipped += 1
      if self._skipped == 1:
        warnings.warn(
            f'Replay: an episode of {length} steps is shorter than minlen '
            f'{self._minlen} and is not stored, nor is any later one that short '
            "(the store's stats count them as 'skipped_episodes'). For an env with "
            f'short episodes lower the minlen, e.g. replays.{type(self).__name__}'
            '.minlen = 1.', stacklevel=2)
      return
    self._store(episode, length)

  def _store(self, episode, length):
    """Keep a converted episode of `length` >= minlen steps and index it."""
    raise NotImplementedError

  def sampler(self):
    """A new `ChunkSampler` with its own random stream (one per consumer)."""
    rng = np.random.default_rng(self._seeds.spawn(1)[0])
    return sampling.ChunkSampler(
        self._index, self._read, self._minlen, self._maxlen,
        self._prioritize_ends, rng)

  def sample(self, batch, length):
    """A NumPy batch {key: [batch, length, ...]} (the sampler set up by the store)."""
    return self._sampler.sample(batch, length, self.signature())

  def dataset(self, batch, length):
    return dataset_lib.make_dataset(self, batch, length)

  @property
  def stats(self):
    with self._index.lock:
      return {
          'steps': self._index.steps,
          'episodes': self._index.episodes,
          'total_steps': self._index.total_steps,
          'total_episodes': self._index.total_episodes,
          'skipped_episodes': self._skipped,
          **self._extra_stats(),
      }

  def _extra_stats(self):
    """Store-specific counters added to `stats` (called under the index lock)."""
    return {}
