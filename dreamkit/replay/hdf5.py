"""Replay store that writes every finished episode to its own HDF5 file.

Layout of `<directory>/<YYYYmmddTHHMMSSffffff>-<uuid hex>-<T>.h5` (docs/replay.md):
one dataset per key, `[T, ...]` along time; uint8 images chunked every `chunk_steps`
steps and compressed, other keys stored contiguous; file attributes `length`,
`format_version` and `dreamkit_version`. Names sort by time and carry T, so the index
is rebuilt from a directory listing plus one cheap open per file.

Writes are atomic: a temporary `<name>.tmp` in the same directory is written,
closed, fsynced and renamed with `os.replace`, so a crash leaves either the whole
episode or a temporary file, which the next open removes. A write that fails (a full
disk, no permission) removes its temporary file and raises a `StorageError`.

Sampling reads only the steps it needs: a bounded LRU of open files
(`open_files`), plus the newest `cache_steps` steps kept in RAM as they are added.
Resident memory therefore does not grow with the number of stored steps (the index
costs ~100 bytes per episode).
"""

import collections
import datetime
import logging
import os
import pathlib
import re
import threading
import time
import uuid
import warnings

import h5py
import numpy as np

import dreamkit
from dreamkit import validate
from dreamkit.errors import StorageError, UserError
from dreamkit.replay import dataset as dataset_lib
from dreamkit.replay import registry
from dreamkit.replay import sampling
from dreamkit.replay.store import IndexedReplay

FORMAT_VERSION = 1
SUFFIX = '.h5'
TEMP_SUFFIX = '.tmp'
COMPRESSIONS = ('lzf', 'gzip', 'none')


@registry.register
class HDF5Replay(IndexedReplay):
  """Episodes as HDF5 files in `directory`; the default store.

  Reopening a directory resumes with every complete episode (the newest ones up to
  `capacity`); files beyond capacity are deleted, unreadable files are skipped with
  a warning and left in place, leftover temporary files are removed.

  Args:
    directory: where the episode files live (created if missing).
    capacity: steps to keep; adding beyond it deletes the oldest episodes.
    minlen: shortest sequence drawn; shorter episodes are not stored.
    maxlen: longest sequence drawn from one episode (0: the whole episode).
    prioritize_ends: give sequences that end at an episode's end more probability.
    ongoing: also sample unfinished episodes (at least `minlen` steps long).
    cache_steps: steps of the newest episodes kept in RAM for sampling.
    open_files: most episode files held open at once (LRU).
    compression: 'gzip' (level 1: smallest files and cheapest sampling here), 'lzf' or 'none' for images.
    chunk_steps: steps per HDF5 chunk of an image dataset.
    seed: seed of the sampling random generator (None: fresh entropy).
    read_only: sample an existing directory without changing it (offline training
      on another run's or your own episodes): nothing is written, removed or
      deleted; a torn, foreign or differently shaped file is skipped with a warning,
      and `add_episode` is refused.
  """

  def __init__(
      self, directory, capacity=2e6, minlen=50, maxlen=50, prioritize_ends=True,
      ongoing=False, cache_steps=10000, open_files=32, compression='gzip',
      chunk_steps=50, seed=None, read_only=False):
    # Every value is checked before the directory is created.
    self._setup_index(capacity, minlen, maxlen, prioritize_ends, ongoing, seed)
    args = validate.Arguments(self)
    self._compression = args.one_of(compression, 'compression', COMPRESSIONS, 'a compression')
    self._chunk_steps = args.positive_int(chunk_steps, 'chunk_steps')
    self._open_files = args.positive_int(open_files, 'open_files')
    self._cache_steps = args.non_negative_int(cache_steps or 0, 'cache_steps')
    self._directory = pathlib.Path(directory).expanduser()
    self._read_only = args.boolean(read_only, 'read_only')
    if self._read_only and not self._directory.is_dir():
      raise UserError(
          f'No episode directory {self._directory}: offline training reads a folder '
          'of HDF5 episodes, such as a run\'s replay/ (docs/after_training.md).')
    if not self._read_only:
      self._directory.mkdir(parents=True, exist_ok=True)
    self._cache = collections.OrderedDict()  # name -> episode, oldest first.
    self._cached_steps = 0
    # Guards the open files: a read and the eviction that deletes the file never
    # overlap. Lock order: self._files_lock, then self._index.lock.
    self._files_lock = threading.Lock()
    self._files = collections.OrderedDict()  # name -> _OpenFile, LRU last.
    self._load()
    # New names sort after every loaded one even if the clock went back meanwhile,
    # so eviction (oldest name first) never takes a new episode for an old one.
    self._last_stamp = max(
        [0] + [_stamp_from_name(name) for name in self._index.keys()])
    self._sampler = self.sampler()

  @property
  def directory(self):
    return self._directory

  def _store(self, episode, length):
    if self._read_only:
      raise UserError(f'Replay: {self._directory} is read-only here; no episode is added.')
    name = self._new_name(length)
    try:
      write_atomic(
          self._directory / name, episode, self._compression, self._chunk_steps)
    except OSError as error:
      # A full disk, no permission, an I/O error: nothing of this episode remains
      # and the stored ones are complete; the run cannot go on storing.
      raise StorageError(
          f'Replay: could not write the episode file {self._directory / name} '
          f'({_first_line(error)}); the {self._index.episodes} episodes stored '
          'before it are complete.') from error
    # The cache is changed only here and in _delete (this thread); the sampler
    # thread only looks episodes up in it.
    if self._cache_steps >= length:
      self._cache[name] = episode
      self._cached_steps += length
    for old in self._index.add(name, length):
      self._delete(old)
    while self._cached_steps > self._cache_steps:
      _, old = self._cache.popitem(last=False)
      self._cached_steps -= sampling.episode_length(old)

  def signature(self):
    """{key: (dtype, step shape)} of the sampled keys, from the oldest episode."""
    if self._signature is not None:
      return self._signature
    for name in self._index.keys():
      try:
        with h5py.File(self._directory / name, 'r') as handle:
          self._signature = sampling.signature_of(dict(handle.items()))
        return self._signature
      except Exception:  # pylint: disable=broad-except
        continue  # Evicted meanwhile (or unreadable): the next one tells as well.
    raise dataset_lib.empty_error()

  def _extra_stats(self):
    return {'cached_steps': self._cached_steps, 'open_files': len(self._files)}

  def close(self):
    with self._files_lock:
      self._files.clear()

  def _new_name(self, length):
    # Strictly increasing microsecond stamps keep name order equal to add order.
    stamp = max(time.time_ns() // 1000, self._last_stamp + 1)
    self._last_stamp = stamp
    moment = datetime.datetime.fromtimestamp(
        stamp // 1_000_000, datetime.timezone.utc)
    return (f"{moment.strftime('%Y%m%dT%H%M%S')}{stamp % 1_000_000:06d}-"
            f'{uuid.uuid4().hex}-{length}{SUFFIX}')

  def _load(self):
    if self._read_only:
      self._load_read_only()
      return
    for temp in sorted(self._directory.glob('*' + TEMP_SUFFIX)):
      warnings.warn(f'Replay: removing the unfinished episode file {temp}.')
      temp.unlink(missing_ok=True)
    found = []
    for path in sorted(self._directory.glob('*' + SUFFIX)):
      length = length_from_name(path.name)
      if length is None:
        warnings.warn(
            f'Replay: skipping {path}: not named <time>-<id>-<length>{SUFFIX}.')
      elif length >= self._minlen:
        found.append((path.name, length))
    # Newest first, until capacity is reached; older files are beyond capacity.
    keep, steps = [], 0
    capacity = self._index.capacity
    while found and not (capacity and steps >= capacity):
      name, length = found.pop()
      problem = check_file(self._directory / name, length)
      if problem:
        warnings.warn(f'Replay: skipping unreadable episode file: {problem}')
        continue
      keep.append((name, length))
      steps += length
    beyond = [name for name, _ in found]
    for name, length in reversed(keep):
      beyond += self._index.add(name, length)
    self._index.total_steps = self._index.steps
    self._index.total_episodes = self._index.episodes
    if beyond:
      logging.warning(
          'Replay: deleting %d episode files beyond the capacity of %d steps.',
          len(beyond), capacity)
    for name in beyond:
      (self._directory / name).unlink(missing_ok=True)

  def _load_read_only(self):
    """Indexes the newest episodes up to capacity, touching no file. Each must open
    as an episode (check_file) with the keys, dtypes and step shapes most episode
    files share; any other file is skipped with a warning."""
    found = []
    for path in sorted(self._directory.iterdir()):
      length = length_from_name(path.name)
      problem = None if length is not None else (
          f'{path}: not an episode file (<time>-<id>-<length>{SUFFIX})')
      if problem is None and length < self._minlen:
        continue
      problem = problem or check_file(path, length)
      if problem is None:
        with h5py.File(path, 'r') as handle:
          found.append((path.name, length, sampling.signature_of(dict(handle.items()))))
      else:
        warnings.warn(f'Replay: skipping {problem}')
    signatures = collections.Counter(_describe(sig) for _, _, sig in found)
    common = signatures.most_common(1)[0][0] if signatures else None
    keep, steps = [], 0
    capacity = self._index.capacity
    for name, length, signature in reversed(found):  # Newest first.
      if _describe(signature) != common:
        warnings.warn(f'Replay: skipping {self._directory / name}: its keys and shapes '
                      f'({_describe(signature)}) differ from those of the other '
                      f'episodes ({common})')
      elif not (capacity and steps >= capacity):
        keep.append((name, length))
        steps += length
    for name, length in reversed(keep):
      self._index.add(name, length)
    self._index.total_steps = self._index.steps
    self._index.total_episodes = self._index.episodes

  def _delete(self, name):
    episode = self._cache.pop(name, None)
    if episode is not None:
      self._cached_steps -= sampling.episode_length(episode)
    with self._files_lock:
      self._files.pop(name, None)  # Dropping the last reference closes the file.
      (self._directory / name).unlink(missing_ok=True)

  def _open(self, name):
    """The `_OpenFile` of an episode; call with `_files_lock` held."""
    if name in self._files:
      self._files.move_to_end(name)
      return self._files[name]
    if name not in self._index:
      raise sampling.EpisodeUnavailable()  # Evicted after it was chosen.
    try:
      self._files[name] = _OpenFile(self._directory / name)
    except Exception as error:  # pylint: disable=broad-except
      # h5py reports damage as OSError, RuntimeError, KeyError, ...: all mean unreadable.
      self._index.remove(name)
      raise sampling.EpisodeUnavailable(
          f'dropping unreadable episode file {self._directory / name}: '
          f'{error}') from error
    while len(self._files) > self._open_files:
      self._files.popitem(last=False)
    return self._files[name]

  def _read(self, name, start, stop, out, row, pos):
    episode = self._cache.get(name)
    if episode is not None:
      for key, target in out.items():
        if key != 'is_first':
          target[row, pos:pos + stop - start] = episode[key][start:stop]
      return
    with self._files_lock:
      episode = self._open(name)
      try:
        for key, target in out.items():
          if key != 'is_first':
            episode.read(key, start, stop, target[row, pos:pos + stop - start])
      except Exception as error:  # pylint: disable=broad-except
        self._index.remove(name)
        self._files.pop(name)
        raise sampling.EpisodeUnavailable(
            f'dropping unreadable episode file {self._directory / name}: '
            f'{error!r}') from error


def _describe(signature):
  return ', '.join(f'{key} {dtype}{list(shape)}'
                   for key, (dtype, shape) in sorted(signature.items()))


def _first_line(error):
  """h5py's messages run over lines (the HDF5 error stack): keep the reason."""
  text = str(error)
  match = re.search(r"error message = '([^']+)'", text)
  head = text.strip().splitlines()[0] if text.strip() else type(error).__name__
  return f'{head.split(" (")[0]}: {match.group(1)}' if match else head[:200]


def _stamp_from_name(name):
  """The microsecond stamp `_new_name` encoded in `name` (0 if it has none)."""
  try:
    moment = datetime.datetime.strptime(name[:15], '%Y%m%dT%H%M%S').replace(
        tzinfo=datetime.timezone.utc)
    return int(moment.timestamp()) * 1_000_000 + int(name[15:21])
  except ValueError:
    return 0


def length_from_name(name):
  """The step count T encoded in an episode file name, or None."""
  if not name.endswith(SUFFIX) or '-' not in name:
    return None
  try:
    return int(name[:-len(SUFFIX)].rsplit('-', 1)[1])
  except ValueError:
    return None


def check_file(path, length):
  """None if `path` opens as an episode of `length` steps, else what is wrong."""
  try:
    with h5py.File(path, 'r') as handle:
      version = handle.attrs.get('format_version', 0)
      if version > FORMAT_VERSION:
        return (f'{path}: format_version {version} is newer than this dreamkit '
                f'reads ({FORMAT_VERSION}); upgrade dreamkit')
      stored = handle.attrs.get('length')
      if stored != length:
        return f'{path}: length attribute {stored!r}, name says {length}'
      for key, dataset in handle.items():
        if not isinstance(key, str):
          return f'{path}: damaged dataset name {key!r}'
        if not isinstance(dataset, h5py.Dataset) or dataset.shape[:1] != (length,):
          return f'{path}: {key} is not a dataset of {length} steps'
  except Exception as error:  # pylint: disable=broad-except
    # Damaged metadata raises RuntimeError ('wrong B-tree signature'), TypeError, ...
    return f'{path}: {type(error).__name__}: {error}'
  return None


class _OpenFile:
  """An episode file opened for reading through h5py's low-level API.

  Sampling opens a file per sequence once the store outgrows `open_files`, and
  makes ~100 small reads per 16x50 batch; the high-level `h5py.File` and
  `Dataset.read_direct` cost about twice as much per open and ~50 us more per read.
  The file closes when the object is dropped.
  """

  def __init__(self, path):
    self._file = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY)
    self._datasets = {}

  def read(self, key, start, stop, target):
    """Steps `[start, stop)` of dataset `key` into the C-contiguous `target`."""
    dataset = self._datasets.get(key)
    if dataset is None:
      dataset = self._datasets[key] = h5py.h5d.open(self._file, key.encode())
    file_space = dataset.get_space()
    step_shape = dataset.shape[1:]
    file_space.select_hyperslab(
        (start,) + (0,) * len(step_shape), (stop - start,) + step_shape)
    dataset.read(h5py.h5s.create_simple(target.shape), file_space, target)


def write_atomic(path, episode, compression, chunk_steps):
  """Write `episode` to `path` so that `path` exists only once complete."""
  path = pathlib.Path(path)
  temp = path.with_name(path.name + TEMP_SUFFIX)
  try:
    with h5py.File(temp, 'w') as handle:
      handle.attrs['length'] = sampling.episode_length(episode)
      handle.attrs['format_version'] = FORMAT_VERSION
      handle.attrs['dreamkit_version'] = dreamkit.__version__
      for key, value in episode.items():
        _write_dataset(handle, key, value, compression, chunk_steps)
    _fsync(temp)
    os.replace(temp, path)
  except BaseException:
    temp.unlink(missing_ok=True)
    raise
  _fsync(path.parent)


def _write_dataset(handle, key, value, compression, chunk_steps):
  if value.dtype == np.uint8 and value.ndim >= 3:
    # Images: chunks along time so a sequence decompresses only the chunks it spans.
    chunks = (min(chunk_steps, len(value)),) + value.shape[1:]
    options = {'chunks': chunks}
    if compression == 'lzf':
      options.update(compression='lzf')
    elif compression == 'gzip':
      options.update(compression='gzip', compression_opts=1)
    handle.create_dataset(key, data=value, **options)
  else:
    handle.create_dataset(key, data=value)


def _fsync(path):
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)
