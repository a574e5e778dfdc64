"""Replay store that keeps episodes in RAM (tests, debugging, small runs)."""

import itertools
import logging

import numpy as np

from dreamkit.replay import base
from dreamkit.replay import dataset as dataset_lib
from dreamkit.replay import registry
from dreamkit.replay import sampling


@registry.register
class MemoryReplay(base.Replay):
  """Episodes held in RAM; same interface and sampling as `HDF5Replay`.

  Nothing is written to disk, so a restarted run starts empty.

  Args:
    directory: ignored (accepted so the pipeline can call every store with it).
    capacity: steps to keep; adding beyond it evicts the oldest episodes.
    minlen: shortest sequence drawn; shorter episodes are not stored.
    maxlen: longest sequence drawn from one episode (0: the whole episode).
    prioritize_ends: give sequences that end at an episode's end more probability.
    ongoing: also sample unfinished episodes (at least `minlen` steps long).
    seed: seed of the sampling random generator (None: fresh entropy).
  """

  def __init__(
      self, directory=None, capacity=2e6, minlen=50, maxlen=50,
      prioritize_ends=True, ongoing=False, seed=None):
    del directory
    sampling.check_sampling_options(minlen, maxlen)
    self._minlen = int(minlen)
    self._maxlen = int(maxlen or 0)
    self._prioritize_ends = bool(prioritize_ends)
    self._index = sampling.EpisodeIndex(capacity, self._minlen, ongoing)
    self._episodes = {}
    self._counter = itertools.count()
    self._signature = None
    self._seeds = np.random.SeedSequence(seed)
    self._sampler = self.sampler()

  def add_step(self, step, worker=0):
    episode = self._index.add_step(step, worker)
    if episode is not None:
      self.add_episode(episode)

  def add_episode(self, episode):
    episode = {key: sampling.convert(value) for key, value in episode.items()}
    length = sampling.episode_length(episode)
    if length < self._minlen:
      logging.info('Replay: skipping an episode of %d < minlen steps.', length)
      return
    key = next(self._counter)
    with self._index.lock:
      self._episodes[key] = episode
      for old in self._index.add(key, length):
        del self._episodes[old]

  def signature(self):
    """{key: (dtype, step shape)} of the sampled keys, from the oldest episode."""
    if self._signature is None:
      with self._index.lock:
        for key in self._index.keys():
          self._signature = sampling.signature_of(self._episodes[key])
          break
        else:
          raise dataset_lib.empty_error()
    return self._signature

  def sampler(self):
    """A new `ChunkSampler` with its own random stream (one per consumer)."""
    rng = np.random.default_rng(self._seeds.spawn(1)[0])
    return sampling.ChunkSampler(
        self._index, self._read, self._minlen, self._maxlen,
        self._prioritize_ends, rng)

  def sample(self, batch, length):
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
      }

  def _read(self, key, start, stop, out, row, pos):
    episode = self._episodes.get(key)
    if episode is None:
      raise sampling.EpisodeUnavailable()
    for name, target in out.items():
      if name != 'is_first':
        target[row, pos:pos + stop - start] = episode[name][start:stop]
